//! Produce (key 0): validate each partition's batch as Kafka does (`ProduceRequest.validateRecords`,
//! `UnifiedLog.analyzeAndValidateRecords`, `LogValidator`), append, and answer per acks.
//!
//! Batches are stored exactly as produced (compressed or not); only LogAppendTime topics patch the
//! batch header (timestamp type, max timestamp, CRC), as Kafka does. Idempotent batches are
//! checked against the partition's producer state as part of the append (see
//! [`crate::partition::PartitionHandle`]): a retry is acknowledged with the original offsets,
//! a fenced epoch is `INVALID_PRODUCER_EPOCH`, a gap or overlap `OUT_OF_ORDER_SEQUENCE_NUMBER`.
//! Like Kafka since KIP-360, a producer the partition has no state for may start at any
//! sequence, so `UNKNOWN_PRODUCER_ID` is never returned. Transactional batches are refused
//! (`INVALID_TXN_STATE`; `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` without a transactional id, as
//! Kafka answers): transactions are not supported. acks=0 gets no response
//! (an error closes the connection instead), acks=1 is answered once appended, acks=-1 once the
//! appended offsets are committed.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::join_all;
use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, PartitionProduceResponse, TopicProduceResponse,
};
use shoal_protocol::kafka_protocol::messages::{ApiKey, BrokerId, ProduceRequest, ProduceResponse};
use shoal_protocol::registry::ApiSupport;
use shoal_storage::{BatchError, BatchHeader, Compression, LOG_OVERHEAD};

use super::s;
use crate::config::{ConfigView, TimestampType, TopicLogConfig};
use crate::connection::Reply;
use crate::kafka_error::{ApiError, BrokerError, kafka_error};
use crate::metadata::MetadataImage;
use crate::partition::{
    AppendOrigin, AppendRequest, PartitionError, PartitionHandle, PartitionManager,
};
use crate::records::{self, ProducePolicy, RecordError};

/// v3+ (magic v2 batches; the Java 4.x floor) up to v12 (v13 names topics by id).
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::Produce, 3, 12);

/// Kafka's smallest legal record size (`LegacyRecord.RECORD_OVERHEAD_V0`).
const MIN_RECORD_OVERHEAD: i32 = 14;

/// A batch ready to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedBatch {
    /// The bytes to store.
    pub batch: Bytes,
    /// Records in it.
    pub record_count: i32,
    /// The broker time stamped into a LogAppendTime batch, else -1.
    pub log_append_time_ms: i64,
}

/// Validates one partition's records and prepares them for the log. `partition` names it in
/// error messages.
pub fn prepare_batch(
    version: i16,
    records: Option<&Bytes>,
    config: &TopicLogConfig,
    now_ms: i64,
    partition: &str,
) -> Result<PreparedBatch, ApiError> {
    use ResponseError as E;
    let invalid = |m: String| ApiError::new(E::InvalidRecord, m);
    let no_batch = || {
        invalid(format!(
            "Produce requests with version {version} must have at least one record batch per partition"
        ))
    };
    let records = records.filter(|r| !r.is_empty()).ok_or_else(no_batch)?;

    // Kafka's batch iterator: a size below the minimum record overhead is corrupt; a batch that
    // does not fit in what remains ends the iteration (trailing bytes are ignored).
    let batch_size = |at: usize| -> Result<Option<usize>, ApiError> {
        let Some(prefix) = records.get(at..at + LOG_OVERHEAD) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
        if size < MIN_RECORD_OVERHEAD {
            return Err(ApiError::new(
                E::CorruptMessage,
                format!(
                    "Record size {size} is less than the minimum record overhead ({MIN_RECORD_OVERHEAD})"
                ),
            ));
        }
        let total = LOG_OVERHEAD + size as usize;
        Ok((records.len() - at >= total).then_some(total))
    };
    let first_len = batch_size(0)?.ok_or_else(no_batch)?;
    let batch = records.slice(..first_len);
    if batch.get(16).is_some_and(|magic| *magic as i8 != 2) {
        return Err(invalid(format!(
            "Produce requests with version {version} are only allowed to contain record batches with magic version 2"
        )));
    }
    let header =
        BatchHeader::parse(&batch).map_err(|e| ApiError::new(E::CorruptMessage, e.to_string()))?;
    if version < 7 && header.compression() == Ok(Compression::Zstd) {
        return Err(ApiError::new(
            E::UnsupportedCompressionType,
            format!(
                "Produce requests with version {version} are not allowed to use ZStandard compression"
            ),
        ));
    }
    if batch_size(first_len)?.is_some() {
        return Err(invalid(format!(
            "Produce requests with version {version} are only allowed to contain exactly one record batch per partition"
        )));
    }

    if header.base_offset != 0 {
        return Err(invalid(format!(
            "The baseOffset of the record batch in the append to {partition} should be 0, but it is {}",
            header.base_offset
        )));
    }
    if first_len as i64 > config.max_message_bytes {
        return Err(ApiError::new(
            E::MessageTooLarge,
            format!(
                "The record batch size in the append to {partition} is {first_len} bytes which exceeds the maximum configured value of {}.",
                config.max_message_bytes
            ),
        ));
    }
    let header = shoal_storage::validate(&batch).map_err(|e| match e {
        BatchError::BadCrc { stored, .. } => ApiError::new(
            E::CorruptMessage,
            format!("Record is corrupt (stored crc = {stored}) in topic partition {partition}."),
        ),
        BatchError::NoRecords
        | BatchError::RecordCountMismatch { .. }
        | BatchError::NegativeOffsetDelta(_) => {
            invalid(format!("Invalid record batch in {partition}: {e}"))
        }
        BatchError::BadMagic(_) => invalid(e.to_string()),
        other => ApiError::new(E::CorruptMessage, other.to_string()),
    })?;
    if header.is_control() {
        return Err(invalid(
            "Clients are not allowed to write control records".into(),
        ));
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(invalid(format!(
            "Invalid sequence number {} in record batch with producerId {}",
            header.base_sequence, header.producer_id
        )));
    }
    let policy = ProducePolicy {
        check_timestamps: config.timestamp_type == TimestampType::CreateTime,
        now_ms,
        before_max_ms: config.timestamp_before_max_ms,
        after_max_ms: config.timestamp_after_max_ms,
        require_keys: config.cleanup_policy.compact,
    };
    records::validate_produced(&batch, &header, &policy).map_err(|e| match e {
        RecordError::Corrupt(m) => ApiError::new(E::CorruptMessage, m),
        RecordError::Invalid(m) => invalid(m),
        RecordError::Timestamp(m) => ApiError::new(E::InvalidTimestamp, m),
    })?;
    if first_len as i64 > config.segment_bytes {
        return Err(ApiError::new(
            E::RecordListTooLarge,
            format!(
                "Message batch size is {first_len} bytes in append to partition {partition} which exceeds the maximum configured segment size of {}.",
                config.segment_bytes
            ),
        ));
    }
    let (batch, log_append_time_ms) = match config.timestamp_type {
        TimestampType::CreateTime => (batch, -1),
        TimestampType::LogAppendTime => {
            let mut patched = BytesMut::from(&batch[..]);
            shoal_storage::record_batch::set_log_append_time(&mut patched, now_ms)
                .map_err(|e| ApiError::new(E::CorruptMessage, e.to_string()))?;
            (patched.freeze(), now_ms)
        }
    };
    Ok(PreparedBatch {
        batch,
        record_count: header.record_count,
        log_append_time_ms,
    })
}

/// What the handler needs from the node.
#[derive(Debug, Clone, Copy)]
pub struct ProduceContext<'a> {
    /// Hosted partitions.
    pub partitions: &'a PartitionManager,
    /// Metadata at the start of the request.
    pub image: &'a MetadataImage,
    /// Resolves topic configs (overrides, then broker synonyms).
    pub configs: ConfigView<'a>,
    /// Broker time.
    pub now_ms: i64,
}

#[derive(Debug, Clone)]
struct PartitionOutcome {
    index: i32,
    error: Option<ApiError>,
    base_offset: i64,
    log_append_time_ms: i64,
    log_start_offset: i64,
    /// For acks=-1: the offset the high watermark must reach.
    commit_offset: Option<i64>,
    partition: Option<std::sync::Arc<dyn PartitionHandle>>,
    leader: Option<(i32, i32)>,
}

impl PartitionOutcome {
    fn failed(index: i32, error: ApiError) -> Self {
        Self {
            index,
            error: Some(error),
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
            commit_offset: None,
            partition: None,
            leader: None,
        }
    }
}

/// Handles a produce request; the reply depends on acks.
pub async fn handle(ctx: ProduceContext<'_>, request: ProduceRequest, version: i16) -> Reply {
    let acks = request.acks;
    let mut topics: Vec<(String, Vec<PartitionOutcome>)> = Vec::new();

    let request_error = if !matches!(acks, -1..=1) {
        Some(ApiError::bare(ResponseError::InvalidRequiredAcks))
    } else if request.transactional_id.is_none() && has_transactional_batch(&request) {
        Some(ApiError::bare(
            ResponseError::TransactionalIdAuthorizationFailed,
        ))
    } else {
        None
    };

    let request_error = request_error.as_ref();
    for topic in request.topic_data {
        let name = topic.name.to_string();
        let topic_name = name.as_str();
        let topic_image = ctx.image.topic_by_name(&name);
        let config = topic_image.map(|t| ctx.configs.topic_log_config(&t.configs));
        let appends = topic.partition_data.into_iter().map(|data| {
            let index = data.index;
            let partition_name = format!("{topic_name}-{index}");
            async move {
                if let Some(e) = request_error {
                    return PartitionOutcome::failed(index, e.clone());
                }
                let (Some(topic_image), Some(config)) = (topic_image, config) else {
                    return PartitionOutcome::failed(index, ApiError::bare(ResponseError::UnknownTopicOrPartition));
                };
                let Some(state) = usize::try_from(index).ok().and_then(|i| topic_image.partitions.get(i)) else {
                    return PartitionOutcome::failed(index, ApiError::bare(ResponseError::UnknownTopicOrPartition));
                };
                let leader = Some((state.leader, state.leader_epoch));
                let prepared = match prepare_batch(version, data.records.as_ref(), &config, ctx.now_ms, &partition_name) {
                    Ok(p) => p,
                    Err(e) => return PartitionOutcome::failed(index, e),
                };
                if is_transactional(&prepared.batch) {
                    return PartitionOutcome::failed(
                        index,
                        ApiError::new(ResponseError::InvalidTxnState, "transactions are not supported yet"),
                    );
                }
                if acks == -1 && below_min_isr(state.isr.len(), state.replicas.len(), config.min_insync_replicas) {
                    return PartitionOutcome::failed(
                        index,
                        ApiError::new(
                            ResponseError::NotEnoughReplicas,
                            format!(
                                "The size of the current ISR {:?} is insufficient to satisfy the min.isr requirement of {} for partition {partition_name}",
                                state.isr, config.min_insync_replicas
                            ),
                        ),
                    );
                }
                let partition = match ctx.partitions.get(&topic_image.id, index) {
                    Ok(p) => p,
                    Err(e) => {
                        let mut outcome = PartitionOutcome::failed(index, kafka_error(BrokerError::Partition(&e)));
                        outcome.leader = leader;
                        return outcome;
                    }
                };
                let appended = partition
                    .append(AppendRequest {
                        batches: prepared.batch,
                        now_ms: ctx.now_ms,
                        origin: AppendOrigin::Client,
                    })
                    .await;
                match appended {
                    Ok(outcome) => PartitionOutcome {
                        index,
                        error: None,
                        base_offset: outcome.base_offset,
                        // A retried batch is answered as Kafka does: the original batch's offsets,
                        // and its timestamp as the log append time.
                        log_append_time_ms: outcome
                            .duplicate_timestamp
                            .unwrap_or(prepared.log_append_time_ms),
                        log_start_offset: outcome.log_start_offset,
                        commit_offset: Some(outcome.last_offset + 1),
                        partition: Some(partition),
                        leader,
                    },
                    Err(e) => {
                        let mut failed = PartitionOutcome::failed(index, kafka_error(BrokerError::Partition(&e)));
                        failed.leader = leader;
                        failed
                    }
                }
            }
        });
        let outcomes = join_all(appends).await;
        topics.push((name, outcomes));
    }

    match acks {
        0 => {
            let errors: Vec<String> = topics
                .iter()
                .flat_map(|(name, parts)| {
                    parts.iter().filter_map(move |p| {
                        p.error
                            .as_ref()
                            .map(|e| format!("{name}-{}: {:?}", p.index, e.error))
                    })
                })
                .collect();
            if errors.is_empty() {
                Reply::NoResponse
            } else {
                Reply::Close(format!("acks=0 produce failed ({})", errors.join(", ")))
            }
        }
        -1 => {
            // One deadline for the whole request, as Kafka's delayed produce has.
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
            Reply::Defer(Box::pin(async move {
                for (_, parts) in &mut topics {
                    for p in parts.iter_mut() {
                        let (Some(partition), Some(offset)) = (&p.partition, p.commit_offset)
                        else {
                            continue;
                        };
                        match tokio::time::timeout_at(deadline, partition.wait_committed(offset))
                            .await
                        {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => p.error = Some(kafka_error(BrokerError::Partition(&e))),
                            Err(_) => {
                                p.error = Some(ApiError::bare(ResponseError::RequestTimedOut))
                            }
                        }
                    }
                }
                ResponseKind::Produce(response(topics, version))
            }))
        }
        _ => Reply::now(ResponseKind::Produce(response(topics, version))),
    }
}

/// Kafka's min-ISR rule for acks=all, with the minimum capped at the replica count.
pub fn below_min_isr(isr: usize, replicas: usize, min_insync_replicas: i64) -> bool {
    let effective = usize::try_from(min_insync_replicas)
        .unwrap_or(usize::MAX)
        .min(replicas);
    isr < effective
}

fn is_transactional(batch: &[u8]) -> bool {
    BatchHeader::parse(batch).is_ok_and(|h| h.is_transactional())
}

fn has_transactional_batch(request: &ProduceRequest) -> bool {
    request
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .any(|p| p.records.as_deref().is_some_and(is_transactional))
}

fn response(topics: Vec<(String, Vec<PartitionOutcome>)>, version: i16) -> ProduceResponse {
    let responses = topics
        .into_iter()
        .map(|(name, parts)| {
            let partition_responses = parts
                .into_iter()
                .map(|p| {
                    let mut r = PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(p.error.as_ref().map_or(0, ApiError::code))
                        .with_base_offset(if p.error.is_some() { -1 } else { p.base_offset })
                        .with_log_append_time_ms(if p.error.is_some() {
                            -1
                        } else {
                            p.log_append_time_ms
                        });
                    if version >= 5 {
                        r.log_start_offset = if p.error.is_some() {
                            -1
                        } else {
                            p.log_start_offset
                        };
                    }
                    if version >= 8 {
                        r.error_message = p.error.as_ref().and_then(|e| e.message.clone()).map(s);
                    }
                    if version >= 10
                        && p.error
                            .as_ref()
                            .is_some_and(|e| e.error == ResponseError::NotLeaderOrFollower)
                        && let Some((leader, epoch)) = p.leader
                    {
                        r.current_leader = LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(leader))
                            .with_leader_epoch(epoch);
                    }
                    r
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(shoal_protocol::kafka_protocol::messages::TopicName(s(name)))
                .with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// The error a partition answered with, for `PartitionError`s raised before a batch was appended.
pub fn partition_failure(e: &PartitionError) -> ApiError {
    kafka_error(BrokerError::Partition(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_storage::BatchBuilder;

    fn config() -> TopicLogConfig {
        TopicLogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 1 << 40,
            retention_ms: -1,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            min_insync_replicas: 1,
            cleanup_policy: shoal_storage::CleanupPolicy::default(),
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }

    fn batch(records: usize, timestamp: i64) -> Bytes {
        let mut builder = BatchBuilder::new(timestamp);
        for i in 0..records {
            builder.add_record(
                timestamp,
                Some(format!("k{i}").as_bytes()),
                Some(b"value".as_slice()),
                &[],
            );
        }
        builder.build()
    }

    fn code(r: Result<PreparedBatch, ApiError>) -> ResponseError {
        r.unwrap_err().error
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn accepts_a_good_batch_unchanged() {
        let b = batch(3, NOW);
        let prepared = prepare_batch(9, Some(&b), &config(), NOW, "t-0").unwrap();
        assert_eq!(prepared.batch, b);
        assert_eq!(prepared.record_count, 3);
        assert_eq!(prepared.log_append_time_ms, -1);
    }

    #[test]
    fn kafka_errors_for_bad_batches() {
        let c = config();
        assert_eq!(
            code(prepare_batch(9, None, &c, NOW, "t-0")),
            ResponseError::InvalidRecord
        );
        assert_eq!(
            code(prepare_batch(9, Some(&Bytes::new()), &c, NOW, "t-0")),
            ResponseError::InvalidRecord
        );

        let good = batch(2, NOW);
        let mut bad_crc = good.to_vec();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        assert_eq!(
            code(prepare_batch(
                9,
                Some(&Bytes::from(bad_crc)),
                &c,
                NOW,
                "t-0"
            )),
            ResponseError::CorruptMessage
        );

        let mut two = good.to_vec();
        two.extend_from_slice(&good);
        assert_eq!(
            code(prepare_batch(9, Some(&Bytes::from(two)), &c, NOW, "t-0")),
            ResponseError::InvalidRecord
        );

        let mut trailing = good.to_vec();
        trailing.extend_from_slice(&good[..20]);
        assert!(
            prepare_batch(9, Some(&Bytes::from(trailing)), &c, NOW, "t-0").is_ok(),
            "a partial trailing batch is ignored"
        );

        let mut magic1 = good.to_vec();
        magic1[16] = 1;
        assert_eq!(
            code(prepare_batch(9, Some(&Bytes::from(magic1)), &c, NOW, "t-0")),
            ResponseError::InvalidRecord
        );

        let mut offset = good.to_vec();
        offset[7] = 5;
        assert_eq!(
            code(prepare_batch(9, Some(&Bytes::from(offset)), &c, NOW, "t-0")),
            ResponseError::InvalidRecord
        );

        let small = TopicLogConfig {
            max_message_bytes: 10,
            ..c
        };
        assert_eq!(
            code(prepare_batch(9, Some(&good), &small, NOW, "t-0")),
            ResponseError::MessageTooLarge
        );

        let tiny_segment = TopicLogConfig {
            segment_bytes: 10,
            ..c
        };
        assert_eq!(
            code(prepare_batch(9, Some(&good), &tiny_segment, NOW, "t-0")),
            ResponseError::RecordListTooLarge
        );

        let future = batch(1, NOW + 7_200_000);
        assert_eq!(
            code(prepare_batch(9, Some(&future), &c, NOW, "t-0")),
            ResponseError::InvalidTimestamp
        );

        let mut corrupt_size = good.to_vec();
        corrupt_size[8..12].copy_from_slice(&3i32.to_be_bytes());
        assert_eq!(
            code(prepare_batch(
                9,
                Some(&Bytes::from(corrupt_size)),
                &c,
                NOW,
                "t-0"
            )),
            ResponseError::CorruptMessage
        );
    }

    #[test]
    fn log_append_time_topics_stamp_the_batch() {
        let c = TopicLogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..config()
        };
        let b = batch(2, 5);
        let prepared = prepare_batch(9, Some(&b), &c, NOW, "t-0").unwrap();
        assert_eq!(prepared.log_append_time_ms, NOW);
        let header = shoal_storage::validate(&prepared.batch).unwrap();
        assert_eq!(header.max_timestamp, NOW);
        assert_eq!(
            header.timestamp_type(),
            shoal_storage::TimestampType::LogAppendTime
        );
    }

    #[test]
    fn min_isr_is_capped_by_the_replica_count() {
        assert!(!below_min_isr(1, 1, 2));
        assert!(below_min_isr(1, 3, 2));
        assert!(!below_min_isr(2, 3, 2));
    }
}
