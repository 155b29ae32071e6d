//! The test fault endpoints (`testing.faults.enabled=true`, off by default), served on
//! `metrics.listener`:
//!
//! - `POST /faults/replication/cut?topic=T&partition=P&follower=N`, sent to the leader of
//!   `T-P`: this node stops exchanging that partition's Raft messages with node `N`
//!   ([`shoal_replication::ReplicationFaults`]). Everything else between the two nodes (the
//!   controller, other partitions, client traffic) keeps working over the same connection.
//!   The follower then behaves like a Kafka follower whose fetcher is stuck: it receives no
//!   records and no high watermark, leaves the ISR after `replica.lag.time.max.ms` of writes
//!   it does not get, and cannot depose the leader (see `docs/testing-faults.md`).
//! - `POST /faults/replication/heal?topic=T&partition=P&follower=N`: restores the link (on
//!   the node that cut it; a no-op elsewhere).
//!
//! Answers are plain text: 200 on success, 400 for a bad query, 404 for an unknown partition,
//! 409 when this node cannot cut (not a cluster, not the partition's leader, or `N` not a
//! follower of it).

use std::sync::Arc;

use futures::future::BoxFuture;
use shoal_replication::{NodeId, PartitionId, Role};

use super::ClusterRuntime;
use crate::http::server::{ActionReply, Actions};
use crate::metadata::MetadataStore;

/// Path of the cut action.
pub const CUT_PATH: &str = "/faults/replication/cut";
/// Path of the heal action.
pub const HEAL_PATH: &str = "/faults/replication/heal";

/// The fault actions of one node.
#[derive(Debug)]
pub struct FaultActions {
    node_id: i32,
    metadata: Arc<dyn MetadataStore>,
    /// `None` on a single node (nothing to cut).
    cluster: Option<Arc<ClusterRuntime>>,
}

impl FaultActions {
    /// The actions of node `node_id`.
    pub fn new(
        node_id: i32,
        metadata: Arc<dyn MetadataStore>,
        cluster: Option<Arc<ClusterRuntime>>,
    ) -> Self {
        Self {
            node_id,
            metadata,
            cluster,
        }
    }
}

/// `topic`, `partition` and `follower` from a query string.
#[derive(Debug, PartialEq, Eq)]
struct Link {
    topic: String,
    partition: i32,
    follower: i32,
}

fn parse_query(query: &str) -> Result<Link, String> {
    let (mut topic, mut partition, mut follower) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair}: expected key=value"))?;
        let slot = match key {
            "topic" => &mut topic,
            "partition" => &mut partition,
            "follower" => &mut follower,
            other => return Err(format!("unknown parameter {other}")),
        };
        if slot.replace(value.to_string()).is_some() {
            return Err(format!("{key} given twice"));
        }
    }
    let number = |name: &str, v: Option<String>| -> Result<i32, String> {
        let v = v.ok_or_else(|| format!("missing {name}"))?;
        v.parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("{name}={v} is not a non-negative integer"))
    };
    Ok(Link {
        topic: topic
            .filter(|t| !t.is_empty())
            .ok_or("missing topic")?
            .to_string(),
        partition: number("partition", partition)?,
        follower: number("follower", follower)?,
    })
}

enum Op {
    Cut,
    Heal,
}

impl FaultActions {
    fn run(&self, op: &Op, query: &str) -> ActionReply {
        let link = match parse_query(query) {
            Ok(link) => link,
            Err(e) => return (400, format!("{e}\n")),
        };
        let Some(cluster) = &self.cluster else {
            return (
                409,
                "not a cluster: there is no replication to cut\n".into(),
            );
        };
        let image = self.metadata.image();
        let Some(state) = image.topic_by_name(&link.topic).and_then(|t| {
            let state = t.partitions.get(usize::try_from(link.partition).ok()?)?;
            Some((t.id, state.replicas.clone()))
        }) else {
            return (
                404,
                format!("unknown partition {}-{}\n", link.topic, link.partition),
            );
        };
        let (topic_id, replicas) = state;
        let id = PartitionId {
            topic_id,
            partition: link.partition,
        };
        let name = format!("{}-{}", link.topic, link.partition);
        let follower = link.follower as NodeId;
        let faults = cluster.replicas.faults();
        match op {
            Op::Heal => {
                if faults.heal(id, follower) {
                    (
                        200,
                        format!(
                            "healed {name} between node {} and node {follower}\n",
                            self.node_id
                        ),
                    )
                } else {
                    (200, format!("{name} to node {follower} was not cut here\n"))
                }
            }
            Op::Cut => {
                if link.follower == self.node_id || !replicas.contains(&link.follower) {
                    return (
                        409,
                        format!(
                            "node {follower} is not a follower of {name} (replicas {replicas:?})\n"
                        ),
                    );
                }
                let leadership = cluster.replicas.partition(&id).map(|r| r.leadership());
                match leadership {
                    Some(l) if l.role == Role::Leader => {
                        faults.cut(id, follower);
                        (
                            200,
                            format!(
                                "cut {name} from leader {} (epoch {}) to node {follower}\n",
                                self.node_id, l.epoch
                            ),
                        )
                    }
                    Some(l) => (
                        409,
                        format!(
                            "node {} does not lead {name} (leader: {}); send the cut to the leader\n",
                            self.node_id,
                            l.leader.map_or("unknown".to_string(), |n| n.to_string())
                        ),
                    ),
                    None => (409, format!("node {} does not host {name}\n", self.node_id)),
                }
            }
        }
    }
}

impl Actions for FaultActions {
    fn post(&self, path: &str, query: &str) -> Option<BoxFuture<'static, ActionReply>> {
        let op = match path {
            CUT_PATH => Op::Cut,
            HEAL_PATH => Op::Heal,
            _ => return None,
        };
        let reply = self.run(&op, query);
        Some(Box::pin(std::future::ready(reply)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_topic_partition_and_follower() {
        assert_eq!(
            parse_query("topic=orders&partition=2&follower=3"),
            Ok(Link {
                topic: "orders".into(),
                partition: 2,
                follower: 3
            })
        );
        for (bad, why) in [
            ("partition=0&follower=1", "missing topic"),
            ("topic=t&follower=1", "missing partition"),
            ("topic=t&partition=0", "missing follower"),
            ("topic=t&partition=-1&follower=1", "partition=-1"),
            ("topic=t&partition=x&follower=1", "partition=x"),
            ("topic=t&partition=0&follower=1&x=2", "unknown parameter x"),
            (
                "topic=t&topic=u&partition=0&follower=1",
                "topic given twice",
            ),
            ("topic&partition=0&follower=1", "expected key=value"),
        ] {
            let e = parse_query(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
