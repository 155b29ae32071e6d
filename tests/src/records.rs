//! Record batches for tests, built and parsed with kafka-protocol's record codec (independent of
//! the broker's own batch code).

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Timestamp.
    pub timestamp: i64,
}

impl TestRecord {
    /// A record with a key and value.
    pub fn new(key: &str, value: &str, timestamp: i64) -> Self {
        Self {
            key: Some(Bytes::from(key.to_string())),
            value: Some(Bytes::from(value.to_string())),
            headers: Vec::new(),
            timestamp,
        }
    }
}

/// One batch holding `records`, compressed with `compression`.
pub fn batch(records: &[TestRecord], compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while (offset - sequence) is constant.
            sequence: i as i32 - 1,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
            delete_horizon: false,
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding test records cannot fail");
    out.freeze()
}

/// One idempotent batch: `values` with sequences from `base_sequence`, for producer
/// `producer_id` at `producer_epoch`.
pub fn idempotent_batch(
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    values: &[&str],
    compression: Compression,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_sequence + i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: IndexMap::new(),
            delete_horizon: false,
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding test records cannot fail");
    out.freeze()
}

/// Every record (offset, key, value, timestamp, headers) in `bytes` (batches back to back).
pub fn decode(bytes: &Bytes) -> anyhow::Result<Vec<Record>> {
    let mut buf = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf)?;
    Ok(sets.into_iter().flat_map(|s| s.records).collect())
}
