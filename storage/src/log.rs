//! [`PartitionLog`]: one partition's log — append, read, lookups, truncation, purge, retention
//! and the flush split. Single writer (`&mut self`), many readers (`&self`); callers wrap it in
//! a lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::checkpoint::{self, LOG_START_FILE, LogStart};
use crate::config::{FlushPolicy, LogConfig};
use crate::error::{Error, IoContext, Result};
use crate::file_system::{DirLock, FileSystem};
use crate::flush::{DurablePoint, PendingFlush, SyncedFlush};
use crate::leader_epoch::{self, EpochEndOffset, EpochEntry, LeaderEpochCache};
use crate::producer_snapshot::{self, ReadFailure};
use crate::producer_state::{AppendCheck, BatchMetadata, ProducerBatch, ProducerStateMap};
use crate::record_batch::{self, BatchHeader};
use crate::recovery::{self, RecoveryReport};
use crate::segment::{BatchInfo, Segment, write_file_atomically};
use crate::time_index;

/// A Raft log id: index and term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId {
    pub index: u64,
    pub term: u64,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub index: u64,
    pub term: u64,
    /// Offset of the first record of the entry.
    pub base_offset: i64,
    /// Offset of the last record of the entry.
    pub last_offset: i64,
    /// The log end offset after the append.
    pub next_offset: i64,
    /// Largest batch `maxTimestamp` of the entry.
    pub max_timestamp: i64,
    /// Last offset of the first batch carrying `max_timestamp` (Kafka's shallow offset).
    pub offset_of_max_timestamp: i64,
    pub size_bytes: usize,
    pub batches: Vec<AppendedBatch>,
}

/// One batch of an appended entry, as the broker's producer-state tracking needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
    pub max_timestamp: i64,
    pub is_transactional: bool,
    pub is_control: bool,
}

/// Result of a Kafka read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Whole batches, backed by the segment's mapping.
    pub records: Bytes,
    /// Base offset of the first batch returned.
    pub first_offset: Option<i64>,
    /// Offset to fetch next (after the last batch returned, or the start offset if none).
    pub next_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// A Raft entry's location, from the dense entry index (no data read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    pub index: u64,
    pub term: u64,
    pub base_offset: i64,
    pub next_offset: i64,
    pub size_bytes: u32,
}

/// An entry with its stored bytes (the stamped batches exactly as on disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub meta: EntryMeta,
    pub bytes: Bytes,
}

/// One stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRef {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub bytes: Bytes,
}

/// The last entry retention allows to delete (always the end of a sealed segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgePoint {
    pub index: u64,
    pub term: u64,
    pub next_offset: i64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) fs: Arc<dyn FileSystem>,
    _lock: Box<dyn DirLock>,
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) purged: Option<LogId>,
    /// Offset right after the last purged entry.
    purged_next_offset: i64,
    pub(crate) epochs: LeaderEpochCache,
    durable: DurablePoint,
    /// Every segment ending at or below this offset is sealed and synced (persisted in
    /// `recovery-point.checkpoint`; recovery verifies the segments above it).
    recovery_point: i64,
    generation: u64,
    pub(crate) poisoned: bool,
    scratch: Vec<u8>,
    batch_infos: Vec<BatchInfo>,
    report: RecoveryReport,
    /// Idempotent-producer state as of the log end.
    producers: ProducerStateMap,
    /// Offsets of the producer-state snapshot files on disk.
    producer_snapshots: std::collections::BTreeSet<i64>,
    /// The cleaner checkpoint: offsets below it were compacted (`cleaner.rs`).
    pub(crate) cleaner_checkpoint: i64,
    /// Bumped by every change to the sealed segments (truncate, purge, reset, a clean), so a
    /// clean planned before one is discarded.
    pub(crate) layout_generation: u64,
    /// When tombstones kept by the last clean may be removed (in memory only).
    pub(crate) tombstone_horizon: Option<i64>,
}

fn is_sync_failure(e: &Error) -> bool {
    matches!(e, Error::Io { op, .. } | Error::NoSpace { op, .. } if op.starts_with("fsync"))
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, running recovery.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig, fs: Arc<dyn FileSystem>) -> Result<Self> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir).ctx("create directory", &dir)?;
        let lock = fs.lock_dir(&dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked { dir: dir.clone() }
            } else {
                Error::io("lock", &dir, e)
            }
        })?;
        let r = recovery::recover(fs.as_ref(), &dir, &config)?;
        let mut log = PartitionLog {
            dir,
            config,
            fs,
            _lock: lock,
            segments: r.segments,
            log_start_offset: r.log_start_offset,
            purged: r.purged.map(|(id, _)| id),
            purged_next_offset: r.purged.map_or(0, |(_, o)| o),
            epochs: r.epochs,
            durable: DurablePoint {
                index: None,
                next_offset: 0,
            },
            recovery_point: r.recovery_point,
            generation: 0,
            poisoned: false,
            scratch: Vec::new(),
            batch_infos: Vec::new(),
            report: r.report,
            producers: ProducerStateMap::new(0),
            producer_snapshots: std::collections::BTreeSet::new(),
            cleaner_checkpoint: 0,
            layout_generation: 0,
            tombstone_horizon: None,
        };
        log.cleaner_checkpoint = crate::cleaner::read_checkpoint(log.fs.as_ref(), &log.dir)?
            .unwrap_or(0)
            .min(log.log_end_offset());
        // Recovery synced what it kept, so all of it is durable.
        log.durable = log.end_point();
        log.producer_snapshots = producer_snapshot::list(log.fs.as_ref(), &log.dir)?;
        log.rebuild_producer_state()?;
        let report = &log.report;
        if report.truncated_log_bytes > 0 || report.dropped_entries > 0 || !report.notes.is_empty()
        {
            tracing::warn!(dir = %log.dir.display(), ?report, "log recovered with repairs");
        }
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies a new configuration to the open log (AlterConfigs): validated first, then every
    /// setting takes effect from the next decision that reads it (roll, retention, cleaning,
    /// the next append's size check). Segments already written keep their files; the active
    /// segment's file mapping grows on demand, so a larger `segment_bytes` needs no reopen.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// What recovery did when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty: recovery creates one and every removal keeps or recreates
        // the active segment.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let n = self.segments.len();
        &mut self.segments[n - 1]
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    pub fn next_index(&self) -> u64 {
        self.active().next_index()
    }

    /// Index of the first entry present (after purges).
    pub fn first_index(&self) -> u64 {
        let physical = self.segments[0].first_index;
        match self.purged {
            Some(p) => (p.index + 1).max(physical),
            None => physical,
        }
    }

    pub fn last_index(&self) -> Option<u64> {
        let next = self.next_index();
        (next > self.first_index()).then(|| next - 1)
    }

    /// The last purged entry (openraft's `last_purged_log_id`).
    pub fn last_purged(&self) -> Option<LogId> {
        self.purged
    }

    /// Term of the last entry, or of the last purged one when the log is empty.
    pub fn last_term(&self) -> Option<u64> {
        if self.last_index().is_some() {
            self.active()
                .tail_term()
                .or_else(|| self.purged.map(|p| p.term))
        } else {
            self.purged.map(|p| p.term).or(self.active().tail_term())
        }
    }

    /// Last entry's id, or the last purged id when the log is empty.
    pub fn last_log_id(&self) -> Option<LogId> {
        match self.last_index() {
            Some(index) => self.last_term().map(|term| LogId { index, term }),
            None => self.purged,
        }
    }

    /// Total size of the segments' data.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn check_writable(&self) -> Result<()> {
        if self.poisoned {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    fn note_sync_failure<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && is_sync_failure(e)
        {
            self.poisoned = true;
        }
        r
    }

    /// Keeps the epoch cache of an emptied log in its canonical form (see `for_empty_log`).
    fn normalize_empty_epochs(&mut self) {
        if self.last_index().is_none() {
            self.epochs = LeaderEpochCache::for_empty_log(
                self.purged.map(|p| p.term),
                self.log_end_offset(),
                self.next_index(),
            );
        }
    }

    fn end_point(&self) -> DurablePoint {
        DurablePoint {
            index: self.last_index().or(self.purged.map(|p| p.index)),
            next_offset: self.log_end_offset(),
        }
    }

    fn segment_for_offset(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    fn segment_for_index(&self, index: u64) -> usize {
        self.segments
            .partition_point(|s| s.first_index <= index)
            .saturating_sub(1)
    }

    // ----------------------------------------------------------------------------------------
    // Append

    /// Appends one entry (one or more concatenated v2 batches) at Raft `index` with `term`.
    /// Validates every batch first; stamps `baseOffset` (prefix sum of offsets) and
    /// `partitionLeaderEpoch = term`. Readable as soon as it returns; never waits for fsync.
    ///
    /// Batches are checked in their stored form ([`record_batch::validate_stored`]): a batch
    /// may hold fewer records than its offset span, or none, as compaction leaves them, so that
    /// a follower can append entries read from a compacted log. Client data goes through
    /// [`Self::append_checked`], which applies the full produce check ([`record_batch::validate`]).
    pub fn append(
        &mut self,
        index: u64,
        term: u64,
        batches: &Bytes,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_inner(index, term, batches, now_ms, false)
    }

    fn append_inner(
        &mut self,
        index: u64,
        term: u64,
        batches: &Bytes,
        now_ms: i64,
        strict: bool,
    ) -> Result<AppendInfo> {
        self.check_writable()?;
        let expected = self.next_index();
        if index != expected {
            return Err(Error::InvalidArgument(format!(
                "append at index {index}, expected {expected}"
            )));
        }
        let epoch = i32::try_from(term).map_err(|_| Error::TermTooLarge(term))?;
        if let Some(last) = self.last_term()
            && term < last
        {
            return Err(Error::TermRegression {
                term,
                last_term: last,
            });
        }
        if batches.is_empty() {
            return Err(Error::EmptyEntry);
        }
        if batches.len() as u64 > self.config.max_entry_bytes {
            return Err(Error::EntryTooLarge {
                size: batches.len(),
                max: self.config.max_entry_bytes as usize,
            });
        }

        let base_offset = self.log_end_offset();
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut infos = std::mem::take(&mut self.batch_infos);
        scratch.clear();
        scratch.extend_from_slice(batches);
        infos.clear();
        let mut appended = Vec::new();
        let stamped = stamp_entry(
            &mut scratch,
            base_offset,
            epoch,
            strict,
            &mut infos,
            &mut appended,
        );
        let result = stamped.and_then(|next_offset| {
            self.append_stamped(
                index,
                term,
                &scratch,
                &infos,
                base_offset,
                next_offset,
                now_ms,
            )
            .map(|()| next_offset)
        });
        let size = scratch.len();
        self.scratch = scratch;
        let next_offset = match result {
            Ok(n) => n,
            Err(e) => {
                self.batch_infos = infos;
                return Err(e);
            }
        };
        let mut max_timestamp = record_batch::NO_TIMESTAMP;
        let mut offset_of_max = base_offset;
        for b in &infos {
            if b.max_timestamp > max_timestamp {
                max_timestamp = b.max_timestamp;
                offset_of_max = b.last_offset;
            }
        }
        self.batch_infos = infos;
        for b in &appended {
            self.producers.update(&producer_batch(b));
        }
        self.producers.advance_end_offset(next_offset);
        Ok(AppendInfo {
            index,
            term,
            base_offset,
            last_offset: next_offset - 1,
            next_offset,
            max_timestamp,
            offset_of_max_timestamp: offset_of_max,
            size_bytes: size,
            batches: appended,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn append_stamped(
        &mut self,
        index: u64,
        term: u64,
        data: &[u8],
        infos: &[BatchInfo],
        base_offset: i64,
        next_offset: i64,
        now_ms: i64,
    ) -> Result<()> {
        if next_offset - base_offset > i64::from(i32::MAX) {
            return Err(Error::InvalidArgument(format!(
                "entry spans {} offsets, more than a segment can index",
                next_offset - base_offset
            )));
        }
        let max_ts = infos.iter().map(|b| b.max_timestamp).max().unwrap_or(-1);
        if self.should_roll(data.len() as u64, max_ts, next_offset - 1, now_ms) {
            self.roll()?;
        }
        let active = self.active_mut();
        active.created_ms.get_or_insert(now_ms);
        active.append_entry(index, term, data, infos, base_offset, next_offset)?;
        self.epochs.assign(EpochEntry {
            epoch: term,
            start_offset: base_offset,
            start_index: index,
        });
        Ok(())
    }

    /// Kafka's `LogSegment.shouldRoll`, never rolling an empty segment.
    fn should_roll(
        &self,
        entry_len: u64,
        max_timestamp: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        let a = self.active();
        if a.is_sealed() {
            return true; // an earlier roll sealed it but could not create the next segment
        }
        if a.entry_count == 0 {
            return false;
        }
        let full = a.size() + entry_len > self.config.segment_bytes;
        let waited = match a.first_batch_timestamp.filter(|t| *t >= 0) {
            Some(first) => max_timestamp.saturating_sub(first),
            None => now_ms.saturating_sub(a.created_ms.unwrap_or(now_ms)),
        };
        let too_old = waited > self.config.max_segment_ms();
        let offset_overflow = last_offset - a.base_offset > i64::from(i32::MAX);
        full || too_old || offset_overflow
    }

    /// Seals the active segment (synced) and starts a new one at the log end.
    pub fn roll(&mut self) -> Result<()> {
        self.check_writable()?;
        let r = self.roll_inner();
        self.note_sync_failure(r)
    }

    fn roll_inner(&mut self) -> Result<()> {
        let fs = Arc::clone(&self.fs);
        let active = self.active();
        if active.entry_count == 0 && !active.is_sealed() {
            return Ok(());
        }
        // The producer state as of the new segment's base offset, so that rebuilding it never
        // has to read more than the segments after the latest snapshot (Kafka snapshots on roll).
        self.write_producer_snapshot()?;
        let active = self.active_mut();
        // The sealed data is synced by the next flush (or never, with `FlushPolicy::Never`);
        // recovery checks every segment above the recovery point.
        active.seal(fs.as_ref(), false)?;
        let (base, first_index, prev_term) =
            (active.next_offset, active.next_index(), active.tail_term());
        write_file_atomically(
            fs.as_ref(),
            &self.dir,
            leader_epoch::CHECKPOINT_FILE,
            self.epochs.encode().as_bytes(),
        )?;
        let mut seg = Segment::create(
            fs.as_ref(),
            &self.dir,
            base,
            first_index,
            prev_term,
            self.config.segment_bytes,
            self.config.index_interval_bytes,
        )?;
        seg.sync()?;
        fs.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
        self.segments.push(seg);
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // Reads

    /// Kafka read: whole batches from the one containing `start_offset`, only batches entirely
    /// below `upper_offset`, at most `max_bytes` unless `min_one` and the first batch alone is
    /// larger (then exactly that batch). One segment per read.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        upper_offset: i64,
        min_one: bool,
    ) -> Result<ReadOutcome> {
        let leo = self.log_end_offset();
        let lso = self.log_start_offset;
        if start_offset < lso || start_offset > leo {
            return Err(Error::OffsetOutOfRange {
                offset: start_offset,
                log_start_offset: lso,
                log_end_offset: leo,
            });
        }
        let empty = ReadOutcome {
            records: Bytes::new(),
            first_offset: None,
            next_offset: start_offset,
            log_start_offset: lso,
            log_end_offset: leo,
        };
        let upper = upper_offset.min(leo);
        if start_offset >= upper {
            return Ok(empty);
        }
        for seg in &self.segments[self.segment_for_offset(start_offset)..] {
            let Some((pos, first)) = seg.locate(start_offset)? else {
                continue;
            };
            if first.last_offset() >= upper {
                return Ok(empty);
            }
            let first_len = first.total_len() as u64;
            if first_len > max_bytes as u64 && !min_one {
                return Ok(empty);
            }
            let mut end = pos + first_len;
            let mut next = first.next_offset();
            // Any further batch is at least a header long.
            while end - pos + crate::record_batch::BATCH_HEADER_LEN as u64 <= max_bytes as u64
                && let Some(h) = seg.header_at(end)?
            {
                let len = h.total_len() as u64;
                if h.last_offset() >= upper || end + len - pos > max_bytes as u64 {
                    break;
                }
                end += len;
                next = h.next_offset();
            }
            return Ok(ReadOutcome {
                records: seg.bytes(pos, end)?,
                first_offset: Some(first.base_offset),
                next_offset: next,
                log_start_offset: lso,
                log_end_offset: leo,
            });
        }
        Ok(empty)
    }

    /// The first batch ending at or after `max(from_offset, log start)` whose `maxTimestamp`
    /// is >= `timestamp` (ListOffsets by time: time index, then scan). The broker decodes it to
    /// find the exact record; if no record in it qualifies (only possible when the log start
    /// falls inside the batch), it asks again from the batch's next offset.
    pub fn find_batch_by_timestamp(
        &self,
        timestamp: i64,
        from_offset: i64,
    ) -> Result<Option<BatchRef>> {
        let start = from_offset.max(self.log_start_offset);
        if start >= self.log_end_offset() {
            return Ok(None);
        }
        for seg in &self.segments[self.segment_for_offset(start)..] {
            if seg.max_timestamp < timestamp || seg.next_offset <= start {
                continue;
            }
            let hint = time_index::lookup(seg.time_index()?, timestamp)
                .map_or(seg.base_offset, |(_, rel)| seg.base_offset + i64::from(rel));
            let Some((mut pos, mut h)) = seg.locate(hint.max(start))? else {
                continue;
            };
            loop {
                if h.last_offset() >= start && h.max_timestamp >= timestamp {
                    return Ok(Some(batch_ref(seg, pos, &h)?));
                }
                pos += h.total_len() as u64;
                match seg.header_at(pos)? {
                    Some(next) => h = next,
                    None => break,
                }
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the first batch carrying the largest timestamp of the log
    /// (Kafka picks the segment with the largest maximum, then scans from its index entry).
    pub fn max_timestamp_batch(&self) -> Result<Option<BatchRef>> {
        if self.last_index().is_none() {
            return Ok(None);
        }
        let mut best: Option<&Segment> = None;
        for seg in &self.segments {
            if seg.entry_count == 0 {
                continue;
            }
            if best.is_none_or(|b| seg.max_timestamp > b.max_timestamp) {
                best = Some(seg);
            }
        }
        let Some(seg) = best else { return Ok(None) };
        let rel =
            (seg.offset_of_max_timestamp - seg.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let mut pos = u64::from(crate::offset_index::lookup(seg.offset_index()?, rel));
        while let Some(h) = seg.header_at(pos)? {
            if h.max_timestamp == seg.max_timestamp {
                return Ok(Some(batch_ref(seg, pos, &h)?));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    // ----------------------------------------------------------------------------------------
    // Producer state

    /// The idempotent-producer state as of the log end (every batch of the log folded in).
    pub fn producer_state(&self) -> &ProducerStateMap {
        &self.producers
    }

    /// Kafka's producer-state validation of a client append, run before anything is written:
    /// whether `batches` (one entry, as [`Self::append`] takes it) are new and in sequence, or a
    /// retry of a batch already in the log. Errors: [`Error::Batch`] for unparsable batches,
    /// [`Error::Producer`] for fenced epochs and out-of-order sequences. Append only on
    /// [`AppendCheck::Append`], under the same `&mut` borrow (see [`Self::append_checked`]).
    pub fn check_producer_append(&self, batches: &Bytes) -> Result<AppendCheck> {
        let mut placed = Vec::new();
        let mut pos = 0usize;
        let mut next = self.log_end_offset();
        while pos < batches.len() {
            let at = |source| Error::Batch {
                position: pos,
                source,
            };
            let len = record_batch::batch_len_at(&batches[pos..]).map_err(at)?;
            let header = BatchHeader::parse(&batches[pos..pos + len]).map_err(at)?;
            let batch = ProducerBatch::from_header(&header, next);
            next = batch.last_offset + 1;
            placed.push(batch);
            pos += len;
        }
        Ok(self.producers.check(&placed)?)
    }

    /// A client append: [`Self::check_producer_append`], then [`Self::append`] if the batches
    /// are new. A retry of a batch already in the log returns its metadata and writes nothing.
    pub fn append_checked(
        &mut self,
        index: u64,
        term: u64,
        batches: &Bytes,
        now_ms: i64,
    ) -> Result<CheckedAppend> {
        match self.check_producer_append(batches)? {
            AppendCheck::Duplicate(batch) => Ok(CheckedAppend::Duplicate(batch)),
            AppendCheck::Append => Ok(CheckedAppend::Appended(
                self.append_inner(index, term, batches, now_ms, true)?,
            )),
        }
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`); returns how
    /// many. In memory only: the next snapshot no longer holds them.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.remove_expired(now_ms, expiration_ms)
    }

    /// Writes a producer-state snapshot at the log end (a clean shutdown does, so that the next
    /// open replays nothing). [`Self::close`] calls it; owners that cannot give up the log
    /// (it sits behind a lock) call it after their final flush.
    pub fn checkpoint_producer_state(&mut self) -> Result<()> {
        self.check_writable()?;
        self.write_producer_snapshot()
    }

    /// Writes a producer-state snapshot at the log end, unless one exists there.
    fn write_producer_snapshot(&mut self) -> Result<()> {
        let offset = self.producers.end_offset();
        if self.producer_snapshots.contains(&offset) {
            return Ok(());
        }
        let r = producer_snapshot::write(self.fs.as_ref(), &self.dir, &self.producers);
        self.note_sync_failure(r)?;
        self.producer_snapshots.insert(offset);
        Ok(())
    }

    /// Removes snapshot files outside `[log start, log end]`.
    fn remove_stale_producer_snapshots(&mut self) -> Result<()> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        let stale: Vec<i64> = self
            .producer_snapshots
            .iter()
            .copied()
            .filter(|o| *o < start || *o > end)
            .collect();
        for offset in stale {
            producer_snapshot::remove(self.fs.as_ref(), &self.dir, offset)?;
            self.producer_snapshots.remove(&offset);
        }
        Ok(())
    }

    /// Rebuilds the producer state from the latest usable snapshot plus the batches after it
    /// (at open, and after a truncation).
    fn rebuild_producer_state(&mut self) -> Result<()> {
        self.remove_stale_producer_snapshots()?;
        let fs = Arc::clone(&self.fs);
        let mut loaded = None;
        while let Some(&offset) = self.producer_snapshots.last() {
            match producer_snapshot::read(fs.as_ref(), &self.dir, offset) {
                Ok(map) => {
                    loaded = Some(map);
                    break;
                }
                Err(ReadFailure::Unusable(why)) => {
                    self.report.notes.push(format!(
                        "producer state snapshot {} is unusable ({why}); removed",
                        producer_snapshot::file_name(offset)
                    ));
                    producer_snapshot::remove(fs.as_ref(), &self.dir, offset)?;
                    self.producer_snapshots.remove(&offset);
                }
                Err(ReadFailure::Io(e)) => return Err(e),
            }
        }
        let end = self.log_end_offset();
        let mut map = loaded.unwrap_or_else(|| ProducerStateMap::new(self.log_start_offset));
        let mut offset = map.end_offset().max(self.log_start_offset);
        while offset < end {
            let out = self.read(offset, PRODUCER_REPLAY_READ_BYTES, end, true)?;
            if out.records.is_empty() || out.next_offset <= offset {
                return Err(Error::corrupt(
                    &self.dir,
                    0,
                    format!("no batch readable at offset {offset} below the log end {end}"),
                ));
            }
            for batch in record_batch::split_batches(&out.records) {
                let batch = batch.map_err(|e| {
                    Error::corrupt(&self.dir, 0, format!("batch near offset {offset}: {e}"))
                })?;
                let header = BatchHeader::parse(&batch).map_err(|e| {
                    Error::corrupt(&self.dir, 0, format!("batch near offset {offset}: {e}"))
                })?;
                map.update(&ProducerBatch::from_header(&header, header.base_offset));
            }
            offset = out.next_offset;
        }
        map.advance_end_offset(end);
        self.producers = map;
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // Leader epochs

    /// Kafka's `endOffsetFor`; `None` is (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET).
    pub fn end_offset_for_epoch(&self, epoch: u64) -> Option<EpochEndOffset> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// First entry of every term with entries (after a purge, the first kept entry starts the
    /// oldest epoch; when the log is empty after a purge the latest epoch is kept, starting at
    /// the log end, as Kafka keeps it).
    pub fn epoch_starts(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// The leader epoch of the entry holding `offset` (Kafka's `epochForOffset`).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<u64> {
        self.epochs.epoch_for_offset(offset)
    }

    pub fn latest_epoch(&self) -> Option<u64> {
        self.epochs.latest().map(|e| e.epoch)
    }

    // ----------------------------------------------------------------------------------------
    // Entries (Raft)

    /// Location of entry `index` from the dense index; `None` outside `[first, next)`.
    pub fn entry_meta(&self, index: u64) -> Result<Option<EntryMeta>> {
        if index < self.first_index() || index >= self.next_index() {
            return Ok(None);
        }
        let seg = &self.segments[self.segment_for_index(index)];
        let rec = seg.record(index - seg.first_index)?;
        Ok(Some(EntryMeta {
            index,
            term: rec.term,
            base_offset: seg.base_offset + i64::from(rec.relative_offset),
            next_offset: seg.base_offset + rec.end_relative_offset() as i64,
            size_bytes: rec.length,
        }))
    }

    /// Term of entry `index`, also answering for the last purged entry.
    pub fn term_of(&self, index: u64) -> Result<Option<u64>> {
        if let Some(p) = self.purged
            && p.index == index
        {
            return Ok(Some(p.term));
        }
        Ok(self.entry_meta(index)?.map(|m| m.term))
    }

    /// Entries `from..to` (at least one when the range is not empty), stopping before the
    /// total would exceed `max_bytes`.
    pub fn read_entries(&self, from: u64, to: u64, max_bytes: usize) -> Result<Vec<StoredEntry>> {
        let (first, next) = (self.first_index(), self.next_index());
        if from < first || to > next || from > to {
            return Err(Error::IndexOutOfRange {
                index: if from < first || from > to { from } else { to },
                first_index: first,
                next_index: next,
            });
        }
        let mut out = Vec::new();
        let mut total = 0usize;
        for index in from..to {
            let seg = &self.segments[self.segment_for_index(index)];
            let rec = seg.record(index - seg.first_index)?;
            if !out.is_empty() && total + rec.length as usize > max_bytes {
                break;
            }
            total += rec.length as usize;
            out.push(StoredEntry {
                meta: EntryMeta {
                    index,
                    term: rec.term,
                    base_offset: seg.base_offset + i64::from(rec.relative_offset),
                    next_offset: seg.base_offset + rec.end_relative_offset() as i64,
                    size_bytes: rec.length,
                },
                bytes: seg.bytes(u64::from(rec.position), rec.end_position())?,
            });
        }
        Ok(out)
    }

    // ----------------------------------------------------------------------------------------
    // Truncation, purge, reset, retention

    /// Keeps entries `..=index` (`None`: removes every entry). Bytes readers may hold are never
    /// rewritten: a new segment file starts at the truncation point. Durable before it returns.
    ///
    /// If it fails part way, the files hold a prefix of the old log at least as long as the
    /// requested one, and the log is poisoned: reopen it to continue.
    pub fn truncate_after(&mut self, index: Option<u64>) -> Result<()> {
        self.check_writable()?;
        let first = self.first_index();
        if index.is_some_and(|i| i + 1 < first) {
            return Err(Error::IndexOutOfRange {
                index: index.unwrap_or(0),
                first_index: first,
                next_index: self.next_index(),
            });
        }
        let r = self.truncate_inner(index);
        self.poison_on_error(r)
    }

    /// Structural changes (truncate, purge, reset) that fail part way leave the files
    /// consistent but the in-memory view possibly ahead of them; refuse further writes.
    pub(crate) fn poison_on_error<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    fn truncate_inner(&mut self, index: Option<u64>) -> Result<()> {
        let (first, next) = (self.first_index(), self.next_index());
        let keep_next = index.map_or(first, |i| i + 1);
        if keep_next >= next {
            return Ok(());
        }
        let fs = Arc::clone(&self.fs);
        let si = self.segment_for_index(keep_next);
        let slot = keep_next - self.segments[si].first_index;
        let cut_offset = if slot == 0 {
            self.segments[si].base_offset
        } else {
            let s = &self.segments[si];
            s.base_offset + i64::from(s.record(slot)?.relative_offset)
        };
        let prev_term = self.segments[si].term_before(slot)?;
        if self.recovery_point > cut_offset {
            // Segments rolled after the cut must be checked again by recovery.
            recovery::write_recovery_point(fs.as_ref(), &self.dir, cut_offset)?;
            self.recovery_point = cut_offset;
        }
        if self.log_start_offset > cut_offset {
            // DeleteRecords moved the start past the cut; it can be no later than the log end.
            self.write_log_start_as(
                cut_offset,
                self.purged.map(|p| (p, self.purged_next_offset)),
            )?;
            self.log_start_offset = cut_offset;
        }
        // Later segments go first, newest first, so a crash leaves a prefix of the old log.
        while self.segments.len() > si + 1 {
            let base = self.segments[self.segments.len() - 1].base_offset;
            Segment::remove_files(fs.as_ref(), &self.dir, base)?;
            self.segments.pop();
        }
        if slot == 0 {
            // Unlinked but kept in memory until its replacement exists, so the log always has
            // a segment to serve reads from (the mapping outlives the file name).
            Segment::remove_files(fs.as_ref(), &self.dir, cut_offset)?;
        }
        fs.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
        if slot > 0 {
            self.segments[si].truncate_and_seal(fs.as_ref(), slot)?;
        }
        self.sync_sealed()?;
        self.epochs.truncate_from_end(keep_next);
        write_file_atomically(
            fs.as_ref(),
            &self.dir,
            leader_epoch::CHECKPOINT_FILE,
            self.epochs.encode().as_bytes(),
        )?;
        let mut seg = Segment::create(
            fs.as_ref(),
            &self.dir,
            cut_offset,
            keep_next,
            prev_term,
            self.config.segment_bytes,
            self.config.index_interval_bytes,
        )?;
        seg.sync()?;
        fs.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
        if slot == 0 {
            self.segments.pop();
        }
        self.segments.push(seg);
        if self.last_index().is_none() && self.purged.is_some() {
            self.normalize_empty_epochs();
            write_file_atomically(
                fs.as_ref(),
                &self.dir,
                leader_epoch::CHECKPOINT_FILE,
                self.epochs.encode().as_bytes(),
            )?;
            fs.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
        }
        self.generation += 1;
        self.layout_generation += 1;
        self.clamp_cleaner_checkpoint(cut_offset)?;
        // Everything kept was synced (sealed segments, and the cut segment by its seal).
        self.durable = self.end_point();
        self.rebuild_producer_state()
    }

    /// Data at and after `offset` was replaced: it is dirty again (Kafka truncates the
    /// cleaner checkpoint with the log).
    fn clamp_cleaner_checkpoint(&mut self, offset: i64) -> Result<()> {
        if self.cleaner_checkpoint > offset {
            crate::cleaner::write_checkpoint(self.fs.as_ref(), &self.dir, offset)?;
            self.cleaner_checkpoint = offset;
        }
        Ok(())
    }

    /// Removes entries `..=index` (whose term must be `term`): the log start moves to the
    /// next entry's offset and segments wholly below it are deleted. `index` may be the last
    /// entry (the log becomes empty); beyond it, use [`PartitionLog::reset`].
    pub fn purge_upto(&mut self, index: u64, term: u64) -> Result<()> {
        self.check_writable()?;
        let first = self.first_index();
        if index >= first {
            // Argument errors change nothing and do not poison.
            let meta = self.entry_meta(index)?.ok_or(Error::IndexOutOfRange {
                index,
                first_index: first,
                next_index: self.next_index(),
            })?;
            if meta.term != term {
                return Err(Error::TermMismatch {
                    index,
                    term,
                    stored: meta.term,
                });
            }
        }
        let r = self.purge_inner(index, term);
        self.poison_on_error(r)
    }

    fn purge_inner(&mut self, index: u64, term: u64) -> Result<()> {
        let first = self.first_index();
        if index < first {
            return Ok(());
        }
        let meta = self.entry_meta(index)?.ok_or(Error::IndexOutOfRange {
            index,
            first_index: first,
            next_index: self.next_index(),
        })?;
        if meta.term != term {
            return Err(Error::TermMismatch {
                index,
                term,
                stored: meta.term,
            });
        }
        let log_start_offset = self.log_start_offset.max(meta.next_offset);
        self.write_log_start_as(
            log_start_offset,
            Some((LogId { index, term }, meta.next_offset)),
        )?;
        self.purged = Some(LogId { index, term });
        self.purged_next_offset = meta.next_offset;
        self.log_start_offset = log_start_offset;
        self.epochs.truncate_from_start(index + 1, meta.next_offset);
        self.normalize_empty_epochs();
        let fs = Arc::clone(&self.fs);
        write_file_atomically(
            fs.as_ref(),
            &self.dir,
            leader_epoch::CHECKPOINT_FILE,
            self.epochs.encode().as_bytes(),
        )?;
        self.layout_generation += 1;
        let mut removed = false;
        while self.segments.len() > 1 && self.segments[0].next_index() <= index + 1 {
            Segment::remove_files(fs.as_ref(), &self.dir, self.segments[0].base_offset)?;
            self.segments.remove(0);
            removed = true;
        }
        if removed {
            fs.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
        }
        // The in-memory producer state keeps what it knows (as Kafka's does); snapshots of the
        // released range go.
        self.remove_stale_producer_snapshots()
    }

    /// Drops everything and starts empty at `next_index`/`next_offset`, remembering `purged`
    /// (= `next_index - 1`) as the last purged entry (a follower installing a snapshot).
    pub fn reset(&mut self, next_index: u64, next_offset: i64, purged: LogId) -> Result<()> {
        self.check_writable()?;
        if purged.index.checked_add(1) != Some(next_index) || next_offset < 0 {
            return Err(Error::InvalidArgument(format!(
                "reset to index {next_index} offset {next_offset} with purged entry {}",
                purged.index
            )));
        }
        let r = self.reset_inner(next_index, next_offset, purged);
        self.poison_on_error(r)
    }

    fn reset_inner(&mut self, next_index: u64, next_offset: i64, purged: LogId) -> Result<()> {
        let fs = Arc::clone(&self.fs);
        // The checkpoint goes first: recovery finishes an interrupted reset from it. The
        // in-memory state changes only once the new segment exists.
        self.write_log_start_as(next_offset, Some((purged, next_offset)))?;
        let epochs = LeaderEpochCache::for_empty_log(Some(purged.term), next_offset, next_index);
        write_file_atomically(
            fs.as_ref(),
            &self.dir,
            leader_epoch::CHECKPOINT_FILE,
            epochs.encode().as_bytes(),
        )?;
        // Newest first, so a crash leaves a prefix; kept in memory until the new segment exists.
        for seg in self.segments.iter().rev() {
            Segment::remove_files(fs.as_ref(), &self.dir, seg.base_offset)?;
        }
        fs.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
        let mut seg = Segment::create(
            fs.as_ref(),
            &self.dir,
            next_offset,
            next_index,
            Some(purged.term),
            self.config.segment_bytes,
            self.config.index_interval_bytes,
        )?;
        seg.sync()?;
        fs.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
        self.segments.clear();
        self.segments.push(seg);
        self.purged = Some(purged);
        self.purged_next_offset = next_offset;
        self.log_start_offset = next_offset;
        self.epochs = epochs;
        recovery::write_recovery_point(fs.as_ref(), &self.dir, next_offset)?;
        self.recovery_point = next_offset;
        self.generation += 1;
        self.layout_generation += 1;
        self.clamp_cleaner_checkpoint(next_offset)?;
        self.durable = self.end_point();
        self.producers = ProducerStateMap::new(next_offset);
        for offset in std::mem::take(&mut self.producer_snapshots) {
            producer_snapshot::remove(fs.as_ref(), &self.dir, offset)?;
        }
        Ok(())
    }

    /// DeleteRecords: moves the log start offset forward (it may fall inside a segment or an
    /// entry). Returns whether it moved. Segments wholly below it are released by retention.
    pub fn advance_log_start_offset(&mut self, offset: i64) -> Result<bool> {
        self.check_writable()?;
        let leo = self.log_end_offset();
        if offset < 0 || offset > leo {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: leo,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(false);
        }
        let r = self.write_log_start_as(offset, self.purged.map(|p| (p, self.purged_next_offset)));
        self.note_sync_failure(r)?;
        self.log_start_offset = offset;
        Ok(true)
    }

    fn write_log_start_as(
        &self,
        log_start_offset: i64,
        purged: Option<(LogId, i64)>,
    ) -> Result<()> {
        let cp = LogStart {
            log_start_offset,
            purged: purged.map(|(p, next)| (p.index, p.term, next)),
        };
        checkpoint::write(self.fs.as_ref(), &self.dir, LOG_START_FILE, &cp.encode())
    }

    /// The last entry that retention (`retention_ms`, `retention_bytes`, and segments below the
    /// log start) lets go, always the end of a sealed segment whose end is <= `upper_offset`
    /// (the high watermark). Follows Kafka's `deleteOldSegments`.
    pub fn retention_point(&self, now_ms: i64, upper_offset: i64) -> Result<Option<PurgePoint>> {
        let sealed = &self.segments[..self.segments.len() - 1];
        let ends = |i: usize| self.segments[i + 1].base_offset;
        let by_start = (0..sealed.len())
            .take_while(|&i| ends(i) <= self.log_start_offset)
            .count();
        let delete = self.config.cleanup_policy.delete;
        let mut by_time = 0;
        if delete && self.config.retention_ms >= 0 {
            for seg in sealed {
                let largest = if seg.max_timestamp >= 0 {
                    seg.max_timestamp
                } else {
                    seg.log.handle().modified_ms().ctx("stat", seg.log.path())?
                };
                if now_ms.saturating_sub(largest) > self.config.retention_ms {
                    by_time += 1;
                } else {
                    break;
                }
            }
        }
        let mut by_size = 0;
        if delete && self.config.retention_bytes >= 0 {
            let total = self.size_bytes() as i64;
            if total >= self.config.retention_bytes {
                let mut diff = total - self.config.retention_bytes;
                for seg in sealed {
                    if diff - seg.size() as i64 >= 0 {
                        diff -= seg.size() as i64;
                        by_size += 1;
                    } else {
                        break;
                    }
                }
            }
        }
        let mut k = by_start.max(by_time).max(by_size);
        while k > 0 && ends(k - 1) > upper_offset {
            k -= 1;
        }
        if k == 0 {
            return Ok(None);
        }
        let last = &self.segments[k - 1];
        let index = self.segments[k].first_index.saturating_sub(1);
        if self.segments[k].first_index == 0 || index < self.first_index() {
            return Ok(None);
        }
        let Some(term) = last.tail_term() else {
            return Ok(None);
        };
        Ok(Some(PurgePoint {
            index,
            term,
            next_offset: ends(k - 1),
        }))
    }

    /// Single-node retention: computes [`Self::retention_point`] up to the log end and purges.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<Option<PurgePoint>> {
        let point = self.retention_point(now_ms, self.log_end_offset())?;
        if let Some(p) = point {
            self.purge_upto(p.index, p.term)?;
        }
        Ok(point)
    }

    // ----------------------------------------------------------------------------------------
    // Durability

    pub fn flush_policy(&self) -> FlushPolicy {
        self.config.flush_policy
    }

    /// Everything at or below this point has been fsynced.
    pub fn durable(&self) -> DurablePoint {
        self.durable
    }

    /// Whether entries were appended since the last completed flush.
    pub fn has_unflushed(&self) -> bool {
        self.durable.next_offset < self.log_end_offset()
    }

    /// Starts a group commit: captures the files to sync and the point they will make durable.
    /// Run [`PendingFlush::sync`] without the log's lock, then [`Self::finish_flush`].
    pub fn begin_flush(&mut self) -> Result<Option<PendingFlush>> {
        self.check_writable()?;
        if !self.has_unflushed() {
            return Ok(None);
        }
        // Sealed segments not yet synced, then the active one: together they hold everything
        // that is not durable yet.
        let mut files = Vec::new();
        let last = self.segments.len() - 1;
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.unsynced || i == last {
                files.push((seg.log.path().to_path_buf(), Arc::clone(seg.log.handle())));
                files.push((
                    seg.entries.path().to_path_buf(),
                    Arc::clone(seg.entries.handle()),
                ));
            }
        }
        Ok(Some(PendingFlush::new(
            files,
            self.end_point(),
            self.generation,
        )))
    }

    /// Like [`Self::begin_flush`], but only for sealed segments not yet synced (what Kafka
    /// flushes when it rolls a segment, even without a flush policy). The active segment is
    /// left to the page cache.
    pub fn begin_flush_sealed(&mut self) -> Result<Option<PendingFlush>> {
        self.check_writable()?;
        let last = self.segments.len() - 1;
        let mut files = Vec::new();
        let mut target = None;
        for seg in &self.segments[..last] {
            if seg.unsynced {
                files.push((seg.log.path().to_path_buf(), Arc::clone(seg.log.handle())));
                files.push((
                    seg.entries.path().to_path_buf(),
                    Arc::clone(seg.entries.handle()),
                ));
                target = Some(DurablePoint {
                    index: seg.next_index().checked_sub(1),
                    next_offset: seg.next_offset,
                });
            }
        }
        Ok(target.map(|t| PendingFlush::new(files, t, self.generation)))
    }

    /// Completes a group commit. A failed fsync poisons the log for good.
    pub fn finish_flush(&mut self, synced: SyncedFlush) -> Result<DurablePoint> {
        if let Err((path, e)) = synced.result {
            self.poisoned = true;
            return Err(Error::io("fsync", path, e));
        }
        self.check_writable()?;
        if synced.generation != self.generation
            || synced.target.next_offset <= self.durable.next_offset
        {
            return Ok(self.durable);
        }
        self.durable = synced.target;
        // Sealed segments that end at or before the target are synced now.
        for seg in &mut self.segments {
            if seg.next_offset <= synced.target.next_offset && seg.is_sealed() {
                seg.unsynced = false;
            }
        }
        let r = self.advance_recovery_point();
        self.note_sync_failure(r)?;
        Ok(self.durable)
    }

    /// Moves the recovery point up to the first segment that is active or not yet synced.
    fn advance_recovery_point(&mut self) -> Result<()> {
        let point = self
            .segments
            .iter()
            .find(|s| s.unsynced || !s.is_sealed())
            .map_or(self.log_end_offset(), |s| s.base_offset);
        if point > self.recovery_point {
            recovery::write_recovery_point(self.fs.as_ref(), &self.dir, point)?;
            self.recovery_point = point;
        }
        Ok(())
    }

    /// Makes every segment before the active one durable (truncation promises it).
    fn sync_sealed(&mut self) -> Result<()> {
        for seg in self.segments.iter_mut().filter(|s| s.is_sealed()) {
            if seg.unsynced {
                seg.sync()?;
            }
        }
        Ok(())
    }

    /// Flushes everything and closes the log (a clean shutdown: the next open verifies only
    /// the active segment).
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        if !self.poisoned {
            // A clean shutdown leaves the state at the log end: the next open replays nothing.
            self.write_producer_snapshot()?;
        }
        Ok(())
    }

    /// Flushes everything appended so far (begin, sync, finish under `&mut self`).
    pub fn flush(&mut self) -> Result<DurablePoint> {
        match self.begin_flush()? {
            None => Ok(self.durable),
            Some(p) => {
                let synced = p.sync();
                self.finish_flush(synced)
            }
        }
    }
}

fn batch_ref(seg: &Segment, pos: u64, h: &BatchHeader) -> Result<BatchRef> {
    Ok(BatchRef {
        base_offset: h.base_offset,
        last_offset: h.last_offset(),
        max_timestamp: h.max_timestamp,
        bytes: seg.bytes(pos, pos + h.total_len() as u64)?,
    })
}

/// Bytes read per step when replaying batches into the producer state.
const PRODUCER_REPLAY_READ_BYTES: usize = 1 << 20;

/// A client append's outcome (see [`PartitionLog::append_checked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckedAppend {
    /// Written.
    Appended(AppendInfo),
    /// A retry of this batch, already in the log; nothing written.
    Duplicate(BatchMetadata),
}

/// Validates every batch of an entry (copied in `buf`) and stamps offsets and epoch. Returns
/// the next offset after the entry.
fn stamp_entry(
    buf: &mut [u8],
    base_offset: i64,
    epoch: i32,
    strict: bool,
    infos: &mut Vec<BatchInfo>,
    appended: &mut Vec<AppendedBatch>,
) -> Result<i64> {
    let mut pos = 0usize;
    let mut next = base_offset;
    while pos < buf.len() {
        let rest = &mut buf[pos..];
        let len = record_batch::batch_len_at(rest).map_err(|source| Error::Batch {
            position: pos,
            source,
        })?;
        let batch = &mut rest[..len];
        let checked = if strict {
            record_batch::validate(batch)
        } else {
            record_batch::validate_stored(batch)
        };
        let h = checked.map_err(|source| Error::Batch {
            position: pos,
            source,
        })?;
        let stamp = record_batch::set_base_offset(batch, next)
            .and_then(|()| record_batch::set_partition_leader_epoch(batch, epoch));
        stamp.map_err(|source| Error::Batch {
            position: pos,
            source,
        })?;
        let last_offset = next + i64::from(h.last_offset_delta);
        infos.push(BatchInfo {
            position_in_entry: pos as u32,
            len: len as u32,
            last_offset,
            max_timestamp: h.max_timestamp,
        });
        appended.push(AppendedBatch {
            base_offset: next,
            last_offset,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            record_count: h.record_count,
            max_timestamp: h.max_timestamp,
            is_transactional: h.is_transactional(),
            is_control: h.is_control(),
        });
        next = last_offset + 1;
        pos += len;
    }
    Ok(next)
}

fn producer_batch(b: &AppendedBatch) -> ProducerBatch {
    let delta = (b.last_offset - b.base_offset) as i32;
    ProducerBatch {
        producer_id: b.producer_id,
        producer_epoch: b.producer_epoch,
        base_sequence: b.base_sequence,
        last_sequence: if b.base_sequence < 0 {
            crate::producer_state::NO_SEQUENCE
        } else {
            crate::producer_state::increment_sequence(b.base_sequence, delta)
        },
        first_offset: b.base_offset,
        last_offset: b.last_offset,
        max_timestamp: b.max_timestamp,
        is_transactional: b.is_transactional,
        is_control: b.is_control,
    }
}
