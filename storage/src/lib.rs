//! `shoal-storage`: one partition's log on disk.
//!
//! The on-disk format of record data is Kafka's RecordBatch v2, so a partition directory holds
//! what a Kafka broker would write, plus a dense index of Raft entries: the Raft log of a
//! partition *is* its Kafka log. Synchronous, no async runtime, no network, no Kafka request
//! types.
//!
//! # Parts
//! - [`record_batch`]: the batch header view ([`BatchHeader`]), validation of produced batches,
//!   [`split_batches`], and the patches (`baseOffset`, `partitionLeaderEpoch`, LogAppendTime).
//! - [`batch_builder`]: [`BatchBuilder`], uncompressed v2 batches in Kafka's exact record encoding.
//! - [`PartitionLog`] (`log.rs`): append, Kafka reads, lookups by offset, timestamp and leader
//!   epoch, Raft entry access, truncation, purge, reset, retention and the flush split.
//! - `segment.rs`, `offset_index.rs`, `time_index.rs`, `entry_index.rs`: one segment and its
//!   index formats; `mapped_file.rs`: files written with `pwrite` and read through mappings
//!   (`mmap.rs` holds the crate's only `unsafe`).
//! - [`producer_state`]: idempotent-producer state ([`ProducerStateMap`]: per producer id its
//!   epoch and last five batches), derived from the log: updated on every append, checked before
//!   a client append ([`PartitionLog::check_producer_append`], [`PartitionLog::append_checked`]:
//!   duplicates, fenced epochs, out-of-order sequences), snapshotted (`producer_snapshot.rs`)
//!   on roll and close, rebuilt on open and after truncation.
//! - [`cleaner`]: log compaction (Kafka's `LogCleaner`) for `cleanup.policy=compact` logs:
//!   [`PartitionLog::plan_clean`] (under the lock), [`CleanPlan::run`] (no lock),
//!   [`PartitionLog::finish_clean`] (atomic swap); `compression.rs` holds the codecs it needs to
//!   recompress filtered batches with their own codec.
//! - `recovery.rs`: what happens at open ([`RecoveryReport`]); it first completes or discards an
//!   interrupted compaction swap.
//! - [`flush`]: [`DurablePoint`], [`PendingFlush`] (fsync without the log lock) and [`Flusher`].
//! - [`FileSystem`] / [`FileHandle`]: the IO seam; [`RealFs`] and the fault-injecting
//!   [`fault_fs::FaultFs`] (torn writes, EIO, ENOSPC, failed fsyncs, crashes).
//!
//! # Data flow
//! `append(index, term, batches, now_ms)` validates every batch (length, magic, codec, record
//! count, CRC-32C), copies the entry into a scratch buffer and stamps each batch's `baseOffset`
//! (the next offset: a prefix sum of offset counts) and `partitionLeaderEpoch` (= the Raft
//! term; both lie outside the CRC), rolls the segment if `segment_bytes` / `segment_ms` say so,
//! writes the entry to the `.log` and its record to the `.entries` with positional writes, and
//! publishes it. Reads return `Bytes` that borrow the segment's mapping (no copy); only
//! published bytes are handed out. Appends never wait for an fsync: `begin_flush` captures the
//! files not yet synced (the active segment's and any sealed since the last flush),
//! `PendingFlush::sync` runs fdatasync with no lock held (so one sync covers every entry
//! appended before it began: group commit), and `finish_flush` advances the durable point. A
//! failed fsync poisons the log: every later write or flush returns [`Error::Poisoned`]. A
//! truncation, purge or reset that fails part way also poisons it (the files stay a consistent
//! prefix; reopen to continue).
//!
//! # On-disk format
//! A log directory holds, per segment, files named by the segment's base offset (20 digits):
//! - `{base_offset:020}.log`: the batches, back to back, exactly as Kafka stores them. Its
//!   presence defines the segment. A sealed file may be longer than its data (a truncation
//!   never shrinks a mapped file); the data ends where the entry index says.
//! - `{base_offset:020}.entries`: the dense Raft entry index. 40-byte header (magic `SHLE`,
//!   version, base offset, first Raft index, term of the entry before it, CRC-32C), then one
//!   32-byte record per entry: term u64, offset relative to the base u32, number of offsets
//!   u32, byte position u32, byte length u32, reserved u32, CRC-32C (over the Raft index and
//!   the record). Big-endian.
//! - `{base_offset:020}.index`: Kafka's sparse offset index, 8-byte entries (relative offset
//!   u32, position u32), one whenever more than `index_interval_bytes` were appended since the
//!   last, keyed by the batch's last offset.
//! - `{base_offset:020}.timeindex`: Kafka's time index, 12-byte entries (timestamp i64,
//!   relative offset u32): the running maximum timestamp and the last offset of the batch that
//!   set it, added with the offset index entries when the maximum grew, plus a final entry with
//!   the segment's maximum when it is sealed.
//! - `leader-epochs.checkpoint`: text; `1`, a count, then `epoch start_offset start_index` per
//!   term. `log-start.checkpoint`: text; `1`, then `log_start_offset purged_index purged_term
//!   purged_next_offset` (`-1 -1 -1` before any purge). `recovery-point.checkpoint`: text; `1`,
//!   then the offset below which every segment is sealed and synced. All are replaced
//!   atomically (temp file, fsync, rename, directory fsync).
//! - `{offset:020}.producers`: the producer state as of `offset` (format in
//!   [`producer_state`]), written at every roll (offset = the new segment's base) and at close
//!   (offset = the log end). At open the latest snapshot at or below the log end is loaded and
//!   the batches after it are replayed; snapshots outside `[log start, log end]` are removed and
//!   an unusable one is removed and reported. Not Kafka's `.snapshot` format, which keeps only
//!   each producer's last batch.
//! - `cleaner-offset.checkpoint`: text; `1`, then the first offset the cleaner has not
//!   compacted yet (moved back by truncation and reset).
//! - `{base_offset:020}.{ext}.cleaned` / `.swap`: a compacted segment group being written /
//!   being swapped in; recovery discards the first and completes the second (see [`cleaner`]).
//! - `.lock`: held with an exclusive lock while the log is open.
//!
//! The active (last) segment keeps its sparse indexes in memory; sealing it (a roll) writes both
//! index files atomically and starts a new segment file (synced, with the directory). The sealed
//! data itself is synced by the next flush, which covers every not-yet-synced segment and then
//! advances the recovery point; with `FlushPolicy::Never` the [`Flusher`] syncs sealed segments
//! in the background, as Kafka flushes a segment when it rolls. Truncation seals synchronously.
//! Files grow by their writes (appends at the end, never into holes); the `.log` is mapped ahead
//! of them and only bytes checked to lie inside the file are read.
//!
//! # Truncation without rewriting
//! `truncate_after` never shrinks or rewrites a file that readers may have mapped: later
//! segments are unlinked (mappings stay valid), the segment holding the cut keeps its bytes but
//! is sealed at the cut, and a new segment file starts at the cut offset (if the cut is at a
//! segment's base, that segment is unlinked and recreated). Recovery bounds each segment by the
//! next one's base offset, so truncated entries are never resurrected. The new segment and the
//! directory are synced before the call returns.
//!
//! # Compaction and the Raft entry index
//! Compaction rewrites sealed segments but never changes an offset or an entry: every batch
//! keeps its header (base offset, `lastOffsetDelta`, epoch, producer fields), losing records
//! or, when it loses them all, becoming an empty 61-byte header; the `.entries` records keep
//! their term and offsets (only positions and lengths change). So `entry_meta(index)` is the
//! same before and after a clean, `read_entries` returns the compacted bytes of every retained
//! Raft index, and [`PartitionLog::append`] accepts such entries on a follower (it checks
//! batches in their stored form: fewer records than offsets, or none; client data goes through
//! [`PartitionLog::append_checked`], which applies the full produce check), giving every batch
//! the same base offset by its prefix sum. Each replica compacts on its own, as in Kafka, so
//! replicas agree on offsets and on the latest record of every key but not on bytes.
//!
//! # Live configuration
//! [`PartitionLog::set_config`] validates and applies a new [`LogConfig`] to the open log:
//! roll (`segment_bytes`, `segment_ms`, and `max_compaction_lag_ms` for compacted logs),
//! retention (only with `cleanup_policy.delete`), entry size and cleaning decisions read it
//! from then on.
//!
//! # Recovery rules
//! See `recovery.rs`. In short: stray files of interrupted operations are removed; segments
//! below the recovery point (synced) must be whole (entry index ending exactly at the next base
//! offset, data present) or open fails with [`Error::Corrupt`], and their sparse indexes are
//! sanity-checked and rebuilt (with CRC checks) if needed; segments above it (never synced) and
//! the active segment are verified entry by entry (record checksum, contiguity, batch CRCs,
//! offsets, epoch) and the log ends at the first entry that is not intact (a torn tail, bad CRC,
//! or index and log disagreeing: the shorter consistent prefix wins), later segments removed;
//! the checkpoints are checked against the entries and rebuilt or completed when stale.
//! Everything reported durable before a crash survives.

pub mod batch_builder;
mod checkpoint;
pub mod cleaner;
#[cfg(test)]
mod cleaner_tests;
pub mod clock;
mod compression;
mod config;
mod entry_index;
mod error;
pub mod fault_fs;
mod file_system;
pub mod flush;
mod leader_epoch;
mod log;
#[cfg(test)]
mod log_tests;
mod mapped_file;
mod mmap;
mod offset_index;
mod producer_snapshot;
pub mod producer_state;
#[cfg(test)]
mod producer_state_log_tests;
pub mod record_batch;
mod recovery;
mod segment;
mod time_index;

pub use batch_builder::{BatchBuilder, RecordHeader, control_record_key, control_type};
pub use cleaner::{CleanOutput, CleanPlan, CleanStats, CleanerLimits};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CleanupPolicy, FlushPolicy, LogConfig};
pub use error::{Error, Result};
pub use file_system::{DirLock, FileHandle, FileSystem, LOCK_FILE, OpenMode, RealFile, RealFs};
pub use flush::{DurableListener, DurablePoint, Flusher, PendingFlush, SyncedFlush};
pub use leader_epoch::{EpochEndOffset, EpochEntry};
pub use log::{
    AppendInfo, AppendedBatch, BatchRef, CheckedAppend, EntryMeta, LogId, PartitionLog, PurgePoint,
    ReadOutcome, StoredEntry,
};
pub use mmap::Mapping;
pub use producer_state::{
    AppendCheck, BatchMetadata, ProducerBatch, ProducerEntry, ProducerStateError, ProducerStateMap,
};
pub use record_batch::{
    BATCH_HEADER_LEN, BatchError, BatchHeader, Compression, LOG_OVERHEAD, TimestampType,
    split_batches, validate,
};
pub use recovery::RecoveryReport;
