//! Fetch (key 1): sessionless reads with long-polling.
//!
//! Every request is answered as a full fetch with session id 0 and exactly the partitions it
//! named (KIP-227 without sessions: Java and librdkafka fall back to full fetches). Incremental
//! requests (session epoch other than 0 or -1) get `FETCH_SESSION_ID_NOT_FOUND`. The response
//! respects `max_bytes` and each partition's limit, except that the first partition with data
//! always returns at least one whole batch (KIP-74). With fewer than `min_bytes` available the
//! request parks until a high watermark moves or `max_wait_ms` passes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use shoal_protocol::kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use shoal_protocol::registry::ApiSupport;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::connection::Reply;
use crate::kafka_error::{BrokerError, kafka_error};
use crate::metadata::MetadataImage;
use crate::partition::{Isolation, PartitionError, PartitionHandle, PartitionManager, ReadRequest};

/// v4+ (the Java 4.x floor); v13+ names topics by id; v18 (replica high watermark) is not
/// implemented.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::Fetch, 4, 17);

/// The byte budget of one response (`ReplicaManager.readFromLog`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchBudget {
    remaining: usize,
    min_one: bool,
}

impl FetchBudget {
    /// A budget of `max_bytes` (negative is zero) where the first non-empty partition may exceed
    /// it by one batch.
    pub fn new(max_bytes: i32) -> Self {
        Self {
            remaining: usize::try_from(max_bytes).unwrap_or(0),
            min_one: true,
        }
    }

    /// The limit for the next partition and whether it may return one oversized batch.
    pub fn next(&self, partition_max_bytes: i32) -> (usize, bool) {
        (
            usize::try_from(partition_max_bytes)
                .unwrap_or(0)
                .min(self.remaining),
            self.min_one,
        )
    }

    /// Records what a partition returned.
    pub fn consumed(&mut self, bytes: usize) {
        if bytes > 0 {
            self.min_one = false;
        }
        self.remaining = self.remaining.saturating_sub(bytes);
    }
}

/// Kafka's diverging-epoch rule for a fetch that names the epoch of the last batch it fetched:
/// the log diverges when that epoch ended earlier (or a smaller epoch ended) than the fetch offset.
pub fn diverging_epoch(
    fetch_offset: i64,
    last_fetched_epoch: i32,
    end: Option<(i32, i64)>,
) -> Option<(i32, i64)> {
    match end {
        Some((epoch, end_offset)) if epoch < last_fetched_epoch || end_offset < fetch_offset => {
            Some((epoch, end_offset))
        }
        _ => None,
    }
}

/// What a deferred fetch needs; owned, because the answer may come later.
#[derive(Debug, Clone)]
pub struct FetchContext {
    /// Hosted partitions.
    pub partitions: Arc<PartitionManager>,
    /// Metadata at the start of the request.
    pub image: Arc<MetadataImage>,
    /// Fires at shutdown: parked fetches answer at once.
    pub shutdown: CancellationToken,
    /// `fetch.max.bytes`: the response never exceeds this (one oversized first batch aside).
    pub max_bytes: i32,
}

struct PlannedPartition {
    topic: usize,
    index: i32,
    target: Result<Arc<dyn PartitionHandle>, ResponseError>,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: Option<i32>,
    last_fetched_epoch: i32,
    leader: (i32, i32),
}

struct PlannedTopic {
    name: Option<String>,
    id: Uuid,
}

struct ReadOutcome {
    partitions: Vec<PartitionData>,
    bytes: usize,
    failed: bool,
}

/// Handles a fetch request.
pub fn handle(ctx: FetchContext, request: FetchRequest, version: i16) -> Reply {
    if version >= 7 && !matches!(request.session_epoch, -1 | 0) {
        return Reply::now(ResponseKind::Fetch(
            FetchResponse::default()
                .with_error_code(ResponseError::FetchSessionIdNotFound.code())
                .with_session_id(0),
        ));
    }
    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let from_follower = replica_id >= 0;
    let isolation = Isolation::from_wire(request.isolation_level);

    let mut topics = Vec::with_capacity(request.topics.len());
    let mut plan = Vec::new();
    for topic in &request.topics {
        let image_topic = if version >= 13 {
            ctx.image.topic_by_id(&topic.topic_id)
        } else {
            ctx.image.topic_by_name(&topic.topic)
        };
        let missing = if version >= 13 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let topic_index = topics.len();
        topics.push(PlannedTopic {
            name: (version < 13).then(|| topic.topic.to_string()),
            id: topic.topic_id,
        });
        for p in &topic.partitions {
            let state = image_topic.and_then(|t| {
                usize::try_from(p.partition)
                    .ok()
                    .and_then(|i| t.partitions.get(i))
            });
            let target = match (image_topic, state) {
                (None, _) => Err(missing),
                (Some(_), None) => Err(ResponseError::UnknownTopicOrPartition),
                (Some(_), Some(_)) if from_follower => Err(ResponseError::NotLeaderOrFollower),
                (Some(t), Some(_)) => ctx
                    .partitions
                    .get(&t.id, p.partition)
                    .map_err(|e| kafka_error(BrokerError::Partition(&e)).error),
            };
            plan.push(PlannedPartition {
                topic: topic_index,
                index: p.partition,
                target,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: (version >= 9 && p.current_leader_epoch >= 0)
                    .then_some(p.current_leader_epoch),
                last_fetched_epoch: if version >= 12 {
                    p.last_fetched_epoch
                } else {
                    -1
                },
                leader: state.map_or((-1, -1), |s| (s.leader, s.leader_epoch)),
            });
        }
    }

    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = request.max_bytes.min(ctx.max_bytes);
    Reply::Defer(Box::pin(async move {
        // Subscribe before the first read so that no high-watermark change is missed.
        let mut watches: Vec<watch::Receiver<i64>> = plan
            .iter()
            .filter_map(|p| p.target.as_ref().ok().map(|t| t.high_watermark()))
            .collect();
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut outcome = read_all(&plan, max_bytes, isolation, version).await;
        loop {
            if max_wait.is_zero() || plan.is_empty() || outcome.failed || outcome.bytes >= min_bytes
            {
                break;
            }
            if watches.is_empty() {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = ctx.shutdown.cancelled() => {}
                }
                break;
            }
            let woke = tokio::select! {
                _ = select_all(watches.iter_mut().map(|w| Box::pin(w.changed()))) => true,
                () = tokio::time::sleep_until(deadline) => false,
                () = ctx.shutdown.cancelled() => break,
            };
            outcome = read_all(&plan, max_bytes, isolation, version).await;
            if !woke {
                break;
            }
            // A closed watch (deleted partition) fires forever; the re-read reports its error.
            watches.retain(|w| w.has_changed().is_ok());
        }
        ResponseKind::Fetch(assemble(topics, &plan, outcome.partitions, version))
    }))
}

async fn read_all(
    plan: &[PlannedPartition],
    max_bytes: i32,
    isolation: Isolation,
    version: i16,
) -> ReadOutcome {
    let mut budget = FetchBudget::new(max_bytes);
    let mut out = ReadOutcome {
        partitions: Vec::with_capacity(plan.len()),
        bytes: 0,
        failed: false,
    };
    for p in plan {
        let data = match &p.target {
            Err(code) => error_data(p, *code, version),
            Ok(partition) => {
                let (limit, min_one) = budget.next(p.partition_max_bytes);
                match read_one(partition.as_ref(), p, limit, min_one, isolation).await {
                    Ok((mut data, bytes, diverged)) => {
                        budget.consumed(bytes);
                        out.bytes += bytes;
                        if diverged {
                            out.failed = true;
                        }
                        if version < 12 {
                            data.diverging_epoch = EpochEndOffset::default();
                        }
                        data.aborted_transactions =
                            (isolation == Isolation::ReadCommitted).then(Vec::new);
                        data
                    }
                    Err(e) => error_data(p, kafka_error(BrokerError::Partition(&e)).error, version),
                }
            }
        };
        if data.error_code != 0 {
            out.failed = true;
        }
        out.partitions.push(data);
    }
    out
}

async fn read_one(
    partition: &dyn PartitionHandle,
    p: &PlannedPartition,
    limit: usize,
    min_one: bool,
    isolation: Isolation,
) -> Result<(PartitionData, usize, bool), PartitionError> {
    if p.last_fetched_epoch >= 0 {
        let end = partition.end_offset_for_epoch(p.last_fetched_epoch, p.current_leader_epoch)?;
        if let Some((epoch, end_offset)) =
            diverging_epoch(p.fetch_offset, p.last_fetched_epoch, end)
        {
            let offsets = partition.offsets();
            let data = PartitionData::default()
                .with_partition_index(p.index)
                .with_high_watermark(offsets.high_watermark)
                .with_last_stable_offset(offsets.last_stable)
                .with_log_start_offset(offsets.log_start)
                .with_diverging_epoch(
                    EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end_offset),
                )
                .with_records(Some(Bytes::new()));
            return Ok((data, 0, true));
        }
    }
    let read = partition
        .read(ReadRequest {
            offset: p.fetch_offset,
            max_bytes: limit,
            min_one,
            isolation,
            current_leader_epoch: p.current_leader_epoch,
        })
        .await?;
    let bytes = read.records.len();
    let data = PartitionData::default()
        .with_partition_index(p.index)
        .with_error_code(0)
        .with_high_watermark(read.offsets.high_watermark)
        .with_last_stable_offset(read.offsets.last_stable)
        .with_log_start_offset(read.offsets.log_start)
        .with_records(Some(read.records));
    Ok((data, bytes, false))
}

/// Kafka's `createLogReadResult(exception)`: offsets unknown (-1), no records.
fn error_data(p: &PlannedPartition, error: ResponseError, version: i16) -> PartitionData {
    let mut data = PartitionData::default()
        .with_partition_index(p.index)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_aborted_transactions(None)
        .with_records(Some(Bytes::new()));
    if version >= 12
        && matches!(
            error,
            ResponseError::NotLeaderOrFollower | ResponseError::FencedLeaderEpoch
        )
        && p.leader.0 >= 0
    {
        data.current_leader = LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(p.leader.0))
            .with_leader_epoch(p.leader.1);
    }
    data
}

fn assemble(
    topics: Vec<PlannedTopic>,
    plan: &[PlannedPartition],
    partitions: Vec<PartitionData>,
    version: i16,
) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = topics
        .into_iter()
        .map(|t| {
            let mut r = FetchableTopicResponse::default();
            if version >= 13 {
                r.topic_id = t.id;
            } else {
                r.topic = shoal_protocol::kafka_protocol::messages::TopicName(super::s(
                    t.name.unwrap_or_default(),
                ));
            }
            r
        })
        .collect();
    for (p, data) in plan.iter().zip(partitions) {
        responses[p.topic].partitions.push(data);
    }
    let mut response = FetchResponse::default().with_responses(responses);
    if version >= 7 {
        response.error_code = 0;
        response.session_id = 0;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_follows_kip74() {
        let mut budget = FetchBudget::new(100);
        assert_eq!(budget.next(1000), (100, true));
        budget.consumed(0);
        assert_eq!(
            budget.next(50),
            (50, true),
            "min_one stays until data is returned"
        );
        budget.consumed(150);
        assert_eq!(budget.next(50), (0, false));
        assert_eq!(FetchBudget::new(-5).next(10), (0, true));
    }

    #[test]
    fn diverging_epochs() {
        assert_eq!(diverging_epoch(10, 3, Some((3, 20))), None);
        assert_eq!(diverging_epoch(25, 3, Some((3, 20))), Some((3, 20)));
        assert_eq!(diverging_epoch(10, 5, Some((4, 30))), Some((4, 30)));
        assert_eq!(diverging_epoch(10, 5, None), None);
    }
}
