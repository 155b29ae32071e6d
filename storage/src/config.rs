//! Per-log configuration (Kafka's topic-level names in the comments).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::record_batch::BATCH_HEADER_LEN;

/// When the log fsyncs (see `flush.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FlushPolicy {
    /// Page cache only, like Kafka's default; segments are still synced when they are sealed.
    Never,
    /// fdatasync as soon as something is unflushed; one sync covers everything appended before
    /// it started (group commit).
    #[default]
    GroupCommit,
    /// fdatasync at most once per this many milliseconds.
    IntervalMs(u64),
}

/// `cleanup.policy`: what happens to old data (Kafka's `delete`, `compact` or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupPolicy {
    /// Retention (`retention.ms`, `retention.bytes`) deletes old segments.
    pub delete: bool,
    /// The cleaner keeps only the latest record of every key (see `cleaner.rs`).
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            delete: true,
            compact: false,
        }
    }
}

impl CleanupPolicy {
    /// Parses Kafka's list form (`delete`, `compact`, `compact,delete`, order and spaces free).
    pub fn parse(value: &str) -> Result<CleanupPolicy> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                other => {
                    return Err(Error::Config(format!(
                        "cleanup policy must be delete and/or compact, got {other:?}"
                    )));
                }
            }
        }
        Ok(policy)
    }
}

/// Configuration of one partition log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this. Default 1 GiB.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is this old. Default 7 days.
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes between sparse index entries. Default 4096.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete sealed segments whose newest record is older; -1 keeps
    /// forever. Default 7 days.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest sealed segments while the log is larger; -1 keeps
    /// everything. Default -1.
    pub retention_bytes: i64,
    /// Largest entry (all batches of one append) accepted. Default 100 MiB.
    pub max_entry_bytes: u64,
    /// When to fsync. Default group commit.
    pub flush_policy: FlushPolicy,
    /// `cleanup.policy`. Default delete.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a tombstone stays readable once its segment has been
    /// cleaned. Default 1 day.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean when the dirty part is at least this fraction of the
    /// cleanable log. Default 0.5.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records stay uncompacted at least this long. Default 0.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record becomes eligible for compaction at most this late,
    /// whatever the dirty ratio (the active segment also rolls by then). Default `i64::MAX`.
    pub max_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            max_entry_bytes: 100 << 20,
            flush_policy: FlushPolicy::GroupCommit,
            cleanup_policy: CleanupPolicy::default(),
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

impl LogConfig {
    pub fn validate(&self) -> Result<()> {
        let max = i32::MAX as u64;
        let min = BATCH_HEADER_LEN as u64;
        if !(min..=max).contains(&self.segment_bytes) {
            return Err(Error::Config(format!(
                "segment_bytes must be in [{min}, {max}], got {}",
                self.segment_bytes
            )));
        }
        if self.segment_ms < 1 {
            return Err(Error::Config(format!(
                "segment_ms must be >= 1, got {}",
                self.segment_ms
            )));
        }
        if self.index_interval_bytes > max {
            return Err(Error::Config(format!(
                "index_interval_bytes must be <= {max}, got {}",
                self.index_interval_bytes
            )));
        }
        if self.retention_ms < -1 {
            return Err(Error::Config(format!(
                "retention_ms must be >= -1, got {}",
                self.retention_ms
            )));
        }
        if self.retention_bytes < -1 {
            return Err(Error::Config(format!(
                "retention_bytes must be >= -1, got {}",
                self.retention_bytes
            )));
        }
        if !(min..=max).contains(&self.max_entry_bytes) {
            return Err(Error::Config(format!(
                "max_entry_bytes must be in [{min}, {max}], got {}",
                self.max_entry_bytes
            )));
        }
        if let FlushPolicy::IntervalMs(0) = self.flush_policy {
            return Err(Error::Config("flush interval must be >= 1 ms".into()));
        }
        if self.delete_retention_ms < 0 {
            return Err(Error::Config(format!(
                "delete_retention_ms must be >= 0, got {}",
                self.delete_retention_ms
            )));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(Error::Config(format!(
                "min_cleanable_dirty_ratio must be in [0, 1], got {}",
                self.min_cleanable_dirty_ratio
            )));
        }
        if self.min_compaction_lag_ms < 0 {
            return Err(Error::Config(format!(
                "min_compaction_lag_ms must be >= 0, got {}",
                self.min_compaction_lag_ms
            )));
        }
        if self.max_compaction_lag_ms < 1 {
            return Err(Error::Config(format!(
                "max_compaction_lag_ms must be >= 1, got {}",
                self.max_compaction_lag_ms
            )));
        }
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(Error::Config(format!(
                "min_compaction_lag_ms ({}) must not exceed max_compaction_lag_ms ({})",
                self.min_compaction_lag_ms, self.max_compaction_lag_ms
            )));
        }
        Ok(())
    }

    /// The age at which the active segment rolls: `segment.ms`, or `max.compaction.lag.ms`
    /// when that is shorter and the log is compacted (Kafka's `maxSegmentMs`), so that no
    /// record waits in the active segment past its compaction deadline.
    pub fn max_segment_ms(&self) -> i64 {
        if self.cleanup_policy.compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_rejected() {
        LogConfig::default().validate().unwrap();
        let bad = [
            LogConfig {
                segment_bytes: 10,
                ..LogConfig::default()
            },
            LogConfig {
                segment_bytes: 1 << 40,
                ..LogConfig::default()
            },
            LogConfig {
                segment_ms: 0,
                ..LogConfig::default()
            },
            LogConfig {
                retention_ms: -2,
                ..LogConfig::default()
            },
            LogConfig {
                retention_bytes: -5,
                ..LogConfig::default()
            },
            LogConfig {
                max_entry_bytes: 0,
                ..LogConfig::default()
            },
            LogConfig {
                flush_policy: FlushPolicy::IntervalMs(0),
                ..LogConfig::default()
            },
            LogConfig {
                min_cleanable_dirty_ratio: 1.5,
                ..LogConfig::default()
            },
            LogConfig {
                delete_retention_ms: -1,
                ..LogConfig::default()
            },
            LogConfig {
                min_compaction_lag_ms: 10,
                max_compaction_lag_ms: 5,
                ..LogConfig::default()
            },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(Error::Config(_))), "{c:?}");
        }
    }

    #[test]
    fn cleanup_policy_parses_kafka_lists() {
        let both = CleanupPolicy::parse("compact, delete").unwrap();
        assert!(both.compact && both.delete);
        let compact = CleanupPolicy::parse("compact").unwrap();
        assert!(compact.compact && !compact.delete);
        assert!(CleanupPolicy::parse("shred").is_err());
        let c = LogConfig {
            cleanup_policy: compact,
            segment_ms: 100,
            max_compaction_lag_ms: 10,
            ..LogConfig::default()
        };
        assert_eq!(c.max_segment_ms(), 10);
        let d = LogConfig {
            max_compaction_lag_ms: 10,
            ..LogConfig::default()
        };
        assert_eq!(d.max_segment_ms(), d.segment_ms);
    }
}
