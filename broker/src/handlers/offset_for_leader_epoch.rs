//! OffsetForLeaderEpoch (key 23): where an epoch ended, for consumers validating their position
//! after a leader change. Only the partition leader answers (Kafka's
//! `ReplicaManager.lastOffsetForLeaderEpoch`); other replicas refuse with
//! `NOT_LEADER_OR_FOLLOWER`.

use shoal_protocol::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use shoal_protocol::registry::ApiSupport;

use crate::kafka_error::{BrokerError, kafka_error};
use crate::metadata::MetadataImage;
use crate::partition::{PartitionError, PartitionLookup, check_leader_only};

/// v2+ (the Java 4.x floor); the consumer needs v3 to validate positions.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::OffsetForLeaderEpoch, 2, 4);

/// Answers every requested partition.
pub fn handle(
    partitions: &dyn PartitionLookup,
    image: &MetadataImage,
    request: &OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let image_topic = image.topic_by_name(&topic.topic);
            let results = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = image_topic
                        .filter(|t| {
                            usize::try_from(p.partition).is_ok_and(|i| i < t.partitions.len())
                        })
                        .ok_or(PartitionError::UnknownTopicOrPartition)
                        .and_then(|t| partitions.get(&t.id, p.partition))
                        .and_then(|partition| {
                            let current =
                                (p.current_leader_epoch >= 0).then_some(p.current_leader_epoch);
                            // `ReplicaManager.lastOffsetForLeaderEpoch`: leaders only.
                            check_leader_only(partition.as_ref(), current)?;
                            partition.end_offset_for_epoch(p.leader_epoch, current)
                        });
                    let response = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    match result {
                        Ok(Some((epoch, end_offset))) => response
                            .with_leader_epoch(epoch)
                            .with_end_offset(end_offset),
                        Ok(None) => response,
                        Err(e) => {
                            response.with_error_code(kafka_error(BrokerError::Partition(&e)).code())
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(results)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Role;
    use shoal_protocol::error_code::ResponseError;
    use shoal_protocol::kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };

    fn ask(role: Role, current_epoch: i32) -> EpochEndOffset {
        let (partitions, image) = crate::partition::scripted::one_partition(role);
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(crate::handlers::s("t").into())
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(current_epoch)
                            .with_leader_epoch(3),
                    ]),
            ]);
        handle(&partitions, &image, &request, 4).topics[0].partitions[0].clone()
    }

    #[test]
    fn only_the_leader_answers() {
        assert_eq!(ask(Role::Leader, 3).error_code, 0);
        assert_eq!(ask(Role::Leader, 3).leader_epoch, 3);
        let refused = ask(Role::Follower, 3);
        assert_eq!(
            refused.error_code,
            ResponseError::NotLeaderOrFollower.code()
        );
        assert_eq!((refused.leader_epoch, refused.end_offset), (-1, -1));
        assert_eq!(
            ask(Role::Follower, 4).error_code,
            ResponseError::UnknownLeaderEpoch.code(),
            "the epoch is checked first"
        );
    }
}
