//! [`PartitionReplica`]: what the broker's `PartitionHandle` needs of one replicated
//! partition, without any openraft type: append on the leader (an "appended" point for
//! acks=1 and a commit point for acks=all), reads from the local log up to the high
//! watermark, watches of the high watermark and of leadership, follower progress for the ISR
//! and KIP-392, leadership transfer, replica changes and retention.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use shoal_storage::{PartitionLog, PurgePoint, ReadOutcome};
use tokio::sync::watch;

use crate::error::{ControlError, ProposeError};
use crate::group::{Appended, Group, Leadership, PendingCommit, Replicas};
use crate::types::{NodeId, PartitionId, log_id};

/// How far a follower has replicated (seen from the leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    pub node: NodeId,
    /// Raft index of the last entry the follower holds in agreement with the leader.
    pub matched_index: Option<u64>,
    /// The offset after the follower's matched entry (its log end offset as the leader knows
    /// it; entries above it are not yet on that follower).
    pub matched_offset: i64,
    /// The last time (ms, the manager's clock) the follower was caught up with the leader's
    /// log end, as Kafka's `lastCaughtUpTimeMs`: the follower's last acknowledgement (of
    /// records or a heartbeat) if it matches everything, else when the log first grew past
    /// what it holds, whichever is earlier (the log alone until a first acknowledgement is
    /// recorded). A follower that stops answering therefore ages out even when nothing is
    /// written, as a Kafka follower that stops fetching does. `None` if it lagged for longer
    /// than the leader remembers.
    /// Kafka's ISR keeps a follower whose time is within `replica.lag.time.max.ms`.
    pub last_caught_up_ms: Option<i64>,
}

/// Upper bound of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    /// Committed data only (consumers).
    HighWatermark,
    /// Everything in the local log (the leader's own use, e.g. producer state).
    LogEnd,
}

/// One replica of a partition on this node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PartitionReplica {
    pub(crate) id: PartitionId,
    pub(crate) group: Arc<Group>,
}

impl PartitionReplica {
    pub fn id(&self) -> PartitionId {
        self.id
    }

    /// Appends record batches on the leader: resolves once they are in the leader's log with
    /// their offsets (Kafka's acks=1 point); [`PendingCommit::committed`] resolves once they
    /// are committed (acks=all). The batches must be complete v2 batches (each one's CRC is
    /// checked); LogAppendTime stamping is the caller's. Appends on one partition are ordered
    /// in call order. A replica that is not the accepting leader answers
    /// [`ProposeError::NotLeader`] (retriable: `NOT_LEADER_OR_FOLLOWER`).
    pub async fn append(&self, batches: Bytes) -> Result<(Appended, PendingCommit), ProposeError> {
        self.group.append(batches).await
    }

    /// [`Self::append`] and wait for the commit (acks=all).
    pub async fn append_committed(&self, batches: Bytes) -> Result<Appended, ProposeError> {
        let (appended, pending) = self.append(batches).await?;
        pending.committed().await?;
        Ok(appended)
    }

    /// Who leads, and the epoch.
    pub fn leadership(&self) -> Leadership {
        self.group.leadership()
    }

    /// Changes of [`Self::leadership`] (closed when the replica is removed).
    pub fn watch_leadership(&self) -> watch::Receiver<Leadership> {
        self.group.watch_leadership()
    }

    /// The high watermark: offsets below it are committed. It only grows.
    pub fn high_watermark(&self) -> i64 {
        self.group.storage.high_watermark()
    }

    /// Changes of the high watermark (for parked fetches), on leaders and followers alike.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.group.storage.watch_hw()
    }

    /// Reads whole batches from `start_offset` (see `PartitionLog::read`) up to `bound`.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        bound: ReadBound,
        min_one: bool,
    ) -> shoal_storage::Result<ReadOutcome> {
        let upper = match bound {
            ReadBound::HighWatermark => self.high_watermark(),
            ReadBound::LogEnd => i64::MAX,
        };
        self.log().read(start_offset, max_bytes, upper, min_one)
    }

    /// Read access to the local log (offset and timestamp lookups, leader-epoch queries).
    /// Hold the guard briefly: appends wait for it.
    pub fn log(&self) -> RwLockReadGuard<'_, PartitionLog> {
        self.group.storage.read_log()
    }

    /// Applies a changed log configuration (segment rolling, retention, compaction) to the
    /// open log, validated first. Every replica applies its topic's configuration itself.
    pub fn set_log_config(&self, config: shoal_storage::LogConfig) -> shoal_storage::Result<()> {
        self.group.storage.write_log().set_config(config)
    }

    /// Forgets idempotent producers idle for `expiration_ms` (`producer.id.expiration.ms`);
    /// returns how many. Each replica expires by its own clock, from the batch timestamps its
    /// log holds, as every Kafka replica does: a follower that becomes leader has forgotten
    /// the same producers, give or take one check interval.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.group
            .storage
            .write_log()
            .remove_expired_producers(now_ms, expiration_ms)
    }

    /// One compaction pass if one is due, below the high watermark only. Each replica
    /// compacts its own log, as in Kafka: offsets, Raft entries and their terms never change
    /// (only byte positions do), so replication reads and follower catch-up stay valid. The
    /// log's lock is held to plan and to swap; the rewrite runs without it. Blocking.
    pub fn clean(
        &self,
        now_ms: i64,
        limits: shoal_storage::CleanerLimits,
    ) -> shoal_storage::Result<Option<shoal_storage::CleanStats>> {
        let plan = self
            .log()
            .plan_clean(self.high_watermark(), now_ms, limits)?;
        let Some(plan) = plan else {
            return Ok(None);
        };
        let output = plan.run()?;
        self.group
            .storage
            .write_log()
            .finish_clean(output)
            .map(Some)
    }

    /// Voters and learners of the partition's group.
    pub fn replicas(&self) -> Replicas {
        self.group.replicas()
    }

    /// Replication progress of every other replica; `None` unless this replica leads.
    pub fn follower_progress(&self) -> Option<Vec<FollowerProgress>> {
        let metrics = self.group.raft.metrics();
        let (replication, acked) = {
            let m = metrics.borrow_watched();
            (
                m.replication.clone()?,
                m.heartbeat.clone().unwrap_or_default(),
            )
        };
        let now = self.group.storage.clock.now_ms();
        let log = self.group.storage.read_log();
        let last_index = log.last_index();
        let history = self
            .group
            .storage
            .log_end_history
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(replication.len());
        for (node, matched) in replication.iter() {
            if *node == self.group.node {
                continue;
            }
            let matched_index = matched.as_ref().map(|m| m.index);
            let matched_offset = match matched_index {
                None => 0,
                Some(i) => match log.entry_meta(i) {
                    Ok(Some(meta)) => meta.next_offset,
                    _ => log.log_start_offset(),
                },
            };
            // Raft's acknowledgement times are monotonic instants: carried over to the
            // manager's clock as "that long before now".
            let last_ack_ms = acked.get(node).cloned().flatten().map(|at| {
                let ago = openraft::Instant::elapsed(&*at);
                now.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX))
            });
            let caught_up = history.caught_up_at(matched_index, last_index, now);
            out.push(FollowerProgress {
                node: *node,
                matched_index,
                matched_offset,
                // No acknowledgement recorded yet (a leader's first moments): the log alone
                // says, as a new Kafka leader counts its ISR followers caught up at election.
                last_caught_up_ms: match last_ack_ms {
                    Some(a) => caught_up.map(|c| c.min(a)),
                    None => caught_up,
                },
            });
        }
        Some(out)
    }

    /// Hands leadership to `to` (a voter) and waits until it leads (preferred-leader election,
    /// controlled shutdown). Call on the leader.
    pub async fn transfer_leadership(
        &self,
        to: NodeId,
        timeout: Duration,
    ) -> Result<(), ControlError> {
        self.group.transfer_leadership(to, timeout).await
    }

    /// Makes `replicas` the partition's replica set (call on the leader, after the new
    /// replicas opened the partition): new replicas catch up as learners first.
    pub async fn change_replicas(&self, replicas: BTreeSet<NodeId>) -> Result<(), ControlError> {
        self.group.change_voters(replicas).await
    }

    /// Applies retention (`retention.ms` / `retention.bytes` of the log's configuration) up to
    /// the high watermark: takes a metadata snapshot at the last segment boundary retention
    /// releases, after which openraft purges the log up to it (asynchronously; a leader waits
    /// for replication reads in flight). Returns the snapshot point, if any. Each replica
    /// applies retention on its own, as in Kafka; a replica that needs purged entries installs
    /// the snapshot and continues from the new log start.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<Option<PurgePoint>, ControlError> {
        let storage = &self.group.storage;
        let applied = storage
            .applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .applied;
        let point = {
            let log = storage.read_log();
            log.retention_point(now_ms, self.high_watermark())
                .map_err(|e| ControlError::Fatal(e.to_string()))?
        };
        let Some(point) = point else { return Ok(None) };
        if applied.is_none_or(|a| a.index < point.index) {
            // Not applied that far yet: next time.
            return Ok(None);
        }
        *storage
            .snapshot_request
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(log_id(point.term, point.index));
        self.group
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ControlError::Fatal(e.to_string()))?;
        Ok(Some(point))
    }
}
