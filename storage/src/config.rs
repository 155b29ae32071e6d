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

/// Configuration of one partition log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        Ok(())
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
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(Error::Config(_))), "{c:?}");
        }
    }
}
