//! Builds uncompressed RecordBatch v2 bytes that Kafka's clients decode: used by tests, by Raft
//! control entries and by internal topics. Records follow Kafka's `DefaultRecord` encoding
//! exactly (zigzag varints for every length, delta and count).

use bytes::Bytes;

use crate::record_batch::{
    BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_ID, write_crc,
};

/// Kafka's control record types (the key's `type` field), as used by the Java client and KRaft.
pub mod control_type {
    pub const ABORT: i16 = 0;
    pub const COMMIT: i16 = 1;
    pub const LEADER_CHANGE: i16 = 2;
}

/// The key of a control record: version 0, then the type (both i16, big-endian).
pub fn control_record_key(control_type: i16) -> [u8; 4] {
    let mut key = [0u8; 4];
    key[2..4].copy_from_slice(&control_type.to_be_bytes());
    key
}

/// One record header (a key and an optional value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// Accumulates records and encodes them as one uncompressed v2 batch at offset 0.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    records: Vec<u8>,
    count: i32,
    fallback_timestamp: i64,
}

impl BatchBuilder {
    /// `now_ms` is the timestamp used for records added without an explicit one.
    pub fn new(now_ms: i64) -> Self {
        BatchBuilder {
            base_timestamp: None,
            max_timestamp: -1,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            records: Vec::new(),
            count: 0,
            fallback_timestamp: now_ms,
        }
    }

    /// Marks the batch idempotent: producer id, epoch and the sequence of its first record.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Marks the batch as a control batch (its records carry [`control_record_key`] keys).
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    pub fn record_count(&self) -> i32 {
        self.count
    }

    /// Appends a record at the next offset delta.
    pub fn add_record(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[RecordHeader],
    ) -> &mut Self {
        let base = *self.base_timestamp.get_or_insert(timestamp_ms);
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
        let mut body =
            Vec::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        body.push(0); // record attributes, unused
        put_varlong(&mut body, timestamp_ms - base);
        put_varint(&mut body, self.count);
        put_nullable(&mut body, key);
        put_nullable(&mut body, value);
        put_varint(&mut body, headers.len() as i32);
        for h in headers {
            put_nullable(&mut body, Some(h.key.as_bytes()));
            put_nullable(&mut body, h.value.as_deref());
        }
        put_varint(&mut self.records, body.len() as i32);
        self.records.extend_from_slice(&body);
        self.count += 1;
        self
    }

    /// Appends a record stamped with the builder's `now_ms`.
    pub fn add_value(&mut self, value: &[u8]) -> &mut Self {
        let ts = self.fallback_timestamp;
        self.add_record(ts, None, Some(value), &[])
    }

    /// Encodes the batch (baseOffset 0, partitionLeaderEpoch -1, valid CRC).
    pub fn build(&self) -> Bytes {
        let total = BATCH_HEADER_LEN + self.records.len();
        let mut buf = Vec::with_capacity(total);
        let base_ts = self.base_timestamp.unwrap_or(self.fallback_timestamp);
        let max_ts = if self.count == 0 {
            base_ts
        } else {
            self.max_timestamp
        };
        let mut attributes: i16 = 0;
        if self.transactional {
            attributes |= 0x10;
        }
        if self.control {
            attributes |= 0x20;
        }
        buf.extend_from_slice(&0i64.to_be_bytes());
        buf.extend_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
        buf.extend_from_slice(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
        buf.push(MAGIC_V2 as u8);
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(&attributes.to_be_bytes());
        buf.extend_from_slice(&(self.count - 1).max(0).to_be_bytes());
        buf.extend_from_slice(&base_ts.to_be_bytes());
        buf.extend_from_slice(&max_ts.to_be_bytes());
        buf.extend_from_slice(&self.producer_id.to_be_bytes());
        buf.extend_from_slice(&self.producer_epoch.to_be_bytes());
        buf.extend_from_slice(&self.base_sequence.to_be_bytes());
        buf.extend_from_slice(&self.count.to_be_bytes());
        buf.extend_from_slice(&self.records);
        write_crc(&mut buf);
        Bytes::from(buf)
    }
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// Kafka's `ByteUtils.writeVarint`: zigzag, then base-128 little-endian groups.
pub(crate) fn put_varint(out: &mut Vec<u8>, value: i32) {
    let mut v = ((value << 1) ^ (value >> 31)) as u32;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Kafka's `ByteUtils.writeVarlong`.
pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::validate;

    // Minimal decoder of the DefaultRecord format, written from Kafka's spec, to check the
    // builder's output field by field.
    fn get_varlong(buf: &[u8], pos: &mut usize) -> i64 {
        let mut raw: u64 = 0;
        let mut shift = 0;
        loop {
            let b = buf[*pos];
            *pos += 1;
            raw |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        ((raw >> 1) as i64) ^ -((raw & 1) as i64)
    }

    fn get_bytes(buf: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
        let len = get_varlong(buf, pos);
        if len < 0 {
            return None;
        }
        let v = buf[*pos..*pos + len as usize].to_vec();
        *pos += len as usize;
        Some(v)
    }

    #[test]
    fn varints_match_kafka_byte_utils() {
        // Zigzag, then 7-bit groups, low group first, as Kafka's ByteUtils writes them.
        let cases: [(i32, &[u8]); 6] = [
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
        ];
        for (v, expected) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, expected, "varint {v}");
        }
        let mut out = Vec::new();
        put_varint(&mut out, i32::MIN);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut out = Vec::new();
        put_varlong(&mut out, i64::MIN);
        assert_eq!(
            out,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn encodes_records_field_by_field() {
        let mut b = BatchBuilder::new(0).producer(42, 3, 17);
        b.add_record(5_000, Some(b"key"), Some(b"value"), &[]);
        b.add_record(
            5_010,
            None,
            None,
            &[RecordHeader {
                key: "h".into(),
                value: Some(b"v".to_vec()),
            }],
        );
        let buf = b.build();
        let h = validate(&buf).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, 17)
        );
        assert_eq!((h.first_timestamp, h.max_timestamp), (5_000, 5_010));
        assert_eq!(h.record_count, 2);

        let recs = &buf[BATCH_HEADER_LEN..];
        let mut pos = 0;
        let len = get_varlong(recs, &mut pos) as usize;
        let end = pos + len;
        assert_eq!(recs[pos], 0);
        pos += 1;
        assert_eq!(get_varlong(recs, &mut pos), 0); // timestamp delta
        assert_eq!(get_varlong(recs, &mut pos), 0); // offset delta
        assert_eq!(get_bytes(recs, &mut pos).as_deref(), Some(&b"key"[..]));
        assert_eq!(get_bytes(recs, &mut pos).as_deref(), Some(&b"value"[..]));
        assert_eq!(get_varlong(recs, &mut pos), 0); // headers
        assert_eq!(pos, end);

        let len = get_varlong(recs, &mut pos) as usize;
        let end = pos + len;
        pos += 1;
        assert_eq!(get_varlong(recs, &mut pos), 10);
        assert_eq!(get_varlong(recs, &mut pos), 1);
        assert_eq!(get_bytes(recs, &mut pos), None);
        assert_eq!(get_bytes(recs, &mut pos), None);
        assert_eq!(get_varlong(recs, &mut pos), 1);
        assert_eq!(get_bytes(recs, &mut pos).as_deref(), Some(&b"h"[..]));
        assert_eq!(get_bytes(recs, &mut pos).as_deref(), Some(&b"v"[..]));
        assert_eq!(pos, end);
        assert_eq!(pos, recs.len());
    }

    #[test]
    fn control_batches_carry_the_attribute_and_key() {
        let mut b = BatchBuilder::new(7).control(true);
        b.add_record(
            7,
            Some(&control_record_key(control_type::LEADER_CHANGE)),
            Some(b"x"),
            &[],
        );
        let buf = b.build();
        let h = validate(&buf).unwrap();
        assert!(h.is_control());
        assert!(!h.is_transactional());
        assert_eq!(control_record_key(2), [0, 0, 0, 2]);
    }
}
