//! Replication configuration: Raft timings (tuned for many groups per node), size limits of
//! replication traffic, and the shared flusher.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Settings shared by every Raft group of a node.
///
/// Timings are per group. Heartbeats are the dominant idle cost when a node hosts many groups,
/// so the defaults heartbeat every 500 ms and elect after 2.5–5 s of silence (Kafka's own
/// failure detection, `broker.session.timeout.ms`, is 9 s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationConfig {
    /// Interval between a leader's heartbeats to each follower. Default 500 ms.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout. Default 2500 ms.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout; also the leader lease (a new leader
    /// accepts writes once a quorum acknowledged it within this window). Default 5000 ms.
    pub election_timeout_max_ms: u64,
    /// Run a pre-vote round before an election, so a node that was partitioned away cannot
    /// depose a healthy leader when it returns. Default true.
    pub pre_vote: bool,
    /// Largest entry (all batches of one proposal) accepted by `append`. Default 16 MiB.
    pub max_entry_bytes: u64,
    /// Bytes of entries per AppendEntries message (at least one entry is always sent).
    /// Default 4 MiB.
    pub max_append_bytes: u64,
    /// Entries per AppendEntries message. Default 1024.
    pub max_append_entries: u64,
    /// Proposals a group accepts before `append` waits for earlier ones to finish (the bound
    /// of the queue in front of a group). Default 4096.
    pub max_inflight_proposals: u32,
    /// Timeout of one inter-broker RPC that carries no snapshot. Default 5000 ms.
    pub rpc_timeout_ms: u64,
    /// Timeout of sending and installing a snapshot. Default 30000 ms.
    pub install_snapshot_timeout_ms: u64,
    /// Threads that fsync logs for group commit, shared by every partition of the node.
    /// Default 4.
    pub flush_threads: usize,
    /// How often the manager writes each group's recovery checkpoint (applied and committed
    /// log ids, membership), which keeps restarts from rescanning whole logs. Default 5000 ms.
    pub checkpoint_interval_ms: u64,
    /// Entries between two snapshots of the controller group (its log is compacted into the
    /// caller's state snapshot). Default 10000.
    pub controller_snapshot_entries: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            heartbeat_interval_ms: 500,
            election_timeout_min_ms: 2500,
            election_timeout_max_ms: 5000,
            pre_vote: true,
            max_entry_bytes: 16 << 20,
            max_append_bytes: 4 << 20,
            max_append_entries: 1024,
            max_inflight_proposals: 4096,
            rpc_timeout_ms: 5000,
            install_snapshot_timeout_ms: 30_000,
            flush_threads: 4,
            checkpoint_interval_ms: 5000,
            controller_snapshot_entries: 10_000,
        }
    }
}

/// Bytes of framing around one entry's data in the largest AppendEntries frame.
pub(crate) const FRAME_OVERHEAD_BYTES: u64 = 64 * 1024;

impl ReplicationConfig {
    /// The largest frame replication can produce: the bigger of one entry and one
    /// AppendEntries message, plus framing. A transport's frame limit must be at least this.
    pub fn largest_frame_bytes(&self) -> u64 {
        self.max_entry_bytes.max(self.max_append_bytes) + FRAME_OVERHEAD_BYTES
    }

    /// Timings for tests and local clusters: 50 ms heartbeats, elections after 300–600 ms.
    pub fn fast_for_tests() -> Self {
        ReplicationConfig {
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            rpc_timeout_ms: 1000,
            install_snapshot_timeout_ms: 5000,
            checkpoint_interval_ms: 200,
            ..ReplicationConfig::default()
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.heartbeat_interval_ms == 0 {
            return err("heartbeat_interval_ms must be >= 1".into());
        }
        if self.election_timeout_min_ms >= self.election_timeout_max_ms {
            return err(format!(
                "election_timeout_min_ms ({}) must be below election_timeout_max_ms ({})",
                self.election_timeout_min_ms, self.election_timeout_max_ms
            ));
        }
        // openraft suppresses a heartbeat for up to `heartbeat_min_interval` (we use the
        // heartbeat interval) and ticks every 13/64 of it; all of that must fit before a
        // follower's election timeout.
        let worst_gap = 2 * self.heartbeat_interval_ms + self.heartbeat_interval_ms * 13 / 64 + 1;
        if worst_gap >= self.election_timeout_min_ms {
            return err(format!(
                "election_timeout_min_ms ({}) must exceed about 2.2 heartbeat intervals ({worst_gap} ms)",
                self.election_timeout_min_ms
            ));
        }
        if self.max_entry_bytes < shoal_storage::BATCH_HEADER_LEN as u64
            || self.max_entry_bytes > i32::MAX as u64
        {
            return err(format!(
                "max_entry_bytes must be in [{}, {}], got {}",
                shoal_storage::BATCH_HEADER_LEN,
                i32::MAX,
                self.max_entry_bytes
            ));
        }
        if self.max_append_bytes == 0 || self.max_append_entries == 0 {
            return err("max_append_bytes and max_append_entries must be >= 1".into());
        }
        if self.largest_frame_bytes() > u32::MAX as u64 {
            return err(format!(
                "max_entry_bytes and max_append_bytes plus framing must fit a frame of {} bytes",
                u32::MAX
            ));
        }
        if self.max_inflight_proposals == 0 {
            return err("max_inflight_proposals must be >= 1".into());
        }
        if self.rpc_timeout_ms == 0 || self.install_snapshot_timeout_ms == 0 {
            return err("rpc_timeout_ms and install_snapshot_timeout_ms must be >= 1".into());
        }
        if !(1..=64).contains(&self.flush_threads) {
            return err(format!(
                "flush_threads must be in [1, 64], got {}",
                self.flush_threads
            ));
        }
        if self.checkpoint_interval_ms == 0 || self.controller_snapshot_entries == 0 {
            return err(
                "checkpoint_interval_ms and controller_snapshot_entries must be >= 1".into(),
            );
        }
        Ok(())
    }

    /// The openraft configuration of one group.
    pub(crate) fn raft_config(&self, controller: bool) -> Result<openraft::Config, ConfigError> {
        let policy = if controller {
            openraft::SnapshotPolicy::LogsSinceLast(self.controller_snapshot_entries)
        } else {
            // Partition snapshots are taken only when retention releases segments.
            openraft::SnapshotPolicy::Never
        };
        let config = openraft::Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: self.heartbeat_interval_ms,
            heartbeat_min_interval: Some(self.heartbeat_interval_ms),
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            enable_pre_vote: Some(self.pre_vote),
            max_payload_entries: self.max_append_entries,
            install_snapshot_timeout: self.install_snapshot_timeout_ms,
            snapshot_policy: policy,
            // A leader replicates entries before its own fsync completes; after a crash it may
            // have lost some that followers hold. Restored as leader in the same term it would
            // reuse their (term, index) for different entries, so it must win a new term.
            enable_leader_restore: Some(false),
            // Retention decides what to drop: purge everything a snapshot covers, at once.
            max_in_snapshot_log_to_keep: 0,
            purge_batch_size: 1,
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| ConfigError(format!("openraft rejects the configuration: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_timings_are_valid() {
        ReplicationConfig::default().validate().unwrap();
        ReplicationConfig::fast_for_tests().validate().unwrap();
        ReplicationConfig::default().raft_config(false).unwrap();
        ReplicationConfig::default().raft_config(true).unwrap();
    }

    #[test]
    fn bad_values_are_rejected() {
        let d = ReplicationConfig::default();
        let bad = [
            ReplicationConfig {
                heartbeat_interval_ms: 0,
                ..d.clone()
            },
            ReplicationConfig {
                election_timeout_min_ms: 5000,
                ..d.clone()
            },
            ReplicationConfig {
                heartbeat_interval_ms: 1200,
                ..d.clone()
            },
            ReplicationConfig {
                max_entry_bytes: 10,
                ..d.clone()
            },
            ReplicationConfig {
                max_entry_bytes: i32::MAX as u64 + 1,
                ..d.clone()
            },
            ReplicationConfig {
                flush_threads: 0,
                ..d.clone()
            },
            ReplicationConfig {
                max_inflight_proposals: 0,
                ..d.clone()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
