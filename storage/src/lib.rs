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
//! - `recovery.rs`: what happens at open ([`RecoveryReport`]).
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
//! active segment's files, `PendingFlush::sync` runs fdatasync with no lock held (so one sync
//! covers every entry appended before it began: group commit), and `finish_flush` advances the
//! durable point. A failed fsync poisons the log: every later write or flush returns
//! [`Error::Poisoned`].
//!
//! # On-disk format
//! A log directory holds, per segment, files named by the segment's base offset (20 digits):
//! - `{base_offset:020}.log`: the batches, back to back, exactly as Kafka stores them. Its
//!   presence defines the segment. The file may be longer than its data (it is extended ahead
//!   of writes and never shrunk while mapped); the data ends where the entry index says.
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
//!   term. `log-start.checkpoint`: text; `1`, then `log_start_offset purged_index purged_term`.
//!   Both are replaced atomically (temp file, fsync, rename, directory fsync).
//! - `.lock`: held with an exclusive lock while the log is open.
//!
//! The active (last) segment keeps its sparse indexes in memory; sealing a segment (a roll or a
//! truncation) fsyncs its `.log` and `.entries` and writes both index files atomically. Sealed
//! segments are therefore always durable.
//!
//! # Truncation without rewriting
//! `truncate_after` never shrinks or rewrites a file that readers may have mapped: later
//! segments are unlinked (mappings stay valid), the segment holding the cut keeps its bytes but
//! is sealed at the cut, and a new segment file starts at the cut offset (if the cut is at a
//! segment's base, that segment is unlinked and recreated). Recovery bounds each segment by the
//! next one's base offset, so truncated entries are never resurrected. The new segment and the
//! directory are synced before the call returns.
//!
//! # Recovery rules
//! See `recovery.rs`. In short: stray files of interrupted operations are removed; sealed
//! segments must be whole (entry index ending exactly at the next base offset, data present) or
//! open fails with [`Error::Corrupt`]; their sparse indexes are sanity-checked and rebuilt (with
//! CRC checks) if needed; the active segment is scanned and cut at the first entry whose record
//! or batches are not intact (torn tail, bad CRC, index and log disagreeing: the shorter
//! consistent prefix wins), and its indexes are rebuilt; the checkpoints are checked against
//! the entries and rebuilt or completed when stale. Everything flushed before a crash survives.

pub mod batch_builder;
mod checkpoint;
pub mod clock;
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
pub mod record_batch;
mod recovery;
mod segment;
mod time_index;

pub use batch_builder::{BatchBuilder, RecordHeader, control_record_key, control_type};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{FlushPolicy, LogConfig};
pub use error::{Error, Result};
pub use file_system::{DirLock, FileHandle, FileSystem, LOCK_FILE, OpenMode, RealFile, RealFs};
pub use flush::{DurableListener, DurablePoint, Flusher, PendingFlush, SyncedFlush};
pub use leader_epoch::{EpochEndOffset, EpochEntry};
pub use log::{
    AppendInfo, AppendedBatch, BatchRef, EntryMeta, LogId, PartitionLog, PurgePoint, ReadOutcome,
    StoredEntry,
};
pub use mmap::Mapping;
pub use record_batch::{
    BATCH_HEADER_LEN, BatchError, BatchHeader, Compression, LOG_OVERHEAD, TimestampType,
    split_batches, validate,
};
pub use recovery::RecoveryReport;
