//! [`LocalPartition`]: a [`PartitionHandle`] directly on a storage [`PartitionLog`] (single node).
//!
//! Appends run on the blocking pool under the log's lock (page-cache writes). The high watermark
//! is the commit point: with `log.flush.policy=group_commit` or `interval` it follows the durable
//! point that the storage [`Flusher`] thread reports after each fdatasync; with `never` it follows
//! the log end at once. acks=-1 producers and consumers therefore never see data that a crash
//! could take back, unless the operator chose `never`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use shoal_storage::{
    BatchHeader, BatchRef, CheckedAppend, CleanStats, CleanerLimits, Clock, Error as StorageError,
    FileSystem, FlushPolicy, Flusher, LogConfig, PartitionLog,
};
use tokio::sync::watch;

use super::handle::{
    AppendOrigin, AppendOutcome, AppendRequest, Isolation, LogOffsets, PartitionError,
    PartitionFuture, PartitionHandle, ReadRequest, ReadResult, Role, TimestampOffset,
    TopicPartition, check_leader_epoch, producer_state_error,
};
use crate::config::FlushMode;
use crate::records;

/// Maps a storage error to a partition error.
pub(crate) fn storage_error(e: StorageError) -> PartitionError {
    match e {
        StorageError::Batch { .. } | StorageError::EmptyEntry => {
            PartitionError::CorruptBatch(e.to_string())
        }
        StorageError::EntryTooLarge { .. } => PartitionError::TooLarge(e.to_string()),
        StorageError::OffsetOutOfRange {
            offset,
            log_start_offset,
            log_end_offset,
        } => PartitionError::OffsetOutOfRange {
            offset,
            log_start: log_start_offset,
            log_end: log_end_offset,
        },
        other => PartitionError::Storage(other.to_string()),
    }
}

fn joined<T>(
    r: Result<Result<T, PartitionError>, tokio::task::JoinError>,
) -> Result<T, PartitionError> {
    r.unwrap_or_else(|e| Err(PartitionError::Storage(format!("storage task failed: {e}"))))
}

/// A partition replica on local storage.
#[derive(Debug)]
pub struct LocalPartition {
    tp: TopicPartition,
    dir: PathBuf,
    log: Arc<Mutex<PartitionLog>>,
    flusher: Mutex<Option<Flusher>>,
    mode: FlushMode,
    high_watermark: watch::Sender<i64>,
    failure: watch::Sender<Option<String>>,
    leader_epoch: AtomicI32,
    closed: AtomicBool,
    config: Mutex<LogConfig>,
}

impl LocalPartition {
    /// Opens (recovering) the log in `dir`. Blocking: call it on the blocking pool.
    pub fn open(
        tp: TopicPartition,
        dir: &Path,
        config: LogConfig,
        mode: FlushMode,
        leader_epoch: i32,
        fs: Arc<dyn FileSystem>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, PartitionError> {
        let log = PartitionLog::open(dir, config.clone(), fs).map_err(storage_error)?;
        let report = log.recovery_report();
        if report.truncated_log_bytes > 0
            || report.dropped_entries > 0
            || !report.rebuilt_indexes.is_empty()
            || !report.removed_files.is_empty()
            || !report.notes.is_empty()
        {
            tracing::warn!(partition = %tp, "log recovery repaired the log: {report:?}");
        } else {
            tracing::debug!(partition = %tp, "opened log: {report:?}");
        }
        // Recovery syncs what it keeps, so everything in the log is committed.
        let (high_watermark, _) = watch::channel(log.durable().next_offset);
        let (failure, _) = watch::channel(None);
        let log = Arc::new(Mutex::new(log));
        let partition = Arc::new(Self {
            tp,
            dir: dir.to_path_buf(),
            log: log.clone(),
            flusher: Mutex::new(None),
            mode,
            high_watermark,
            failure,
            leader_epoch: AtomicI32::new(leader_epoch),
            closed: AtomicBool::new(false),
            config: Mutex::new(config),
        });
        let policy = match mode {
            FlushMode::GroupCommit => Some(FlushPolicy::GroupCommit),
            FlushMode::Interval { interval_ms } => {
                Some(FlushPolicy::IntervalMs(interval_ms.max(1)))
            }
            FlushMode::Never => None,
        };
        if let Some(policy) = policy {
            let hw = partition.high_watermark.clone();
            let failure = partition.failure.clone();
            let name = partition.tp.to_string();
            let flusher = Flusher::spawn(
                log,
                policy,
                clock,
                Box::new(move |outcome| match outcome {
                    Ok(point) => {
                        hw.send_if_modified(|h| {
                            let advanced = point.next_offset > *h;
                            if advanced {
                                *h = point.next_offset;
                            }
                            advanced
                        });
                    }
                    Err(e) => {
                        tracing::error!(partition = %name, "flush failed, the partition accepts no more writes: {e}");
                        failure.send_replace(Some(e.to_string()));
                    }
                }),
            )
            .map_err(|e| PartitionError::Storage(format!("cannot start the flusher thread: {e}")))?;
            *partition.lock_flusher() = Some(flusher);
        }
        Ok(partition)
    }

    fn lock_log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_flusher(&self) -> MutexGuard<'_, Option<Flusher>> {
        self.flusher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of the log's segments (Kafka's `UnifiedLog.size`).
    pub fn size_bytes(&self) -> u64 {
        self.lock_log().size_bytes()
    }

    /// The log configuration in effect.
    pub fn log_config(&self) -> LogConfig {
        self.config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies a changed topic configuration to the open log (validated first). Blocking.
    pub fn set_log_config(&self, config: LogConfig) -> Result<(), PartitionError> {
        self.lock_log()
            .set_config(config.clone())
            .map_err(storage_error)?;
        *self
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }

    /// One compaction pass if one is due (never above the high watermark). The log's lock is
    /// held only to plan and to swap; reading and rewriting segments runs without it, so
    /// appends and reads go on meanwhile. Blocking.
    pub fn clean(
        &self,
        now_ms: i64,
        limits: CleanerLimits,
    ) -> Result<Option<CleanStats>, PartitionError> {
        self.check_open()?;
        let plan = self
            .lock_log()
            .plan_clean(self.hw(), now_ms, limits)
            .map_err(storage_error)?;
        let Some(plan) = plan else {
            return Ok(None);
        };
        let output = plan.run().map_err(storage_error)?;
        let stats = self
            .lock_log()
            .finish_clean(output)
            .map_err(storage_error)?;
        Ok(Some(stats))
    }

    fn check_open(&self) -> Result<(), PartitionError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(PartitionError::Closed);
        }
        if let Some(reason) = self.failure.borrow().clone() {
            return Err(PartitionError::Storage(reason));
        }
        Ok(())
    }

    fn hw(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// Stops accepting requests, stops the flusher and, if `flush`, makes everything durable.
    /// Blocking.
    pub fn close(&self, flush: bool) -> Result<(), PartitionError> {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(flusher) = self.lock_flusher().take() {
            flusher.shutdown();
        }
        if flush {
            let mut log = self.lock_log();
            if !log.is_poisoned() {
                let point = log.flush().map_err(storage_error)?;
                log.checkpoint_producer_state().map_err(storage_error)?;
                self.high_watermark.send_if_modified(|h| {
                    let advanced = point.next_offset > *h;
                    *h = (*h).max(point.next_offset);
                    advanced
                });
            }
        }
        Ok(())
    }

    /// Deletes segments that retention lets go (never above the high watermark). Blocking.
    pub fn apply_retention(&self, now_ms: i64) -> Result<Option<i64>, PartitionError> {
        self.check_open()?;
        let mut log = self.lock_log();
        let Some(point) = log
            .retention_point(now_ms, self.hw())
            .map_err(storage_error)?
        else {
            return Ok(None);
        };
        log.purge_upto(point.index, point.term)
            .map_err(storage_error)?;
        Ok(Some(log.log_start_offset()))
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`). Blocking.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.lock_log()
            .remove_expired_producers(now_ms, expiration_ms)
    }

    fn offsets_locked(&self, log: &PartitionLog) -> LogOffsets {
        let hw = self.hw();
        LogOffsets {
            log_start: log.log_start_offset(),
            high_watermark: hw,
            last_stable: hw,
            log_end: log.log_end_offset(),
        }
    }

    fn lookup(&self, target: Option<i64>) -> PartitionFuture<'_, Option<TimestampOffset>> {
        let log = self.log.clone();
        let visible_end = self.hw();
        // Decompressing the candidate batch is CPU work: keep it off the async threads.
        Box::pin(async move {
            joined(
                tokio::task::spawn_blocking(move || {
                    timestamp_lookup(
                        || {
                            log.lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                        },
                        visible_end,
                        target,
                    )
                })
                .await,
            )
        })
    }
}

/// Finds the first record at or after `target` (or the max-timestamp record when `None`) among
/// records below `visible_end`.
pub(crate) fn timestamp_lookup<G: std::ops::Deref<Target = PartitionLog>>(
    lock_log: impl Fn() -> G,
    visible_end: i64,
    target: Option<i64>,
) -> Result<Option<TimestampOffset>, PartitionError> {
    let mut from = 0i64;
    loop {
        let (batch, log_start): (Option<BatchRef>, i64) = {
            let log = lock_log();
            let batch = match target {
                Some(ts) => log.find_batch_by_timestamp(ts, from),
                None => log.max_timestamp_batch(),
            }
            .map_err(storage_error)?;
            (batch, log.log_start_offset())
        };
        let Some(batch) = batch else {
            return Ok(None);
        };
        if batch.last_offset >= visible_end {
            return Ok(None);
        }
        let header = BatchHeader::parse(&batch.bytes)
            .map_err(|e| PartitionError::CorruptBatch(e.to_string()))?;
        let found = match target {
            Some(ts) => records::find_by_timestamp(&batch.bytes, &header, ts, log_start),
            None => records::find_max_timestamp(&batch.bytes, &header, log_start),
        }
        .map_err(|e| {
            PartitionError::Storage(format!(
                "stored batch at offset {} is unreadable: {e}",
                batch.base_offset
            ))
        })?;
        match found {
            Some((offset, timestamp)) => {
                return Ok(Some(TimestampOffset {
                    offset,
                    timestamp,
                    leader_epoch: header.partition_leader_epoch,
                }));
            }
            // Only possible when the log start lies inside this batch: look further on.
            None if target.is_some() && batch.last_offset + 1 > from => {
                from = batch.last_offset + 1
            }
            None => return Ok(None),
        }
    }
}

impl PartitionHandle for LocalPartition {
    fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    fn role(&self) -> Role {
        Role::Leader
    }

    fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::SeqCst)
    }

    fn offsets(&self) -> LogOffsets {
        let log = self.lock_log();
        self.offsets_locked(&log)
    }

    fn high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    fn append(&self, request: AppendRequest) -> PartitionFuture<'_, AppendOutcome> {
        Box::pin(async move {
            self.check_open()?;
            let log = self.log.clone();
            let term = u64::try_from(self.leader_epoch()).unwrap_or(0);
            let tp = self.tp.clone();
            let info = joined(
                tokio::task::spawn_blocking(move || {
                    let mut log = log
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let index = log.next_index();
                    // Check and append under one lock: producer state checks are serialised
                    // with the appends they depend on.
                    let appended = match request.origin {
                        AppendOrigin::Client => {
                            log.append_checked(index, term, &request.batches, request.now_ms)
                        }
                        AppendOrigin::Coordinator => log
                            .append(index, term, &request.batches, request.now_ms)
                            .map(CheckedAppend::Appended),
                    };
                    let appended = appended.map_err(|e| match e {
                        StorageError::Producer(p) => producer_state_error(&p, &tp),
                        other => storage_error(other),
                    })?;
                    Ok((appended, log.log_start_offset()))
                })
                .await,
            );
            let (appended, log_start_offset) = match info {
                Ok(ok) => ok,
                Err(e) => {
                    if let PartitionError::Storage(reason) = &e {
                        self.failure.send_replace(Some(reason.clone()));
                    }
                    return Err(e);
                }
            };
            let info = match appended {
                CheckedAppend::Appended(info) => info,
                CheckedAppend::Duplicate(batch) => {
                    return Ok(AppendOutcome {
                        base_offset: batch.first_offset(),
                        last_offset: batch.last_offset,
                        log_start_offset,
                        duplicate_timestamp: Some(batch.timestamp),
                    });
                }
            };
            match self.mode {
                FlushMode::Never => {
                    self.high_watermark.send_if_modified(|h| {
                        let advanced = info.next_offset > *h;
                        *h = (*h).max(info.next_offset);
                        advanced
                    });
                }
                _ => {
                    if let Some(flusher) = self.lock_flusher().as_ref() {
                        flusher.notify();
                    }
                }
            }
            Ok(AppendOutcome {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
                log_start_offset,
                duplicate_timestamp: None,
            })
        })
    }

    fn wait_committed(&self, next_offset: i64) -> PartitionFuture<'static, ()> {
        let mut hw = self.high_watermark.subscribe();
        let mut failure = self.failure.subscribe();
        Box::pin(async move {
            loop {
                if *hw.borrow_and_update() >= next_offset {
                    return Ok(());
                }
                if let Some(reason) = failure.borrow_and_update().clone() {
                    return Err(PartitionError::Storage(reason));
                }
                tokio::select! {
                    changed = hw.changed() => if changed.is_err() { return Err(PartitionError::Closed) },
                    changed = failure.changed() => if changed.is_err() { return Err(PartitionError::Closed) },
                }
            }
        })
    }

    fn read(&self, request: ReadRequest) -> PartitionFuture<'_, ReadResult> {
        Box::pin(async move {
            self.check_open()?;
            check_leader_epoch(request.current_leader_epoch, self.leader_epoch())?;
            let log = self.lock_log();
            let offsets = self.offsets_locked(&log);
            let upper = match request.isolation {
                Isolation::ReadUncommitted => offsets.high_watermark,
                Isolation::ReadCommitted => offsets.last_stable,
            };
            let outcome = log
                .read(request.offset, request.max_bytes, upper, request.min_one)
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
            self.check_open()?;
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
            self.check_open()?;
            check_leader_epoch(current_leader_epoch, self.leader_epoch())?;
            self.lookup(None).await
        })
    }

    fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.lock_log()
            .epoch_for_offset(offset)
            .and_then(|e| i32::try_from(e).ok())
    }

    fn end_offset_for_epoch(
        &self,
        epoch: i32,
        current_leader_epoch: Option<i32>,
    ) -> Result<Option<(i32, i64)>, PartitionError> {
        self.check_open()?;
        check_leader_epoch(current_leader_epoch, self.leader_epoch())?;
        let Ok(epoch) = u64::try_from(epoch) else {
            return Ok(None);
        };
        Ok(self
            .lock_log()
            .end_offset_for_epoch(epoch)
            .map(|e| (i32::try_from(e.epoch).unwrap_or(i32::MAX), e.end_offset)))
    }
}
