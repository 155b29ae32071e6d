//! Walking the records of one batch without materialising them: produce validation (Kafka's
//! `LogValidator` checks) and exact lookups for ListOffsets.
//!
//! Each record is `length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! key, value, headers`, all varints zigzag-encoded. Only the fixed fields are decoded; keys,
//! values and headers are skipped (decompressing through them), so memory stays bounded
//! whatever the batch claims.

use std::io::{self, BufRead, BufReader, Read};

use shoal_storage::{BATCH_HEADER_LEN, BatchHeader, Compression, TimestampType};

use super::codec::records_reader;

/// The fixed fields of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp: the batch's first timestamp plus the record's delta (for LogAppendTime
    /// batches: the batch's max timestamp, as Kafka reports it).
    pub timestamp: i64,
    /// Whether the key is not null.
    pub has_key: bool,
}

/// Why the records of a batch are unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The compressed data does not decompress (`CORRUPT_MESSAGE`).
    #[error("{0}")]
    Corrupt(String),
    /// A record is malformed or the count is wrong (`INVALID_RECORD`).
    #[error("{0}")]
    Invalid(String),
    /// A timestamp lies outside the topic's bounds (`INVALID_TIMESTAMP`).
    #[error("{0}")]
    Timestamp(String),
}

/// Largest record length accepted while walking; the length field is an i32 anyway.
const MAX_RECORD_BYTES: i64 = i32::MAX as i64;

/// Calls `visit` for each record in order, stopping early when it returns `false`. Checks that
/// the records are well formed, that there are exactly `recordCount` of them and nothing after.
/// `batch` is the whole batch including its header.
pub fn walk_records(
    batch: &[u8],
    header: &BatchHeader,
    mut visit: impl FnMut(RecordMeta) -> bool,
) -> Result<(), RecordError> {
    let compression = header
        .compression()
        .map_err(|e| RecordError::Corrupt(e.to_string()))?;
    let body = batch
        .get(BATCH_HEADER_LEN..)
        .ok_or_else(|| RecordError::Invalid("batch shorter than its header".into()))?;
    let corrupt = |e: io::Error| {
        RecordError::Corrupt(format!("failed to decompress {compression:?} records: {e}"))
    };
    let reader = records_reader(compression, body).map_err(corrupt)?;
    let mut reader = BufReader::with_capacity(8 * 1024, reader);
    let log_append_time = header.timestamp_type() == TimestampType::LogAppendTime;
    let decode_err = |e: io::Error, i: i32| {
        if compression != Compression::None && e.kind() != io::ErrorKind::UnexpectedEof {
            corrupt(e)
        } else {
            RecordError::Invalid(format!("record {i} is malformed: {e}"))
        }
    };
    for i in 0..header.record_count.max(0) {
        let length = read_varlong(&mut reader).map_err(|e| decode_err(e, i))?;
        if !(1..=MAX_RECORD_BYTES).contains(&length) {
            return Err(RecordError::Invalid(format!(
                "record {i} has invalid length {length}"
            )));
        }
        let mut record = CountingReader {
            inner: (&mut reader).take(length as u64),
            consumed: 0,
        };
        let _attributes = read_exact_byte(&mut record).map_err(|e| decode_err(e, i))?;
        let timestamp_delta = read_varlong(&mut record).map_err(|e| decode_err(e, i))?;
        let offset_delta = read_varlong(&mut record).map_err(|e| decode_err(e, i))?;
        let offset_delta = i32::try_from(offset_delta).map_err(|_| {
            RecordError::Invalid(format!("record {i} has offset delta {offset_delta}"))
        })?;
        let has_key = skip_bytes_field(&mut record, true).map_err(|e| decode_err(e, i))?; // key
        skip_bytes_field(&mut record, true).map_err(|e| decode_err(e, i))?; // value
        let headers = read_varlong(&mut record).map_err(|e| decode_err(e, i))?;
        if headers < 0 {
            return Err(RecordError::Invalid(format!(
                "record {i} has {headers} headers"
            )));
        }
        for _ in 0..headers {
            skip_bytes_field(&mut record, false).map_err(|e| decode_err(e, i))?; // header key
            skip_bytes_field(&mut record, true).map_err(|e| decode_err(e, i))?; // header value
        }
        if record.consumed != length as u64 {
            return Err(RecordError::Invalid(format!(
                "record {i} declares {length} bytes but its fields take {}",
                record.consumed
            )));
        }
        let timestamp = if log_append_time {
            header.max_timestamp
        } else {
            header.first_timestamp.saturating_add(timestamp_delta)
        };
        if !visit(RecordMeta {
            offset_delta,
            timestamp,
            has_key,
        }) {
            return Ok(());
        }
    }
    let trailing = reader
        .fill_buf()
        .map_err(|e| decode_err(e, header.record_count))?;
    if !trailing.is_empty() {
        return Err(RecordError::Invalid(format!(
            "bytes remain after the {} records the batch declares",
            header.record_count
        )));
    }
    Ok(())
}

/// Topic rules for produced records.
#[derive(Debug, Clone, Copy)]
pub struct ProducePolicy {
    /// Whether the topic keeps producer timestamps (CreateTime) and so checks them.
    pub check_timestamps: bool,
    /// Broker time.
    pub now_ms: i64,
    /// `message.timestamp.before.max.ms`.
    pub before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub after_max_ms: i64,
    /// `cleanup.policy` includes compact: every record needs a key (Kafka's `validateKey`).
    pub require_keys: bool,
}

/// Kafka's record-level checks of a produced batch: well-formed records, consecutive offset
/// deltas, and CreateTime timestamps within the topic's bounds.
pub fn validate_produced(
    batch: &[u8],
    header: &BatchHeader,
    policy: &ProducePolicy,
) -> Result<(), RecordError> {
    let mut expected = 0i32;
    let mut failure = None;
    walk_records(batch, header, |record| {
        if record.offset_delta != expected {
            failure = Some(RecordError::Invalid(format!(
                "Inner record at index {expected} has offset delta {} (expected {expected})",
                record.offset_delta
            )));
            return false;
        }
        expected += 1;
        if policy.require_keys && !record.has_key {
            failure = Some(RecordError::Invalid(
                "Compacted topic cannot accept message without key".to_string(),
            ));
            return false;
        }
        if policy.check_timestamps && record.timestamp != shoal_storage::record_batch::NO_TIMESTAMP
        {
            let low = policy.now_ms.saturating_sub(policy.before_max_ms);
            let high = policy.now_ms.saturating_add(policy.after_max_ms);
            if record.timestamp < low || record.timestamp > high {
                failure = Some(RecordError::Timestamp(format!(
                    "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{low}, {high}]",
                    record.timestamp, record.offset_delta
                )));
                return false;
            }
        }
        true
    })?;
    failure.map_or(Ok(()), Err)
}

/// The first record at or after `min_offset` whose timestamp is at least `timestamp`.
pub fn find_by_timestamp(
    batch: &[u8],
    header: &BatchHeader,
    timestamp: i64,
    min_offset: i64,
) -> Result<Option<(i64, i64)>, RecordError> {
    let mut found = None;
    walk_records(batch, header, |record| {
        let offset = header.base_offset + i64::from(record.offset_delta);
        if offset >= min_offset && record.timestamp >= timestamp {
            found = Some((offset, record.timestamp));
            false
        } else {
            true
        }
    })?;
    Ok(found)
}

/// The earliest record (at or after `min_offset`) carrying the batch's largest timestamp.
pub fn find_max_timestamp(
    batch: &[u8],
    header: &BatchHeader,
    min_offset: i64,
) -> Result<Option<(i64, i64)>, RecordError> {
    let mut best: Option<(i64, i64)> = None;
    walk_records(batch, header, |record| {
        let offset = header.base_offset + i64::from(record.offset_delta);
        if offset >= min_offset && best.is_none_or(|(_, ts)| record.timestamp > ts) {
            best = Some((offset, record.timestamp));
        }
        true
    })?;
    Ok(best)
}

struct CountingReader<R> {
    inner: R,
    consumed: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

pub(super) fn read_exact_byte(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

/// A zigzag varint of up to 10 bytes.
pub(super) fn read_varlong(r: &mut impl Read) -> io::Result<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = read_exact_byte(r)?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "varint longer than 10 bytes",
    ))
}

/// Skips a varint-length-prefixed byte field; -1 (null) is allowed where `nullable`.
/// Skips a length-prefixed field; returns whether it was present (not null).
pub(super) fn skip_bytes_field(r: &mut impl Read, nullable: bool) -> io::Result<bool> {
    let len = read_varlong(r)?;
    if len == -1 && nullable {
        return Ok(false);
    }
    if len < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("negative length {len}"),
        ));
    }
    let skipped = io::copy(&mut r.take(len as u64), &mut io::sink())?;
    if skipped != len as u64 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "field runs past the record",
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use shoal_protocol::kafka_protocol::indexmap::IndexMap;
    use shoal_protocol::kafka_protocol::records::{
        Compression as KpCompression, Record, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType as KpTs,
    };

    fn batch(compression: KpCompression, timestamps: &[i64]) -> Bytes {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, ts)| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: KpTs::Creation,
                delete_horizon: false,
                offset: i as i64,
                // Same (offset - sequence) for every record keeps them in one batch.
                sequence: i as i32 - 1,
                timestamp: *ts,
                key: Some(Bytes::from(format!("k{i}"))),
                value: (i % 2 == 0).then(|| Bytes::from(vec![b'v'; 100])),
                headers: IndexMap::from([("h".into(), Some(Bytes::from_static(b"x")))]),
            })
            .collect();
        let mut out = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        out.freeze()
    }

    fn header(b: &[u8]) -> BatchHeader {
        shoal_storage::validate(b).unwrap()
    }

    #[test]
    fn walks_every_codec() {
        for codec in [
            KpCompression::None,
            KpCompression::Gzip,
            KpCompression::Snappy,
            KpCompression::Lz4,
            KpCompression::Zstd,
        ] {
            let b = batch(codec, &[100, 105, 103]);
            let h = header(&b);
            assert_eq!(h.record_count, 3, "{codec:?}");
            let mut seen = Vec::new();
            walk_records(&b, &h, |r| {
                seen.push((r.offset_delta, r.timestamp));
                true
            })
            .unwrap();
            assert_eq!(seen, vec![(0, 100), (1, 105), (2, 103)], "{codec:?}");
            assert_eq!(find_by_timestamp(&b, &h, 104, 0).unwrap(), Some((1, 105)));
            assert_eq!(find_by_timestamp(&b, &h, 106, 0).unwrap(), None);
            assert_eq!(find_by_timestamp(&b, &h, 0, 2).unwrap(), Some((2, 103)));
            assert_eq!(find_max_timestamp(&b, &h, 0).unwrap(), Some((1, 105)));
        }
    }

    #[test]
    fn produce_policy_checks_timestamps() {
        let b = batch(KpCompression::None, &[1_000, 2_000]);
        let h = header(&b);
        let policy = |now| ProducePolicy {
            check_timestamps: true,
            now_ms: now,
            before_max_ms: 500,
            after_max_ms: 500,
            require_keys: true,
        };
        assert_eq!(validate_produced(&b, &h, &policy(1_500)), Ok(()));
        let mut keyless = shoal_storage::BatchBuilder::new(1_000);
        keyless.add_record(1_000, None, Some(b"v"), &[]);
        let keyless = keyless.build();
        assert!(matches!(
            validate_produced(&keyless, &header(&keyless), &policy(1_000)),
            Err(RecordError::Invalid(m)) if m.contains("without key")
        ));
        assert!(matches!(
            validate_produced(&b, &h, &policy(3_000)),
            Err(RecordError::Timestamp(_))
        ));
        let lenient = ProducePolicy {
            check_timestamps: false,
            ..policy(9_000_000)
        };
        assert_eq!(validate_produced(&b, &h, &lenient), Ok(()));
    }

    #[test]
    fn malformed_records_are_invalid_not_panics() {
        let b = batch(KpCompression::None, &[1, 2]);
        let h = header(&b);
        // Claim three records while only two are present.
        let mut more = h;
        more.record_count = 3;
        assert!(matches!(
            walk_records(&b, &more, |_| true),
            Err(RecordError::Invalid(_))
        ));
        let mut fewer = h;
        fewer.record_count = 1;
        assert!(matches!(
            walk_records(&b, &fewer, |_| true),
            Err(RecordError::Invalid(_))
        ));
        // Corrupt a record length inside an otherwise intact batch.
        let mut bytes = b.to_vec();
        bytes[BATCH_HEADER_LEN] = 0x7f;
        assert!(walk_records(&bytes, &h, |_| true).is_err());
        // Arbitrary bytes after the header never panic.
        for seed in 0u8..=255 {
            let mut noise = b.to_vec();
            for (i, byte) in noise[BATCH_HEADER_LEN..].iter_mut().enumerate() {
                *byte = byte.wrapping_mul(seed).wrapping_add(i as u8);
            }
            let _ = walk_records(&noise, &h, |_| true);
        }
    }
}
