//! The one place where internal errors become Kafka error codes.

use shoal_protocol::error_code::ResponseError;

use crate::config::topic::TopicConfigError;
use crate::metadata::placement::PlacementError;
use crate::metadata::{ApplyError, MetadataError};
use crate::partition::PartitionError;

/// A Kafka error code with the message Kafka would attach (`ApiError` in Kafka).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The code.
    pub error: ResponseError,
    /// Human-readable detail, sent where the response has an `error_message` field.
    pub message: Option<String>,
}

impl ApiError {
    /// An error with a message.
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            error,
            message: Some(message.into()),
        }
    }

    /// An error without a message.
    pub fn bare(error: ResponseError) -> Self {
        Self {
            error,
            message: None,
        }
    }

    /// The response code.
    pub fn code(&self) -> i16 {
        self.error.code()
    }
}

/// Every internal error a handler can meet.
#[derive(Debug)]
pub enum BrokerError<'a> {
    /// From a partition.
    Partition(&'a PartitionError),
    /// From the metadata store.
    Metadata(&'a MetadataError),
    /// From applying a metadata command.
    Apply(&'a ApplyError),
    /// From replica placement.
    Placement(&'a PlacementError),
    /// From topic config validation.
    TopicConfig(&'a TopicConfigError),
}

/// Maps an internal error to the code Kafka returns in the same situation.
pub fn kafka_error(error: BrokerError<'_>) -> ApiError {
    use ResponseError as E;
    match error {
        BrokerError::Partition(e) => {
            let code = match e {
                PartitionError::UnknownTopicOrPartition => E::UnknownTopicOrPartition,
                PartitionError::NotLeaderOrFollower | PartitionError::Closed => {
                    E::NotLeaderOrFollower
                }
                PartitionError::FencedLeaderEpoch { .. } => E::FencedLeaderEpoch,
                PartitionError::UnknownLeaderEpoch { .. } => E::UnknownLeaderEpoch,
                PartitionError::OffsetOutOfRange { .. } => E::OffsetOutOfRange,
                PartitionError::CorruptBatch(_) => E::CorruptMessage,
                PartitionError::TooLarge(_) => E::RecordListTooLarge,
                PartitionError::Storage(_) => E::KafkaStorageError,
                PartitionError::InvalidProducerEpoch(_) => E::InvalidProducerEpoch,
                PartitionError::OutOfOrderSequence(_) => E::OutOfOrderSequenceNumber,
            };
            ApiError::new(code, e.to_string())
        }
        BrokerError::Metadata(MetadataError::Rejected(e)) => kafka_error(BrokerError::Apply(e)),
        BrokerError::Metadata(e @ (MetadataError::Log(_) | MetadataError::Task(_))) => {
            ApiError::new(E::UnknownServerError, e.to_string())
        }
        BrokerError::Metadata(e @ MetadataError::Unavailable(_)) => {
            ApiError::new(E::RequestTimedOut, e.to_string())
        }
        BrokerError::Apply(e) => {
            let code = match e {
                ApplyError::TopicExists(_) => E::TopicAlreadyExists,
                ApplyError::TopicIdTaken(_) => E::UnknownServerError,
                ApplyError::UnknownTopicId(_) => E::UnknownTopicId,
                ApplyError::InvalidTopicName(_) | ApplyError::Collision { .. } => {
                    E::InvalidTopicException
                }
                ApplyError::InvalidAssignment(_) => E::InvalidReplicaAssignment,
                ApplyError::StaleProducerIdBlock { .. }
                | ApplyError::ClusterIdMismatch { .. }
                | ApplyError::UnknownBroker(_)
                | ApplyError::StaleLeader(_) => E::UnknownServerError,
                ApplyError::UnknownPartition(..) => E::UnknownTopicOrPartition,
            };
            ApiError::new(code, e.to_string())
        }
        BrokerError::Placement(e) => ApiError::new(
            E::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {} time(s): {e}",
                e.replication_factor
            ),
        ),
        BrokerError::TopicConfig(e) => ApiError::new(E::InvalidConfig, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representative_mappings() {
        let e = PartitionError::OffsetOutOfRange {
            offset: 9,
            log_start: 0,
            log_end: 3,
        };
        assert_eq!(
            kafka_error(BrokerError::Partition(&e)).error,
            ResponseError::OffsetOutOfRange
        );
        let e = ApplyError::TopicExists("t".into());
        let api = kafka_error(BrokerError::Apply(&e));
        assert_eq!(api.error, ResponseError::TopicAlreadyExists);
        assert_eq!(api.message.as_deref(), Some("Topic 't' already exists."));
        let e = PlacementError {
            replication_factor: 3,
            usable: 1,
        };
        assert_eq!(
            kafka_error(BrokerError::Placement(&e)).message.as_deref(),
            Some(
                "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 1 broker(s) are registered."
            )
        );
    }
}
