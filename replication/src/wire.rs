//! The inter-broker messages of Raft, framed by hand.
//!
//! An [`RpcMessage`] is one request or response of one group:
//!
//! ```text
//! group: tag u8 (0 controller, 1 partition) | topic id [16] | partition i32
//! kind u8 (AppendEntries 1, Vote 2, PreVote 3, Snapshot 4, TransferLeader 5,
//!          ForwardCommand 6, MoveLeader 7; a response
//!          repeats its request's kind, an error response sets the high bit)
//! body
//! ```
//!
//! Small values (votes, log ids, memberships) use `binary_codec`. Record data is never copied
//! into a serialization buffer: an outgoing AppendEntries is a list of parts (small headers
//! and the entries' own `Bytes`) written with vectored IO, and an incoming one is sliced out of
//! the received frame.

use bytes::{BufMut, Bytes, BytesMut};
use openraft::EntryPayload;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderError,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use uuid::Uuid;

use crate::binary_codec::{
    DecodeError, Reader, invalid, put_log_id, put_membership, put_opt_log_id,
    put_stored_membership, put_vote,
};
use crate::types::{
    C, Entry, GroupId, NodeId, PartitionId, Records, Snapshot, SnapshotData, SnapshotMeta, Vote,
};

/// Bytes of the group and kind header.
pub(crate) const HEADER_LEN: usize = 1 + 16 + 4 + 1;
const ERROR_BIT: u8 = 0x80;
/// Parts beyond which small ones are merged (bounds the iovec count of one write).
const MAX_PARTS: usize = 512;

/// What an RPC is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcKind {
    AppendEntries = 1,
    Vote = 2,
    PreVote = 3,
    Snapshot = 4,
    TransferLeader = 5,
    /// A command for the controller group sent to its leader by another node.
    ForwardCommand = 6,
    /// Asks a group's leader to hand leadership to a node (preferred-leader election requested
    /// on another node).
    MoveLeader = 7,
}

impl RpcKind {
    fn from_u8(b: u8) -> Result<RpcKind, DecodeError> {
        Ok(match b {
            1 => RpcKind::AppendEntries,
            2 => RpcKind::Vote,
            3 => RpcKind::PreVote,
            4 => RpcKind::Snapshot,
            5 => RpcKind::TransferLeader,
            6 => RpcKind::ForwardCommand,
            7 => RpcKind::MoveLeader,
            other => return Err(invalid("rpc kind", format!("{other}"))),
        })
    }
}

/// Why a node could not answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RemoteFailure {
    /// The target does not host the group (not created yet, or removed).
    GroupNotFound,
    /// The target's group stopped (a storage failure, or shutting down).
    GroupStopped(String),
    /// The request did not decode.
    Malformed(String),
}

/// One request or response of one group, as parts to be written back to back.
#[derive(Debug, Clone)]
pub struct RpcMessage {
    pub(crate) group: GroupId,
    /// The kind, with [`ERROR_BIT`] set on error responses.
    kind: u8,
    /// The body after the header, in parts.
    parts: Vec<Bytes>,
}

impl RpcMessage {
    fn new(group: GroupId, kind: u8, parts: Vec<Bytes>) -> Self {
        RpcMessage { group, kind, parts }
    }

    pub(crate) fn kind(&self) -> Result<RpcKind, DecodeError> {
        RpcKind::from_u8(self.kind & !ERROR_BIT)
    }

    /// Encoded length (header and body).
    pub fn len(&self) -> usize {
        HEADER_LEN + self.parts.iter().map(Bytes::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The header and the body parts, in wire order.
    pub(crate) fn wire_parts(&self) -> impl Iterator<Item = Bytes> + '_ {
        let mut header = BytesMut::with_capacity(HEADER_LEN);
        put_group(&mut header, &self.group);
        header.put_u8(self.kind);
        std::iter::once(header.freeze()).chain(self.parts.iter().cloned())
    }

    /// Decodes a message received as one contiguous buffer (the body is sliced, not copied).
    pub(crate) fn decode(mut buf: Bytes) -> Result<RpcMessage, DecodeError> {
        let (group, kind) = {
            let mut r = Reader::new(&buf);
            let group = read_group(&mut r)?;
            (group, r.u8("rpc kind")?)
        };
        RpcKind::from_u8(kind & !ERROR_BIT)?;
        let body = buf.split_off(HEADER_LEN);
        Ok(RpcMessage::new(group, kind, vec![body]))
    }

    /// The body as one buffer (one part after decoding; joined otherwise, as in tests).
    fn body(&self) -> Bytes {
        match self.parts.as_slice() {
            [one] => one.clone(),
            parts => {
                let mut b = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                for p in parts {
                    b.extend_from_slice(p);
                }
                b.freeze()
            }
        }
    }

    pub(crate) fn error(group: GroupId, kind: RpcKind, failure: &RemoteFailure) -> RpcMessage {
        let (code, text) = match failure {
            RemoteFailure::GroupNotFound => (1u8, ""),
            RemoteFailure::GroupStopped(t) => (2, t.as_str()),
            RemoteFailure::Malformed(t) => (3, t.as_str()),
        };
        let text = &text.as_bytes()[..text.len().min(4096)];
        let mut b = BytesMut::with_capacity(5 + text.len());
        b.put_u8(code);
        b.put_u32(text.len() as u32);
        b.put_slice(text);
        RpcMessage::new(group, kind as u8 | ERROR_BIT, vec![b.freeze()])
    }

    /// `Err` with the failure if this is an error response.
    fn check_error(&self) -> Result<Result<Bytes, RemoteFailure>, DecodeError> {
        let body = self.body();
        if self.kind & ERROR_BIT == 0 {
            return Ok(Ok(body));
        }
        let mut r = Reader::new(&body);
        let code = r.u8("error code")?;
        let text = String::from_utf8_lossy(r.len_prefixed("error text")?).into_owned();
        Ok(Err(match code {
            1 => RemoteFailure::GroupNotFound,
            2 => RemoteFailure::GroupStopped(text),
            _ => RemoteFailure::Malformed(text),
        }))
    }
}

fn put_group(out: &mut impl BufMut, g: &GroupId) {
    match g {
        GroupId::Controller => {
            out.put_u8(0);
            out.put_slice(&[0u8; 16]);
            out.put_i32(0);
        }
        GroupId::Partition(p) => {
            out.put_u8(1);
            out.put_slice(p.topic_id.as_bytes());
            out.put_i32(p.partition);
        }
    }
}

fn read_group(r: &mut Reader<'_>) -> Result<GroupId, DecodeError> {
    let tag = r.u8("group tag")?;
    let id = r.bytes16("topic id")?;
    let partition = r.i32("partition")?;
    match tag {
        0 => Ok(GroupId::Controller),
        1 => Ok(GroupId::Partition(PartitionId {
            topic_id: Uuid::from_bytes(id),
            partition,
        })),
        t => Err(invalid("group tag", format!("{t}"))),
    }
}

/// Collects parts: small values go into a growing buffer, large payloads stay separate.
struct PartsWriter {
    parts: Vec<Bytes>,
    buf: BytesMut,
}

impl PartsWriter {
    fn new() -> Self {
        PartsWriter {
            parts: Vec::new(),
            buf: BytesMut::with_capacity(128),
        }
    }

    fn payload(&mut self, data: &Bytes) {
        if data.len() < 256 || self.parts.len() >= MAX_PARTS {
            self.buf.extend_from_slice(data);
            return;
        }
        if !self.buf.is_empty() {
            self.parts.push(self.buf.split().freeze());
        }
        self.parts.push(data.clone());
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.buf.is_empty() {
            self.parts.push(self.buf.freeze());
        }
        self.parts
    }
}

// ---------------------------------------------------------------------------------------------
// AppendEntries

const ENTRY_BLANK: u8 = 0;
const ENTRY_NORMAL: u8 = 1;
const ENTRY_MEMBERSHIP: u8 = 2;

pub(crate) fn encode_append_request(group: GroupId, rpc: &AppendEntriesRequest<C>) -> RpcMessage {
    let mut w = PartsWriter::new();
    put_vote(&mut w.buf, &rpc.vote);
    put_opt_log_id(&mut w.buf, rpc.prev_log_id.as_ref());
    put_opt_log_id(&mut w.buf, rpc.leader_commit.as_ref());
    w.buf.put_u32(rpc.entries.len() as u32);
    for e in &rpc.entries {
        put_log_id(&mut w.buf, &e.log_id);
        match &e.payload {
            EntryPayload::Blank => w.buf.put_u8(ENTRY_BLANK),
            EntryPayload::Normal(r) => {
                w.buf.put_u8(ENTRY_NORMAL);
                w.buf.put_u32(r.batches.len() as u32);
                w.payload(&r.batches);
            }
            EntryPayload::Membership(m) => {
                w.buf.put_u8(ENTRY_MEMBERSHIP);
                put_membership(&mut w.buf, m);
            }
        }
    }
    RpcMessage::new(group, RpcKind::AppendEntries as u8, w.finish())
}

pub(crate) fn decode_append_request(
    m: &RpcMessage,
) -> Result<AppendEntriesRequest<C>, DecodeError> {
    let body = m.body();
    let mut r = Reader::new(&body);
    let vote = r.vote()?;
    let prev_log_id = r.opt_log_id()?;
    let leader_commit = r.opt_log_id()?;
    let n = r.u32("entry count")? as usize;
    // Each entry takes at least 17 bytes: a bound before allocating.
    if n > r.remaining() / 17 {
        return Err(invalid("entry count", format!("{n}")));
    }
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let log_id = r.log_id()?;
        let payload = match r.u8("entry kind")? {
            ENTRY_BLANK => EntryPayload::Blank,
            ENTRY_NORMAL => {
                let len = r.u32("entry length")? as usize;
                let start = r.position();
                r.take(len, "entry data")?;
                EntryPayload::Normal(Records::new(body.slice(start..start + len)))
            }
            ENTRY_MEMBERSHIP => EntryPayload::Membership(r.membership()?),
            k => return Err(invalid("entry kind", format!("{k}"))),
        };
        entries.push(Entry { log_id, payload });
    }
    r.finish("append entries")?;
    Ok(AppendEntriesRequest {
        vote,
        prev_log_id,
        entries,
        leader_commit,
    })
}

pub(crate) fn encode_append_response(
    group: GroupId,
    resp: &AppendEntriesResponse<C>,
) -> RpcMessage {
    let mut b = BytesMut::with_capacity(24);
    match resp {
        AppendEntriesResponse::Success => b.put_u8(0),
        AppendEntriesResponse::PartialSuccess(id) => {
            b.put_u8(1);
            put_opt_log_id(&mut b, id.as_ref());
        }
        AppendEntriesResponse::Conflict => b.put_u8(2),
        AppendEntriesResponse::HigherVote(v) => {
            b.put_u8(3);
            put_vote(&mut b, v);
        }
    }
    RpcMessage::new(group, RpcKind::AppendEntries as u8, vec![b.freeze()])
}

/// A decoded response, or the remote failure it reports.
pub(crate) type Reply<T> = Result<T, RemoteFailure>;

pub(crate) fn decode_append_response(
    m: &RpcMessage,
) -> Result<Reply<AppendEntriesResponse<C>>, DecodeError> {
    let body = match m.check_error()? {
        Ok(b) => b,
        Err(f) => return Ok(Err(f)),
    };
    let mut r = Reader::new(&body);
    let resp = match r.u8("append response")? {
        0 => AppendEntriesResponse::Success,
        1 => AppendEntriesResponse::PartialSuccess(r.opt_log_id()?),
        2 => AppendEntriesResponse::Conflict,
        3 => AppendEntriesResponse::HigherVote(r.vote()?),
        t => return Err(invalid("append response", format!("{t}"))),
    };
    r.finish("append response")?;
    Ok(Ok(resp))
}

// ---------------------------------------------------------------------------------------------
// Vote and PreVote

pub(crate) fn encode_vote_request(
    group: GroupId,
    kind: RpcKind,
    rpc: &VoteRequest<C>,
) -> RpcMessage {
    let mut b = BytesMut::with_capacity(48);
    put_vote(&mut b, &rpc.vote);
    put_opt_log_id(&mut b, rpc.last_log_id.as_ref());
    b.put_u8(u8::from(rpc.leadership_transfer));
    RpcMessage::new(group, kind as u8, vec![b.freeze()])
}

pub(crate) fn decode_vote_request(m: &RpcMessage) -> Result<VoteRequest<C>, DecodeError> {
    let body = m.body();
    let mut r = Reader::new(&body);
    let vote = r.vote()?;
    let last_log_id = r.opt_log_id()?;
    let leadership_transfer = r.bool("leadership transfer")?;
    r.finish("vote request")?;
    Ok(VoteRequest {
        vote,
        last_log_id,
        leadership_transfer,
    })
}

pub(crate) fn encode_vote_response(
    group: GroupId,
    kind: RpcKind,
    resp: &VoteResponse<C>,
) -> RpcMessage {
    let mut b = BytesMut::with_capacity(48);
    put_vote(&mut b, &resp.vote);
    b.put_u8(u8::from(resp.vote_granted));
    put_opt_log_id(&mut b, resp.last_log_id.as_ref());
    RpcMessage::new(group, kind as u8, vec![b.freeze()])
}

pub(crate) fn decode_vote_response(m: &RpcMessage) -> Result<Reply<VoteResponse<C>>, DecodeError> {
    let body = match m.check_error()? {
        Ok(b) => b,
        Err(f) => return Ok(Err(f)),
    };
    let mut r = Reader::new(&body);
    let vote = r.vote()?;
    let vote_granted = r.bool("vote granted")?;
    let last_log_id = r.opt_log_id()?;
    r.finish("vote response")?;
    Ok(Ok(VoteResponse {
        vote,
        vote_granted,
        last_log_id,
    }))
}

// ---------------------------------------------------------------------------------------------
// Snapshot (metadata plus the controller's state: one message)

pub(crate) fn encode_snapshot_request(group: GroupId, vote: &Vote, s: &Snapshot) -> RpcMessage {
    let mut w = PartsWriter::new();
    put_vote(&mut w.buf, vote);
    put_opt_log_id(&mut w.buf, s.meta.last_log_id.as_ref());
    put_stored_membership(&mut w.buf, &s.meta.last_membership);
    w.buf.put_i64(s.snapshot.next_offset);
    w.buf.put_u32(s.snapshot.app_state.len() as u32);
    w.payload(&s.snapshot.app_state);
    RpcMessage::new(group, RpcKind::Snapshot as u8, w.finish())
}

pub(crate) fn decode_snapshot_request(m: &RpcMessage) -> Result<(Vote, Snapshot), DecodeError> {
    let body = m.body();
    let mut r = Reader::new(&body);
    let vote = r.vote()?;
    let last_log_id = r.opt_log_id()?;
    let last_membership = r.stored_membership()?;
    let next_offset = r.i64("snapshot next offset")?;
    let len = r.u32("snapshot state length")? as usize;
    let start = r.position();
    r.take(len, "snapshot state")?;
    r.finish("snapshot")?;
    Ok((
        vote,
        Snapshot {
            meta: SnapshotMeta {
                last_log_id,
                last_membership,
            },
            snapshot: SnapshotData {
                next_offset,
                app_state: body.slice(start..start + len),
            },
        },
    ))
}

pub(crate) fn encode_snapshot_response(group: GroupId, resp: &SnapshotResponse<C>) -> RpcMessage {
    let mut b = BytesMut::with_capacity(17);
    put_vote(&mut b, &resp.vote);
    RpcMessage::new(group, RpcKind::Snapshot as u8, vec![b.freeze()])
}

pub(crate) fn decode_snapshot_response(
    m: &RpcMessage,
) -> Result<Reply<SnapshotResponse<C>>, DecodeError> {
    let body = match m.check_error()? {
        Ok(b) => b,
        Err(f) => return Ok(Err(f)),
    };
    let mut r = Reader::new(&body);
    let vote = r.vote()?;
    r.finish("snapshot response")?;
    Ok(Ok(SnapshotResponse::new(vote)))
}

// ---------------------------------------------------------------------------------------------
// TransferLeader

pub(crate) fn encode_transfer_request(
    group: GroupId,
    req: &TransferLeaderRequest<C>,
) -> RpcMessage {
    let mut b = BytesMut::with_capacity(48);
    put_vote(&mut b, req.from_leader());
    b.put_u64(*req.to_node_id());
    put_opt_log_id(&mut b, req.last_log_id());
    RpcMessage::new(group, RpcKind::TransferLeader as u8, vec![b.freeze()])
}

pub(crate) fn decode_transfer_request(
    m: &RpcMessage,
) -> Result<TransferLeaderRequest<C>, DecodeError> {
    let body = m.body();
    let mut r = Reader::new(&body);
    let from = r.vote()?;
    let to: NodeId = r.u64("transfer target")?;
    let last = r.opt_log_id()?;
    r.finish("transfer leader")?;
    Ok(TransferLeaderRequest::new(from, to, last))
}

pub(crate) fn encode_transfer_response(
    group: GroupId,
    resp: &TransferLeaderResponse<C>,
) -> RpcMessage {
    let mut b = BytesMut::with_capacity(40);
    match resp {
        Ok(()) => b.put_u8(0),
        Err(TransferLeaderError::VoteChanged { expected, actual }) => {
            b.put_u8(1);
            put_vote(&mut b, expected);
            put_vote(&mut b, actual);
        }
        Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
            b.put_u8(2);
            put_opt_log_id(&mut b, expected.as_ref());
            put_opt_log_id(&mut b, actual.as_ref());
        }
    }
    RpcMessage::new(group, RpcKind::TransferLeader as u8, vec![b.freeze()])
}

pub(crate) fn decode_transfer_response(
    m: &RpcMessage,
) -> Result<Reply<TransferLeaderResponse<C>>, DecodeError> {
    let body = match m.check_error()? {
        Ok(b) => b,
        Err(f) => return Ok(Err(f)),
    };
    let mut r = Reader::new(&body);
    let resp = match r.u8("transfer response")? {
        0 => Ok(()),
        1 => Err(TransferLeaderError::VoteChanged {
            expected: r.vote()?,
            actual: r.vote()?,
        }),
        2 => Err(TransferLeaderError::LogNotFlushed {
            expected: r.opt_log_id()?,
            actual: r.opt_log_id()?,
        }),
        t => return Err(invalid("transfer response", format!("{t}"))),
    };
    r.finish("transfer response")?;
    Ok(Ok(resp))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use shoal_storage::BatchBuilder;

    use super::*;
    use crate::types::{Membership, StoredMembership, log_id};

    fn group() -> GroupId {
        GroupId::Partition(PartitionId {
            topic_id: Uuid::from_u128(0x1234),
            partition: 7,
        })
    }

    /// Sends a message through its wire form, as a transport would.
    fn through_wire(m: &RpcMessage) -> RpcMessage {
        let mut buf = BytesMut::new();
        for p in m.wire_parts() {
            buf.extend_from_slice(&p);
        }
        assert_eq!(buf.len(), m.len());
        RpcMessage::decode(buf.freeze()).unwrap()
    }

    fn batch(n: usize) -> Bytes {
        let mut b = BatchBuilder::new(5);
        for _ in 0..n {
            b.add_value(&[7u8; 100]);
        }
        b.build()
    }

    #[test]
    fn append_entries_round_trip_without_copying_records() {
        let voters: BTreeSet<u64> = [1, 2, 3].into();
        let m = Membership::new_with_defaults(vec![voters], [4u64]);
        let big = batch(10);
        let req = AppendEntriesRequest::<C> {
            vote: Vote::new_committed(4, 1),
            prev_log_id: Some(log_id(3, 9)),
            entries: vec![
                Entry {
                    log_id: log_id(4, 10),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: log_id(4, 11),
                    payload: EntryPayload::Normal(Records::new(big.clone())),
                },
                Entry {
                    log_id: log_id(4, 12),
                    payload: EntryPayload::Membership(m.clone()),
                },
                Entry {
                    log_id: log_id(4, 13),
                    payload: EntryPayload::Normal(Records::new(batch(1))),
                },
            ],
            leader_commit: Some(log_id(4, 10)),
        };
        let msg = encode_append_request(group(), &req);
        // The large batch is its own part: written from its own buffer.
        assert!(msg.parts.iter().any(|p| p.as_ptr() == big.as_ptr()));
        let got = decode_append_request(&through_wire(&msg)).unwrap();
        assert_eq!(got.vote, req.vote);
        assert_eq!(got.prev_log_id, req.prev_log_id);
        assert_eq!(got.leader_commit, req.leader_commit);
        assert_eq!(got.entries, req.entries);
        assert_eq!(through_wire(&msg).group, group());
    }

    #[test]
    fn responses_and_small_requests_round_trip() {
        let g = GroupId::Controller;
        for resp in [
            AppendEntriesResponse::<C>::Success,
            AppendEntriesResponse::PartialSuccess(Some(log_id(2, 5))),
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(9, 3)),
        ] {
            let m = through_wire(&encode_append_response(g, &resp));
            assert_eq!(decode_append_response(&m).unwrap(), Ok(resp));
        }
        let vr = VoteRequest::<C> {
            vote: Vote::new(5, 2),
            last_log_id: Some(log_id(4, 100)),
            leadership_transfer: true,
        };
        let m = through_wire(&encode_vote_request(g, RpcKind::PreVote, &vr));
        assert_eq!(m.kind().unwrap(), RpcKind::PreVote);
        assert_eq!(decode_vote_request(&m).unwrap(), vr);
        let resp = VoteResponse::<C>::new(Vote::new(5, 2), Some(log_id(4, 90)), true);
        let m = through_wire(&encode_vote_response(g, RpcKind::Vote, &resp));
        assert_eq!(decode_vote_response(&m).unwrap(), Ok(resp));
        let tr = TransferLeaderRequest::<C>::new(Vote::new_committed(5, 1), 3, Some(log_id(5, 7)));
        let m = through_wire(&encode_transfer_request(g, &tr));
        assert_eq!(decode_transfer_request(&m).unwrap(), tr);
        for resp in [
            Ok(()),
            Err(TransferLeaderError::VoteChanged {
                expected: Vote::new_committed(5, 1),
                actual: Vote::new(6, 2),
            }),
            Err(TransferLeaderError::LogNotFlushed {
                expected: Some(log_id(5, 7)),
                actual: None,
            }),
        ] {
            let m = through_wire(&encode_transfer_response(g, &resp));
            assert_eq!(decode_transfer_response(&m).unwrap(), Ok(resp));
        }
    }

    #[test]
    fn snapshots_round_trip() {
        let voters: BTreeSet<u64> = [1, 2].into();
        let snap = Snapshot {
            meta: SnapshotMeta {
                last_log_id: Some(log_id(3, 99)),
                last_membership: StoredMembership::new(
                    Some(log_id(1, 0)),
                    Membership::new_with_defaults(vec![voters], [] as [u64; 0]),
                ),
            },
            snapshot: SnapshotData {
                next_offset: 5000,
                app_state: Bytes::from(vec![9u8; 1000]),
            },
        };
        let m = through_wire(&encode_snapshot_request(
            GroupId::Controller,
            &Vote::new_committed(3, 1),
            &snap,
        ));
        let (vote, got) = decode_snapshot_request(&m).unwrap();
        assert_eq!(vote, Vote::new_committed(3, 1));
        assert_eq!(got.meta, snap.meta);
        assert_eq!(got.snapshot, snap.snapshot);
        let resp = SnapshotResponse::<C>::new(Vote::new(4, 2));
        let m = through_wire(&encode_snapshot_response(GroupId::Controller, &resp));
        assert_eq!(decode_snapshot_response(&m).unwrap(), Ok(resp));
    }

    #[test]
    fn error_responses_carry_the_failure() {
        for f in [
            RemoteFailure::GroupNotFound,
            RemoteFailure::GroupStopped("disk".into()),
            RemoteFailure::Malformed("bad".into()),
        ] {
            let m = through_wire(&RpcMessage::error(group(), RpcKind::Vote, &f));
            assert_eq!(m.kind().unwrap(), RpcKind::Vote);
            assert_eq!(decode_vote_response(&m).unwrap(), Err(f));
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let req = AppendEntriesRequest::<C> {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            entries: vec![Entry {
                log_id: log_id(1, 0),
                payload: EntryPayload::Normal(Records::new(batch(2))),
            }],
            leader_commit: None,
        };
        let mut wire = BytesMut::new();
        for p in encode_append_request(group(), &req).wire_parts() {
            wire.extend_from_slice(&p);
        }
        let wire = wire.freeze();
        for cut in 0..wire.len() {
            if let Ok(m) = RpcMessage::decode(wire.slice(..cut)) {
                assert!(decode_append_request(&m).is_err(), "cut at {cut}");
            }
        }
        let mut bad = wire.to_vec();
        bad[HEADER_LEN - 1] = 77; // unknown kind
        assert!(RpcMessage::decode(Bytes::from(bad)).is_err());
        let mut bad = wire.to_vec();
        bad[0] = 9; // unknown group tag
        assert!(RpcMessage::decode(Bytes::from(bad)).is_err());
        // An absurd entry count is refused before allocating.
        let mut b = BytesMut::new();
        put_vote(&mut b, &Vote::new(1, 1));
        put_opt_log_id(&mut b, None);
        put_opt_log_id(&mut b, None);
        b.put_u32(u32::MAX);
        let m = RpcMessage::new(group(), RpcKind::AppendEntries as u8, vec![b.freeze()]);
        assert!(decode_append_request(&m).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// ForwardCommand

/// What the controller leader answered to a forwarded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ForwardReply {
    /// Committed and applied at `offset`, with the state machine's reply.
    Applied { offset: i64, reply: Bytes },
    /// The target does not lead; `leader` is its hint.
    NotLeader { leader: Option<NodeId> },
    /// Any other failure, as text.
    Failed(String),
}

pub(crate) fn encode_forward_request(command: &[u8]) -> RpcMessage {
    RpcMessage::new(
        GroupId::Controller,
        RpcKind::ForwardCommand as u8,
        vec![Bytes::copy_from_slice(command)],
    )
}

pub(crate) fn decode_forward_request(m: &RpcMessage) -> Bytes {
    m.body()
}

pub(crate) fn encode_forward_response(reply: &ForwardReply) -> RpcMessage {
    let mut b = BytesMut::new();
    match reply {
        ForwardReply::Applied { offset, reply } => {
            b.put_u8(0);
            b.put_i64(*offset);
            b.put_slice(reply);
        }
        ForwardReply::NotLeader { leader } => {
            b.put_u8(1);
            b.put_i64(leader.map_or(-1, |l| l as i64));
        }
        ForwardReply::Failed(text) => {
            b.put_u8(2);
            b.put_slice(&text.as_bytes()[..text.len().min(4096)]);
        }
    }
    RpcMessage::new(
        GroupId::Controller,
        RpcKind::ForwardCommand as u8,
        vec![b.freeze()],
    )
}

pub(crate) fn decode_forward_response(m: &RpcMessage) -> Result<ForwardReply, DecodeError> {
    let body = match m.check_error()? {
        Ok(b) => b,
        Err(RemoteFailure::GroupNotFound) => {
            return Ok(ForwardReply::NotLeader { leader: None });
        }
        Err(RemoteFailure::GroupStopped(t)) | Err(RemoteFailure::Malformed(t)) => {
            return Ok(ForwardReply::Failed(t));
        }
    };
    let mut r = Reader::new(&body);
    Ok(match r.u8("forward reply")? {
        0 => {
            let offset = r.i64("offset")?;
            ForwardReply::Applied {
                offset,
                reply: body.slice(9..),
            }
        }
        1 => {
            let leader = r.i64("leader")?;
            ForwardReply::NotLeader {
                leader: u64::try_from(leader).ok(),
            }
        }
        2 => ForwardReply::Failed(String::from_utf8_lossy(&body[1..]).into_owned()),
        t => return Err(invalid("forward reply", format!("{t}"))),
    })
}

// ---------------------------------------------------------------------------------------------
// MoveLeader

/// What a group's leader answered to a request to move its leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MoveReply {
    /// The target node leads now.
    Moved,
    /// The receiver does not lead; `leader` is its hint.
    NotLeader { leader: Option<NodeId> },
    /// Any other failure, as text.
    Failed(String),
}

pub(crate) fn encode_move_request(group: GroupId, to: NodeId, timeout_ms: u64) -> RpcMessage {
    let mut b = BytesMut::with_capacity(16);
    b.put_u64(to);
    b.put_u64(timeout_ms);
    RpcMessage::new(group, RpcKind::MoveLeader as u8, vec![b.freeze()])
}

/// `(to, timeout_ms)`.
pub(crate) fn decode_move_request(m: &RpcMessage) -> Result<(NodeId, u64), DecodeError> {
    let body = m.body();
    let mut r = Reader::new(&body);
    Ok((r.u64("move target")?, r.u64("move timeout")?))
}

pub(crate) fn encode_move_response(group: GroupId, reply: &MoveReply) -> RpcMessage {
    let mut b = BytesMut::new();
    match reply {
        MoveReply::Moved => b.put_u8(0),
        MoveReply::NotLeader { leader } => {
            b.put_u8(1);
            b.put_i64(leader.map_or(-1, |l| l as i64));
        }
        MoveReply::Failed(text) => {
            b.put_u8(2);
            b.put_slice(&text.as_bytes()[..text.len().min(4096)]);
        }
    }
    RpcMessage::new(group, RpcKind::MoveLeader as u8, vec![b.freeze()])
}

pub(crate) fn decode_move_response(m: &RpcMessage) -> Result<MoveReply, DecodeError> {
    let body = match m.check_error()? {
        Ok(b) => b,
        Err(RemoteFailure::GroupNotFound) => return Ok(MoveReply::NotLeader { leader: None }),
        Err(RemoteFailure::GroupStopped(t)) | Err(RemoteFailure::Malformed(t)) => {
            return Ok(MoveReply::Failed(t));
        }
    };
    let mut r = Reader::new(&body);
    Ok(match r.u8("move reply")? {
        0 => MoveReply::Moved,
        1 => MoveReply::NotLeader {
            leader: u64::try_from(r.i64("leader")?).ok(),
        },
        2 => MoveReply::Failed(String::from_utf8_lossy(&body[1..]).into_owned()),
        t => return Err(invalid("move reply", format!("{t}"))),
    })
}

#[cfg(test)]
mod move_tests {
    use super::*;

    #[test]
    fn move_messages_round_trip() {
        let g = GroupId::Partition(PartitionId {
            topic_id: Uuid::from_u128(3),
            partition: 1,
        });
        let req = encode_move_request(g, 2, 5000);
        let mut whole = BytesMut::new();
        for p in req.wire_parts() {
            whole.extend_from_slice(&p);
        }
        let req = RpcMessage::decode(whole.freeze()).unwrap();
        assert_eq!(req.kind().unwrap(), RpcKind::MoveLeader);
        assert_eq!(decode_move_request(&req).unwrap(), (2, 5000));
        for reply in [
            MoveReply::Moved,
            MoveReply::NotLeader { leader: Some(3) },
            MoveReply::NotLeader { leader: None },
            MoveReply::Failed("no".into()),
        ] {
            let m = encode_move_response(g, &reply);
            assert_eq!(decode_move_response(&m).unwrap(), reply);
        }
        let e = RpcMessage::error(g, RpcKind::MoveLeader, &RemoteFailure::GroupNotFound);
        assert_eq!(
            decode_move_response(&e).unwrap(),
            MoveReply::NotLeader { leader: None }
        );
    }
}
