//! The group coordinator's configuration (Kafka's `GroupCoordinatorConfig`, Kafka's property
//! names and defaults).

/// See the field documentation; [`Default`] is Kafka's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms` (3000): how long the first rebalance of an empty group
    /// waits for more members.
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` (6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000).
    pub max_session_timeout_ms: i32,
    /// `group.max.size` (unbounded).
    pub max_size: usize,
    /// How long a new member's JoinGroup may wait (Kafka's fixed 5 minutes).
    pub new_member_join_timeout_ms: i64,
    /// `offsets.retention.minutes` (7 days), in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (600000).
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.num.partitions` (50), used when the topic is created.
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.replication.factor` (3), clamped to the live brokers at creation.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes` (100 MiB).
    pub offsets_topic_segment_bytes: i32,
    /// `offsets.commit.timeout.ms` (5000): how long a write may wait to be committed.
    pub commit_timeout_ms: u64,
    /// `offsets.load.buffer.size` (5 MiB): bytes read per step while loading.
    pub load_buffer_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            new_member_join_timeout_ms: 5 * 60 * 1000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            offsets_topic_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            commit_timeout_ms: 5000,
            load_buffer_bytes: 5 * 1024 * 1024,
        }
    }
}

impl GroupConfig {
    /// Kafka's startup checks.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_session_timeout_ms < self.min_session_timeout_ms {
            return Err(format!(
                "group.max.session.timeout.ms ({}) must not be below group.min.session.timeout.ms ({})",
                self.max_session_timeout_ms, self.min_session_timeout_ms
            ));
        }
        if self.offsets_topic_partitions < 1 {
            return Err("offsets.topic.num.partitions must be at least 1".into());
        }
        if self.offsets_topic_replication_factor < 1 {
            return Err("offsets.topic.replication.factor must be at least 1".into());
        }
        if self.offsets_retention_ms < 1 || self.offsets_retention_check_interval_ms < 1 {
            return Err("offsets.retention.minutes and offsets.retention.check.interval.ms must be positive".into());
        }
        if self.load_buffer_bytes == 0 || self.commit_timeout_ms == 0 {
            return Err(
                "offsets.load.buffer.size and offsets.commit.timeout.ms must be positive".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let c = GroupConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.offsets_retention_ms, 604_800_000);
        let bad = GroupConfig {
            max_session_timeout_ms: 10,
            ..GroupConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
