//! [`ScriptedPartition`]: a [`PartitionHandle`] over a real storage log whose role, leader epoch,
//! high watermark and replica states a test sets, so that handlers' follower and leader paths
//! run against the storage crate's real read rules before replication exists. Test-only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use shoal_storage::{LogConfig, PartitionLog, RealFs};
use tokio::sync::watch;
use uuid::Uuid;

use super::handle::{
    AppendOutcome, AppendRequest, Isolation, LogOffsets, PartitionError, PartitionFuture,
    PartitionHandle, PartitionLookup, ReadRequest, ReadResult, ReplicaStates, Role,
    TimestampOffset, TopicPartition, check_leader_epoch,
};

/// A partition replica whose replication state the test scripts.
#[derive(Debug)]
pub struct ScriptedPartition {
    tp: TopicPartition,
    log: Mutex<PartitionLog>,
    role: Mutex<Role>,
    epoch: Mutex<i32>,
    hw: watch::Sender<i64>,
    replicas: Mutex<Option<ReplicaStates>>,
    _dir: tempfile::TempDir,
}

impl ScriptedPartition {
    /// An empty log for `tp` in a fresh directory.
    pub fn new(tp: TopicPartition, role: Role, epoch: i32) -> Arc<ScriptedPartition> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log =
            PartitionLog::open(dir.path(), LogConfig::default(), RealFs::shared()).expect("log");
        Arc::new(ScriptedPartition {
            tp,
            log: Mutex::new(log),
            role: Mutex::new(role),
            epoch: Mutex::new(epoch),
            hw: watch::channel(0).0,
            replicas: Mutex::new(None),
            _dir: dir,
        })
    }

    /// Appends batches to the local log (raising its log end, not its high watermark), as
    /// replication appends on a follower.
    pub fn replicate(&self, batches: &Bytes) {
        let mut log = self.log.lock().unwrap();
        let index = log.next_index();
        let term = u64::try_from(*self.epoch.lock().unwrap()).unwrap_or(0);
        log.append(index, term, batches, 0).expect("append");
    }

    /// Moves the high watermark (clamped to the log end, as Kafka does on followers).
    pub fn set_high_watermark(&self, hw: i64) {
        let leo = self.log.lock().unwrap().log_end_offset();
        self.hw.send_replace(hw.min(leo));
    }

    /// Moves the log start offset up (as retention or a snapshot install would).
    pub fn advance_log_start(&self, offset: i64) {
        self.log
            .lock()
            .unwrap()
            .advance_log_start_offset(offset)
            .expect("advance log start");
    }

    /// Changes the role.
    pub fn set_role(&self, role: Role) {
        *self.role.lock().unwrap() = role;
    }

    /// What [`PartitionHandle::replica_states`] returns while leading (`None`: the default,
    /// the leader alone).
    pub fn set_replica_states(&self, states: Option<ReplicaStates>) {
        *self.replicas.lock().unwrap() = states;
    }
}

impl PartitionHandle for ScriptedPartition {
    fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    fn role(&self) -> Role {
        *self.role.lock().unwrap()
    }

    fn leader_epoch(&self) -> i32 {
        *self.epoch.lock().unwrap()
    }

    fn offsets(&self) -> LogOffsets {
        let log = self.log.lock().unwrap();
        let hw = *self.hw.borrow();
        LogOffsets {
            log_start: log.log_start_offset(),
            high_watermark: hw,
            last_stable: hw,
            log_end: log.log_end_offset(),
        }
    }

    fn high_watermark(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    fn append(&self, _request: AppendRequest) -> PartitionFuture<'_, AppendOutcome> {
        Box::pin(async { Err(PartitionError::NotLeaderOrFollower) })
    }

    fn wait_committed(&self, _next_offset: i64) -> PartitionFuture<'static, ()> {
        Box::pin(async { Err(PartitionError::NotLeaderOrFollower) })
    }

    fn read(&self, request: ReadRequest) -> PartitionFuture<'_, ReadResult> {
        Box::pin(async move {
            check_leader_epoch(request.current_leader_epoch, self.leader_epoch())?;
            let offsets = self.offsets();
            let upper = match request.isolation {
                Isolation::ReadUncommitted => offsets.high_watermark,
                Isolation::ReadCommitted => offsets.last_stable,
            };
            let outcome = self
                .log
                .lock()
                .unwrap()
                .read(request.offset, request.max_bytes, upper, request.min_one)
                .map_err(|e| match e {
                    shoal_storage::Error::OffsetOutOfRange {
                        offset,
                        log_start_offset,
                        log_end_offset,
                    } => PartitionError::OffsetOutOfRange {
                        offset,
                        log_start: log_start_offset,
                        log_end: log_end_offset,
                    },
                    other => PartitionError::Storage(other.to_string()),
                })?;
            Ok(ReadResult {
                records: outcome.records,
                offsets,
            })
        })
    }

    fn offset_for_timestamp(
        &self,
        _timestamp: i64,
        _isolation: Isolation,
        current_leader_epoch: Option<i32>,
    ) -> PartitionFuture<'_, Option<TimestampOffset>> {
        let checked = check_leader_epoch(current_leader_epoch, self.leader_epoch());
        Box::pin(async move { checked.map(|()| None) })
    }

    fn max_timestamp(
        &self,
        _isolation: Isolation,
        current_leader_epoch: Option<i32>,
    ) -> PartitionFuture<'_, Option<TimestampOffset>> {
        let checked = check_leader_epoch(current_leader_epoch, self.leader_epoch());
        Box::pin(async move { checked.map(|()| None) })
    }

    fn epoch_for_offset(&self, _offset: i64) -> Option<i32> {
        Some(self.leader_epoch())
    }

    fn end_offset_for_epoch(
        &self,
        epoch: i32,
        current_leader_epoch: Option<i32>,
    ) -> Result<Option<(i32, i64)>, PartitionError> {
        check_leader_epoch(current_leader_epoch, self.leader_epoch())?;
        Ok(Some((epoch, self.offsets().log_end)))
    }

    fn replica_states(&self, local_broker: i32, now_ms: i64) -> Option<ReplicaStates> {
        if self.role() != Role::Leader {
            return None;
        }
        if let Some(states) = self.replicas.lock().unwrap().clone() {
            return Some(states);
        }
        let offsets = self.offsets();
        Some(ReplicaStates {
            leader: super::ReplicaState {
                broker_id: local_broker,
                log_end_offset: offsets.log_end,
                log_start_offset: offsets.log_start,
                in_sync: true,
                last_caught_up_ms: Some(now_ms),
            },
            followers: Vec::new(),
        })
    }
}

/// A lookup over scripted partitions.
#[derive(Debug, Default)]
pub struct ScriptedPartitions {
    partitions: Mutex<HashMap<(Uuid, i32), Arc<ScriptedPartition>>>,
}

impl ScriptedPartitions {
    /// Hosts `partition`.
    pub fn add(&self, partition: Arc<ScriptedPartition>) {
        let tp = partition.topic_partition().clone();
        self.partitions
            .lock()
            .unwrap()
            .insert((tp.topic_id, tp.partition), partition);
    }
}

/// One broker (node 1) hosting topic `t` (id 9) with one partition in `role` at leader epoch 3:
/// the metadata image and the scripted partition behind it.
pub fn one_partition(role: Role) -> (ScriptedPartitions, crate::metadata::MetadataImage) {
    use crate::metadata::{BrokerRegistration, MetadataCommand, MetadataImage};
    let image = MetadataImage::empty("c")
        .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
            node_id: 1,
            rack: None,
            endpoints: vec![],
            fenced: false,
        }))
        .unwrap()
        .apply(&MetadataCommand::CreateTopic {
            id: Uuid::from_u128(9),
            name: "t".into(),
            assignments: vec![vec![1]],
            configs: Default::default(),
        })
        .unwrap();
    let partitions = ScriptedPartitions::default();
    partitions.add(ScriptedPartition::new(
        TopicPartition {
            topic_id: Uuid::from_u128(9),
            topic: "t".into(),
            partition: 0,
        },
        role,
        3,
    ));
    (partitions, image)
}

impl PartitionLookup for ScriptedPartitions {
    fn get(
        &self,
        topic_id: &Uuid,
        partition: i32,
    ) -> Result<Arc<dyn PartitionHandle>, PartitionError> {
        self.partitions
            .lock()
            .unwrap()
            .get(&(*topic_id, partition))
            .cloned()
            .map(|p| p as Arc<dyn PartitionHandle>)
            .ok_or(PartitionError::NotLeaderOrFollower)
    }
}
