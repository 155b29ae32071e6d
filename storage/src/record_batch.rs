//! The Kafka RecordBatch (magic v2) header: a view that parses it, the checks a produced batch
//! must pass, and the few patches the log applies.
//!
//! Layout (big-endian), as in Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! 0  baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 firstTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records...
//! ```
//!
//! The CRC-32C covers bytes 21..end, so `baseOffset` and `partitionLeaderEpoch` can be stamped
//! without recomputing it; only the LogAppendTime patch touches covered bytes.

use bytes::Bytes;

/// Size of the fixed RecordBatch v2 header.
pub const BATCH_HEADER_LEN: usize = 61;
/// `baseOffset` + `batchLength`: the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format this crate stores.
pub const MAGIC_V2: i8 = 2;
/// `partitionLeaderEpoch` of a batch no leader has stamped yet.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Kafka's "no timestamp" marker.
pub const NO_TIMESTAMP: i64 = -1;
/// `producerId` of a batch written without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;

pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const LENGTH_AT: usize = 8;
pub(crate) const LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const FIRST_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORD_COUNT_AT: usize = 57;

pub(crate) const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Why a byte range is not an acceptable RecordBatch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("{len} bytes is shorter than a record batch header ({BATCH_HEADER_LEN} bytes)")]
    TooShort { len: usize },
    #[error("batchLength {batch_length} is below the minimum of {}", BATCH_HEADER_LEN - LOG_OVERHEAD)]
    InvalidLength { batch_length: i32 },
    #[error("batch declares {declared} bytes but {actual} bytes are present")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    BadMagic(i8),
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("recordCount {record_count} does not match lastOffsetDelta {last_offset_delta}")]
    RecordCountMismatch {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("record batch has no records")]
    NoRecords,
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),
    #[error("negative lastOffsetDelta {0}")]
    NegativeOffsetDelta(i32),
}

/// Compression codec from the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec id stored in the attributes.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    fn from_id(id: u8) -> Result<Self, BatchError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnknownCompression(other)),
        })
    }
}

/// Attribute bit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The parsed fixed header of one v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    be_i32(b, at) as u32
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the fixed header; checks only that the header bytes are present.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::TooShort { len: buf.len() });
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            batch_length: be_i32(buf, LENGTH_AT),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: be_u32(buf, CRC_AT),
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            first_timestamp: be_i64(buf, FIRST_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            record_count: be_i32(buf, RECORD_COUNT_AT),
        })
    }

    /// Whole size of the batch on disk (`LOG_OVERHEAD + batchLength`); 0 for a negative length.
    pub fn total_len(&self) -> usize {
        if self.batch_length < 0 {
            0
        } else {
            LOG_OVERHEAD + self.batch_length as usize
        }
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Number of offsets the batch occupies (Kafka counts them from `lastOffsetDelta`).
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }

    /// Checks that must hold for any stored batch: magic, length, CRC, offsets non-negative.
    /// Accepts what compaction may leave behind (fewer records than lastOffsetDelta + 1).
    fn check_stored(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let header = Self::parse(buf)?;
        if header.batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength {
                batch_length: header.batch_length,
            });
        }
        if header.total_len() != buf.len() {
            return Err(BatchError::LengthMismatch {
                declared: header.total_len(),
                actual: buf.len(),
            });
        }
        if header.magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(header.magic));
        }
        if header.last_offset_delta < 0 {
            return Err(BatchError::NegativeOffsetDelta(header.last_offset_delta));
        }
        header.compression()?;
        let computed = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
        if computed != header.crc {
            return Err(BatchError::BadCrc {
                stored: header.crc,
                computed,
            });
        }
        Ok(header)
    }
}

/// Full check of one produced batch (`buf` must be exactly one batch): magic v2, a length that
/// matches the buffer, a known codec, `recordCount >= 1`, `lastOffsetDelta == recordCount - 1`,
/// and the CRC-32C.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::check_stored(buf)?;
    if header.record_count < 1 {
        return Err(BatchError::NoRecords);
    }
    if i64::from(header.last_offset_delta) != i64::from(header.record_count) - 1 {
        return Err(BatchError::RecordCountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// The check recovery applies to batches already in the log: like [`validate`], but a batch may
/// hold fewer records than its offset span (compaction keeps `lastOffsetDelta`).
pub fn validate_stored(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::check_stored(buf)?;
    if header.record_count < 0 || header.record_count > header.last_offset_delta.saturating_add(1) {
        return Err(BatchError::RecordCountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Length of the batch starting at `buf[0]`, from its header, without further checks.
/// `Err` if the header is incomplete or the length is impossible or runs past `buf`.
pub fn batch_len_at(buf: &[u8]) -> Result<usize, BatchError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(BatchError::TooShort { len: buf.len() });
    }
    let batch_length = be_i32(buf, LENGTH_AT);
    if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(BatchError::InvalidLength { batch_length });
    }
    let total = LOG_OVERHEAD + batch_length as usize;
    if total > buf.len() {
        return Err(BatchError::LengthMismatch {
            declared: total,
            actual: buf.len(),
        });
    }
    Ok(total)
}

/// Iterates over the batches of a concatenation, each as a zero-copy slice of `buf`. A trailing
/// partial batch yields one error and ends the iteration. Headers are not validated beyond the
/// length; call [`validate`] on each item.
pub fn split_batches(buf: &Bytes) -> SplitBatches {
    SplitBatches {
        buf: buf.clone(),
        pos: 0,
        failed: false,
    }
}

/// Iterator returned by [`split_batches`].
#[derive(Debug)]
pub struct SplitBatches {
    buf: Bytes,
    pos: usize,
    failed: bool,
}

impl Iterator for SplitBatches {
    type Item = Result<Bytes, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        match batch_len_at(&self.buf[self.pos..]) {
            Ok(len) => {
                let batch = self.buf.slice(self.pos..self.pos + len);
                self.pos += len;
                Some(Ok(batch))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Writes `baseOffset` (outside the CRC) into the batch header at the start of `buf`.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    if buf.len() < BATCH_HEADER_LEN {
        return Err(BatchError::TooShort { len: buf.len() });
    }
    buf[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Writes `partitionLeaderEpoch` (outside the CRC) into the batch header at the start of `buf`.
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    if buf.len() < BATCH_HEADER_LEN {
        return Err(BatchError::TooShort { len: buf.len() });
    }
    buf[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// Kafka's LogAppendTime patch for a v2 batch: sets the timestamp-type attribute bit and
/// `maxTimestamp = timestamp_ms` (firstTimestamp is left as sent), then recomputes the CRC.
/// `buf` must be exactly one batch.
pub fn set_log_append_time(buf: &mut [u8], timestamp_ms: i64) -> Result<(), BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.total_len() != buf.len() {
        return Err(BatchError::LengthMismatch {
            declared: header.total_len(),
            actual: buf.len(),
        });
    }
    let attributes = header.attributes | TIMESTAMP_TYPE_BIT;
    buf[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    buf[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    write_crc(buf);
    Ok(())
}

/// Recomputes and stores the CRC-32C over bytes 21..end.
pub(crate) fn write_crc(buf: &mut [u8]) {
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_builder::BatchBuilder;

    fn sample(records: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000);
        for i in 0..records {
            b.add_record(
                1_000 + i as i64,
                Some(b"k"),
                Some(format!("value-{i}").as_bytes()),
                &[],
            );
        }
        b.build().to_vec()
    }

    #[test]
    fn parses_and_validates_a_built_batch() {
        let buf = sample(3);
        let h = validate(&buf).unwrap();
        assert_eq!(h.magic, 2);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.total_len(), buf.len());
        assert_eq!(h.first_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_002);
        assert_eq!(h.compression().unwrap(), Compression::None);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_control() && !h.is_transactional() && !h.has_producer_id());
    }

    #[test]
    fn rejects_short_buffers_and_bad_lengths() {
        let buf = sample(1);
        assert_eq!(validate(&buf[..10]), Err(BatchError::TooShort { len: 10 }));
        assert!(matches!(
            validate(&buf[..buf.len() - 1]),
            Err(BatchError::LengthMismatch { .. })
        ));
        let mut longer = buf.clone();
        longer.push(0);
        assert!(matches!(
            validate(&longer),
            Err(BatchError::LengthMismatch { .. })
        ));
        let mut bad = buf.clone();
        bad[8..12].copy_from_slice(&3i32.to_be_bytes());
        assert_eq!(
            validate(&bad),
            Err(BatchError::InvalidLength { batch_length: 3 })
        );
    }

    #[test]
    fn rejects_wrong_magic_crc_codec_and_counts() {
        let buf = sample(2);
        let mut m = buf.clone();
        m[MAGIC_AT] = 1;
        assert_eq!(validate(&m), Err(BatchError::BadMagic(1)));

        let mut c = buf.clone();
        let last = c.len() - 1;
        c[last] ^= 0xff;
        assert!(matches!(validate(&c), Err(BatchError::BadCrc { .. })));

        let mut codec = buf.clone();
        codec[ATTRIBUTES_AT + 1] |= 0x07;
        write_crc(&mut codec);
        assert_eq!(validate(&codec), Err(BatchError::UnknownCompression(7)));

        let mut count = buf.clone();
        count[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&5i32.to_be_bytes());
        write_crc(&mut count);
        assert_eq!(
            validate(&count),
            Err(BatchError::RecordCountMismatch {
                record_count: 5,
                last_offset_delta: 1
            })
        );
        // What compaction leaves (fewer records than the offset span) is fine for stored data.
        let mut compacted = buf.clone();
        compacted[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&1i32.to_be_bytes());
        write_crc(&mut compacted);
        assert!(validate(&compacted).is_err());
        assert!(validate_stored(&compacted).is_ok());

        let mut none = buf;
        none[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&0i32.to_be_bytes());
        write_crc(&mut none);
        assert_eq!(validate(&none), Err(BatchError::NoRecords));
    }

    #[test]
    fn stamping_offset_and_epoch_keeps_the_crc_valid() {
        let mut buf = sample(4);
        set_base_offset(&mut buf, 1234).unwrap();
        set_partition_leader_epoch(&mut buf, 7).unwrap();
        assert_eq!(
            set_base_offset(&mut [0u8; 10], 1),
            Err(BatchError::TooShort { len: 10 })
        );
        let h = validate(&buf).unwrap();
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), 1237);
        assert_eq!(h.next_offset(), 1238);
    }

    #[test]
    fn log_append_time_patch_recomputes_crc() {
        let mut buf = sample(2);
        set_log_append_time(&mut buf, 99_999).unwrap();
        let h = validate(&buf).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 99_999);
        assert_eq!(h.first_timestamp, 1_000);
    }

    #[test]
    fn splits_concatenated_batches_and_reports_a_partial_tail() {
        let a = sample(1);
        let b = sample(2);
        let mut all = a.clone();
        all.extend_from_slice(&b);
        let all = Bytes::from(all);
        let parts: Vec<_> = split_batches(&all).collect::<Result<_, _>>().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(&parts[0][..], &a[..]);
        assert_eq!(&parts[1][..], &b[..]);

        let mut torn = a.clone();
        torn.extend_from_slice(&b[..30]);
        let torn = Bytes::from(torn);
        let items: Vec<_> = split_batches(&torn).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
        assert_eq!(split_batches(&Bytes::new()).count(), 0);
    }
}
