//! The background duties of a cluster node, each a loop until shutdown:
//! - [`reconcile_partitions`]: opens and removes partition Raft groups as the image changes.
//! - [`heartbeats`]: tells the controller this broker is alive (unfencing it after a fence).
//! - [`fence_silent_brokers`]: on the controller leader, fences brokers silent for
//!   `broker.session.timeout.ms`.
//! - [`report_leadership`]: the leader of each partition reports its term (the leader epoch)
//!   and ISR (followers caught up within `replica.lag.time.max.ms`) to the metadata.
//! - [`rebalance_leaders`]: moves leadership back to the preferred replica
//!   (`auto.leader.rebalance.enable`).
//! - [`controlled_shutdown`]: hands leaderships away before the node stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use shoal_replication::{PartitionId, Role as RaftRole};
use tracing::{debug, info, warn};

use super::ClusterRuntime;
use super::raft_partition::RaftPartition;
use crate::metadata::{MetadataCommand, MetadataImage};
use crate::node::Node;
use crate::partition::PartitionHandle;

/// How often leaders compare their term and ISR with the metadata.
const REPORT_INTERVAL: Duration = Duration::from_millis(250);
/// Leader reports proposed at once.
const REPORT_CONCURRENCY: usize = 64;
/// How long a leadership transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens and removes partition groups as the image changes (on every node; admin requests also
/// reconcile the node they arrive on at once).
pub async fn reconcile_partitions(node: Arc<Node>) {
    let mut images = node.metadata.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        node.partitions.reconcile(image).await;
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            changed = images.changed() => if changed.is_err() { return },
        }
    }
}

/// Sends a heartbeat every `broker.heartbeat.interval.ms`.
pub async fn heartbeats(node: Arc<Node>, cluster: Arc<ClusterRuntime>) {
    let period = Duration::from_millis(cluster.config.broker_heartbeat_interval_ms.max(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let command = MetadataCommand::BrokerHeartbeat {
            node_id: cluster.node_id,
        };
        if let Err(e) = node.metadata.apply(command).await {
            debug!("heartbeat not delivered: {e}");
        }
    }
}

/// On the controller leader: fences brokers not heard from for `broker.session.timeout.ms`
/// (counted from when this node became leader for brokers it never heard from).
pub async fn fence_silent_brokers(node: Arc<Node>, cluster: Arc<ClusterRuntime>) {
    let session = Duration::from_millis(cluster.config.broker_session_timeout_ms.max(1) as u64);
    let mut ticks = tokio::time::interval(Duration::from_millis(500));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading_since: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let leadership = cluster.store.controller().leadership();
        if leadership.role != RaftRole::Leader {
            leading_since = None;
            continue;
        }
        let since = match leading_since {
            Some((epoch, since)) if epoch == leadership.epoch => since,
            _ => {
                let now = Instant::now();
                leading_since = Some((leadership.epoch, now));
                now
            }
        };
        let image = node.metadata.image();
        let silent: Vec<i32> = {
            let seen = cluster
                .liveness
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            image
                .brokers()
                .values()
                .filter(|b| !b.fenced && b.node_id != cluster.node_id)
                .filter(|b| {
                    let last = seen.get(&b.node_id).copied().unwrap_or(since).max(since);
                    last.elapsed() > session
                })
                .map(|b| b.node_id)
                .collect()
        };
        for node_id in silent {
            warn!(
                node_id,
                "fencing broker: no heartbeat within broker.session.timeout.ms"
            );
            if let Err(e) = node
                .metadata
                .apply(MetadataCommand::FenceBroker { node_id })
                .await
            {
                warn!(node_id, "fencing failed: {e}");
            }
        }
    }
}

/// What a leader should report for `partition`, if the image disagrees with it.
fn leader_report(
    image: &MetadataImage,
    partition: &RaftPartition,
    node_id: i32,
    now_ms: i64,
    leader_since: &mut HashMap<PartitionId, (u64, Instant)>,
    lag_ms: i64,
) -> Option<MetadataCommand> {
    let leadership = partition.replica().leadership();
    let id = partition.replica().id();
    if leadership.role != RaftRole::Leader {
        leader_since.remove(&id);
        return None;
    }
    let epoch = i32::try_from(leadership.epoch).ok()?;
    let tp = partition.topic_partition();
    let topic = image.topic_by_id(&tp.topic_id)?;
    let state = topic.partitions.get(usize::try_from(tp.partition).ok()?)?;
    let since = match leader_since.get(&id) {
        Some((e, since)) if *e == leadership.epoch => *since,
        _ => {
            let now = Instant::now();
            leader_since.insert(id, (leadership.epoch, now));
            now
        }
    };
    let measured = partition.in_sync_replicas(node_id, now_ms, &state.isr)?;
    let mut isr: Vec<i32> = if since.elapsed() < Duration::from_millis(lag_ms.max(0) as u64) {
        // A new leader does not know its followers' progress yet: it keeps the ISR it
        // inherited (minus fenced brokers) and adds whoever has caught up, shrinking only once
        // a follower has lagged for a whole replica.lag.time.max.ms under it.
        let mut isr: Vec<i32> = state
            .isr
            .iter()
            .copied()
            .filter(|r| image.brokers().get(r).is_some_and(|b| !b.fenced))
            .collect();
        isr.extend(measured);
        isr
    } else {
        measured
    };
    // Fenced brokers leave every ISR at once, as in KRaft.
    isr.retain(|r| state.replicas.contains(r) && image.brokers().get(r).is_some_and(|b| !b.fenced));
    isr.push(node_id);
    isr.sort_unstable();
    isr.dedup();
    let mut current = state.isr.clone();
    current.sort_unstable();
    if state.leader == node_id && state.leader_epoch == epoch && current == isr {
        return None;
    }
    if state.leader_epoch > epoch {
        return None;
    }
    Some(MetadataCommand::SetPartitionLeader {
        topic_id: tp.topic_id,
        partition: tp.partition,
        leader: node_id,
        leader_epoch: epoch,
        isr,
    })
}

/// Partition leaders report their term and ISR whenever the image disagrees.
pub async fn report_leadership(node: Arc<Node>, cluster: Arc<ClusterRuntime>) {
    let mut ticks = tokio::time::interval(REPORT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leader_since: HashMap<PartitionId, (u64, Instant)> = HashMap::new();
    loop {
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let image = node.metadata.image();
        let now_ms = node.clock.now_ms();
        let reports: Vec<MetadataCommand> = node
            .partitions
            .raft_partitions()
            .iter()
            .filter_map(|p| {
                leader_report(
                    &image,
                    p,
                    cluster.node_id,
                    now_ms,
                    &mut leader_since,
                    cluster.config.replica_lag_time_max_ms,
                )
            })
            .collect();
        if reports.is_empty() {
            continue;
        }
        let metadata = node.metadata.clone();
        futures::stream::iter(reports)
            .for_each_concurrent(REPORT_CONCURRENCY, |command| {
                let metadata = metadata.clone();
                async move {
                    debug!("reporting {command:?}");
                    if let Err(e) = metadata.apply(command).await {
                        debug!("leader report not applied: {e}");
                    }
                }
            })
            .await;
    }
}

/// Another live replica that is caught up right now (it answered the leader within the last
/// second) to hand `partition`'s leadership to: the preferred replica first, then the others
/// in replica order.
fn successor(
    image: &MetadataImage,
    partition: &RaftPartition,
    node_id: i32,
    now_ms: i64,
) -> Option<i32> {
    let tp = partition.topic_partition();
    let state = image
        .topic_by_id(&tp.topic_id)?
        .partitions
        .get(usize::try_from(tp.partition).ok()?)?;
    let progress = partition.replica().follower_progress()?;
    state.replicas.iter().copied().find(|r| {
        *r != node_id
            && image.brokers().get(r).is_some_and(|b| !b.fenced)
            && progress.iter().any(|p| {
                i32::try_from(p.node).ok() == Some(*r)
                    && p.last_caught_up_ms
                        .is_some_and(|t| now_ms.saturating_sub(t) <= 1000)
            })
    })
}

/// Every `leader.imbalance.check.interval.seconds`, hands each partition this node leads but
/// does not prefer back to its preferred replica when that one is live and in sync.
pub async fn rebalance_leaders(node: Arc<Node>, cluster: Arc<ClusterRuntime>) {
    let period = Duration::from_millis(cluster.config.leader_imbalance_check_interval_ms.max(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let image = node.metadata.image();
        for partition in node.partitions.raft_partitions() {
            if partition.replica().leadership().role != RaftRole::Leader {
                continue;
            }
            let tp = partition.topic_partition().clone();
            let Some(state) = image.topic_by_id(&tp.topic_id).and_then(|t| {
                t.partitions
                    .get(usize::try_from(tp.partition).ok()?)
                    .cloned()
            }) else {
                continue;
            };
            let Some(&preferred) = state.replicas.first() else {
                continue;
            };
            if preferred == cluster.node_id
                || !state.isr.contains(&preferred)
                || image.brokers().get(&preferred).is_none_or(|b| b.fenced)
            {
                continue;
            }
            info!(partition = %tp, preferred, "moving leadership to the preferred replica");
            if let Err(e) = partition
                .replica()
                .transfer_leadership(preferred as u64, TRANSFER_TIMEOUT)
                .await
            {
                warn!(partition = %tp, preferred, "preferred leader election failed: {e}");
            }
        }
    }
}

/// Hands every leadership of this node (partitions, then the controller) to other in-sync
/// replicas, so that clients move on before the node stops. Bounded by `deadline`.
pub async fn controlled_shutdown(node: &Node, cluster: &ClusterRuntime, deadline: Duration) {
    let image = node.metadata.image();
    let partitions: Vec<Arc<RaftPartition>> = node
        .partitions
        .raft_partitions()
        .into_iter()
        .filter(|p| p.replica().leadership().role == RaftRole::Leader)
        .collect();
    info!(
        partitions = partitions.len(),
        "controlled shutdown: handing leaderships away"
    );
    let started = Instant::now();
    let now_ms = node.clock.now_ms();
    let moved = std::sync::Mutex::new(std::collections::HashSet::new());
    let transfer_timeout = deadline.min(TRANSFER_TIMEOUT);
    let moves = futures::stream::iter(partitions).for_each_concurrent(
        REPORT_CONCURRENCY,
        |partition| {
            let image = image.clone();
            let moved = &moved;
            async move {
                let tp = partition.topic_partition().clone();
                let Some(to) = successor(&image, &partition, cluster.node_id, now_ms) else {
                    warn!(partition = %tp, "controlled shutdown: no caught-up replica to take over");
                    return;
                };
                match partition
                    .replica()
                    .transfer_leadership(to as u64, transfer_timeout)
                    .await
                {
                    Ok(()) => {
                        debug!(partition = %tp, to, "leadership handed over");
                        moved
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert((tp.topic_id, tp.partition));
                    }
                    Err(e) => {
                        warn!(partition = %tp, to, "controlled shutdown: transfer failed: {e}")
                    }
                }
            }
        },
    );
    if tokio::time::timeout(deadline, moves).await.is_err() {
        warn!("controlled shutdown: not every leadership moved within {deadline:?}");
    }
    // Clients find the new leaders in the metadata once they have reported themselves.
    let moved = moved
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut images = node.metadata.subscribe();
    let left = deadline.saturating_sub(started.elapsed());
    let reported = tokio::time::timeout(
        left,
        images.wait_for(|image| {
            !moved.iter().any(|(topic, partition)| {
                image
                    .topic_by_id(topic)
                    .and_then(|t| t.partitions.get(usize::try_from(*partition).ok()?))
                    .is_some_and(|p| p.leader == cluster.node_id)
            })
        }),
    )
    .await;
    if reported.is_err() {
        warn!("controlled shutdown: the metadata still names this broker as a leader");
    }
    let controller = cluster.store.controller();
    // A voter with an open connection: a node that just stopped is not a candidate.
    let connected = cluster.transport.connected_peers();
    if controller.leadership().role == RaftRole::Leader
        && let Some(to) = cluster.config.voters.keys().copied().find(|v| {
            *v != cluster.node_id
                && connected.contains(&(*v as u64))
                && image.brokers().get(v).is_some_and(|b| !b.fenced)
        })
        && let Err(e) = controller
            .transfer_leadership(to as u64, TRANSFER_TIMEOUT.min(deadline))
            .await
    {
        warn!(
            to,
            "controlled shutdown: controller leadership transfer failed: {e}"
        );
    }
}
