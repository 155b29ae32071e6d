//! One segment: `{base_offset:020}.log` with its `.entries`, `.index` and `.timeindex`.
//!
//! The active (last) segment keeps its sparse indexes in memory (recovery rebuilds them from the
//! log) and writes them once, atomically, when it is sealed; sealed segments read them through
//! mappings. The `.log` and `.entries` files are written with `pwrite` and read through
//! mappings that grow with them.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::entry_index::{self, EntriesHeader, EntryRecord, HEADER_LEN, RECORD_LEN};
use crate::error::{Error, IoContext, Result};
use crate::file_system::{FileSystem, OpenMode};
use crate::mapped_file::MappedFile;
use crate::record_batch::{self, BatchHeader, NO_TIMESTAMP};
use crate::{offset_index, time_index};

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const ENTRIES_EXT: &str = "entries";
pub(crate) const OFFSET_INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Writes a whole file durably under its final name: temp file, fsync, rename. The caller
/// syncs the directory.
pub(crate) fn write_file_atomically(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let path = dir.join(name);
    let f = fs
        .open(&tmp, OpenMode::CreateTruncate)
        .ctx("create", &tmp)?;
    if !bytes.is_empty() {
        f.write_all_at(bytes, 0).ctx("write", &tmp)?;
    }
    f.sync_data().ctx("fsync", &tmp)?;
    fs.rename(&tmp, &path).ctx("rename", &tmp)
}

/// Accumulates the sparse index entries of the active segment as batches are appended.
#[derive(Debug, Default)]
pub(crate) struct IndexBuilder {
    interval: u64,
    bytes_since_entry: u64,
    pub(crate) offset: Vec<u8>,
    pub(crate) time: Vec<u8>,
    last_time_entry: i64,
}

impl IndexBuilder {
    pub(crate) fn new(interval: u64) -> Self {
        IndexBuilder {
            interval,
            bytes_since_entry: 0,
            offset: Vec::new(),
            time: Vec::new(),
            last_time_entry: NO_TIMESTAMP,
        }
    }

    /// Kafka's rule: an entry for this batch when more than `interval` bytes came since the last.
    pub(crate) fn feed(
        &mut self,
        position: u32,
        relative_last_offset: u32,
        max_so_far: (i64, u32),
        len: u32,
    ) {
        if self.bytes_since_entry > self.interval {
            self.offset
                .extend_from_slice(&offset_index::encode(relative_last_offset, position));
            self.maybe_time_entry(max_so_far);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(len);
    }

    pub(crate) fn maybe_time_entry(&mut self, (ts, rel): (i64, u32)) {
        if ts > self.last_time_entry {
            self.time.extend_from_slice(&time_index::encode(ts, rel));
            self.last_time_entry = ts;
        }
    }
}

/// Where the sparse indexes live.
#[derive(Debug)]
pub(crate) enum SparseIndexes {
    Building(IndexBuilder),
    Sealed {
        offset: MappedFile,
        time: MappedFile,
    },
}

/// One batch of an entry being appended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchInfo {
    pub(crate) position_in_entry: u32,
    pub(crate) len: u32,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) dir: PathBuf,
    pub(crate) base_offset: i64,
    pub(crate) first_index: u64,
    pub(crate) prev_term: Option<u64>,
    pub(crate) log: MappedFile,
    pub(crate) entries: MappedFile,
    pub(crate) indexes: SparseIndexes,
    pub(crate) entry_count: u64,
    pub(crate) next_offset: i64,
    pub(crate) last_term: Option<u64>,
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: i64,
    pub(crate) first_batch_timestamp: Option<i64>,
    pub(crate) created_ms: Option<i64>,
    pub(crate) index_interval: u64,
    /// Data was written since the segment's files were last synced.
    pub(crate) unsynced: bool,
}

impl Segment {
    pub(crate) fn path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
        dir.join(file_name(base_offset, ext))
    }

    /// Creates the files of a new empty segment (`.entries` first: `.log` marks existence).
    /// The caller syncs them and the directory.
    pub(crate) fn create(
        fs: &dyn FileSystem,
        dir: &Path,
        base_offset: i64,
        first_index: u64,
        prev_term: Option<u64>,
        segment_bytes: u64,
        index_interval: u64,
    ) -> Result<Segment> {
        let header = EntriesHeader {
            base_offset,
            first_index,
            prev_term,
        };
        let mut entries = MappedFile::create(fs, &Self::path(dir, base_offset, ENTRIES_EXT), 0)?;
        entries.write_at(&header.encode(), 0)?;
        entries.publish(HEADER_LEN as u64);
        let log = MappedFile::create(fs, &Self::path(dir, base_offset, LOG_EXT), segment_bytes)?;
        Ok(Segment {
            dir: dir.to_path_buf(),
            base_offset,
            first_index,
            prev_term,
            log,
            entries,
            indexes: SparseIndexes::Building(IndexBuilder::new(index_interval)),
            entry_count: 0,
            next_offset: base_offset,
            last_term: None,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            created_ms: None,
            index_interval,
            unsynced: false,
        })
    }

    /// Assembles a loaded segment (recovery).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        dir: &Path,
        header: EntriesHeader,
        log: MappedFile,
        entries: MappedFile,
        indexes: SparseIndexes,
        entry_count: u64,
        next_offset: i64,
        last_term: Option<u64>,
        index_interval: u64,
    ) -> Segment {
        Segment {
            dir: dir.to_path_buf(),
            base_offset: header.base_offset,
            first_index: header.first_index,
            prev_term: header.prev_term,
            log,
            entries,
            indexes,
            entry_count,
            next_offset,
            last_term,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: header.base_offset,
            first_batch_timestamp: None,
            created_ms: None,
            index_interval,
            unsynced: false,
        }
    }

    /// Term of the last entry, or of the entry before the segment when it is empty.
    pub(crate) fn tail_term(&self) -> Option<u64> {
        self.last_term.or(self.prev_term)
    }

    pub(crate) fn next_index(&self) -> u64 {
        self.first_index + self.entry_count
    }

    pub(crate) fn size(&self) -> u64 {
        self.log.len()
    }

    pub(crate) fn is_sealed(&self) -> bool {
        matches!(self.indexes, SparseIndexes::Sealed { .. })
    }

    /// Term of the entry before `first_index + slot` (None if unknown).
    pub(crate) fn term_before(&self, slot: u64) -> Result<Option<u64>> {
        if slot == 0 {
            Ok(self.prev_term)
        } else {
            Ok(Some(self.record(slot - 1)?.term))
        }
    }

    fn relative(&self, offset: i64) -> u32 {
        // Callers keep offsets within [base, base + i32::MAX].
        (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Appends one entry (already validated and stamped). Publishes it only when both the
    /// log bytes and the entry record were written.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append_entry(
        &mut self,
        index: u64,
        term: u64,
        data: &[u8],
        batches: &[BatchInfo],
        base_offset: i64,
        next_offset: i64,
    ) -> Result<()> {
        let position = self.log.len();
        self.log.write_at(data, position)?;
        let record = EntryRecord {
            term,
            relative_offset: self.relative(base_offset),
            offset_count: (next_offset - base_offset) as u32,
            position: position as u32,
            length: data.len() as u32,
        };
        let record_at = entry_index::file_len_for(self.entry_count);
        self.entries.write_at(&record.encode(index), record_at)?;
        self.log.publish(position + data.len() as u64);
        self.entries.publish(record_at + RECORD_LEN as u64);
        self.unsynced = true;
        if self.entry_count == 0 {
            self.first_batch_timestamp = batches.iter().map(|b| b.max_timestamp).max();
        }
        self.entry_count += 1;
        self.next_offset = next_offset;
        self.last_term = Some(term);
        for b in batches {
            self.observe_batch(
                position as u32 + b.position_in_entry,
                b.last_offset,
                b.max_timestamp,
                b.len,
            );
        }
        Ok(())
    }

    fn observe_batch(&mut self, position: u32, last_offset: i64, max_timestamp: i64, len: u32) {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        let rel_last = self.relative(last_offset);
        let max_so_far = (
            self.max_timestamp,
            self.relative(self.offset_of_max_timestamp),
        );
        if let SparseIndexes::Building(b) = &mut self.indexes {
            b.feed(position, rel_last, max_so_far, len);
        }
    }

    /// The record of entry `first_index + slot`, checked.
    pub(crate) fn record(&self, slot: u64) -> Result<EntryRecord> {
        EntryRecord::decode(self.entries.published()?, slot, self.first_index + slot).ok_or_else(
            || {
                Error::corrupt(
                    self.entries.path(),
                    entry_index::file_len_for(slot),
                    format!(
                        "entry record {} fails its checksum",
                        self.first_index + slot
                    ),
                )
            },
        )
    }

    pub(crate) fn offset_index(&self) -> Result<&[u8]> {
        match &self.indexes {
            SparseIndexes::Building(b) => Ok(&b.offset),
            SparseIndexes::Sealed { offset, .. } => offset.published(),
        }
    }

    pub(crate) fn time_index(&self) -> Result<&[u8]> {
        match &self.indexes {
            SparseIndexes::Building(b) => Ok(&b.time),
            SparseIndexes::Sealed { time, .. } => time.published(),
        }
    }

    /// Header of the batch at `position`; `None` at the end of the published bytes.
    pub(crate) fn header_at(&self, position: u64) -> Result<Option<BatchHeader>> {
        let data = self.log.published()?;
        let pos = position as usize;
        if pos >= data.len() {
            return Ok(None);
        }
        let rest = &data[pos..];
        let header = BatchHeader::parse(rest)
            .and_then(|h| record_batch::batch_len_at(rest).map(|_| h))
            .map_err(|e| {
                Error::corrupt(self.log.path(), position, format!("bad batch header: {e}"))
            })?;
        Ok(Some(header))
    }

    /// Position and header of the first batch whose last offset is >= `offset`.
    pub(crate) fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let mut pos = u64::from(offset_index::lookup(
            self.offset_index()?,
            self.relative(offset),
        ));
        while let Some(h) = self.header_at(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    pub(crate) fn bytes(&self, start: u64, end: u64) -> Result<Bytes> {
        self.log.bytes(start..end)
    }

    pub(crate) fn sync(&mut self) -> Result<()> {
        self.log.sync()?;
        self.entries.sync()?;
        self.unsynced = false;
        Ok(())
    }

    /// Seals the segment: writes its sparse indexes (with the final time index entry holding
    /// the segment's maximum timestamp) and, if `sync`, makes its data durable (otherwise the
    /// next flush does). The caller syncs the directory.
    pub(crate) fn seal(&mut self, fs: &dyn FileSystem, sync: bool) -> Result<()> {
        // `.entries` is extended ahead of writes; cut it to its records so a sealed segment's
        // entry index has no slack (its mapping never leaves this struct).
        let exact = entry_index::file_len_for(self.entry_count);
        if self.entries.file_len()? > exact {
            self.entries.shrink(exact)?;
        }
        if sync {
            self.sync()?;
        }
        let max = (
            self.max_timestamp,
            self.relative(self.offset_of_max_timestamp),
        );
        if let SparseIndexes::Building(b) = &mut self.indexes {
            b.maybe_time_entry(max);
            let offset_name = file_name(self.base_offset, OFFSET_INDEX_EXT);
            let time_name = file_name(self.base_offset, TIME_INDEX_EXT);
            write_file_atomically(fs, &self.dir, &offset_name, &b.offset)?;
            write_file_atomically(fs, &self.dir, &time_name, &b.time)?;
            let offset_len = b.offset.len() as u64;
            let time_len = b.time.len() as u64;
            let offset = MappedFile::open(fs, &self.dir.join(offset_name), offset_len, 0)?;
            let time = MappedFile::open(fs, &self.dir.join(time_name), time_len, 0)?;
            self.indexes = SparseIndexes::Sealed { offset, time };
        }
        Ok(())
    }

    /// Keeps the first `keep` (>= 1) entries and seals the segment. Bytes past the new end stay
    /// in the `.log` (readers may hold them); recovery bounds the segment by the next one.
    pub(crate) fn truncate_and_seal(&mut self, fs: &dyn FileSystem, keep: u64) -> Result<()> {
        let last = self.record(keep - 1)?;
        let new_len = last.end_position();
        self.log.publish(new_len);
        // The `.entries` mapping never leaves this struct, so it can be dropped and the file cut.
        self.entries.shrink(entry_index::file_len_for(keep))?;
        self.entry_count = keep;
        self.next_offset = self.base_offset + last.end_relative_offset() as i64;
        self.last_term = Some(last.term);
        self.rebuild_indexes(false)?;
        self.seal(fs, true)
    }

    /// Rebuilds the sparse indexes and timestamp statistics by walking the published batches,
    /// optionally verifying each batch's CRC.
    pub(crate) fn rebuild_indexes(&mut self, verify: bool) -> Result<()> {
        self.indexes = SparseIndexes::Building(IndexBuilder::new(self.index_interval));
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = self.base_offset;
        self.first_batch_timestamp = None;
        let len = self.log.len();
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        while pos < len {
            let header = match self.header_at(pos)? {
                Some(h) => h,
                None => break,
            };
            let end = pos + header.total_len() as u64;
            if end > len {
                return Err(Error::corrupt(
                    self.log.path(),
                    pos,
                    "batch runs past the segment end",
                ));
            }
            if verify {
                record_batch::validate_stored(&self.log.published()?[pos as usize..end as usize])
                    .map_err(|e| Error::corrupt(self.log.path(), pos, e.to_string()))?;
            }
            if header.base_offset != expected {
                return Err(Error::corrupt(
                    self.log.path(),
                    pos,
                    format!(
                        "batch at offset {} where {expected} was expected",
                        header.base_offset
                    ),
                ));
            }
            if self.first_batch_timestamp.is_none() {
                self.first_batch_timestamp = Some(header.max_timestamp);
            }
            self.observe_batch(
                pos as u32,
                header.last_offset(),
                header.max_timestamp,
                header.total_len() as u32,
            );
            expected = header.next_offset();
            pos = end;
        }
        if expected != self.next_offset {
            return Err(Error::corrupt(
                self.log.path(),
                pos,
                format!(
                    "batches end at offset {expected} but entries end at {}",
                    self.next_offset
                ),
            ));
        }
        Ok(())
    }

    /// Removes the segment's files, `.log` first (it marks the segment's existence).
    pub(crate) fn remove_files(fs: &dyn FileSystem, dir: &Path, base_offset: i64) -> Result<()> {
        for ext in [LOG_EXT, ENTRIES_EXT, OFFSET_INDEX_EXT, TIME_INDEX_EXT] {
            let p = Self::path(dir, base_offset, ext);
            match fs.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", p, e)),
            }
        }
        Ok(())
    }
}
