//! [`ClusterElector`]: ElectLeaders on a cluster (Kafka's `ReplicationControlManager.electLeader`
//! with Raft groups doing the electing).
//!
//! Preferred election: a partition led by the first replica of its assignment needs none
//! (`ELECTION_NOT_NEEDED`); otherwise, when that replica's broker is live (not fenced) and in the
//! ISR, the partition's Raft leader hands its leadership to it (a Raft leadership transfer,
//! as the automatic leader rebalance does; the node that received the request asks the leader
//! over the inter-node connection if it does not lead itself). The answer comes once the new
//! leader leads and, within the request's timeout, the metadata names it, so clients asking
//! for metadata afterwards find it. A preferred replica that is fenced, out of the ISR or does
//! not take over gives `PREFERRED_LEADER_NOT_AVAILABLE`.
//!
//! Unclean election: Raft elects a leader only from a quorum holding every committed record,
//! so there is nothing unclean to do. A partition with a leader needs no election
//! (`ELECTION_NOT_NEEDED`, as in Kafka); one without any gets `ELIGIBLE_LEADERS_NOT_AVAILABLE`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use shoal_protocol::error_code::ResponseError;
use shoal_replication::{ControlError, PartitionId};
use tracing::{info, warn};

use super::ClusterRuntime;
use crate::handlers::elect_leaders::{
    ElectionError, ElectionOutcome, ElectionType, ImageElector, LeaderElector,
};
use crate::metadata::{MetadataImage, MetadataStore};

/// Kafka's message for `PREFERRED_LEADER_NOT_AVAILABLE`.
pub const PREFERRED_LEADER_NOT_AVAILABLE_MESSAGE: &str = "The preferred leader was not available.";

/// Elections run at once.
const CONCURRENT_ELECTIONS: usize = 64;

/// Elects leaders on a cluster. See the module documentation.
#[derive(Debug)]
pub struct ClusterElector {
    /// The cluster metadata.
    pub metadata: Arc<dyn MetadataStore>,
    /// This node's Raft groups and transport.
    pub cluster: Arc<ClusterRuntime>,
    /// How long the whole request may take (`timeout_ms` of the request).
    pub timeout: Duration,
}

fn not_available(message: impl Into<String>) -> ElectionError {
    ElectionError::new(ResponseError::PreferredLeaderNotAvailable, message)
}

/// What a preferred election of `topic-partition` needs: `Ok((partition id, current leader,
/// preferred replica))`, or the outcome without moving anything.
fn plan(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
) -> Result<(PartitionId, i32, i32), ElectionOutcome> {
    // Unknown partitions and partitions led by their preferred replica.
    match (ImageElector { image }).decide(ElectionType::Preferred, topic, partition) {
        Err(e) if e.error == ResponseError::PreferredLeaderNotAvailable => {}
        other => return Err(other),
    }
    let (topic_id, state) = image
        .topic_by_name(topic)
        .and_then(|t| Some((t.id, t.partitions.get(usize::try_from(partition).ok()?)?)))
        .ok_or_else(|| {
            Err(ElectionError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("No such partition as {topic}-{partition}"),
            ))
        })?;
    let Some(&preferred) = state.replicas.first() else {
        return Err(Err(not_available(PREFERRED_LEADER_NOT_AVAILABLE_MESSAGE)));
    };
    let live = image.brokers().get(&preferred).is_some_and(|b| !b.fenced);
    if !live || !state.isr.contains(&preferred) || state.leader < 0 {
        return Err(Err(not_available(PREFERRED_LEADER_NOT_AVAILABLE_MESSAGE)));
    }
    let id = PartitionId {
        topic_id,
        partition,
    };
    Ok((id, state.leader, preferred))
}

impl ClusterElector {
    async fn preferred(&self, topic: &str, partition: i32, deadline: Instant) -> ElectionOutcome {
        let image = self.metadata.image();
        let (id, leader, preferred) = match plan(&image, topic, partition) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        info!(partition = %format!("{topic}-{partition}"), leader, preferred, "preferred leader election");
        let moved = self
            .cluster
            .replicas
            .move_partition_leader(id, leader as u64, preferred as u64, left)
            .await;
        match moved {
            Ok(()) => {}
            // The metadata lagged: the preferred replica already leads.
            Err(ControlError::NotLeader {
                leader: Some(hint), ..
            }) if hint == preferred as u64 => {}
            Err(e) => {
                warn!(partition = %format!("{topic}-{partition}"), preferred, "preferred leader election failed: {e}");
                return Err(not_available(format!(
                    "{PREFERRED_LEADER_NOT_AVAILABLE_MESSAGE} ({topic}-{partition}: {e})"
                )));
            }
        }
        // The new leader reports itself to the metadata within a fraction of a second.
        let mut images = self.metadata.subscribe();
        let left = deadline.saturating_duration_since(Instant::now());
        let reported = tokio::time::timeout(
            left,
            images.wait_for(|image| {
                image
                    .topic_by_id(&id.topic_id)
                    .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
                    .is_some_and(|p| p.leader == preferred)
            }),
        )
        .await;
        if !matches!(reported, Ok(Ok(_))) {
            warn!(partition = %format!("{topic}-{partition}"), preferred, "elected, but not yet in the metadata");
        }
        Ok(())
    }

    fn unclean(&self, topic: &str, partition: i32) -> ElectionOutcome {
        let image = self.metadata.image();
        (ImageElector { image: &image }).decide(ElectionType::Unclean, topic, partition)
    }
}

impl LeaderElector for ClusterElector {
    fn elect<'a>(
        &'a self,
        election: ElectionType,
        partitions: &'a [(String, i32)],
    ) -> BoxFuture<'a, Vec<ElectionOutcome>> {
        let deadline = Instant::now() + self.timeout;
        Box::pin(async move {
            match election {
                ElectionType::Unclean => partitions
                    .iter()
                    .map(|(topic, partition)| self.unclean(topic, *partition))
                    .collect(),
                ElectionType::Preferred => {
                    let mut outcomes = Vec::with_capacity(partitions.len());
                    for chunk in partitions.chunks(CONCURRENT_ELECTIONS) {
                        let elections = chunk
                            .iter()
                            .map(|(topic, partition)| self.preferred(topic, *partition, deadline));
                        outcomes.extend(futures::future::join_all(elections).await);
                    }
                    outcomes
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::metadata::MetadataCommand;

    fn image(leader: i32, isr: Vec<i32>, fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::empty("c")
            .with_test_brokers(1..=3)
            .apply(&MetadataCommand::CreateTopic {
                id: Uuid::from_u128(5),
                name: "t".into(),
                assignments: vec![vec![2, 3, 1]],
                configs: Default::default(),
            })
            .unwrap()
            .apply(&MetadataCommand::SetPartitionLeader {
                topic_id: Uuid::from_u128(5),
                partition: 0,
                leader,
                leader_epoch: 7,
                isr,
            })
            .unwrap();
        for node_id in fenced {
            image = image
                .apply(&MetadataCommand::FenceBroker { node_id: *node_id })
                .unwrap();
        }
        image
    }

    fn code(outcome: Result<(PartitionId, i32, i32), ElectionOutcome>) -> Option<ResponseError> {
        match outcome {
            Ok(_) => None,
            Err(Ok(())) => panic!("planning never elects"),
            Err(Err(e)) => Some(e.error),
        }
    }

    #[test]
    fn preferred_elections_need_a_live_in_sync_preferred_replica() {
        let moving = plan(&image(1, vec![1, 2, 3], &[]), "t", 0).unwrap();
        assert_eq!((moving.1, moving.2), (1, 2), "from leader 1 to preferred 2");
        assert_eq!(
            code(plan(&image(2, vec![1, 2, 3], &[]), "t", 0)),
            Some(ResponseError::ElectionNotNeeded)
        );
        assert_eq!(
            code(plan(&image(1, vec![1, 3], &[]), "t", 0)),
            Some(ResponseError::PreferredLeaderNotAvailable),
            "out of the ISR"
        );
        assert_eq!(
            code(plan(&image(1, vec![1, 2, 3], &[2]), "t", 0)),
            Some(ResponseError::PreferredLeaderNotAvailable),
            "fenced"
        );
        assert_eq!(
            code(plan(&image(1, vec![1, 2, 3], &[]), "t", 1)),
            Some(ResponseError::UnknownTopicOrPartition)
        );
        assert_eq!(
            code(plan(&image(1, vec![1, 2, 3], &[]), "nope", 0)),
            Some(ResponseError::UnknownTopicOrPartition)
        );
    }
}
