//! [`RaftPartition`]: a [`PartitionHandle`] on a replicated partition ([`PartitionReplica`],
//! one Raft group whose log is the Kafka partition log).
//!
//! - Appends go to the Raft leader only; anywhere else they fail with
//!   `NOT_LEADER_OR_FOLLOWER` (also a new leader's lease refusal, which clients retry). A
//!   client append is checked against the producer state of the leader's log (which every
//!   replica derives from its own log, so duplicate detection survives failover) under a lock
//!   held until the append is in the leader's log, so checks and appends are serialised.
//! - `wait_committed` (acks=all) resolves when the Raft commit covers the append; an append
//!   lost to a leader change fails with `NOT_LEADER_OR_FOLLOWER`, never acknowledged.
//! - The high watermark is the commit index on leaders and followers; reads stop there.
//! - The leader epoch is the Raft term.

use std::collections::BTreeMap;
use std::sync::Mutex;

use shoal_replication::{
    FollowerProgress, PartitionReplica, PendingCommit, ProposeError, ReadBound, Role as RaftRole,
};
use shoal_storage::{AppendCheck, Error as StorageError};
use tokio::sync::watch;

use crate::partition::handle::{
    AppendOrigin, AppendOutcome, AppendRequest, Isolation, LogOffsets, PartitionError,
    PartitionFuture, PartitionHandle, ReadRequest, ReadResult, ReplicaState, ReplicaStates, Role,
    TimestampOffset, TopicPartition, check_leader_epoch, producer_state_error,
};
use crate::partition::local::{storage_error, timestamp_lookup};

/// Appends whose commit is not yet known, beyond which the oldest are forgotten (their
/// waiters then fall back to the epoch check).
const MAX_PENDING_COMMITS: usize = 65_536;

/// How recently a follower outside the ISR must have answered, holding the leader's log end,
/// to rejoin it (partition groups heartbeat every 500 ms).
pub const REJOIN_ANSWER_MS: i64 = 1_000;

/// A replicated partition as handlers see it.
#[derive(Debug)]
pub struct RaftPartition {
    tp: TopicPartition,
    replica: PartitionReplica,
    /// Serialises producer-state checks with the appends they depend on.
    append_lock: tokio::sync::Mutex<()>,
    /// Commit handles of recent appends by their next offset (acks=all waits on them).
    pending: Mutex<BTreeMap<i64, PendingCommit>>,
    replica_lag_time_max_ms: i64,
}

fn not_leader(e: &ProposeError) -> PartitionError {
    match e {
        ProposeError::NotLeader { .. } => PartitionError::NotLeaderOrFollower,
        ProposeError::InvalidRecords { .. } | ProposeError::Empty => {
            PartitionError::CorruptBatch(e.to_string())
        }
        ProposeError::ReservedControlType(_) => PartitionError::CorruptBatch(e.to_string()),
        ProposeError::TooLarge { .. } => PartitionError::TooLarge(e.to_string()),
        ProposeError::Closed => PartitionError::Closed,
        ProposeError::Fatal(text) => PartitionError::Storage(text.clone()),
    }
}

impl RaftPartition {
    /// Wraps this node's replica of `tp`.
    pub fn new(
        tp: TopicPartition,
        replica: PartitionReplica,
        replica_lag_time_max_ms: i64,
    ) -> Self {
        Self {
            tp,
            replica,
            append_lock: tokio::sync::Mutex::new(()),
            pending: Mutex::new(BTreeMap::new()),
            replica_lag_time_max_ms,
        }
    }

    /// The Raft replica.
    pub fn replica(&self) -> &PartitionReplica {
        &self.replica
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, PendingCommit>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_leader(&self) -> Result<(), PartitionError> {
        match self.replica.leadership().role {
            RaftRole::Leader => Ok(()),
            RaftRole::Shutdown => Err(PartitionError::Closed),
            _ => Err(PartitionError::NotLeaderOrFollower),
        }
    }

    /// The in-sync replicas as the leader sees them, in no particular order; `None` unless
    /// this replica leads. Itself; the followers of `current_isr` caught up within
    /// `replica.lag.time.max.ms`; and the others only once caught up now, that is, holding the
    /// leader's log end and answering within [`REJOIN_ANSWER_MS`]. The last rule is Kafka's ISR
    /// expansion, which needs a follower's fetch at the log end: a follower that was caught up
    /// when it stopped, was dropped from the ISR (fenced), and is starting again must not count
    /// as in sync before it answers this leader again.
    pub fn in_sync_replicas(
        &self,
        local_broker: i32,
        now_ms: i64,
        current_isr: &[i32],
    ) -> Option<Vec<i32>> {
        let progress = self.replica.follower_progress()?;
        let mut isr = vec![local_broker];
        isr.extend(progress.iter().filter_map(|p| {
            let id = i32::try_from(p.node).ok()?;
            let in_sync = if current_isr.contains(&id) {
                self.caught_up(p, now_ms)
            } else {
                p.last_caught_up_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) <= REJOIN_ANSWER_MS)
            };
            in_sync.then_some(id)
        }));
        Some(isr)
    }

    fn caught_up(&self, p: &FollowerProgress, now_ms: i64) -> bool {
        p.last_caught_up_ms
            .is_some_and(|t| now_ms.saturating_sub(t) <= self.replica_lag_time_max_ms)
    }

    fn offsets_now(&self) -> LogOffsets {
        let hw = self.replica.high_watermark();
        let log = self.replica.log();
        LogOffsets {
            log_start: log.log_start_offset(),
            high_watermark: hw,
            last_stable: hw,
            log_end: log.log_end_offset(),
        }
    }

    fn lookup(&self, target: Option<i64>) -> PartitionFuture<'_, Option<TimestampOffset>> {
        let replica = self.replica.clone();
        let visible_end = self.replica.high_watermark();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                timestamp_lookup(|| replica.log(), visible_end, target)
            })
            .await
            .unwrap_or_else(|e| Err(PartitionError::Storage(format!("storage task failed: {e}"))))
        })
    }
}

impl PartitionHandle for RaftPartition {
    fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    fn role(&self) -> Role {
        if self.replica.leadership().role == RaftRole::Leader {
            Role::Leader
        } else {
            Role::Follower
        }
    }

    fn leader_epoch(&self) -> i32 {
        i32::try_from(self.replica.leadership().epoch).unwrap_or(i32::MAX)
    }

    fn offsets(&self) -> LogOffsets {
        self.offsets_now()
    }

    fn high_watermark(&self) -> watch::Receiver<i64> {
        self.replica.watch_high_watermark()
    }

    fn append(&self, request: AppendRequest) -> PartitionFuture<'_, AppendOutcome> {
        Box::pin(async move {
            self.check_leader()?;
            let _serial = self.append_lock.lock().await;
            if request.origin == AppendOrigin::Client {
                let check = self.replica.log().check_producer_append(&request.batches);
                match check {
                    Ok(AppendCheck::Append) => {}
                    Ok(AppendCheck::Duplicate(batch)) => {
                        return Ok(AppendOutcome {
                            base_offset: batch.first_offset(),
                            last_offset: batch.last_offset,
                            log_start_offset: self.replica.log().log_start_offset(),
                            duplicate_timestamp: Some(batch.timestamp),
                        });
                    }
                    Err(StorageError::Producer(p)) => {
                        return Err(producer_state_error(&p, &self.tp));
                    }
                    Err(other) => return Err(storage_error(other)),
                }
            }
            {
                // Forget commit handles that can no longer matter (committed, or overtaken).
                let hw = self.replica.high_watermark();
                let mut pending = self.lock_pending();
                pending.retain(|next, _| *next > hw);
                while pending.len() >= MAX_PENDING_COMMITS {
                    pending.pop_first();
                }
            }
            let (appended, commit) = self
                .replica
                .append(request.batches)
                .await
                .map_err(|e| not_leader(&e))?;
            let info = appended.info;
            self.lock_pending().insert(info.next_offset, commit);
            Ok(AppendOutcome {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
                log_start_offset: self.replica.log().log_start_offset(),
                duplicate_timestamp: None,
            })
        })
    }

    fn wait_committed(&self, next_offset: i64) -> PartitionFuture<'static, ()> {
        let commit = self.lock_pending().remove(&next_offset);
        let mut hw = self.replica.watch_high_watermark();
        let mut leadership = self.replica.watch_leadership();
        let epoch = self.replica.leadership().epoch;
        Box::pin(async move {
            if let Some(commit) = commit {
                return commit.committed().await.map_err(|e| not_leader(&e));
            }
            // A producer's retry of a batch already in the log: committed once the high
            // watermark passes it while this leader's term lasts (a leader never truncates its
            // own log, so the offsets below it are that batch's).
            loop {
                let l = *leadership.borrow_and_update();
                if l.role != RaftRole::Leader || l.epoch != epoch {
                    return Err(PartitionError::NotLeaderOrFollower);
                }
                if *hw.borrow_and_update() >= next_offset {
                    return Ok(());
                }
                tokio::select! {
                    changed = hw.changed() => if changed.is_err() { return Err(PartitionError::Closed) },
                    changed = leadership.changed() => if changed.is_err() { return Err(PartitionError::Closed) },
                }
            }
        })
    }

    fn read(&self, request: ReadRequest) -> PartitionFuture<'_, ReadResult> {
        Box::pin(async move {
            if self.replica.leadership().role == RaftRole::Shutdown {
                return Err(PartitionError::Closed);
            }
            check_leader_epoch(request.current_leader_epoch, self.leader_epoch())?;
            let offsets = self.offsets_now();
            let bound = match request.isolation {
                Isolation::ReadUncommitted | Isolation::ReadCommitted => ReadBound::HighWatermark,
            };
            let outcome = self
                .replica
                .read(request.offset, request.max_bytes, bound, request.min_one)
                .map_err(storage_error)?;
            Ok(ReadResult {
                records: outcome.records,
                offsets,
            })
        })
    }

    fn offset_for_timestamp(
        &self,
        timestamp: i64,
        _isolation: Isolation,
        current_leader_epoch: Option<i32>,
    ) -> PartitionFuture<'_, Option<TimestampOffset>> {
        Box::pin(async move {
            check_leader_epoch(current_leader_epoch, self.leader_epoch())?;
            self.lookup(Some(timestamp)).await
        })
    }

    fn max_timestamp(
        &self,
        _isolation: Isolation,
        current_leader_epoch: Option<i32>,
    ) -> PartitionFuture<'_, Option<TimestampOffset>> {
        Box::pin(async move {
            check_leader_epoch(current_leader_epoch, self.leader_epoch())?;
            self.lookup(None).await
        })
    }

    fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.replica
            .log()
            .epoch_for_offset(offset)
            .and_then(|e| i32::try_from(e).ok())
    }

    fn end_offset_for_epoch(
        &self,
        epoch: i32,
        current_leader_epoch: Option<i32>,
    ) -> Result<Option<(i32, i64)>, PartitionError> {
        check_leader_epoch(current_leader_epoch, self.leader_epoch())?;
        let Ok(epoch) = u64::try_from(epoch) else {
            return Ok(None);
        };
        Ok(self
            .replica
            .log()
            .end_offset_for_epoch(epoch)
            .map(|e| (i32::try_from(e.epoch).unwrap_or(i32::MAX), e.end_offset)))
    }

    fn replica_states(&self, local_broker: i32, now_ms: i64) -> Option<ReplicaStates> {
        if self.role() != Role::Leader {
            return None;
        }
        let progress = self.replica.follower_progress()?;
        let offsets = self.offsets_now();
        Some(ReplicaStates {
            leader: ReplicaState {
                broker_id: local_broker,
                log_end_offset: offsets.log_end,
                log_start_offset: offsets.log_start,
                in_sync: true,
                last_caught_up_ms: Some(now_ms),
            },
            followers: progress
                .iter()
                .filter_map(|p| {
                    Some(ReplicaState {
                        broker_id: i32::try_from(p.node).ok()?,
                        log_end_offset: p.matched_offset,
                        // Followers keep the leader's log start (retention runs on each, from
                        // the same segments).
                        log_start_offset: offsets.log_start,
                        in_sync: self.caught_up(p, now_ms),
                        last_caught_up_ms: p.last_caught_up_ms,
                    })
                })
                .collect(),
        })
    }
}
