//! DescribeLogDirs (key 35): every log directory of this broker with its disk space and, per
//! hosted partition, the log's size in bytes and its offset lag (Kafka's
//! `ReplicaManager.describeLogDirs`).
//!
//! As on Kafka: every configured directory is listed (absolute path, even when it holds nothing
//! asked for), a request without topics means every hosted partition, unknown topics and
//! partitions are simply absent, topics left without partitions are dropped, and the lag of a
//! current (non-future) replica is `max(high watermark - log end offset, 0)`. A directory whose
//! file system cannot be queried answers `KAFKA_STORAGE_ERROR`. Partitions whose log could not
//! be opened are not listed (Kafka takes their whole directory offline instead).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::partition::PartitionManager;

/// v1 is the floor of Kafka 4.x; v4 adds total and usable bytes.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::DescribeLogDirs, 1, 4);

/// One hosted partition's log, as the response reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLog {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The log directory holding the partition's directory.
    pub log_dir: PathBuf,
    /// Bytes of the log's segments.
    pub size_bytes: u64,
    /// Next offset to be written.
    pub log_end: i64,
    /// Committed offsets end here.
    pub high_watermark: i64,
}

/// A file system's size and the space available to this process (Java's `FileStore`
/// `getTotalSpace` and `getUsableSpace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Size of the file system in bytes.
    pub total_bytes: i64,
    /// Bytes an unprivileged writer may still use.
    pub usable_bytes: i64,
}

/// The disk space of the file system holding `dir` (`statvfs`).
pub fn disk_space(dir: &Path) -> std::io::Result<DiskSpace> {
    let stat = rustix::fs::statvfs(dir)?;
    let bytes = |blocks: u64| {
        let total = u128::from(blocks) * u128::from(stat.f_frsize);
        // Kafka's `adjustForLargeFileSystems`: what does not fit is reported as Long.MAX_VALUE.
        i64::try_from(total).unwrap_or(i64::MAX)
    };
    Ok(DiskSpace {
        total_bytes: bytes(stat.f_blocks),
        usable_bytes: bytes(stat.f_bavail),
    })
}

/// The logs of every partition `partitions` hosts. Blocking (takes each log's lock briefly).
pub fn hosted_logs(partitions: &PartitionManager) -> Vec<ReplicaLog> {
    partitions
        .hosted_logs()
        .into_iter()
        .filter_map(|log| {
            let log_dir = log.dir.parent()?.to_path_buf();
            Some(ReplicaLog {
                topic: log.topic_partition.topic,
                partition: log.topic_partition.partition,
                log_dir,
                size_bytes: log.size_bytes,
                log_end: log.log_end,
                high_watermark: log.high_watermark,
            })
        })
        .collect()
}

/// Answers from a snapshot of the hosted logs; `space` queries a directory's file system.
pub fn handle(
    log_dirs: &[PathBuf],
    logs: &[ReplicaLog],
    space: impl Fn(&Path) -> std::io::Result<DiskSpace>,
    request: &DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    let wanted: Option<BTreeSet<(&str, i32)>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.as_str(), *p)))
            .collect()
    });
    let mut seen = BTreeSet::new();
    let results = log_dirs
        .iter()
        .filter(|dir| seen.insert(*dir))
        .map(|dir| {
            let path = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            let mut result =
                DescribeLogDirsResult::default().with_log_dir(s(path.display().to_string()));
            let space = match space(dir) {
                Ok(space) => space,
                Err(e) => {
                    tracing::warn!("cannot describe log directory {}: {e}", path.display());
                    return result.with_error_code(ResponseError::KafkaStorageError.code());
                }
            };
            let mut topics: BTreeMap<&str, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
            for log in logs.iter().filter(|l| &l.log_dir == dir) {
                if wanted
                    .as_ref()
                    .is_some_and(|w| !w.contains(&(log.topic.as_str(), log.partition)))
                {
                    continue;
                }
                topics.entry(&log.topic).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(log.partition)
                        .with_partition_size(i64::try_from(log.size_bytes).unwrap_or(i64::MAX))
                        .with_offset_lag((log.high_watermark - log.log_end).max(0))
                        .with_is_future_key(false),
                );
            }
            result.topics = topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| p.partition_index);
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(partitions)
                })
                .collect();
            if version >= 4 {
                result.total_bytes = space.total_bytes;
                result.usable_bytes = space.usable_bytes;
            }
            result
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use shoal_protocol::kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;

    use super::*;

    fn log(topic: &str, partition: i32, dir: &str, size: u64) -> ReplicaLog {
        ReplicaLog {
            topic: topic.into(),
            partition,
            log_dir: PathBuf::from(dir),
            size_bytes: size,
            log_end: 10,
            high_watermark: 10,
        }
    }

    fn all() -> DescribeLogDirsRequest {
        DescribeLogDirsRequest::default().with_topics(None)
    }

    fn space(_: &Path) -> std::io::Result<DiskSpace> {
        Ok(DiskSpace {
            total_bytes: 1000,
            usable_bytes: 400,
        })
    }

    /// (log dir, error, [(topic, partition, size)]) per directory.
    type Summary = Vec<(String, i16, Vec<(String, i32, i64)>)>;

    fn summary(response: &DescribeLogDirsResponse) -> Summary {
        response
            .results
            .iter()
            .map(|r| {
                let parts = r
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| (t.name.0.to_string(), p.partition_index, p.partition_size))
                    })
                    .collect();
                (r.log_dir.to_string(), r.error_code, parts)
            })
            .collect()
    }

    #[test]
    fn lists_every_directory_and_every_hosted_partition_by_default() {
        let dirs = [
            PathBuf::from("/d1"),
            PathBuf::from("/d2"),
            PathBuf::from("/d1"),
        ];
        let logs = [
            log("b", 1, "/d1", 70),
            log("a", 0, "/d1", 5),
            log("b", 0, "/d1", 9),
        ];
        let response = handle(&dirs, &logs, space, &all(), 4);
        assert_eq!(
            summary(&response),
            vec![
                (
                    "/d1".into(),
                    0,
                    vec![("a".into(), 0, 5), ("b".into(), 0, 9), ("b".into(), 1, 70)]
                ),
                ("/d2".into(), 0, vec![]),
            ]
        );
        assert_eq!(response.results[0].total_bytes, 1000);
        assert_eq!(response.results[0].usable_bytes, 400);
        assert_eq!(response.error_code, 0);
    }

    #[test]
    fn requested_topics_filter_and_unknown_ones_are_absent() {
        let dirs = [PathBuf::from("/d1")];
        let logs = [
            log("a", 0, "/d1", 5),
            log("a", 1, "/d1", 6),
            log("b", 0, "/d1", 9),
        ];
        let request = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(TopicName(s("a")))
                .with_partitions(vec![1, 7]),
            DescribableLogDirTopic::default()
                .with_topic(TopicName(s("missing")))
                .with_partitions(vec![0]),
        ]));
        let response = handle(&dirs, &logs, space, &request, 1);
        assert_eq!(
            summary(&response),
            vec![("/d1".into(), 0, vec![("a".into(), 1, 6)])]
        );
        // v1 has no space fields; they stay at their defaults.
        assert_eq!(response.results[0].total_bytes, -1);
    }

    #[test]
    fn lag_is_the_high_watermark_ahead_of_the_log_end_and_never_negative() {
        let dirs = [PathBuf::from("/d1")];
        let mut behind = log("a", 0, "/d1", 1);
        behind.log_end = 4;
        behind.high_watermark = 7;
        let mut ahead = log("a", 1, "/d1", 1);
        ahead.log_end = 9;
        ahead.high_watermark = 3;
        let response = handle(&dirs, &[behind, ahead], space, &all(), 4);
        let lags: Vec<i64> = response.results[0].topics[0]
            .partitions
            .iter()
            .map(|p| p.offset_lag)
            .collect();
        assert_eq!(lags, vec![3, 0]);
    }

    #[test]
    fn an_unreadable_directory_answers_storage_error() {
        let dirs = [PathBuf::from("/d1")];
        let failing = |_: &Path| Err(std::io::Error::other("gone"));
        let response = handle(&dirs, &[log("a", 0, "/d1", 1)], failing, &all(), 4);
        assert_eq!(
            summary(&response),
            vec![(
                "/d1".into(),
                ResponseError::KafkaStorageError.code(),
                vec![]
            )]
        );
    }

    #[test]
    fn disk_space_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let space = disk_space(dir.path()).unwrap();
        assert!(space.total_bytes > 0);
        assert!((0..=space.total_bytes).contains(&space.usable_bytes));
        assert!(disk_space(&dir.path().join("missing")).is_err());
    }
}
