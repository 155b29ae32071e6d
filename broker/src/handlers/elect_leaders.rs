//! ElectLeaders (key 43): preferred or unclean leader election for the partitions asked for, or
//! for every partition (Kafka's `ReplicationControlManager.electLeaders`).
//!
//! The handler owns the protocol shape (which partitions, which results are reported); a
//! [`LeaderElector`] decides and carries out each election. [`ImageElector`] decides from the
//! metadata image and moves no leader: on a single node every partition's only replica leads, so
//! every election is `ELECTION_NOT_NEEDED`, as on Kafka. A cluster uses
//! [`crate::cluster::leader_election::ClusterElector`], which moves Raft leaderships.

use futures::future::BoxFuture;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::elect_leaders_response::{
    PartitionResult, ReplicaElectionResult,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName,
};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::metadata::MetadataImage;

/// Every version: v1 adds the election type, v2 is flexible.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::ElectLeaders, 0, 2);

/// Kafka's `ElectionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica of the assignment if it is in the ISR.
    Preferred,
    /// Elect any live replica when no ISR member can lead.
    Unclean,
}

impl ElectionType {
    /// The wire value (`0` preferred, `1` unclean).
    pub fn from_wire(value: i8) -> Option<Self> {
        match value {
            0 => Some(Self::Preferred),
            1 => Some(Self::Unclean),
            _ => None,
        }
    }
}

/// Why one partition's election did not elect anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionError {
    /// The error code.
    pub error: ResponseError,
    /// The message.
    pub message: String,
}

/// Kafka's message for `ELECTION_NOT_NEEDED` (`Errors.ELECTION_NOT_NEEDED.message()`).
pub const ELECTION_NOT_NEEDED_MESSAGE: &str = "Leader election not needed for topic partition.";

impl ElectionError {
    /// An error with its message.
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }
}

/// One partition's outcome: `Ok` when a new leader was elected.
pub type ElectionOutcome = Result<(), ElectionError>;

/// Decides and carries out leader elections.
pub trait LeaderElector: Send + Sync {
    /// Elects a leader of each `(topic, partition)`, answering in the same order.
    fn elect<'a>(
        &'a self,
        election: ElectionType,
        partitions: &'a [(String, i32)],
    ) -> BoxFuture<'a, Vec<ElectionOutcome>>;
}

/// Decides from a metadata image and changes nothing: a leader that already is the one the
/// election would pick needs no election; any other answer says that this broker cannot move it.
#[derive(Debug)]
pub struct ImageElector<'a> {
    /// The cluster metadata.
    pub image: &'a MetadataImage,
}

impl ImageElector<'_> {
    /// The outcome from the image alone: unknown partitions, elections not needed, and (for
    /// anything else) an error saying this broker moves no leader.
    pub fn decide(&self, election: ElectionType, topic: &str, partition: i32) -> ElectionOutcome {
        let unknown = |message: String| {
            Err(ElectionError::new(
                ResponseError::UnknownTopicOrPartition,
                message,
            ))
        };
        let Some(image) = self.image.topic_by_name(topic) else {
            return unknown(format!("No such topic as {topic}"));
        };
        let Some(state) = usize::try_from(partition)
            .ok()
            .and_then(|p| image.partitions.get(p))
        else {
            return unknown(format!("No such partition as {topic}-{partition}"));
        };
        let not_needed = match election {
            ElectionType::Preferred => state.replicas.first() == Some(&state.leader),
            ElectionType::Unclean => state.leader >= 0,
        };
        if not_needed {
            return Err(ElectionError::new(
                ResponseError::ElectionNotNeeded,
                ELECTION_NOT_NEEDED_MESSAGE,
            ));
        }
        let error = match election {
            ElectionType::Preferred => ResponseError::PreferredLeaderNotAvailable,
            ElectionType::Unclean => ResponseError::EligibleLeadersNotAvailable,
        };
        Err(ElectionError::new(
            error,
            format!("{topic}-{partition}: this broker does not move partition leaders"),
        ))
    }
}

impl LeaderElector for ImageElector<'_> {
    fn elect<'a>(
        &'a self,
        election: ElectionType,
        partitions: &'a [(String, i32)],
    ) -> BoxFuture<'a, Vec<ElectionOutcome>> {
        let outcomes = partitions
            .iter()
            .map(|(topic, partition)| self.decide(election, topic, *partition))
            .collect();
        Box::pin(std::future::ready(outcomes))
    }
}

/// Answers the request: the partitions it names, or (no topics) every partition of every topic,
/// leaving out those that need no election (as Kafka does) but keeping every topic.
pub async fn handle(
    image: &MetadataImage,
    elector: &dyn LeaderElector,
    request: &ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let response = ElectLeadersResponse::default();
    // v0 has no election type and means preferred (the field's default).
    let election_type = if version >= 1 {
        request.election_type
    } else {
        0
    };
    let Some(election) = ElectionType::from_wire(election_type) else {
        return response.with_error_code(ResponseError::InvalidRequest.code());
    };
    let (topics, report_not_needed): (Vec<(String, Vec<i32>)>, bool) =
        match &request.topic_partitions {
            Some(topics) => (
                topics
                    .iter()
                    .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
                    .collect(),
                true,
            ),
            None => {
                let mut all: Vec<(String, Vec<i32>)> = image
                    .topics()
                    .map(|t| {
                        let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
                        (t.name.clone(), (0..count).collect())
                    })
                    .collect();
                all.sort();
                (all, false)
            }
        };
    let flat: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|(topic, partitions)| partitions.iter().map(|p| (topic.clone(), *p)))
        .collect();
    let mut outcomes = elector.elect(election, &flat).await.into_iter();
    let results = topics
        .into_iter()
        .map(|(topic, partitions)| {
            let mut partition_result = Vec::new();
            for partition in partitions {
                let outcome = outcomes.next().unwrap_or_else(|| {
                    Err(ElectionError::new(
                        ResponseError::UnknownServerError,
                        "no election outcome",
                    ))
                });
                let (code, message) = match outcome {
                    Ok(()) => (0, None),
                    Err(e) if e.error == ResponseError::ElectionNotNeeded && !report_not_needed => {
                        continue;
                    }
                    Err(e) => (e.error.code(), Some(e.message)),
                };
                partition_result.push(
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error_code(code)
                        .with_error_message(message.map(s)),
                );
            }
            ReplicaElectionResult::default()
                .with_topic(TopicName(s(topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    response.with_replica_election_results(results)
}

#[cfg(test)]
mod tests {
    use shoal_protocol::kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use uuid::Uuid;

    use super::*;
    use crate::metadata::{BrokerRegistration, MetadataCommand};

    fn image() -> MetadataImage {
        let topic = |id: u128, name: &str, partitions: usize| MetadataCommand::CreateTopic {
            id: Uuid::from_u128(id),
            name: name.into(),
            assignments: vec![vec![1]; partitions],
            configs: Default::default(),
        };
        MetadataImage::empty("c")
            .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
                node_id: 1,
                rack: None,
                endpoints: vec![],
                fenced: false,
            }))
            .unwrap()
            .apply(&topic(101, "b", 2))
            .unwrap()
            .apply(&topic(102, "a", 1))
            .unwrap()
    }

    fn request(version_type: i8, topics: Option<&[(&str, &[i32])]>) -> ElectLeadersRequest {
        ElectLeadersRequest::default()
            .with_election_type(version_type)
            .with_topic_partitions(topics.map(|topics| {
                topics
                    .iter()
                    .map(|(t, p)| {
                        TopicPartitions::default()
                            .with_topic(TopicName(s(*t)))
                            .with_partitions(p.to_vec())
                    })
                    .collect()
            }))
    }

    type Summary = Vec<(String, Vec<(i32, i16, Option<String>)>)>;

    fn summary(response: &ElectLeadersResponse) -> Summary {
        response
            .replica_election_results
            .iter()
            .map(|t| {
                let parts = t
                    .partition_result
                    .iter()
                    .map(|p| {
                        (
                            p.partition_id,
                            p.error_code,
                            p.error_message.as_ref().map(|m| m.to_string()),
                        )
                    })
                    .collect();
                (t.topic.0.to_string(), parts)
            })
            .collect()
    }

    #[tokio::test]
    async fn named_partitions_report_not_needed_and_unknown_ones() {
        let image = image();
        let elector = ImageElector { image: &image };
        for (version, election_type) in [(0, 1), (1, 0), (2, 1)] {
            let req = request(election_type, Some(&[("b", &[1, 5]), ("nope", &[0])]));
            let response = handle(&image, &elector, &req, version).await;
            assert_eq!(response.error_code, 0);
            let not_needed = Some(ELECTION_NOT_NEEDED_MESSAGE.to_string());
            assert_eq!(
                summary(&response),
                vec![
                    (
                        "b".into(),
                        vec![
                            (1, ResponseError::ElectionNotNeeded.code(), not_needed),
                            (
                                5,
                                ResponseError::UnknownTopicOrPartition.code(),
                                Some("No such partition as b-5".into())
                            ),
                        ]
                    ),
                    (
                        "nope".into(),
                        vec![(
                            0,
                            ResponseError::UnknownTopicOrPartition.code(),
                            Some("No such topic as nope".into())
                        )]
                    ),
                ]
            );
        }
    }

    #[tokio::test]
    async fn all_partitions_leave_out_those_that_need_no_election_but_keep_every_topic() {
        let image = image();
        let elector = ImageElector { image: &image };
        let response = handle(&image, &elector, &request(0, None), 2).await;
        assert_eq!(
            summary(&response),
            vec![("a".into(), vec![]), ("b".into(), vec![])]
        );
    }

    #[tokio::test]
    async fn an_unknown_election_type_is_an_invalid_request() {
        let image = image();
        let elector = ImageElector { image: &image };
        let response = handle(&image, &elector, &request(7, None), 1).await;
        assert_eq!(response.error_code, ResponseError::InvalidRequest.code());
        assert!(response.replica_election_results.is_empty());
    }

    /// An elector that elects every odd partition and fails the others.
    struct Scripted;

    impl LeaderElector for Scripted {
        fn elect<'a>(
            &'a self,
            _: ElectionType,
            partitions: &'a [(String, i32)],
        ) -> BoxFuture<'a, Vec<ElectionOutcome>> {
            let outcomes = partitions
                .iter()
                .map(|(_, p)| {
                    if p % 2 == 1 {
                        Ok(())
                    } else {
                        Err(ElectionError::new(
                            ResponseError::PreferredLeaderNotAvailable,
                            "down",
                        ))
                    }
                })
                .collect();
            Box::pin(std::future::ready(outcomes))
        }
    }

    #[tokio::test]
    async fn elected_and_failed_partitions_are_reported_in_order() {
        let image = image();
        let response = handle(&image, &Scripted, &request(0, None), 2).await;
        assert_eq!(
            summary(&response),
            vec![
                (
                    "a".into(),
                    vec![(
                        0,
                        ResponseError::PreferredLeaderNotAvailable.code(),
                        Some("down".into())
                    )]
                ),
                (
                    "b".into(),
                    vec![
                        (
                            0,
                            ResponseError::PreferredLeaderNotAvailable.code(),
                            Some("down".into())
                        ),
                        (1, 0, None)
                    ]
                ),
            ]
        );
    }
}
