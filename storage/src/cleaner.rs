//! Log compaction (Kafka's `LogCleaner`): keeps the latest record of every key in the sealed
//! segments of a `cleanup.policy=compact` log.
//!
//! # A pass
//! 1. [`PartitionLog::plan_clean`] (`&self`, under the log's lock, cheap): the *cleanable* part
//!    of the log runs from the log start to the first segment that is active, ends above the
//!    caller's upper offset (the high watermark), or is younger than `min.compaction.lag.ms`.
//!    Everything before the cleaner checkpoint (`cleaner-offset.checkpoint`) is *clean*, the
//!    rest *dirty*. A pass runs when dirty bytes / cleanable bytes reaches
//!    `min.cleanable.dirty.ratio`, or when the oldest dirty segment's first record is older than
//!    `max.compaction.lag.ms`. The plan holds `Bytes` of the segments it reads, so it needs no
//!    lock afterwards.
//! 2. [`CleanPlan::run`] (no lock; CPU and IO): builds the offset map (key -> latest offset) over
//!    the dirty part, bounded by `max_map_bytes` (a pass that cannot map all of it stops at a
//!    batch boundary and the rest stays dirty), then rewrites every cleanable segment below the
//!    map's end into `.cleaned` files, grouping neighbours up to `segment.bytes` as Kafka does.
//! 3. [`PartitionLog::finish_clean`] (`&mut self`): swaps the groups in atomically and moves the
//!    checkpoint. If the log was truncated, purged, reset or cleaned meanwhile, the work is
//!    discarded.
//!
//! # What a record's fate is
//! A record in the rewritten range survives if its key has no later offset in the map, as in
//! Kafka. Records without a key are dropped (Kafka rejects them on compacted topics and its
//! cleaner discards any left). A tombstone (null value) survives until its segment has been
//! cleaned once and the segment's newest timestamp is more than `delete.retention.ms` in the
//! past. Control batches are kept as they are. A pass also runs, whatever the dirty ratio, once
//! the tombstones kept by the last pass may go (Kafka cleans logs whose delete horizon passed);
//! that horizon is kept in memory, so after a restart it waits for the next pass.
//!
//! # Batches keep their place (the decision that keeps Raft entries valid)
//! Offsets never change. Every batch keeps its header's `baseOffset`, `lastOffsetDelta`,
//! `partitionLeaderEpoch`, producer id, epoch and `baseSequence`; a batch that loses some
//! records is re-encoded with the survivors (records are copied byte for byte, so their offset
//! and timestamp deltas stay valid) and recompressed with its own codec; a batch that loses
//! them all stays as an empty header (`recordCount` 0, no records), as Kafka's
//! `writeEmptyHeader` writes it. Kafka drops most empty batches; here they stay, so that:
//! - every Raft entry still holds a contiguous run of batches covering exactly its offsets: the
//!   `.entries` record keeps its term and offsets (only the byte position and length change),
//!   `entry_meta(index)` is unchanged and `read_entries` returns the compacted bytes;
//! - a follower can append an entry read from a compacted log: [`PartitionLog::append`]
//!   accepts stored batch shapes (a record count below the offset span, zero records) and its
//!   prefix-sum stamping gives every batch its original base offset;
//! - the idempotent-producer state rebuilt from the log sees every batch's last offset and
//!   sequence (what Kafka keeps an empty batch for).
//!
//! # Crash safety
//! A group is written to `{base}.{ext}.cleaned` (synced), renamed to `.swap` (the `.log` last),
//! the other segments of the group are deleted, then the `.swap` files are renamed over the
//! group's first segment (the `.log` last). Recovery (`complete_interrupted_swaps`) discards
//! `.cleaned` files and `.swap` files without a `.log.swap`, and completes a swap whose
//! `.log.swap` exists. Readers holding `Bytes` of a replaced segment keep the old mapping (the
//! file is unlinked, never rewritten in place).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::PartitionLog;
use crate::checkpoint;
use crate::compression;
use crate::entry_index::{self, EntriesHeader, EntryRecord};
use crate::error::{Error, IoContext, Result};
use crate::file_system::{FileHandle, FileSystem, OpenMode};
use crate::mapped_file::MappedFile;
use crate::record_batch::{
    self, ATTRIBUTES_AT, BATCH_HEADER_LEN, BatchHeader, COMPRESSION_MASK, Compression,
    FIRST_TIMESTAMP_AT, LENGTH_AT, LOG_OVERHEAD, MAX_TIMESTAMP_AT, NO_TIMESTAMP, RECORD_COUNT_AT,
    TimestampType,
};
use crate::segment::{
    ENTRIES_EXT, IndexBuilder, LOG_EXT, OFFSET_INDEX_EXT, Segment, SparseIndexes, TIME_INDEX_EXT,
    file_name,
};

/// The cleaner checkpoint: the first dirty offset.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset.checkpoint";
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
pub(crate) const SWAP_SUFFIX: &str = ".swap";
/// Largest decompressed records section the cleaner accepts for one batch.
const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;
/// Bytes buffered before a positional write of a `.cleaned` file.
const WRITE_CHUNK: usize = 1 << 20;
/// Approximate bookkeeping per offset map entry besides the key.
const MAP_ENTRY_OVERHEAD: usize = 64;
/// The order the files of a swap are renamed in: the `.log` last, it marks completion.
const SWAP_ORDER: [&str; 4] = [ENTRIES_EXT, OFFSET_INDEX_EXT, TIME_INDEX_EXT, LOG_EXT];

/// Limits of one cleaning pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerLimits {
    /// Memory for the offset map (Kafka's `log.cleaner.dedupe.buffer.size`, per pass).
    pub max_map_bytes: usize,
}

impl Default for CleanerLimits {
    fn default() -> Self {
        CleanerLimits {
            max_map_bytes: 128 << 20,
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Whether the result was swapped in (false: the log changed under the pass).
    pub applied: bool,
    /// Segments read and rewritten.
    pub segments_cleaned: usize,
    /// Segments after the pass, for the rewritten range.
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_removed: u64,
    /// Batches left without records (kept as empty headers).
    pub emptied_batches: u64,
    /// Tombstones dropped (past `delete.retention.ms`).
    pub tombstones_removed: u64,
    /// The new first dirty offset.
    pub first_dirty_offset: i64,
}

/// A cleanable segment, captured by [`PartitionLog::plan_clean`].
#[derive(Debug)]
struct Source {
    base_offset: i64,
    end_offset: i64,
    first_index: u64,
    prev_term: Option<u64>,
    /// A copy of the `.entries` file (a memcpy under the lock; records are decoded and checked
    /// without it). Not a mapping: truncation may cut a sealed segment's `.entries` file.
    entries: Vec<u8>,
    entry_count: u64,
    data: Bytes,
    /// Tombstones in this segment may go (cleaned before, and old enough).
    drop_tombstones: bool,
}

/// A pass decided on and the data it reads (see the module documentation).
#[derive(Debug)]
pub struct CleanPlan {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    layout_generation: u64,
    sources: Vec<Source>,
    first_dirty: i64,
    cleanable_end: i64,
    group_bytes: u64,
    index_interval: u64,
    limits: CleanerLimits,
    delete_retention_ms: i64,
    now_ms: i64,
}

/// One rewritten group, written to `.cleaned` files.
#[derive(Debug)]
struct CleanedGroup {
    base_offset: i64,
    end_offset: i64,
    source_bases: Vec<i64>,
    first_index: u64,
    prev_term: Option<u64>,
    entry_count: u64,
    last_term: Option<u64>,
    log_len: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    first_batch_timestamp: Option<i64>,
    /// When the tombstones this group keeps may go (`None`: it keeps none).
    tombstone_horizon: Option<i64>,
}

/// The result of [`CleanPlan::run`], for [`PartitionLog::finish_clean`].
#[derive(Debug)]
pub struct CleanOutput {
    layout_generation: u64,
    groups: Vec<CleanedGroup>,
    stats: CleanStats,
}

/// The cleaner checkpoint as stored.
pub(crate) fn read_checkpoint(fs: &dyn FileSystem, dir: &Path) -> Result<Option<i64>> {
    Ok(
        checkpoint::read(fs, dir, CLEANER_CHECKPOINT_FILE)?.and_then(|text| {
            let mut lines = text.lines();
            (lines.next() == Some("1"))
                .then(|| lines.next()?.trim().parse().ok())
                .flatten()
                .filter(|o: &i64| *o >= 0)
        }),
    )
}

pub(crate) fn write_checkpoint(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Result<()> {
    checkpoint::write(fs, dir, CLEANER_CHECKPOINT_FILE, &format!("1\n{offset}\n"))
}

fn largest_timestamp(seg: &Segment) -> Result<i64> {
    if seg.max_timestamp >= 0 {
        Ok(seg.max_timestamp)
    } else {
        seg.log.handle().modified_ms().ctx("stat", seg.log.path())
    }
}

impl PartitionLog {
    /// The first offset not yet cleaned (Kafka's `firstDirtyOffset`).
    pub fn first_dirty_offset(&self) -> i64 {
        self.cleaner_checkpoint.max(self.log_start_offset)
    }

    /// Decides whether a compaction pass is due (see the module documentation) and captures
    /// what it reads. `upper_offset` is the high watermark: nothing at or above it is touched.
    /// `None` when the log is not compacted or nothing is due.
    pub fn plan_clean(
        &self,
        upper_offset: i64,
        now_ms: i64,
        limits: CleanerLimits,
    ) -> Result<Option<CleanPlan>> {
        if !self.config.cleanup_policy.compact || self.poisoned {
            return Ok(None);
        }
        let n = self.segments.len();
        let ends = |i: usize| self.segments[i + 1].base_offset;
        // The first segment that must not be touched.
        let mut limit = 0;
        while limit < n - 1 {
            let seg = &self.segments[limit];
            if ends(limit) > upper_offset || !self.segments[limit].is_sealed() {
                break;
            }
            if self.config.min_compaction_lag_ms > 0
                && now_ms.saturating_sub(largest_timestamp(seg)?)
                    < self.config.min_compaction_lag_ms
            {
                break;
            }
            limit += 1;
        }
        if limit == 0 {
            return Ok(None);
        }
        let cleanable_end = self.segments[limit].base_offset;
        let first_dirty = self.first_dirty_offset();
        let tombstones_due = self.tombstone_horizon.is_some_and(|h| now_ms > h);
        if first_dirty >= cleanable_end && !tombstones_due {
            return Ok(None);
        }
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        let mut oldest_dirty: Option<i64> = None;
        for (i, seg) in self.segments[..limit].iter().enumerate() {
            if ends(i) <= self.log_start_offset {
                continue;
            }
            if ends(i) <= first_dirty {
                clean_bytes += seg.size();
            } else {
                dirty_bytes += seg.size();
                if oldest_dirty.is_none() {
                    oldest_dirty = Some(match seg.first_batch_timestamp.filter(|t| *t >= 0) {
                        Some(t) => t,
                        None => largest_timestamp(seg)?,
                    });
                }
            }
        }
        let total = clean_bytes + dirty_bytes;
        let ratio = if total == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        let overdue = oldest_dirty.is_some_and(|t| {
            now_ms.saturating_sub(t) > self.config.max_compaction_lag_ms
                && self.config.max_compaction_lag_ms < i64::MAX
        });
        let by_dirt =
            dirty_bytes > 0 && (ratio >= self.config.min_cleanable_dirty_ratio || overdue);
        if !by_dirt && !tombstones_due {
            return Ok(None);
        }
        let horizon = now_ms.saturating_sub(self.config.delete_retention_ms);
        let mut sources = Vec::with_capacity(limit);
        for (i, seg) in self.segments[..limit].iter().enumerate() {
            let entries = seg
                .entries
                .published()?
                .get(..entry_index::file_len_for(seg.entry_count) as usize)
                .ok_or_else(|| {
                    Error::corrupt(
                        seg.entries.path(),
                        0,
                        "entry index shorter than its entries",
                    )
                })?
                .to_vec();
            let end = ends(i);
            sources.push(Source {
                base_offset: seg.base_offset,
                end_offset: end,
                first_index: seg.first_index,
                prev_term: seg.prev_term,
                data: seg.bytes(0, seg.log.len())?,
                entries,
                entry_count: seg.entry_count,
                drop_tombstones: end <= first_dirty && largest_timestamp(seg)? < horizon,
            });
        }
        Ok(Some(CleanPlan {
            dir: self.dir.clone(),
            fs: Arc::clone(&self.fs),
            layout_generation: self.layout_generation,
            sources,
            first_dirty,
            cleanable_end,
            group_bytes: self.config.segment_bytes,
            index_interval: self.config.index_interval_bytes,
            limits,
            delete_retention_ms: self.config.delete_retention_ms,
            now_ms,
        }))
    }

    /// Swaps a finished pass in (see the module documentation). If the log's segments changed
    /// since [`Self::plan_clean`] (truncation, purge, reset, another pass) the output is
    /// discarded and `applied` is false. A failure part way poisons the log; reopening it
    /// completes or discards the interrupted swap.
    pub fn finish_clean(&mut self, output: CleanOutput) -> Result<CleanStats> {
        let mut stats = output.stats;
        if self.poisoned || output.layout_generation != self.layout_generation {
            for g in &output.groups {
                remove_group_files(self.fs.as_ref(), &self.dir, g.base_offset, CLEANED_SUFFIX)?;
            }
            stats.applied = false;
            return Ok(stats);
        }
        let r = self.swap_in(&output.groups, stats.first_dirty_offset);
        self.poison_on_error(r)?;
        stats.applied = true;
        Ok(stats)
    }

    fn swap_in(&mut self, groups: &[CleanedGroup], first_dirty: i64) -> Result<()> {
        let fs = Arc::clone(&self.fs);
        let fs = fs.as_ref();
        for g in groups {
            swap_group_files(fs, &self.dir, g)?;
            let seg = open_cleaned_segment(fs, &self.dir, g, self.config.index_interval_bytes)?;
            let at = self
                .segments
                .iter()
                .position(|s| s.base_offset == g.base_offset)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("segment {} vanished", g.base_offset))
                })?;
            let count = g.source_bases.len();
            self.segments.splice(at..at + count, std::iter::once(seg));
        }
        write_checkpoint(fs, &self.dir, first_dirty)?;
        self.cleaner_checkpoint = first_dirty;
        self.layout_generation += 1;
        // Every segment below the map's end was rewritten: the horizon is this pass's.
        self.tombstone_horizon = groups.iter().filter_map(|g| g.tombstone_horizon).max();
        Ok(())
    }

    /// A whole pass under `&mut self` (tests, tools): plan, run, finish.
    pub fn clean(
        &mut self,
        upper_offset: i64,
        now_ms: i64,
        limits: CleanerLimits,
    ) -> Result<Option<CleanStats>> {
        match self.plan_clean(upper_offset, now_ms, limits)? {
            None => Ok(None),
            Some(plan) => {
                let out = plan.run()?;
                self.finish_clean(out).map(Some)
            }
        }
    }
}

impl CleanPlan {
    /// First offset of the dirty part.
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty
    }

    /// End of the cleanable part.
    pub fn cleanable_end(&self) -> i64 {
        self.cleanable_end
    }

    /// Builds the offset map and writes the cleaned groups (no lock needed).
    pub fn run(self) -> Result<CleanOutput> {
        let (map, map_end, mut stats) = self.build_map()?;
        let count = self
            .sources
            .iter()
            .take_while(|s| s.base_offset < map_end)
            .count();
        let mut groups = Vec::new();
        let mut i = 0;
        let result = (|| {
            while i < count {
                let mut j = i + 1;
                let mut size = self.sources[i].data.len() as u64;
                while j < count
                    && size + self.sources[j].data.len() as u64 <= self.group_bytes
                    && self.sources[j].end_offset - self.sources[i].base_offset
                        <= i64::from(i32::MAX)
                {
                    size += self.sources[j].data.len() as u64;
                    j += 1;
                }
                let g = self.write_group(&self.sources[i..j], &map, map_end, &mut stats)?;
                groups.push(g);
                i = j;
            }
            Ok::<(), Error>(())
        })();
        if let Err(e) = result {
            for g in &groups {
                let _ =
                    remove_group_files(self.fs.as_ref(), &self.dir, g.base_offset, CLEANED_SUFFIX);
            }
            if i < count {
                let _ = remove_group_files(
                    self.fs.as_ref(),
                    &self.dir,
                    self.sources[i].base_offset,
                    CLEANED_SUFFIX,
                );
            }
            return Err(e);
        }
        stats.segments_cleaned = count;
        stats.segments_written = groups.len();
        stats.first_dirty_offset = map_end.max(self.first_dirty);
        Ok(CleanOutput {
            layout_generation: self.layout_generation,
            groups,
            stats,
        })
    }

    /// Key -> latest offset over the dirty part, and where the map stops.
    fn build_map(&self) -> Result<(HashMap<Vec<u8>, i64>, i64, CleanStats)> {
        let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut used = 0usize;
        let stats = CleanStats::default();
        for src in &self.sources {
            if src.end_offset <= self.first_dirty {
                continue;
            }
            let mut pos = 0usize;
            while pos < src.data.len() {
                let batch = batch_at(src, pos)?;
                let h = BatchHeader::parse(batch).map_err(|e| corrupt_batch(src, pos, e))?;
                pos += batch.len();
                if h.last_offset() < self.first_dirty || h.is_control() || h.record_count == 0 {
                    continue;
                }
                for_each_record(batch, &h, |r| {
                    if r.offset >= self.first_dirty
                        && let Some(key) = r.key
                    {
                        match map.get_mut(key) {
                            Some(o) => *o = r.offset,
                            None => {
                                used += key.len() + MAP_ENTRY_OVERHEAD;
                                map.insert(key.to_vec(), r.offset);
                            }
                        }
                    }
                })
                .map_err(|e| Error::corrupt(self.source_path(src), pos as u64, e))?;
                if used >= self.limits.max_map_bytes && h.next_offset() < self.cleanable_end {
                    return Ok((map, h.next_offset(), stats));
                }
            }
        }
        Ok((map, self.cleanable_end, stats))
    }

    fn source_path(&self, src: &Source) -> PathBuf {
        Segment::path(&self.dir, src.base_offset, LOG_EXT)
    }

    fn write_group(
        &self,
        sources: &[Source],
        map: &HashMap<Vec<u8>, i64>,
        map_end: i64,
        stats: &mut CleanStats,
    ) -> Result<CleanedGroup> {
        let fs = self.fs.as_ref();
        let first = &sources[0];
        let base = first.base_offset;
        let path = |ext: &str| {
            self.dir
                .join(format!("{}{CLEANED_SUFFIX}", file_name(base, ext)))
        };
        let log_path = path(LOG_EXT);
        let log_file = fs
            .open(&log_path, OpenMode::CreateTruncate)
            .ctx("create", &log_path)?;
        let mut out = ChunkWriter {
            file: log_file.as_ref(),
            path: &log_path,
            buf: Vec::with_capacity(WRITE_CHUNK),
            written: 0,
        };
        let mut entries = EntriesHeader {
            base_offset: base,
            first_index: first.first_index,
            prev_term: first.prev_term,
        }
        .encode()
        .to_vec();
        let mut index = IndexBuilder::new(self.index_interval);
        let mut max_ts = (NO_TIMESTAMP, base);
        let mut first_batch_ts = None;
        let mut entry_count = 0u64;
        let mut last_term = None;
        let mut kept_tombstones = false;
        let mut tombstones_removed = 0u64;
        let mut scratch = Vec::new();
        let rel = |o: i64| (o - base).clamp(0, i64::from(u32::MAX)) as u32;
        for src in sources {
            stats.bytes_read += src.data.len() as u64;
            for slot in 0..src.entry_count {
                let index_of = src.first_index + slot;
                let rec = EntryRecord::decode(&src.entries, slot, index_of).ok_or_else(|| {
                    Error::corrupt(
                        Segment::path(&self.dir, src.base_offset, ENTRIES_EXT),
                        entry_index::file_len_for(slot),
                        format!("entry record {index_of} fails its checksum"),
                    )
                })?;
                let entry_start = out.position();
                let mut pos = rec.position as usize;
                let end = rec.end_position() as usize;
                if end > src.data.len() {
                    return Err(Error::corrupt(
                        self.source_path(src),
                        rec.position.into(),
                        "entry runs past the segment data",
                    ));
                }
                while pos < end {
                    let batch = batch_at(src, pos)?;
                    let h = BatchHeader::parse(batch).map_err(|e| corrupt_batch(src, pos, e))?;
                    let batch_pos = out.position();
                    scratch.clear();
                    let outcome = filter_batch(batch, &h, &mut scratch, |r| {
                        let keep = keep_record(r, map, map_end, src.drop_tombstones);
                        if r.value.is_none() && r.key.is_some() {
                            if keep {
                                kept_tombstones = true;
                            } else if src.drop_tombstones && !superseded(r, map, map_end) {
                                tombstones_removed += 1;
                            }
                        }
                        keep
                    })
                    .map_err(|e| Error::corrupt(self.source_path(src), pos as u64, e))?;
                    stats.records_read += outcome.read;
                    stats.records_removed += outcome.removed;
                    if outcome.emptied {
                        stats.emptied_batches += 1;
                    }
                    let written: &[u8] = if outcome.unchanged { batch } else { &scratch };
                    out.write(written)?;
                    let wh = BatchHeader::parse(written).map_err(|e| corrupt_batch(src, pos, e))?;
                    if first_batch_ts.is_none() {
                        first_batch_ts = Some(wh.max_timestamp);
                    }
                    if wh.max_timestamp > max_ts.0 {
                        max_ts = (wh.max_timestamp, wh.last_offset());
                    }
                    index.feed(
                        batch_pos as u32,
                        rel(wh.last_offset()),
                        (max_ts.0, rel(max_ts.1)),
                        written.len() as u32,
                    );
                    pos += batch.len();
                }
                let new_rec = EntryRecord {
                    term: rec.term,
                    relative_offset: rel(src.base_offset + i64::from(rec.relative_offset)),
                    offset_count: rec.offset_count,
                    position: entry_start as u32,
                    length: (out.position() - entry_start) as u32,
                };
                entries.extend_from_slice(&new_rec.encode(first.first_index + entry_count));
                debug_assert_eq!(first.first_index + entry_count, index_of);
                entry_count += 1;
                last_term = Some(rec.term);
            }
        }
        index.maybe_time_entry((max_ts.0, rel(max_ts.1)));
        let log_len = out.finish()?;
        log_file.sync_data().ctx("fsync", &log_path)?;
        stats.bytes_written += log_len;
        for (ext, bytes) in [
            (ENTRIES_EXT, &entries),
            (OFFSET_INDEX_EXT, &index.offset),
            (TIME_INDEX_EXT, &index.time),
        ] {
            let p = path(ext);
            let f = fs.open(&p, OpenMode::CreateTruncate).ctx("create", &p)?;
            if !bytes.is_empty() {
                f.write_all_at(bytes, 0).ctx("write", &p)?;
            }
            f.sync_data().ctx("fsync", &p)?;
        }
        stats.tombstones_removed += tombstones_removed;
        let last = &sources[sources.len() - 1];
        // Once cleaned, a kept tombstone may go when the group's newest record is older than
        // delete.retention.ms (a group without timestamps counts from now, like a file mtime).
        let newest = if max_ts.0 >= 0 { max_ts.0 } else { self.now_ms };
        let tombstone_horizon =
            kept_tombstones.then(|| newest.saturating_add(self.delete_retention_ms));
        Ok(CleanedGroup {
            base_offset: base,
            end_offset: last.end_offset,
            source_bases: sources.iter().map(|s| s.base_offset).collect(),
            first_index: first.first_index,
            prev_term: first.prev_term,
            entry_count,
            last_term,
            log_len,
            max_timestamp: max_ts.0,
            offset_of_max_timestamp: max_ts.1,
            first_batch_timestamp: first_batch_ts,
            tombstone_horizon,
        })
    }
}

fn corrupt_batch(src: &Source, pos: usize, e: record_batch::BatchError) -> Error {
    Error::corrupt(
        format!("segment {}", src.base_offset),
        pos as u64,
        format!("bad batch: {e}"),
    )
}

fn batch_at(src: &Source, pos: usize) -> Result<&[u8]> {
    let rest = &src.data[pos..];
    let len = record_batch::batch_len_at(rest).map_err(|e| corrupt_batch(src, pos, e))?;
    Ok(&rest[..len])
}

/// Buffered positional writes to a new file.
struct ChunkWriter<'a> {
    file: &'a dyn FileHandle,
    path: &'a Path,
    buf: Vec<u8>,
    written: u64,
}

impl ChunkWriter<'_> {
    fn position(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        if self.buf.len() + data.len() > WRITE_CHUNK {
            self.flush()?;
        }
        if data.len() > WRITE_CHUNK {
            self.file
                .write_all_at(data, self.written)
                .ctx("write", self.path)?;
            self.written += data.len() as u64;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.file
                .write_all_at(&self.buf, self.written)
                .ctx("write", self.path)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.written)
    }
}

/// One record as the cleaner sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
}

/// A later record of the same key exists in the map.
fn superseded(r: &RecordView<'_>, map: &HashMap<Vec<u8>, i64>, map_end: i64) -> bool {
    r.offset < map_end
        && r.key
            .and_then(|k| map.get(k))
            .is_some_and(|&latest| r.offset < latest)
}

fn keep_record(
    r: &RecordView<'_>,
    map: &HashMap<Vec<u8>, i64>,
    map_end: i64,
    drop_tombstones: bool,
) -> bool {
    let Some(key) = r.key else {
        return false;
    };
    if r.offset < map_end
        && let Some(&latest) = map.get(key)
        && r.offset < latest
    {
        return false;
    }
    r.value.is_some() || !drop_tombstones
}

fn read_varlong(buf: &[u8], at: &mut usize) -> std::result::Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("varint too long".into())
}

fn read_varint(buf: &[u8], at: &mut usize) -> std::result::Result<i32, String> {
    let v = read_varlong(buf, at)?;
    i32::try_from(v).map_err(|_| format!("varint {v} out of range"))
}

/// Walks the records of a decompressed records section; returns each record's byte range.
fn walk_records<'a>(
    records: &'a [u8],
    h: &BatchHeader,
    mut f: impl FnMut(RecordView<'a>, std::ops::Range<usize>),
) -> std::result::Result<(), String> {
    let mut at = 0usize;
    for _ in 0..h.record_count {
        let start = at;
        let len = read_varint(records, &mut at)?;
        let len = usize::try_from(len).map_err(|_| format!("negative record length {len}"))?;
        let body_end = at
            .checked_add(len)
            .filter(|e| *e <= records.len())
            .ok_or("record runs past the batch")?;
        let body = &records[at..body_end];
        let mut p = 1usize; // attributes
        let ts_delta = read_varlong(body, &mut p)?;
        let offset_delta = read_varint(body, &mut p)?;
        let key_len = read_varint(body, &mut p)?;
        let key = if key_len < 0 {
            None
        } else {
            let end = p
                .checked_add(key_len as usize)
                .filter(|e| *e <= body.len())
                .ok_or("key runs past the record")?;
            let k = &body[p..end];
            p = end;
            Some(k)
        };
        let value_len = read_varint(body, &mut p)?;
        let value = if value_len < 0 {
            None
        } else {
            let end = p
                .checked_add(value_len as usize)
                .filter(|e| *e <= body.len())
                .ok_or("value runs past the record")?;
            Some(&body[p..end])
        };
        f(
            RecordView {
                offset: h.base_offset + i64::from(offset_delta),
                timestamp: h.first_timestamp.saturating_add(ts_delta),
                key,
                value,
            },
            start..body_end,
        );
        at = body_end;
    }
    if at != records.len() {
        return Err(format!(
            "{} bytes after the last of {} records",
            records.len() - at,
            h.record_count
        ));
    }
    Ok(())
}

fn records_of(batch: &[u8], h: &BatchHeader) -> std::result::Result<Vec<u8>, String> {
    let codec = h.compression().map_err(|e| e.to_string())?;
    compression::decompress(codec, &batch[BATCH_HEADER_LEN..], MAX_DECOMPRESSED_BYTES)
        .map_err(|e| format!("cannot decompress records ({codec:?}): {e}"))
}

/// Calls `f` for every record of a (possibly compressed) data batch.
pub(crate) fn for_each_record(
    batch: &[u8],
    h: &BatchHeader,
    mut f: impl FnMut(&RecordView<'_>),
) -> std::result::Result<(), String> {
    let records = records_of(batch, h)?;
    walk_records(&records, h, |r, _| f(&r))
}

#[derive(Debug, Default)]
struct FilterOutcome {
    unchanged: bool,
    emptied: bool,
    read: u64,
    removed: u64,
}

/// Kafka's `MemoryRecords.filterTo` for one v2 batch: control and empty batches are kept as
/// they are; otherwise the surviving records are re-encoded into `out` with the batch's header
/// (offsets, epoch, producer fields, codec), or an empty header when none survives.
fn filter_batch(
    batch: &[u8],
    h: &BatchHeader,
    out: &mut Vec<u8>,
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
) -> std::result::Result<FilterOutcome, String> {
    if h.is_control() || h.record_count == 0 {
        return Ok(FilterOutcome {
            unchanged: true,
            ..FilterOutcome::default()
        });
    }
    let records = records_of(batch, h)?;
    let mut kept: Vec<std::ops::Range<usize>> = Vec::new();
    let mut read = 0u64;
    let mut max_ts = NO_TIMESTAMP;
    walk_records(&records, h, |r, range| {
        read += 1;
        if keep(&r) {
            max_ts = max_ts.max(r.timestamp);
            kept.push(range);
        }
    })?;
    let removed = read - kept.len() as u64;
    if removed == 0 {
        return Ok(FilterOutcome {
            unchanged: true,
            read,
            ..FilterOutcome::default()
        });
    }
    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
    let codec = h.compression().map_err(|e| e.to_string())?;
    let log_append = h.timestamp_type() == TimestampType::LogAppendTime;
    if kept.is_empty() {
        // Kafka's empty header: no records, uncompressed, both timestamps = the batch maximum.
        let attributes = h.attributes & !COMPRESSION_MASK;
        out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        out[FIRST_TIMESTAMP_AT..FIRST_TIMESTAMP_AT + 8]
            .copy_from_slice(&h.max_timestamp.to_be_bytes());
    } else {
        let mut plain = Vec::with_capacity(kept.iter().map(|r| r.len()).sum());
        for r in &kept {
            plain.extend_from_slice(&records[r.clone()]);
        }
        if codec == Compression::None {
            out.extend_from_slice(&plain);
        } else {
            let packed = compression::compress(codec, &plain)
                .map_err(|e| format!("cannot recompress records ({codec:?}): {e}"))?;
            out.extend_from_slice(&packed);
        }
        if !log_append {
            out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_ts.to_be_bytes());
        }
    }
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| "batch too large")?;
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    record_batch::write_crc(out);
    Ok(FilterOutcome {
        unchanged: false,
        emptied: kept.is_empty(),
        read,
        removed,
    })
}

fn swap_path(dir: &Path, base: i64, ext: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{}{suffix}", file_name(base, ext)))
}

fn remove_if_present(fs: &dyn FileSystem, p: &Path) -> Result<bool> {
    match fs.remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", p, e)),
    }
}

fn remove_group_files(fs: &dyn FileSystem, dir: &Path, base: i64, suffix: &str) -> Result<()> {
    for ext in SWAP_ORDER {
        remove_if_present(fs, &swap_path(dir, base, ext, suffix))?;
    }
    Ok(())
}

/// `.cleaned` -> `.swap` (the `.log` last), the other segments of the group deleted, `.swap` ->
/// final names (the `.log` last); the directory synced after each step.
fn swap_group_files(fs: &dyn FileSystem, dir: &Path, g: &CleanedGroup) -> Result<()> {
    for ext in SWAP_ORDER {
        let from = swap_path(dir, g.base_offset, ext, CLEANED_SUFFIX);
        fs.rename(&from, &swap_path(dir, g.base_offset, ext, SWAP_SUFFIX))
            .ctx("rename", &from)?;
    }
    fs.sync_dir(dir).ctx("fsync directory", dir)?;
    complete_swap(fs, dir, g.base_offset, &g.source_bases[1..])
}

/// Deletes the segments a swap replaces (newest first) and renames its files into place.
fn complete_swap(fs: &dyn FileSystem, dir: &Path, base: i64, replaced: &[i64]) -> Result<()> {
    for &b in replaced.iter().rev() {
        Segment::remove_files(fs, dir, b)?;
    }
    fs.sync_dir(dir).ctx("fsync directory", dir)?;
    for ext in SWAP_ORDER {
        let from = swap_path(dir, base, ext, SWAP_SUFFIX);
        match fs.rename(&from, &Segment::path(dir, base, ext)) {
            Ok(()) => {}
            // Renamed before an interruption.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && ext != LOG_EXT => {}
            Err(e) => return Err(Error::io("rename", from, e)),
        }
    }
    fs.sync_dir(dir).ctx("fsync directory", dir)
}

fn open_cleaned_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    g: &CleanedGroup,
    index_interval: u64,
) -> Result<Segment> {
    let log = MappedFile::open(
        fs,
        &Segment::path(dir, g.base_offset, LOG_EXT),
        g.log_len,
        0,
    )?;
    let entries_len = entry_index::file_len_for(g.entry_count);
    let entries = MappedFile::open(
        fs,
        &Segment::path(dir, g.base_offset, ENTRIES_EXT),
        entries_len,
        0,
    )?;
    let open_index = |ext: &str| -> Result<MappedFile> {
        let p = Segment::path(dir, g.base_offset, ext);
        let len = fs
            .open(&p, OpenMode::Existing)
            .ctx("open", &p)?
            .len()
            .ctx("stat", &p)?;
        MappedFile::open(fs, &p, len, 0)
    };
    let indexes = SparseIndexes::Sealed {
        offset: open_index(OFFSET_INDEX_EXT)?,
        time: open_index(TIME_INDEX_EXT)?,
    };
    let mut seg = Segment::from_parts(
        dir,
        EntriesHeader {
            base_offset: g.base_offset,
            first_index: g.first_index,
            prev_term: g.prev_term,
        },
        log,
        entries,
        indexes,
        g.entry_count,
        g.end_offset,
        g.last_term,
        index_interval,
    );
    seg.max_timestamp = g.max_timestamp;
    seg.offset_of_max_timestamp = g.offset_of_max_timestamp;
    seg.first_batch_timestamp = g.first_batch_timestamp;
    Ok(seg)
}

/// Recovery: discards interrupted cleans and completes interrupted swaps (see the module
/// documentation). Returns the names it removed and notes.
pub(crate) fn complete_interrupted_swaps(
    fs: &dyn FileSystem,
    dir: &Path,
    names: &[String],
    removed: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<bool> {
    let mut changed = false;
    let mut swaps: Vec<i64> = Vec::new();
    for name in names {
        if name.ends_with(CLEANED_SUFFIX) {
            remove_if_present(fs, &dir.join(name))?;
            removed.push(name.clone());
            changed = true;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX)
            && let Some(base) = stem
                .strip_suffix(&format!(".{LOG_EXT}"))
                .and_then(|b| (b.len() == 20).then(|| b.parse::<i64>().ok()).flatten())
        {
            swaps.push(base);
        }
    }
    for name in names {
        if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            let base = stem
                .split_once('.')
                .and_then(|(b, _)| b.parse::<i64>().ok());
            if base.is_none_or(|b| !swaps.contains(&b)) {
                // Renamed to `.swap` before the `.log` was: the clean never took effect.
                remove_if_present(fs, &dir.join(name))?;
                removed.push(name.clone());
                changed = true;
            }
        }
    }
    for base in swaps {
        let end = swap_end_offset(fs, dir, base)?;
        let replaced: Vec<i64> = names
            .iter()
            .filter_map(|n| {
                let (stem, ext) = n.split_once('.')?;
                (ext == LOG_EXT && stem.len() == 20)
                    .then(|| stem.parse::<i64>().ok())
                    .flatten()
            })
            .filter(|b| *b > base && *b < end)
            .collect();
        complete_swap(fs, dir, base, &replaced)?;
        notes.push(format!(
            "completed an interrupted compaction swap of segment {base} (replacing {} more)",
            replaced.len()
        ));
        changed = true;
    }
    if changed {
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
    }
    Ok(changed)
}

/// The end offset of a swap group, from its entry index (`.swap`, or already renamed).
fn swap_end_offset(fs: &dyn FileSystem, dir: &Path, base: i64) -> Result<i64> {
    let swapped = swap_path(dir, base, ENTRIES_EXT, SWAP_SUFFIX);
    let path = match fs.open(&swapped, OpenMode::Existing) {
        Ok(_) => swapped,
        Err(_) => Segment::path(dir, base, ENTRIES_EXT),
    };
    let f = fs.open(&path, OpenMode::Existing).ctx("open", &path)?;
    let len = f.len().ctx("stat", &path)?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0).ctx("read", &path)?;
    let header = EntriesHeader::decode(&buf).map_err(|r| Error::corrupt(&path, 0, r))?;
    let n = entry_index::records_in(len);
    if n == 0 {
        return Ok(base);
    }
    let last = EntryRecord::decode(&buf, n - 1, header.first_index + n - 1)
        .ok_or_else(|| Error::corrupt(&path, len, "last entry record fails its checksum"))?;
    Ok(base + last.end_relative_offset() as i64)
}
