//! ListOffsets (key 2): earliest, latest, by timestamp (exact record), max timestamp. Only the
//! partition leader answers, except for the debugging replica id (Kafka's
//! `ReplicaManager.fetchOffset`); consumers asking a follower get `NOT_LEADER_OR_FOLLOWER`.

use std::collections::{HashMap, HashSet};

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use shoal_protocol::kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use shoal_protocol::registry::ApiSupport;

use crate::kafka_error::{BrokerError, kafka_error};
use crate::metadata::MetadataImage;
use crate::partition::{
    Isolation, PartitionError, PartitionLookup, TimestampOffset, check_leader_epoch,
    check_leader_only,
};

/// v1+ (the Java 4.x floor); v10 (timeout) is not implemented.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::ListOffsets, 1, 9);

/// `ListOffsetsRequest.LATEST_TIMESTAMP`.
pub const LATEST: i64 = -1;
/// `ListOffsetsRequest.EARLIEST_TIMESTAMP`.
pub const EARLIEST: i64 = -2;
/// `ListOffsetsRequest.MAX_TIMESTAMP` (v7+).
pub const MAX_TIMESTAMP: i64 = -3;
/// `ListOffsetsRequest.EARLIEST_LOCAL_TIMESTAMP` (v8+).
pub const EARLIEST_LOCAL: i64 = -4;
/// `ListOffsetsRequest.LATEST_TIERED_TIMESTAMP` (v9+).
pub const LATEST_TIERED: i64 = -5;
/// `ListOffsetsRequest.CONSUMER_REPLICA_ID`.
const CONSUMER_REPLICA_ID: i32 = -1;
/// `ListOffsetsRequest.DEBUGGING_REPLICA_ID`: may be answered by any replica.
const DEBUGGING_REPLICA_ID: i32 = -2;

/// Kafka's `isListOffsetsTimestampUnsupported`: special (negative) timestamps exist from a version
/// on; other negative values are never valid.
pub fn timestamp_unsupported(timestamp: i64, version: i16) -> bool {
    let min_version = match timestamp {
        t if t >= 0 => return false,
        EARLIEST | LATEST => 1,
        MAX_TIMESTAMP => 7,
        EARLIEST_LOCAL => 8,
        LATEST_TIERED => 9,
        _ => return true,
    };
    version < min_version
}

/// Answers every requested partition.
pub async fn handle(
    partitions: &dyn PartitionLookup,
    image: &MetadataImage,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut seen: HashMap<(String, i32), usize> = HashMap::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            *seen
                .entry((topic.name.to_string(), p.partition_index))
                .or_default() += 1;
        }
    }
    let client = request.replica_id.0 == CONSUMER_REPLICA_ID;
    // `ReplicaManager.fetchOffset`: fetchOnlyFromLeader unless the debugging replica id.
    let leader_only = request.replica_id.0 != DEBUGGING_REPLICA_ID;
    let isolation = Isolation::from_wire(if version >= 2 {
        request.isolation_level
    } else {
        0
    });
    // Kafka answers each distinct partition once, grouped by topic (its answers are a map keyed
    // by topic-partition): a partition asked twice gets one INVALID_REQUEST answer.
    let mut answered: HashSet<(String, i32)> = HashSet::new();
    let mut topics: Vec<ListOffsetsTopicResponse> = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.to_string();
        let mut responses = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            if !answered.insert((name.clone(), p.partition_index)) {
                continue;
            }
            let current_epoch =
                (version >= 4 && p.current_leader_epoch >= 0).then_some(p.current_leader_epoch);
            let result: Result<Option<TimestampOffset>, ResponseError> =
                if seen[&(name.clone(), p.partition_index)] > 1 {
                    Err(ResponseError::InvalidRequest)
                } else if timestamp_unsupported(p.timestamp, version) {
                    Err(ResponseError::UnsupportedVersion)
                } else {
                    lookup(
                        partitions,
                        image,
                        &name,
                        p.partition_index,
                        p.timestamp,
                        current_epoch,
                        isolation,
                        client,
                        leader_only,
                    )
                    .await
                    .map_err(|e| kafka_error(BrokerError::Partition(&e)).error)
                };
            let mut response = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            match result {
                Ok(Some(found)) => {
                    response.timestamp = found.timestamp;
                    response.offset = found.offset;
                    if version >= 4 {
                        response.leader_epoch = found.leader_epoch;
                    }
                }
                Ok(None) => {}
                Err(code) => response.error_code = code.code(),
            }
            responses.push(response);
        }
        if responses.is_empty() {
            continue;
        }
        match topics.iter_mut().find(|t| t.name == topic.name) {
            Some(existing) => existing.partitions.extend(responses),
            None => topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(responses),
            ),
        }
    }
    ListOffsetsResponse::default().with_topics(topics)
}

#[allow(clippy::too_many_arguments)]
async fn lookup(
    partitions: &dyn PartitionLookup,
    image: &MetadataImage,
    topic: &str,
    index: i32,
    timestamp: i64,
    current_epoch: Option<i32>,
    isolation: Isolation,
    client: bool,
    leader_only: bool,
) -> Result<Option<TimestampOffset>, PartitionError> {
    let topic = image
        .topic_by_name(topic)
        .ok_or(PartitionError::UnknownTopicOrPartition)?;
    if usize::try_from(index).map_or(true, |i| i >= topic.partitions.len()) {
        return Err(PartitionError::UnknownTopicOrPartition);
    }
    let partition = partitions.get(&topic.id, index)?;
    if leader_only {
        check_leader_only(partition.as_ref(), current_epoch)?;
    }
    match timestamp {
        EARLIEST | EARLIEST_LOCAL => {
            check_leader_epoch(current_epoch, partition.leader_epoch())?;
            let start = partition.offsets().log_start;
            Ok(Some(TimestampOffset {
                offset: start,
                timestamp: -1,
                leader_epoch: partition.epoch_for_offset(start).unwrap_or(-1),
            }))
        }
        LATEST => {
            check_leader_epoch(current_epoch, partition.leader_epoch())?;
            let offsets = partition.offsets();
            let offset = match (client, isolation) {
                (false, _) => offsets.log_end,
                (true, Isolation::ReadUncommitted) => offsets.high_watermark,
                (true, Isolation::ReadCommitted) => offsets.last_stable,
            };
            Ok(Some(TimestampOffset {
                offset,
                timestamp: -1,
                leader_epoch: partition.leader_epoch(),
            }))
        }
        LATEST_TIERED => {
            check_leader_epoch(current_epoch, partition.leader_epoch())?;
            Ok(Some(TimestampOffset {
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
            }))
        }
        MAX_TIMESTAMP => partition.max_timestamp(isolation, current_epoch).await,
        ts => {
            partition
                .offset_for_timestamp(ts, isolation, current_epoch)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Role;
    use crate::partition::scripted::ScriptedPartitions;
    use shoal_protocol::kafka_protocol::messages::BrokerId;
    use shoal_protocol::kafka_protocol::messages::list_offsets_request::{
        ListOffsetsPartition, ListOffsetsTopic,
    };

    fn hosted(role: Role) -> (ScriptedPartitions, MetadataImage) {
        crate::partition::scripted::one_partition(role)
    }

    async fn list(role: Role, replica_id: i32, timestamp: i64, epoch: i32) -> i16 {
        let (partitions, image) = hosted(role);
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(replica_id))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(crate::handlers::s("t").into())
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(timestamp)
                            .with_current_leader_epoch(epoch),
                    ]),
            ]);
        handle(&partitions, &image, request, 7).await.topics[0].partitions[0].error_code
    }

    #[tokio::test]
    async fn only_the_leader_answers_consumers() {
        let not_leader = ResponseError::NotLeaderOrFollower.code();
        for timestamp in [LATEST, EARLIEST, MAX_TIMESTAMP, 1000] {
            assert_eq!(list(Role::Leader, -1, timestamp, 3).await, 0, "{timestamp}");
            assert_eq!(
                list(Role::Follower, -1, timestamp, 3).await,
                not_leader,
                "{timestamp}"
            );
            assert_eq!(
                list(Role::Follower, -1, timestamp, -1).await,
                not_leader,
                "{timestamp}"
            );
        }
        assert_eq!(
            list(Role::Follower, -1, LATEST, 2).await,
            ResponseError::FencedLeaderEpoch.code(),
            "the epoch is checked first"
        );
        assert_eq!(
            list(Role::Follower, -2, LATEST, 3).await,
            0,
            "the debugging replica id may ask any replica"
        );
    }

    #[tokio::test]
    async fn a_partition_asked_twice_is_answered_once_with_invalid_request() {
        let (partitions, image) = hosted(Role::Leader);
        let topic = |indexes: &[i32]| {
            ListOffsetsTopic::default()
                .with_name(crate::handlers::s("t").into())
                .with_partitions(
                    indexes
                        .iter()
                        .map(|i| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*i)
                                .with_timestamp(LATEST)
                        })
                        .collect(),
                )
        };
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![topic(&[0, 0]), topic(&[0, 5])]);
        let response = handle(&partitions, &image, request, 7).await;
        let answers: Vec<Vec<(i32, i16)>> = response
            .topics
            .iter()
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.error_code))
                    .collect()
            })
            .collect();
        assert_eq!(
            answers,
            vec![vec![
                (0, ResponseError::InvalidRequest.code()),
                (5, ResponseError::UnknownTopicOrPartition.code())
            ]]
        );
    }

    #[test]
    fn special_timestamps_need_their_versions() {
        assert!(!timestamp_unsupported(0, 1));
        assert!(!timestamp_unsupported(EARLIEST, 1));
        assert!(timestamp_unsupported(MAX_TIMESTAMP, 6));
        assert!(!timestamp_unsupported(MAX_TIMESTAMP, 7));
        assert!(timestamp_unsupported(EARLIEST_LOCAL, 7));
        assert!(timestamp_unsupported(LATEST_TIERED, 8));
        assert!(!timestamp_unsupported(LATEST_TIERED, 9));
        assert!(timestamp_unsupported(-6, 9));
    }
}
