//! Raft-only entries as Kafka control batches, so that a partition's segments hold nothing but
//! Kafka RecordBatches and every consumer skips them.
//!
//! - **Blank** (the entry each new leader appends): a control batch with one LeaderChange
//!   record (control type 2), as KRaft writes into its metadata log. Its bytes must be the same
//!   on every replica, yet a replica appending an old term's blank cannot know who led that
//!   term, so the record is a `LeaderChangeMessage` v0 with leader -1 and no voters; the term
//!   itself is the batch's `partitionLeaderEpoch`. The batch has no timestamp (-1).
//! - **Membership**: a control batch with one record of the private control type
//!   [`MEMBERSHIP_CONTROL_TYPE`] whose value is the encoded membership.
//! - **Normal**: anything else: the proposed batches, which may include transaction markers
//!   (control types 0 and 1) but never the two types above (see [`check_proposal`]).
//!
//! Every Raft entry is therefore one or more whole batches, and the entry's kind is a function
//! of its bytes.

use bytes::Bytes;
use shoal_storage::record_batch::{BatchHeader, batch_len_at};
use shoal_storage::{BATCH_HEADER_LEN, BatchBuilder, control_record_key, control_type};

use crate::binary_codec::{DecodeError, Reader, invalid, membership_bytes};
use crate::error::ProposeError;
use crate::types::{Entry, Membership, RaftLogId, Records};

/// Control record type of a membership entry (outside Kafka's range, which KRaft grows from 0).
pub(crate) const MEMBERSHIP_CONTROL_TYPE: i16 = 0x5348;

/// No timestamp (Kafka's `RecordBatch.NO_TIMESTAMP`).
const NO_TIMESTAMP: i64 = -1;

/// The LeaderChange control batch of a blank entry.
pub(crate) fn blank_batch() -> Bytes {
    // LeaderChangeMessage v0 (flexible): Version i16, LeaderId i32, Voters and GrantingVoters
    // as compact arrays (uvarint length + 1), then an empty tagged-field section.
    let mut value = Vec::with_capacity(9);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&(-1i32).to_be_bytes());
    value.push(1); // no voters
    value.push(1); // no granting voters
    value.push(0); // no tagged fields
    control_batch(control_type::LEADER_CHANGE, &value)
}

/// The control batch of a membership entry.
pub(crate) fn membership_batch(m: &Membership) -> Bytes {
    control_batch(MEMBERSHIP_CONTROL_TYPE, &membership_bytes(m))
}

fn control_batch(kind: i16, value: &[u8]) -> Bytes {
    let mut b = BatchBuilder::new(NO_TIMESTAMP).control(true);
    b.add_record(
        NO_TIMESTAMP,
        Some(&control_record_key(kind)),
        Some(value),
        &[],
    );
    b.build()
}

/// One uncompressed batch holding `value` as its single record (a controller command).
pub(crate) fn value_batch(value: &[u8], now_ms: i64) -> Bytes {
    let mut b = BatchBuilder::new(now_ms);
    b.add_record(now_ms, None, Some(value), &[]);
    b.build()
}

/// The bytes an entry is stored as.
pub(crate) fn entry_bytes(entry: &Entry) -> Bytes {
    match &entry.payload {
        openraft::EntryPayload::Normal(r) => r.batches.clone(),
        openraft::EntryPayload::Blank => blank_batch(),
        openraft::EntryPayload::Membership(m) => membership_batch(m),
    }
}

/// The entry stored as `bytes` (stamped batches exactly as in the log).
pub(crate) fn decode_entry(log_id: RaftLogId, bytes: Bytes) -> Result<Entry, DecodeError> {
    let payload = match raft_control(&bytes)? {
        Some((control_type::LEADER_CHANGE, _)) => openraft::EntryPayload::Blank,
        Some((_, value)) => {
            let mut r = Reader::new(value);
            let m = r.membership()?;
            r.finish("membership record")?;
            openraft::EntryPayload::Membership(m)
        }
        None => openraft::EntryPayload::Normal(Records::new(bytes)),
    };
    Ok(Entry { log_id, payload })
}

/// `Some((type, value))` if `bytes` is exactly one control batch of one record whose type is
/// one Raft writes (LeaderChange or membership); `None` for Normal entries.
fn raft_control(bytes: &[u8]) -> Result<Option<(i16, &[u8])>, DecodeError> {
    let h = BatchHeader::parse(bytes).map_err(|e| invalid("stored batch", e.to_string()))?;
    if !h.is_control() || h.total_len() != bytes.len() || h.record_count != 1 {
        return Ok(None);
    }
    if h.compression() != Ok(shoal_storage::Compression::None) {
        return Ok(None);
    }
    let (key, value) = first_record(bytes)?;
    let kind = control_key_type(key)?;
    match kind {
        control_type::LEADER_CHANGE | MEMBERSHIP_CONTROL_TYPE => {
            Ok(Some((kind, value.unwrap_or(&[]))))
        }
        _ => Ok(None),
    }
}

fn control_key_type(key: Option<&[u8]>) -> Result<i16, DecodeError> {
    match key {
        Some(k) if k.len() >= 4 => Ok(i16::from_be_bytes([k[2], k[3]])),
        _ => Err(invalid("control record", "key shorter than 4 bytes")),
    }
}

/// The value of the single record of an uncompressed batch (a controller command).
pub(crate) fn single_record_value(batch: &[u8]) -> Result<&[u8], DecodeError> {
    let h = BatchHeader::parse(batch).map_err(|e| invalid("command batch", e.to_string()))?;
    if h.record_count != 1 || h.total_len() != batch.len() {
        return Err(invalid("command batch", "not a single one-record batch"));
    }
    if h.compression() != Ok(shoal_storage::Compression::None) {
        return Err(invalid("command batch", "compressed"));
    }
    let (_, value) = first_record(batch)?;
    value.ok_or_else(|| invalid("command batch", "null value"))
}

/// A record's key and value.
type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Key and value of the first record of an uncompressed batch (Kafka's `DefaultRecord`).
fn first_record(batch: &[u8]) -> Result<KeyValue<'_>, DecodeError> {
    let records = batch
        .get(BATCH_HEADER_LEN..)
        .ok_or(DecodeError::Truncated("record"))?;
    let mut r = Reader::new(records);
    let len = varint(&mut r)?;
    if len < 0 || len as usize > r.remaining() {
        return Err(invalid("record", format!("length {len}")));
    }
    r.u8("record attributes")?;
    varlong(&mut r)?; // timestamp delta
    varint(&mut r)?; // offset delta
    let key = nullable(&mut r, "record key")?;
    let value = nullable(&mut r, "record value")?;
    Ok((key, value))
}

fn nullable<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
    let n = varint(r)?;
    match n {
        -1 => Ok(None),
        n if n >= 0 => Ok(Some(r.take(n as usize, what)?)),
        n => Err(invalid(what, format!("length {n}"))),
    }
}

/// Kafka's zigzag varint (`ByteUtils.readVarint`).
fn varint(r: &mut Reader<'_>) -> Result<i32, DecodeError> {
    let v = unsigned_varint(r, 5)?;
    let v = u32::try_from(v).map_err(|_| invalid("varint", "overflow"))?;
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

fn varlong(r: &mut Reader<'_>) -> Result<i64, DecodeError> {
    let v = unsigned_varint(r, 10)?;
    Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
}

fn unsigned_varint(r: &mut Reader<'_>, max_bytes: u32) -> Result<u64, DecodeError> {
    let mut v: u64 = 0;
    for i in 0..max_bytes {
        let b = r.u8("varint")?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(invalid("varint", "too long"))
}

/// Checks proposed batches before they reach Raft (a bad batch must never fail a group's log
/// append, which openraft treats as a fatal storage error): each batch valid (`validate`:
/// magic, lengths, record count, CRC-32C), the total within `max_bytes`, and no control batch
/// of a type Raft reserves.
pub(crate) fn check_proposal(batches: &Bytes, max_bytes: u64) -> Result<(), ProposeError> {
    if batches.is_empty() {
        return Err(ProposeError::Empty);
    }
    if batches.len() as u64 > max_bytes {
        return Err(ProposeError::TooLarge {
            size: batches.len(),
            max: max_bytes,
        });
    }
    let mut pos = 0;
    while pos < batches.len() {
        let rest = &batches[pos..];
        let len = batch_len_at(rest).map_err(|source| ProposeError::InvalidRecords {
            position: pos,
            source,
        })?;
        let batch = &rest[..len];
        let h = shoal_storage::validate(batch).map_err(|source| ProposeError::InvalidRecords {
            position: pos,
            source,
        })?;
        if h.is_control() {
            match first_record(batch)
                .ok()
                .and_then(|(k, _)| control_key_type(k).ok())
            {
                Some(control_type::ABORT | control_type::COMMIT) => {}
                Some(t) => return Err(ProposeError::ReservedControlType(t)),
                None => return Err(ProposeError::ReservedControlType(-1)),
            }
        }
        pos += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::types::log_id;

    fn membership() -> Membership {
        let voters: BTreeSet<u64> = [1, 2, 3].into();
        let nodes: BTreeMap<u64, openraft::EmptyNode> = [1, 2, 3, 4]
            .into_iter()
            .map(|i| (i, openraft::EmptyNode::new()))
            .collect();
        Membership::new(vec![voters], nodes).unwrap()
    }

    fn data_batch(values: &[&[u8]]) -> Bytes {
        let mut b = BatchBuilder::new(1_000);
        for v in values {
            b.add_value(v);
        }
        b.build()
    }

    #[test]
    fn raft_entries_are_valid_control_batches_and_decode_back() {
        let blank = blank_batch();
        let h = shoal_storage::validate(&blank).unwrap();
        assert!(h.is_control());
        assert_eq!(h.record_count, 1);
        assert_eq!(h.max_timestamp, -1);
        assert_eq!(h.producer_id, -1);
        let e = decode_entry(log_id(3, 7), blank).unwrap();
        assert_eq!(e.payload, openraft::EntryPayload::Blank);

        let m = membership();
        let mb = membership_batch(&m);
        shoal_storage::validate(&mb).unwrap();
        let e = decode_entry(log_id(1, 0), mb).unwrap();
        assert_eq!(e.payload, openraft::EntryPayload::Membership(m));
        assert_eq!(e.log_id, log_id(1, 0));
    }

    #[test]
    fn encoding_is_deterministic() {
        assert_eq!(blank_batch(), blank_batch());
        assert_eq!(
            membership_batch(&membership()),
            membership_batch(&membership())
        );
    }

    #[test]
    fn data_and_transaction_markers_are_normal_entries() {
        let data = data_batch(&[b"a", b"bc"]);
        let e = decode_entry(log_id(1, 2), data.clone()).unwrap();
        assert_eq!(
            e.payload,
            openraft::EntryPayload::Normal(Records::new(data.clone()))
        );
        let mut marker = BatchBuilder::new(5).control(true).producer(7, 0, -1);
        marker.add_record(
            5,
            Some(&control_record_key(control_type::COMMIT)),
            Some(&[0, 0, 0, 0, 0, 0]),
            &[],
        );
        let marker = marker.build();
        check_proposal(&marker, 1 << 20).unwrap();
        let e = decode_entry(log_id(1, 3), marker.clone()).unwrap();
        assert_eq!(
            e.payload,
            openraft::EntryPayload::Normal(Records::new(marker))
        );
        // Two batches, even if the first looks like a Raft control batch, are Normal.
        let mut two = blank_batch().to_vec();
        two.extend_from_slice(&data);
        let e = decode_entry(log_id(1, 4), Bytes::from(two)).unwrap();
        assert!(matches!(e.payload, openraft::EntryPayload::Normal(_)));
    }

    #[test]
    fn proposals_are_checked() {
        let data = data_batch(&[b"x"]);
        check_proposal(&data, 1 << 20).unwrap();
        let mut two = data.to_vec();
        two.extend_from_slice(&data_batch(&[b"y", b"z"]));
        check_proposal(&Bytes::from(two.clone()), 1 << 20).unwrap();
        assert_eq!(check_proposal(&Bytes::new(), 10), Err(ProposeError::Empty));
        assert!(matches!(
            check_proposal(&data, 10),
            Err(ProposeError::TooLarge { .. })
        ));
        assert_eq!(
            check_proposal(&blank_batch(), 1 << 20),
            Err(ProposeError::ReservedControlType(
                control_type::LEADER_CHANGE
            ))
        );
        assert_eq!(
            check_proposal(&membership_batch(&membership()), 1 << 20),
            Err(ProposeError::ReservedControlType(MEMBERSHIP_CONTROL_TYPE))
        );
        let mut corrupt = two.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(matches!(
            check_proposal(&Bytes::from(corrupt), 1 << 20),
            Err(ProposeError::InvalidRecords { position, .. }) if position == data.len()
        ));
        assert!(matches!(
            check_proposal(&Bytes::from(two[..two.len() - 3].to_vec()), 1 << 20),
            Err(ProposeError::InvalidRecords { .. })
        ));
    }

    #[test]
    fn command_values_round_trip() {
        let b = value_batch(b"create topic", 42);
        shoal_storage::validate(&b).unwrap();
        assert_eq!(single_record_value(&b).unwrap(), b"create topic");
        let mut two = b.to_vec();
        two.extend_from_slice(&b);
        assert!(single_record_value(&two).is_err());
        assert!(single_record_value(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn varints_follow_kafka() {
        // 300 zigzag-encoded is 600 = 0xd8 0x04; -1 is 1.
        assert_eq!(varint(&mut Reader::new(&[0xd8, 0x04])).unwrap(), 300);
        assert_eq!(varint(&mut Reader::new(&[0x01])).unwrap(), -1);
        assert_eq!(varlong(&mut Reader::new(&[0x02])).unwrap(), 1);
        assert!(varint(&mut Reader::new(&[0xff; 6])).is_err());
    }
}
