//! The records of `__consumer_offsets`, byte for byte as Kafka writes them, so that Kafka's
//! tools that read the topic (`kafka-console-consumer --formatter
//! org.apache.kafka.tools.consumer.OffsetsMessageFormatter`, `GroupMetadataMessageFormatter`,
//! `kafka-dump-log --offsets-decoder`) understand Shoal's, and Shoal loads Kafka's.
//!
//! Key: `i16` record type (the key schema's version: 0/1 offset commit, 2 group metadata; 3-15
//! are consumer/share group records of other protocols, skipped), then the key message. Value:
//! `i16` value version, then the value message; a null value is a tombstone. Schemas (the
//! coordinator's `OffsetCommitKey/Value`, `GroupMetadataKey/Value` JSONs):
//! - `OffsetCommitKey` v0-1: group string, topic string, partition i32.
//! - `OffsetCommitValue` v0-4 (flexible from 4): offset i64, leader epoch i32 (v3+), metadata
//!   string, commit timestamp i64, expire timestamp i64 (v1 only). Written as v3, or v1 when the
//!   commit carries an explicit retention (OffsetCommit v2-4), as Kafka 4 writes them.
//! - `GroupMetadataKey` v2: group string.
//! - `GroupMetadataValue` v0-4 (flexible from 4): protocol type string, generation i32, protocol
//!   nullable string, leader nullable string, current state timestamp i64 (v2+), members: member
//!   id, group instance id (nullable, v3+), client id, client host, rebalance timeout i32 (v1+),
//!   session timeout i32, subscription bytes, assignment bytes. Written as v3.

use bytes::Bytes;

/// Record type (key version) of an offset commit (Kafka writes 1).
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Record type (key version) of group metadata.
const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value version Kafka 4 writes for offset commits without an expire timestamp.
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Value version for offset commits carrying an expire timestamp.
const OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
/// Value version Kafka 4 writes for group metadata.
const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// Versions from which a schema is flexible (compact encodings and tagged fields).
const FLEXIBLE_VALUE_VERSION: i16 = 4;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// -1 unless the commit carried its own retention (OffsetCommit v2-4).
    pub expire_timestamp_ms: i64,
}

/// One member in a group metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// -1 in records older than v1 (then the session timeout applies).
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A classic group's persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// Empty for a group that only holds offsets.
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown.
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

/// One record of `__consumer_offsets` that the classic coordinator understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorRecord {
    /// A committed offset, or its tombstone.
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetCommitValue>,
    },
    /// A group's state, or its tombstone.
    GroupMetadata {
        group: String,
        value: Option<GroupMetadataValue>,
    },
}

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable __consumer_offsets record: {0}")]
pub struct RecordDecodeError(pub String);

impl CoordinatorRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            CoordinatorRecord::OffsetCommit { group, .. }
            | CoordinatorRecord::GroupMetadata { group, .. } => group,
        }
    }

    /// The record key bytes.
    pub fn key(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            CoordinatorRecord::OffsetCommit {
                group,
                topic,
                partition,
                ..
            } => {
                w.i16(OFFSET_COMMIT_KEY_VERSION);
                w.string(group);
                w.string(topic);
                w.i32(*partition);
            }
            CoordinatorRecord::GroupMetadata { group, .. } => {
                w.i16(GROUP_METADATA_KEY_VERSION);
                w.string(group);
            }
        }
        w.0
    }

    /// The record value bytes; `None` for a tombstone.
    pub fn value(&self) -> Option<Vec<u8>> {
        let mut w = Writer::default();
        match self {
            CoordinatorRecord::OffsetCommit { value, .. } => {
                let v = value.as_ref()?;
                if v.expire_timestamp_ms >= 0 {
                    w.i16(OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY);
                    w.i64(v.offset);
                    w.string(&v.metadata);
                    w.i64(v.commit_timestamp_ms);
                    w.i64(v.expire_timestamp_ms);
                } else {
                    w.i16(OFFSET_COMMIT_VALUE_VERSION);
                    w.i64(v.offset);
                    w.i32(v.leader_epoch);
                    w.string(&v.metadata);
                    w.i64(v.commit_timestamp_ms);
                }
            }
            CoordinatorRecord::GroupMetadata { value, .. } => {
                let v = value.as_ref()?;
                w.i16(GROUP_METADATA_VALUE_VERSION);
                w.string(&v.protocol_type);
                w.i32(v.generation);
                w.nullable_string(v.protocol.as_deref());
                w.nullable_string(v.leader.as_deref());
                w.i64(v.current_state_timestamp_ms);
                w.i32(v.members.len() as i32);
                for m in &v.members {
                    w.string(&m.member_id);
                    w.nullable_string(m.group_instance_id.as_deref());
                    w.string(&m.client_id);
                    w.string(&m.client_host);
                    w.i32(m.rebalance_timeout_ms);
                    w.i32(m.session_timeout_ms);
                    w.bytes(&m.subscription);
                    w.bytes(&m.assignment);
                }
            }
        }
        Some(w.0)
    }

    /// Decodes a record; `Ok(None)` for record types of other group protocols, which the classic
    /// coordinator does not keep.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, RecordDecodeError> {
        let mut k = Reader::new(key);
        let record_type = k.i16()?;
        match record_type {
            0 | 1 => {
                let group = k.string()?;
                let topic = k.string()?;
                let partition = k.i32()?;
                let value = value.map(decode_offset_commit_value).transpose()?;
                Ok(Some(CoordinatorRecord::OffsetCommit {
                    group,
                    topic,
                    partition,
                    value,
                }))
            }
            2 => {
                let group = k.string()?;
                let value = value.map(decode_group_metadata_value).transpose()?;
                Ok(Some(CoordinatorRecord::GroupMetadata { group, value }))
            }
            3..=15 => Ok(None),
            other => Err(RecordDecodeError(format!("unknown record type {other}"))),
        }
    }
}

fn decode_offset_commit_value(bytes: &[u8]) -> Result<OffsetCommitValue, RecordDecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=FLEXIBLE_VALUE_VERSION).contains(&version) {
        return Err(RecordDecodeError(format!(
            "unknown offset commit value version {version}"
        )));
    }
    r.flexible = version >= FLEXIBLE_VALUE_VERSION;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp_ms = r.i64()?;
    let expire_timestamp_ms = if version == 1 { r.i64()? } else { -1 };
    r.tagged_fields()?;
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

fn decode_group_metadata_value(bytes: &[u8]) -> Result<GroupMetadataValue, RecordDecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=FLEXIBLE_VALUE_VERSION).contains(&version) {
        return Err(RecordDecodeError(format!(
            "unknown group metadata value version {version}"
        )));
    }
    r.flexible = version >= FLEXIBLE_VALUE_VERSION;
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    let mut members = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.tagged_fields()?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

/// The topics of a `ConsumerProtocolSubscription`, read as version 0 (the prefix of every
/// version, as Kafka's `ClassicGroup.computeSubscribedTopics` reads it).
pub fn subscription_topics(subscription: &[u8]) -> Result<Vec<String>, RecordDecodeError> {
    let mut r = Reader::new(subscription);
    let version = r.i16()?;
    if version < 0 {
        return Err(RecordDecodeError(format!(
            "unsupported subscription version {version}"
        )));
    }
    let count = r.array_len()?;
    let mut topics = Vec::with_capacity(count.min(subscription.len() / 2));
    for _ in 0..count {
        topics.push(r.string()?);
    }
    Ok(topics)
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn string(&mut self, s: &str) {
        // Kafka strings are at most i16::MAX bytes; every string written here comes from a
        // request field that decoded as such a string.
        let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
        self.i16(bytes.len() as i16);
        self.0.extend_from_slice(bytes);
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.0.extend_from_slice(b);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            flexible: false,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordDecodeError> {
        if self.buf.len() < n {
            return Err(RecordDecodeError(format!(
                "needed {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, RecordDecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, RecordDecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, RecordDecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn uvarint(&mut self) -> Result<u64, RecordDecodeError> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordDecodeError("varint too long".into()))
    }

    /// A length: i16/i32 (-1 = null) or, in flexible versions, uvarint length + 1 (0 = null).
    fn length(&mut self, wide: bool) -> Result<Option<usize>, RecordDecodeError> {
        let len = if self.flexible {
            (self.uvarint()? as i64) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match len {
            -1 => Ok(None),
            n if n < 0 => Err(RecordDecodeError(format!("negative length {n}"))),
            n => Ok(Some(n as usize)),
        }
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordDecodeError> {
        match self.length(false)? {
            None => Ok(None),
            Some(n) => {
                let raw = self.take(n)?;
                String::from_utf8(raw.to_vec())
                    .map(Some)
                    .map_err(|_| RecordDecodeError("string is not UTF-8".into()))
            }
        }
    }

    fn string(&mut self) -> Result<String, RecordDecodeError> {
        self.nullable_string()?
            .ok_or_else(|| RecordDecodeError("null where a string is required".into()))
    }

    fn bytes(&mut self) -> Result<Bytes, RecordDecodeError> {
        match self.length(true)? {
            None => Ok(Bytes::new()),
            Some(n) => Ok(Bytes::copy_from_slice(self.take(n)?)),
        }
    }

    fn array_len(&mut self) -> Result<usize, RecordDecodeError> {
        Ok(self.length(true)?.unwrap_or(0))
    }

    fn tagged_fields(&mut self) -> Result<(), RecordDecodeError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?; // tag
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn offset_commit_bytes_are_kafkas() {
        let record = CoordinatorRecord::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(OffsetCommitValue {
                offset: 42,
                leader_epoch: 7,
                metadata: "m".into(),
                commit_timestamp_ms: 1000,
                expire_timestamp_ms: -1,
            }),
        };
        // key: version 1, "g", "t", partition 3
        assert_eq!(record.key(), hex("000100016700017400000003"));
        // value: version 3, offset, leader epoch, "m", commit timestamp
        assert_eq!(
            record.value().unwrap(),
            hex("0003000000000000002a0000000700016d00000000000003e8")
        );
        let decoded = CoordinatorRecord::decode(&record.key(), record.value().as_deref()).unwrap();
        assert_eq!(decoded, Some(record));
    }

    #[test]
    fn commits_with_an_expiry_are_version_1() {
        let value = OffsetCommitValue {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 5,
            expire_timestamp_ms: 9,
        };
        let record = CoordinatorRecord::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: Some(value.clone()),
        };
        let bytes = record.value().unwrap();
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(decode_offset_commit_value(&bytes).unwrap(), value);
    }

    #[test]
    fn group_metadata_round_trips_and_tombstones_have_no_value() {
        let record = CoordinatorRecord::GroupMetadata {
            group: "group-1".into(),
            value: Some(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 4,
                protocol: Some("range".into()),
                leader: Some("a-1".into()),
                current_state_timestamp_ms: 123,
                members: vec![MemberMetadata {
                    member_id: "a-1".into(),
                    group_instance_id: Some("i".into()),
                    client_id: "a".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(
                        b"\x00\x00\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff",
                    ),
                    assignment: Bytes::from_static(b"\x00\x00"),
                }],
            }),
        };
        let value = record.value().unwrap();
        assert_eq!(&value[..2], &[0, 3]);
        assert_eq!(
            CoordinatorRecord::decode(&record.key(), Some(&value)).unwrap(),
            Some(record)
        );
        let tombstone = CoordinatorRecord::GroupMetadata {
            group: "group-1".into(),
            value: None,
        };
        assert_eq!(tombstone.value(), None);
        assert_eq!(
            CoordinatorRecord::decode(&tombstone.key(), None).unwrap(),
            Some(tombstone)
        );
    }

    #[test]
    fn older_and_flexible_versions_decode() {
        // OffsetCommitValue v4 (flexible): offset 10, epoch 2, metadata "ab", timestamp 7, no tags.
        let v4 = hex("0004000000000000000a00000002036162000000000000000700");
        let decoded = decode_offset_commit_value(&v4).unwrap();
        assert_eq!(
            (
                decoded.offset,
                decoded.leader_epoch,
                decoded.metadata.as_str()
            ),
            (10, 2, "ab")
        );
        // GroupMetadataValue v0: "consumer", generation 1, null protocol, null leader, no members.
        let v0 = hex("00000008636f6e73756d657200000001ffffffff00000000");
        let g = decode_group_metadata_value(&v0).unwrap();
        assert_eq!(
            (g.generation, g.protocol, g.current_state_timestamp_ms),
            (1, None, -1)
        );
        // Records of the consumer protocol (KIP-848) are skipped, unknown types refused.
        assert_eq!(
            CoordinatorRecord::decode(&hex("0003000167"), None).unwrap(),
            None
        );
        assert!(CoordinatorRecord::decode(&hex("00630001"), None).is_err());
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let record = CoordinatorRecord::GroupMetadata {
            group: "g".into(),
            value: Some(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 1,
                protocol: None,
                leader: None,
                current_state_timestamp_ms: 0,
                members: vec![],
            }),
        };
        let value = record.value().unwrap();
        for cut in 0..value.len() {
            assert!(CoordinatorRecord::decode(&record.key(), Some(&value[..cut])).is_err());
        }
        let mut huge_array = value.clone();
        let n = huge_array.len();
        huge_array[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(CoordinatorRecord::decode(&record.key(), Some(&huge_array)).is_err());
    }

    #[test]
    fn subscription_topics_are_read_from_any_version() {
        // v3 subscription: topics ["a", "bc"], null user data, then v1+ fields that are ignored.
        let sub = hex("00030000000200016100026263ffffffff00000000ffffffffffff");
        assert_eq!(subscription_topics(&sub).unwrap(), vec!["a", "bc"]);
        assert!(subscription_topics(&hex("ffff")).is_err());
        assert!(subscription_topics(&hex("00")).is_err());
    }
}
