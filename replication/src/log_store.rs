//! openraft's log store implemented directly on a [`PartitionLog`]: the Raft log *is* the
//! Kafka partition log (one write per batch).
//!
//! - `append` writes each entry's batches (Normal) or control batch (Blank, Membership; see
//!   `control_batch.rs`) at the entry's index with its term; the storage crate stamps
//!   `baseOffset` (a prefix sum, so offsets agree on every replica) and
//!   `partitionLeaderEpoch = term`. The flush callback goes to the shared flusher
//!   (`flusher.rs`): group commit, completed in submission order.
//! - Reads decode stored bytes back into entries (`Bytes` backed by the segment mapping).
//! - `save_vote` flushes the log first (openraft treats a saved vote as flushing every earlier
//!   write), then replaces the always-fsynced vote file.
//! - `save_committed` publishes the high watermark (the offset after the committed entry) into
//!   a `watch`, on leaders and followers alike.
//! - `truncate_after` and `purge` map to the storage crate; a purge past the log end (a
//!   follower that installed a snapshot) resets the log at the snapshot's next offset.
//! - `get_key_log_ids` comes from the storage leader-epoch cache, not a binary search.
//!
//! [`GroupStorage`] is the state the log store, the state machine and the public handles
//! share.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds, RangeInclusive};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, OptionalSend};
use shoal_storage::{Clock, FileSystem, LogConfig, PartitionLog};
use tokio::sync::watch;

use crate::control_batch;
use crate::flusher::{FlushPool, FlushTarget};
use crate::group_files::{Checkpoint, GroupFiles, StoredSnapshot};
use crate::replica_progress::LogEndHistory;
use crate::types::{C, Entry, GroupId, RaftLogId, StoredMembership, Vote, from_storage_id, log_id};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Sees every change of a partition's log, on leaders and followers alike: for state derived
/// from the log (the broker's producer state, for duplicate detection that survives failover).
/// Called with the log's write lock held: keep it short and do not call back into the replica.
pub trait LogObserver: Send + Sync + std::fmt::Debug + 'static {
    /// An entry was appended (a proposal's batches, or a Raft control batch: `is_control`).
    fn appended(&self, info: &shoal_storage::AppendInfo);
    /// Entries from `next_offset` on were removed (a new leader's log replaced them).
    fn truncated(&self, next_offset: i64);
    /// The log was emptied and continues at `next_offset` (a snapshot was installed because
    /// this replica fell behind the leader's log start).
    fn reset(&self, next_offset: i64);
}

/// What the state machine has applied, shared for checkpoints and followers of the stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppliedState {
    pub(crate) applied: Option<RaftLogId>,
    /// Memberships in log order; the last is effective at `applied`.
    pub(crate) memberships: Vec<StoredMembership>,
}

/// State shared by a group's log store, state machine and handle.
#[derive(Debug)]
pub(crate) struct GroupStorage {
    pub(crate) group: GroupId,
    pub(crate) log: Arc<RwLock<PartitionLog>>,
    pub(crate) flush: Arc<FlushTarget>,
    pub(crate) files: GroupFiles,
    pub(crate) clock: Arc<dyn Clock>,
    /// Entries per `limited_get_log_entries` are capped at this many bytes.
    max_read_bytes: usize,
    vote: Mutex<Option<Vote>>,
    committed: Mutex<Option<RaftLogId>>,
    hw: watch::Sender<i64>,
    /// Offset after the last applied entry (the stream followers of the controller watch).
    pub(crate) applied_offset: watch::Sender<i64>,
    pub(crate) applied: Mutex<AppliedState>,
    /// The last snapshot built or installed (`get_current_snapshot`).
    pub(crate) snapshot: Mutex<Option<StoredSnapshot>>,
    /// Where retention wants the next snapshot (a segment boundary).
    pub(crate) snapshot_request: Mutex<Option<RaftLogId>>,
    pub(crate) log_end_history: Mutex<LogEndHistory>,
    /// The checkpoint as last written (to skip unchanged writes).
    last_checkpoint: Mutex<Option<Checkpoint>>,
    observer: Option<Arc<dyn LogObserver>>,
}

/// Where and how a group's storage lives.
#[derive(Debug)]
pub(crate) struct StorageOptions {
    pub(crate) group: GroupId,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) log_config: LogConfig,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Bytes of entries per `limited_get_log_entries` (one AppendEntries).
    pub(crate) max_read_bytes: usize,
    pub(crate) observer: Option<Arc<dyn LogObserver>>,
}

/// How a group's storage starts: loaded from its directory.
#[derive(Debug)]
pub(crate) struct LoadedGroup {
    pub(crate) storage: Arc<GroupStorage>,
    pub(crate) checkpoint: Option<Checkpoint>,
}

impl GroupStorage {
    /// Opens the log in `dir` (running the storage crate's recovery) and the group's files.
    pub(crate) fn open(
        o: StorageOptions,
        pool: &Arc<FlushPool>,
    ) -> Result<LoadedGroup, crate::ReplicationError> {
        let StorageOptions {
            group,
            dir,
            log_config,
            fs,
            clock,
            max_read_bytes,
            observer,
        } = o;
        let dir = dir.as_path();
        let policy = log_config.flush_policy;
        let log = PartitionLog::open(dir, log_config, Arc::clone(&fs))?;
        let files = GroupFiles::new(fs, dir);
        let io = |what: &str| {
            let what = format!("{what} of group {group} in {}", dir.display());
            move |source| crate::ReplicationError::Io { what, source }
        };
        let vote = files.read_vote().map_err(io("vote"))?;
        let snapshot = files.read_snapshot().map_err(io("snapshot"))?;
        let checkpoint = files
            .read_checkpoint()
            .filter(|c| checkpoint_matches_log(c, &log));
        let log_start = log.log_start_offset();
        let log = Arc::new(RwLock::new(log));
        let flush = pool.target(Arc::clone(&log), policy);
        let storage = Arc::new(GroupStorage {
            group,
            log,
            flush,
            files,
            clock,
            max_read_bytes,
            vote: Mutex::new(vote),
            committed: Mutex::new(checkpoint.as_ref().and_then(|c| c.committed)),
            hw: watch::Sender::new(log_start),
            applied_offset: watch::Sender::new(log_start),
            applied: Mutex::new(AppliedState::default()),
            snapshot: Mutex::new(snapshot),
            snapshot_request: Mutex::new(None),
            log_end_history: Mutex::new(LogEndHistory::default()),
            last_checkpoint: Mutex::new(checkpoint.clone()),
            observer,
        });
        if let Some(c) = *lock(&storage.committed) {
            storage.publish_hw(&c);
        }
        if let Some(s) = lock(&storage.snapshot).as_ref() {
            storage.raise_hw(s.data.next_offset.min(storage.read_log().log_end_offset()));
        }
        Ok(LoadedGroup {
            storage,
            checkpoint,
        })
    }

    pub(crate) fn read_log(&self) -> RwLockReadGuard<'_, PartitionLog> {
        self.log.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_log(&self) -> RwLockWriteGuard<'_, PartitionLog> {
        self.log.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn watch_hw(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    pub(crate) fn high_watermark(&self) -> i64 {
        *self.hw.borrow()
    }

    fn raise_hw(&self, hw: i64) {
        self.hw.send_if_modified(|cur| {
            if hw > *cur {
                *cur = hw;
                true
            } else {
                false
            }
        });
    }

    /// The high watermark for a committed log id: the offset after that entry.
    fn publish_hw(&self, committed: &RaftLogId) {
        let hw = {
            let log = self.read_log();
            offset_after(&log, committed.index)
        };
        match hw {
            Ok(Some(hw)) => self.raise_hw(hw),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(group = %self.group, error = %e, "cannot read the committed entry")
            }
        }
    }

    pub(crate) fn committed(&self) -> Option<RaftLogId> {
        *lock(&self.committed)
    }

    /// Writes the recovery checkpoint if it changed. Applied and committed are clamped to the
    /// durable end of the log, so after a power loss the checkpoint never points past what
    /// the log still holds.
    pub(crate) fn write_checkpoint(&self) -> io::Result<()> {
        let applied = lock(&self.applied).clone();
        let committed = self.committed();
        let cp = {
            let log = self.read_log();
            let durable = log.durable().index;
            let clamp = |id: Option<RaftLogId>| -> io::Result<Option<RaftLogId>> {
                let Some(id) = id else { return Ok(None) };
                match durable {
                    Some(d) if id.index <= d => Ok(Some(id)),
                    Some(d) => Ok(log.term_of(d).map_err(io_err)?.map(|t| log_id(t, d))),
                    None => Ok(None),
                }
            };
            let applied_id = clamp(applied.applied)?;
            let memberships: Vec<StoredMembership> = applied
                .memberships
                .into_iter()
                .filter(|m| m.log_id().as_ref() <= applied_id.as_ref())
                .collect();
            Checkpoint {
                applied: applied_id,
                committed: clamp(committed)?,
                memberships,
            }
        };
        let mut last = lock(&self.last_checkpoint);
        if last.as_ref() == Some(&cp) {
            return Ok(());
        }
        self.files.write_checkpoint(&cp)?;
        *last = Some(cp);
        Ok(())
    }
}

/// A checkpoint is usable if its applied entry is still in the log (or is the purge point).
fn checkpoint_matches_log(c: &Checkpoint, log: &PartitionLog) -> bool {
    let matches = |id: &Option<RaftLogId>| match id {
        None => true,
        Some(id) => matches!(log.term_of(id.index), Ok(Some(t)) if t == id.leader_id.term),
    };
    let ok = matches(&c.applied) && matches(&c.committed);
    if !ok {
        tracing::info!(dir = %log.dir().display(), "checkpoint does not match the log; not used");
    }
    ok
}

/// Offset after entry `index`, or after the purged prefix when `index` is purged. `None` if the
/// entry lies beyond the log.
pub(crate) fn offset_after(log: &PartitionLog, index: u64) -> shoal_storage::Result<Option<i64>> {
    if let Some(meta) = log.entry_meta(index)? {
        return Ok(Some(meta.next_offset));
    }
    if index < log.first_index() {
        return Ok(Some(match log.entry_meta(log.first_index())? {
            Some(m) => m.base_offset,
            None => log.log_end_offset(),
        }));
    }
    Ok(None)
}

/// The openraft log store (and its reader: the same type, cloned).
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    pub(crate) s: Arc<GroupStorage>,
}

impl LogStore {
    pub(crate) fn new(s: Arc<GroupStorage>) -> Self {
        LogStore { s }
    }

    /// Entries `[start, end)` clipped to the present log, decoded.
    fn read_range(&self, start: u64, end: u64, max_bytes: usize) -> io::Result<Vec<Entry>> {
        let stored = {
            let log = self.s.read_log();
            let start = start.max(log.first_index());
            let end = end.min(log.next_index());
            if start >= end {
                return Ok(Vec::new());
            }
            log.read_entries(start, end, max_bytes).map_err(io_err)?
        };
        stored
            .into_iter()
            .map(|e| {
                control_batch::decode_entry(log_id(e.meta.term, e.meta.index), e.bytes)
                    .map_err(|d| io::Error::new(io::ErrorKind::InvalidData, d))
            })
            .collect()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&GroupStorage) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let s = Arc::clone(&self.s);
        tokio::task::spawn_blocking(move || f(&s))
            .await
            .map_err(|e| io::Error::other(format!("storage task failed: {e}")))?
    }
}

fn range_to_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// The last log id of every term within `[first, last]` (openraft's key log ids), from the
/// leader-epoch cache: `(epoch, start index)` for each term with entries.
pub(crate) fn key_log_ids(
    epochs: &[shoal_storage::EpochEntry],
    first: &RaftLogId,
    last: &RaftLogId,
) -> Vec<RaftLogId> {
    let mut out = Vec::new();
    for (i, e) in epochs.iter().enumerate() {
        let start = e.start_index.max(first.index);
        let end = match epochs.get(i + 1) {
            Some(next) => next.start_index.saturating_sub(1).min(last.index),
            None => last.index,
        };
        if start > end || epochs.get(i + 1).is_some_and(|n| n.start_index <= start) {
            continue;
        }
        out.push(log_id(e.epoch, end));
    }
    out
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_bounds(&range);
        self.read_range(start, end, usize::MAX)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(*lock(&self.s.vote))
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        self.read_range(start, end, self.s.max_read_bytes)
    }

    async fn get_key_log_ids(
        &mut self,
        range: RangeInclusive<RaftLogId>,
    ) -> Result<Vec<RaftLogId>, io::Error> {
        let log = self.s.read_log();
        Ok(key_log_ids(log.epoch_starts(), range.start(), range.end()))
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let log = self.s.read_log();
        Ok(LogState {
            last_purged_log_id: log.last_purged().map(from_storage_id),
            last_log_id: log.last_log_id().map(from_storage_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let v = *vote;
        self.blocking(move |s| {
            s.flush.flush_blocking()?;
            s.files.write_vote(&v)
        })
        .await?;
        *lock(&self.s.vote) = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<RaftLogId>) -> Result<(), io::Error> {
        if let Some(c) = &committed {
            self.s.publish_hw(c);
        }
        *lock(&self.s.committed) = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<RaftLogId>, io::Error> {
        Ok(self.s.committed())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let now_ms = self.s.clock.now_ms();
        let (seq, rolled, last_index) = {
            let mut log = self.s.write_log();
            let segments = log.segment_count();
            let mut last_index = None;
            for entry in entries {
                if entry.log_id.index > log.next_index()
                    && log.last_index().is_none()
                    && log.last_purged().is_none()
                {
                    // An empty log may start at any index (openraft's contract; a new replica
                    // in practice starts at 0 or from a snapshot).
                    let prev = entry.log_id.index - 1;
                    let start = log.log_end_offset();
                    let term = entry.log_id.leader_id.term;
                    log.reset(
                        entry.log_id.index,
                        start,
                        shoal_storage::LogId { index: prev, term },
                    )
                    .map_err(io_err)?;
                }
                let bytes = control_batch::entry_bytes(&entry);
                let info = log
                    .append(
                        entry.log_id.index,
                        entry.log_id.leader_id.term,
                        &bytes,
                        now_ms,
                    )
                    .map_err(|e| {
                        io::Error::other(format!("append of {} failed: {e}", entry.log_id))
                    })?;
                if let Some(o) = &self.s.observer {
                    o.appended(&info);
                }
                if let EntryPayload::Normal(r) = &entry.payload
                    && let Some(n) = &r.on_append
                {
                    n.notify(&info);
                }
                last_index = Some(entry.log_id.index);
            }
            let seq = self.s.flush.next_seq();
            (seq, log.segment_count() != segments, last_index)
        };
        if let Some(i) = last_index {
            lock(&self.s.log_end_history).record(now_ms, i);
        }
        self.s.flush.submit(seq, callback, rolled);
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<RaftLogId>) -> Result<(), io::Error> {
        let keep = last_log_id.map(|id| id.index);
        self.blocking(move |s| {
            {
                let mut log = s.write_log();
                let before = log.log_end_offset();
                log.truncate_after(keep).map_err(io_err)?;
                if let Some(o) = &s.observer
                    && log.log_end_offset() < before
                {
                    o.truncated(log.log_end_offset());
                }
            }
            // Truncation syncs everything it keeps.
            s.flush.complete_all_durable();
            if let Some(k) = keep {
                lock(&s.log_end_history).record(s.clock.now_ms(), k);
            }
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, upto: RaftLogId) -> Result<(), io::Error> {
        self.blocking(move |s| {
            let mut log = s.write_log();
            let term = upto.leader_id.term;
            if upto.index < log.next_index() {
                log.purge_upto(upto.index, term).map_err(io_err)?;
            } else {
                // Beyond the log end: this replica installed a snapshot at `upto` and starts
                // its log after it, at the snapshot's next offset.
                let next_offset = match lock(&s.snapshot).as_ref() {
                    Some(snap) if snap.meta.last_log_id.as_ref() == Some(&upto) => {
                        snap.data.next_offset
                    }
                    _ => {
                        tracing::warn!(group = %s.group, %upto, "purge past the log end without a matching snapshot");
                        log.log_end_offset()
                    }
                };
                log.reset(
                    upto.index + 1,
                    next_offset,
                    shoal_storage::LogId {
                        index: upto.index,
                        term,
                    },
                )
                .map_err(io_err)?;
                if let Some(o) = &s.observer {
                    o.reset(next_offset);
                }
                drop(log);
                s.flush.complete_all_durable();
                s.raise_hw(next_offset);
                return Ok(());
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_storage::EpochEntry;

    fn epoch(epoch: u64, start_index: u64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset: start_index as i64 * 10,
            start_index,
        }
    }

    #[test]
    fn key_log_ids_are_the_last_entry_of_each_term() {
        let epochs = [epoch(2, 2), epoch(5, 4), epoch(6, 9)];
        // Log [(2,2),(2,3),(5,4)..(5,8),(6,9),(6,10)].
        assert_eq!(
            key_log_ids(&epochs, &log_id(2, 2), &log_id(6, 10)),
            vec![log_id(2, 3), log_id(5, 8), log_id(6, 10)]
        );
        // A sub-range starting inside term 5.
        assert_eq!(
            key_log_ids(&epochs, &log_id(5, 6), &log_id(6, 9)),
            vec![log_id(5, 8), log_id(6, 9)]
        );
        // A single term.
        assert_eq!(
            key_log_ids(&epochs, &log_id(5, 4), &log_id(5, 7)),
            vec![log_id(5, 7)]
        );
        // An empty log after a purge keeps one epoch starting at the log end.
        assert_eq!(
            key_log_ids(&[epoch(3, 11)], &log_id(3, 11), &log_id(3, 11)),
            vec![log_id(3, 11)]
        );
    }
}
