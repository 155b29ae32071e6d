//! Compact big-endian encoding of the small Raft values (log ids, votes, memberships) used by
//! control batches, the durable files and the inter-broker wire. Record data never goes
//! through here: it travels as `Bytes`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes};

use crate::types::{Membership, NodeId, RaftLogId, StoredMembership, Vote, log_id};

/// Input that does not decode. Never a panic: it comes from disk or the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("truncated input while reading {0}")]
    Truncated(&'static str),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        what,
        reason: reason.into(),
    }
}

/// Largest count of ids in one membership config or node list. Real replica sets are small;
/// the bound keeps a corrupt count from allocating gigabytes.
const MAX_MEMBERS: u32 = 10_000;

/// A cursor over input bytes.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(invalid(what, format!("boolean byte {b}"))),
        }
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn bytes16(&mut self, what: &'static str) -> Result<[u8; 16], DecodeError> {
        self.array(what)
    }

    /// A length-prefixed (u32) byte string.
    pub(crate) fn len_prefixed(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    pub(crate) fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(invalid(
                what,
                format!("{} trailing bytes", self.remaining()),
            ))
        }
    }

    pub(crate) fn log_id(&mut self) -> Result<RaftLogId, DecodeError> {
        let term = self.u64("log id term")?;
        let index = self.u64("log id index")?;
        Ok(log_id(term, index))
    }

    pub(crate) fn opt_log_id(&mut self) -> Result<Option<RaftLogId>, DecodeError> {
        if self.bool("log id presence")? {
            Ok(Some(self.log_id()?))
        } else {
            Ok(None)
        }
    }

    pub(crate) fn vote(&mut self) -> Result<Vote, DecodeError> {
        let term = self.u64("vote term")?;
        let node = self.u64("vote node")?;
        let committed = self.bool("vote committed")?;
        Ok(if committed {
            Vote::new_committed(term, node)
        } else {
            Vote::new(term, node)
        })
    }

    fn id_set(&mut self, what: &'static str) -> Result<BTreeSet<NodeId>, DecodeError> {
        let n = self.u32(what)?;
        if n > MAX_MEMBERS {
            return Err(invalid(what, format!("{n} members")));
        }
        let mut set = BTreeSet::new();
        for _ in 0..n {
            set.insert(self.u64(what)?);
        }
        Ok(set)
    }

    pub(crate) fn membership(&mut self) -> Result<Membership, DecodeError> {
        let version = self.u8("membership version")?;
        if version != 0 {
            return Err(invalid("membership", format!("unknown version {version}")));
        }
        let n = self.u32("membership configs")?;
        // Joint consensus has two configs; the empty membership (before initialization) none.
        if n > 16 {
            return Err(invalid("membership", format!("{n} configs")));
        }
        let mut configs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            configs.push(self.id_set("membership config")?);
        }
        let nodes = self.id_set("membership nodes")?;
        let nodes: BTreeMap<NodeId, openraft::EmptyNode> = nodes
            .into_iter()
            .map(|id| (id, openraft::EmptyNode::new()))
            .collect();
        Membership::new(configs, nodes).map_err(|e| invalid("membership", e.to_string()))
    }

    pub(crate) fn stored_membership(&mut self) -> Result<StoredMembership, DecodeError> {
        let id = self.opt_log_id()?;
        let m = self.membership()?;
        Ok(StoredMembership::new(id, m))
    }
}

pub(crate) fn put_log_id(out: &mut impl BufMut, id: &RaftLogId) {
    out.put_u64(id.leader_id.term);
    out.put_u64(id.index);
}

pub(crate) fn put_opt_log_id(out: &mut impl BufMut, id: Option<&RaftLogId>) {
    match id {
        None => out.put_u8(0),
        Some(id) => {
            out.put_u8(1);
            put_log_id(out, id);
        }
    }
}

pub(crate) fn put_vote(out: &mut impl BufMut, vote: &Vote) {
    out.put_u64(vote.leader_id.term);
    out.put_u64(vote.leader_id.voted_for);
    out.put_u8(u8::from(vote.committed));
}

fn put_id_set<'a>(out: &mut impl BufMut, ids: impl ExactSizeIterator<Item = &'a NodeId>) {
    out.put_u32(ids.len() as u32);
    for id in ids {
        out.put_u64(*id);
    }
}

pub(crate) fn put_membership(out: &mut impl BufMut, m: &Membership) {
    out.put_u8(0);
    let configs = m.get_joint_config();
    out.put_u32(configs.len() as u32);
    for c in configs {
        put_id_set(out, c.iter());
    }
    let nodes: Vec<NodeId> = m.nodes().map(|(id, _)| *id).collect();
    put_id_set(out, nodes.iter());
}

pub(crate) fn put_stored_membership(out: &mut impl BufMut, m: &StoredMembership) {
    put_opt_log_id(out, m.log_id().as_ref());
    put_membership(out, m.membership());
}

pub(crate) fn membership_bytes(m: &Membership) -> Bytes {
    let mut out = Vec::with_capacity(64);
    put_membership(&mut out, m);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn membership(configs: &[&[NodeId]], learners: &[NodeId]) -> Membership {
        let configs: Vec<BTreeSet<NodeId>> = configs
            .iter()
            .map(|c| c.iter().copied().collect())
            .collect();
        let mut nodes: BTreeMap<NodeId, openraft::EmptyNode> = BTreeMap::new();
        for c in &configs {
            for id in c {
                nodes.insert(*id, openraft::EmptyNode::new());
            }
        }
        for id in learners {
            nodes.insert(*id, openraft::EmptyNode::new());
        }
        Membership::new(configs, nodes).unwrap()
    }

    #[test]
    fn values_round_trip() {
        let mut out = Vec::new();
        put_log_id(&mut out, &log_id(3, 17));
        put_opt_log_id(&mut out, None);
        put_vote(&mut out, &Vote::new_committed(5, 2));
        put_vote(&mut out, &Vote::new(6, 1));
        let m = membership(&[&[1, 2, 3], &[2, 3, 4]], &[9]);
        put_stored_membership(
            &mut out,
            &StoredMembership::new(Some(log_id(2, 4)), m.clone()),
        );
        let mut r = Reader::new(&out);
        assert_eq!(r.log_id().unwrap(), log_id(3, 17));
        assert_eq!(r.opt_log_id().unwrap(), None);
        assert_eq!(r.vote().unwrap(), Vote::new_committed(5, 2));
        assert_eq!(r.vote().unwrap(), Vote::new(6, 1));
        let sm = r.stored_membership().unwrap();
        assert_eq!(sm.log_id(), &Some(log_id(2, 4)));
        assert_eq!(sm.membership(), &m);
        assert_eq!(sm.membership().learner_ids().collect::<Vec<_>>(), vec![9]);
        r.finish("test").unwrap();
    }

    #[test]
    fn truncated_and_corrupt_input_is_an_error() {
        let mut out = Vec::new();
        put_membership(&mut out, &membership(&[&[1, 2]], &[]));
        for cut in 0..out.len() {
            assert!(
                Reader::new(&out[..cut]).membership().is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = out.clone();
        bad[0] = 7; // version
        assert!(Reader::new(&bad).membership().is_err());
        let mut huge = vec![0u8];
        huge.extend_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Reader::new(&huge).membership(),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(Reader::new(&[2]).bool("flag").is_err());
    }
}
