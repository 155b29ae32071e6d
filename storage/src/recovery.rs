//! Opening a log directory: load sealed segments (bounded by the next segment's base offset),
//! scan and repair the active segment's tail, reconcile the checkpoints.
//!
//! Rules:
//! - A segment exists iff its `.log` exists; stray index files and `*.tmp` files are removed.
//! - Segments that end at or below the recovery point were synced when the point passed them.
//!   Their `.entries` must end exactly at the next segment's base offset and their bytes must be
//!   present; anything else is reported as [`Error::Corrupt`], never dropped. Entry records past
//!   the bound (left by a truncation) and bytes past the last entry are trimmed. Missing or
//!   implausible `.index` / `.timeindex` files are rebuilt from the log, verifying every batch.
//! - Every other segment (sealed but never synced, and the active one) is scanned entry by
//!   entry: an entry is kept when its record is intact and contiguous and its bytes are whole,
//!   CRC-valid batches with the expected offsets and epoch. The first failure ends the log there
//!   (the shorter consistent prefix of `.entries` and `.log` wins): the files are cut to it and
//!   synced, and any later segments are removed. A sealed segment that passes is synced and
//!   sealed again with fresh indexes; the recovery point then moves to the active segment.
//! - `log-start.checkpoint` gives the log start and last purged entry; segments wholly below
//!   it are deleted (an interrupted purge). When the purged entry lies past the recovered log
//!   (its entries were never synced, or a reset was interrupted), the log restarts empty right
//!   after it. A log start past the recovered end moves back to it.
//! - `leader-epochs.checkpoint` is checked against the entry index and extended with the
//!   active segment's terms; if it is missing or inconsistent it is rebuilt from the entries.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use crate::checkpoint::{self, LOG_START_FILE, LogStart};
use crate::config::LogConfig;
use crate::entry_index::{self, EntriesHeader, EntryRecord, HEADER_LEN};
use crate::error::{Error, IoContext, Result};
use crate::file_system::{FileHandle, FileSystem, OpenMode};
use crate::leader_epoch::{self, EpochEntry, LeaderEpochCache};
use crate::log::LogId;
use crate::mapped_file::MappedFile;
use crate::record_batch;
use crate::segment::{
    ENTRIES_EXT, LOG_EXT, OFFSET_INDEX_EXT, Segment, SparseIndexes, TIME_INDEX_EXT, TMP_SUFFIX,
    file_name,
};
use crate::{offset_index, time_index};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Non-zero bytes cut from the end of the active segment's log (a torn or corrupt tail).
    pub truncated_log_bytes: u64,
    /// Intact entry records dropped because their data was missing or invalid.
    pub dropped_entries: u64,
    /// Base offsets of segments whose sparse indexes were rebuilt.
    pub rebuilt_indexes: Vec<i64>,
    /// Files removed (leftovers of interrupted operations).
    pub removed_files: Vec<String>,
    /// Anything else worth a log line.
    pub notes: Vec<String>,
}

pub(crate) struct Recovered {
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    /// The last purged entry and the offset right after it.
    pub(crate) purged: Option<(LogId, i64)>,
    pub(crate) epochs: LeaderEpochCache,
    pub(crate) recovery_point: i64,
    pub(crate) report: RecoveryReport,
}

pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point.checkpoint";

/// Persists the offset below which every segment is sealed and synced.
pub(crate) fn write_recovery_point(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Result<()> {
    checkpoint::write(fs, dir, RECOVERY_POINT_FILE, &format!("1\n{offset}\n"))
}

fn read_recovery_point(fs: &dyn FileSystem, dir: &Path) -> Result<Option<i64>> {
    Ok(
        checkpoint::read(fs, dir, RECOVERY_POINT_FILE)?.and_then(|text| {
            let mut lines = text.lines();
            (lines.next() == Some("1"))
                .then(|| lines.next()?.trim().parse().ok())
                .flatten()
                .filter(|o: &i64| *o >= 0)
        }),
    )
}

/// All `len` bytes of a file mapped for recovery.
fn whole<'a>(map: &'a Option<crate::mmap::Mapping>, len: u64, path: &Path) -> Result<&'a [u8]> {
    match map {
        None => Ok(&[]),
        Some(m) => m
            .prefix(len as usize)
            .ok_or_else(|| Error::corrupt(path, len, "file shrank while being recovered")),
    }
}

fn parse_segment_file(name: &str) -> Option<(i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if ![LOG_EXT, ENTRIES_EXT, OFFSET_INDEX_EXT, TIME_INDEX_EXT].contains(&ext) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

fn open_existing(
    fs: &dyn FileSystem,
    path: &Path,
) -> Result<Option<std::sync::Arc<dyn FileHandle>>> {
    match fs.open(path, OpenMode::Existing) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("open", path, e)),
    }
}

pub(crate) fn recover(fs: &dyn FileSystem, dir: &Path, config: &LogConfig) -> Result<Recovered> {
    let mut report = RecoveryReport::default();
    let mut names = fs.list_dir(dir).ctx("list", dir)?;
    if crate::cleaner::complete_interrupted_swaps(
        fs,
        dir,
        &names,
        &mut report.removed_files,
        &mut report.notes,
    )? {
        names = fs.list_dir(dir).ctx("list", dir)?;
    }
    let mut by_base: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut removed_any = false;
    for name in &names {
        if name.ends_with(TMP_SUFFIX) {
            fs.remove_file(&dir.join(name))
                .ctx("remove", &dir.join(name))?;
            report.removed_files.push(name.clone());
            removed_any = true;
        } else if let Some((base, ext)) = parse_segment_file(name) {
            by_base.entry(base).or_default().insert(ext.to_string());
        }
    }
    for (base, exts) in &by_base {
        if !exts.contains(LOG_EXT) {
            for ext in exts {
                let name = file_name(*base, ext);
                fs.remove_file(&dir.join(&name))
                    .ctx("remove", &dir.join(&name))?;
                report.removed_files.push(name);
                removed_any = true;
            }
        }
    }
    if removed_any {
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
    }
    let bases: Vec<i64> = by_base
        .iter()
        .filter(|(_, exts)| exts.contains(LOG_EXT))
        .map(|(b, _)| *b)
        .collect();

    let log_start_cp = match checkpoint::read(fs, dir, LOG_START_FILE)? {
        Some(text) => {
            let cp = LogStart::decode(&text);
            if cp.is_none() {
                report
                    .notes
                    .push("log-start checkpoint unreadable; ignored".into());
            }
            cp
        }
        None => None,
    };

    // Segments ending at or below the recovery point were synced when sealed: trusted (but
    // checked). The ones above it are verified entry by entry like the active one; the first
    // one found cut short becomes the end of the log.
    let loaded_rp = read_recovery_point(fs, dir)?.unwrap_or(0);
    let mut segments: Vec<Segment> = Vec::new();
    let mut sealed_here = false;
    for (i, &base) in bases.iter().enumerate() {
        let bound = bases.get(i + 1).copied();
        let (seg, complete) = match bound {
            Some(bound) if bound <= loaded_rp => (
                load_sealed(fs, dir, base, bound, config, &mut report)?,
                true,
            ),
            _ => scan_segment(
                fs,
                dir,
                base,
                bound,
                config,
                segments.last(),
                log_start_cp,
                &mut report,
            )?,
        };
        if let Some(prev) = segments.last()
            && seg.first_index != prev.next_index()
        {
            return Err(Error::corrupt(
                dir.join(file_name(base, ENTRIES_EXT)),
                0,
                format!(
                    "segment starts at index {} but the previous one ends at {}",
                    seg.first_index,
                    prev.next_index()
                ),
            ));
        }
        segments.push(seg);
        if bound.is_some() && !complete {
            // Everything after the cut was never durable.
            for &later in &bases[i + 1..] {
                Segment::remove_files(fs, dir, later)?;
                report.removed_files.push(file_name(later, LOG_EXT));
            }
            report.notes.push(format!(
                "unsynced segment {base} is cut short; later segments removed"
            ));
            fs.sync_dir(dir).ctx("fsync directory", dir)?;
            break;
        }
        if let Some(bound) = bound
            && bound > loaded_rp
        {
            // Verified whole: seal it for good (fresh indexes, data synced).
            let last = segments.len() - 1;
            segments[last].seal(fs, true)?;
            sealed_here = true;
        }
    }
    if sealed_here {
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
    }

    // Reconcile with the log-start checkpoint. A purge or reset is durable when it returns, but
    // the entries it kept need not be: when the checkpoint's purged entry lies past the
    // recovered log (or disagrees with it), the log restarts empty right after that entry.
    let mut purged: Option<(LogId, i64)> = None;
    if let Some((pi, pt, pnext)) = log_start_cp.and_then(|c| c.purged) {
        let restart = match segments.last() {
            None => true,
            Some(last) => {
                pi + 1 > last.next_index()
                    || (pi >= segments[0].first_index && term_at(&segments, pi)? != Some(pt))
            }
        };
        if restart {
            if !segments.is_empty() {
                report.notes.push(format!(
                    "log ends before purged entry {pi}; restarting empty after it"
                ));
            }
            while let Some(seg) = segments.pop() {
                Segment::remove_files(fs, dir, seg.base_offset)?;
                report
                    .removed_files
                    .push(file_name(seg.base_offset, LOG_EXT));
            }
            segments.push(new_segment(fs, dir, pnext, pi + 1, Some(pt), config)?);
        }
        if pi + 1 >= segments[0].first_index {
            purged = Some((
                LogId {
                    index: pi,
                    term: pt,
                },
                pnext,
            ));
        }
    }
    if segments.is_empty() {
        segments.push(new_segment(fs, dir, 0, 0, None, config)?);
    }
    if purged.is_none() {
        let first = &segments[0];
        if first.first_index > 0
            && let Some(term) = first.prev_term
        {
            purged = Some((
                LogId {
                    index: first.first_index - 1,
                    term,
                },
                first.base_offset,
            ));
        }
    }
    let mut log_start_offset = segments[0].base_offset;
    if let Some((p, pnext)) = purged {
        log_start_offset = log_start_offset.max(pnext);
        // Segments wholly purged are leftovers of an interrupted purge.
        let first_kept = p.index + 1;
        let mut removed = false;
        while segments.len() > 1 && segments[0].next_index() <= first_kept {
            Segment::remove_files(fs, dir, segments[0].base_offset)?;
            report
                .removed_files
                .push(file_name(segments[0].base_offset, LOG_EXT));
            segments.remove(0);
            removed = true;
        }
        if removed {
            fs.sync_dir(dir).ctx("fsync directory", dir)?;
        }
    }
    let log_end_offset = segments[segments.len() - 1].next_offset;
    if let Some(cp) = log_start_cp {
        log_start_offset = log_start_offset.max(cp.log_start_offset);
    }
    // DeleteRecords may have moved the start past entries a crash then lost.
    if log_start_offset > log_end_offset {
        log_start_offset = log_end_offset;
        let cp = LogStart {
            log_start_offset,
            purged: purged.map(|(p, o)| (p.index, p.term, o)),
        };
        checkpoint::write(fs, dir, LOG_START_FILE, &cp.encode())?;
        report.notes.push(format!(
            "log start moved back to the log end {log_end_offset}"
        ));
    }
    let purged_id = purged.map(|(p, _)| p);
    let epochs = load_epochs(fs, dir, &segments, purged_id, &mut report)?;
    report.segments = segments.len();
    let recovery_point = segments[segments.len() - 1].base_offset;
    if recovery_point != loaded_rp {
        write_recovery_point(fs, dir, recovery_point)?;
    }
    Ok(Recovered {
        recovery_point,
        segments,
        log_start_offset,
        purged,
        epochs,
        report,
    })
}

fn term_at(segments: &[Segment], index: u64) -> Result<Option<u64>> {
    let si = segments
        .partition_point(|s| s.first_index <= index)
        .saturating_sub(1);
    let s = &segments[si];
    if index < s.first_index || index >= s.next_index() {
        return Ok(None);
    }
    Ok(Some(s.record(index - s.first_index)?.term))
}

fn new_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    base: i64,
    first_index: u64,
    prev_term: Option<u64>,
    config: &LogConfig,
) -> Result<Segment> {
    let mut seg = Segment::create(
        fs,
        dir,
        base,
        first_index,
        prev_term,
        config.segment_bytes,
        config.index_interval_bytes,
    )?;
    seg.sync()?;
    fs.sync_dir(dir).ctx("fsync directory", dir)?;
    Ok(seg)
}

type HeaderRead = (
    std::sync::Arc<dyn FileHandle>,
    Result<EntriesHeader, String>,
);

fn read_header(fs: &dyn FileSystem, path: &Path) -> Result<Option<HeaderRead>> {
    let Some(f) = open_existing(fs, path)? else {
        return Ok(None);
    };
    let len = f.len().ctx("stat", path)?;
    let mut buf = vec![0u8; HEADER_LEN.min(len as usize)];
    f.read_exact_at(&mut buf, 0).ctx("read", path)?;
    Ok(Some((f, EntriesHeader::decode(&buf))))
}

fn load_sealed(
    fs: &dyn FileSystem,
    dir: &Path,
    base: i64,
    bound: i64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Segment> {
    let entries_path = Segment::path(dir, base, ENTRIES_EXT);
    let log_path = Segment::path(dir, base, LOG_EXT);
    let (ef, header) = read_header(fs, &entries_path)?.ok_or_else(|| {
        Error::corrupt(
            &entries_path,
            0,
            "entry index of a sealed segment is missing",
        )
    })?;
    let header = header.map_err(|reason| Error::corrupt(&entries_path, 0, reason))?;
    if header.base_offset != base {
        return Err(Error::corrupt(
            &entries_path,
            0,
            format!("header names base offset {}", header.base_offset),
        ));
    }
    let span = (bound - base) as u64;
    let ent_len = ef.len().ctx("stat", &entries_path)?;
    let n = entry_index::records_in(ent_len);
    let (kept, last) = {
        let map = if ent_len > 0 {
            Some(ef.map(ent_len as usize).ctx("mmap", &entries_path)?)
        } else {
            None
        };
        let bytes: &[u8] = whole(&map, ent_len, &entries_path)?;
        let rec = |slot: u64| {
            EntryRecord::decode(bytes, slot, header.first_index + slot).ok_or_else(|| {
                Error::corrupt(
                    &entries_path,
                    entry_index::file_len_for(slot),
                    format!(
                        "entry record {} fails its checksum",
                        header.first_index + slot
                    ),
                )
            })
        };
        let (mut lo, mut hi) = (0u64, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if u64::from(rec(mid)?.relative_offset) < span {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let last = if lo > 0 { Some(rec(lo - 1)?) } else { None };
        (lo, last)
    };
    let end_rel = last.map_or(0, |l| l.end_relative_offset());
    if end_rel != span {
        return Err(Error::corrupt(
            &entries_path,
            entry_index::file_len_for(kept),
            format!(
                "entries end at offset {} but the next segment starts at {bound}",
                base + end_rel as i64
            ),
        ));
    }
    let logical = last.map_or(0, |l| l.end_position());
    let lf = open_existing(fs, &log_path)?
        .ok_or_else(|| Error::corrupt(&log_path, 0, "log file vanished"))?;
    let log_len = lf.len().ctx("stat", &log_path)?;
    if log_len < logical {
        return Err(Error::corrupt(
            &log_path,
            log_len,
            format!("sealed segment is missing data: {logical} bytes expected"),
        ));
    }
    if log_len > logical {
        lf.set_len(logical).ctx("truncate", &log_path)?;
        lf.sync_data().ctx("fsync", &log_path)?;
    }
    if ent_len > entry_index::file_len_for(kept) {
        ef.set_len(entry_index::file_len_for(kept))
            .ctx("truncate", &entries_path)?;
        ef.sync_data().ctx("fsync", &entries_path)?;
    }
    let log = MappedFile::from_handle(&log_path, lf, logical, 0)?;
    let entries = MappedFile::from_handle(&entries_path, ef, entry_index::file_len_for(kept), 0)?;
    let last_term = last.map(|l| l.term);
    let indexes = load_sparse_indexes(fs, dir, base, span, logical)?;
    let rebuild = indexes.is_none();
    let mut seg = Segment::from_parts(
        dir,
        header,
        log,
        entries,
        indexes.unwrap_or(SparseIndexes::Building(Default::default())),
        kept,
        bound,
        last_term,
        config.index_interval_bytes,
    );
    if rebuild {
        seg.rebuild_indexes(true)?;
        seg.seal(fs, true)?;
        fs.sync_dir(dir).ctx("fsync directory", dir)?;
        report.rebuilt_indexes.push(base);
    } else if let Some((ts, rel)) = time_index::last(seg.time_index()?) {
        seg.max_timestamp = ts;
        seg.offset_of_max_timestamp = base + i64::from(rel);
    }
    Ok(seg)
}

/// Opens a sealed segment's sparse indexes if both exist and pass the sanity checks.
fn load_sparse_indexes(
    fs: &dyn FileSystem,
    dir: &Path,
    base: i64,
    span: u64,
    size: u64,
) -> Result<Option<SparseIndexes>> {
    let op = Segment::path(dir, base, OFFSET_INDEX_EXT);
    let tp = Segment::path(dir, base, TIME_INDEX_EXT);
    let (Some(of), Some(tf)) = (open_existing(fs, &op)?, open_existing(fs, &tp)?) else {
        return Ok(None);
    };
    let (ol, tl) = (of.len().ctx("stat", &op)?, tf.len().ctx("stat", &tp)?);
    let offset = MappedFile::from_handle(&op, of, ol, 0)?;
    let time = MappedFile::from_handle(&tp, tf, tl, 0)?;
    if !offset_index::looks_valid(offset.published()?, span, size)
        || !time_index::looks_valid(time.published()?, span)
    {
        return Ok(None);
    }
    Ok(Some(SparseIndexes::Sealed { offset, time }))
}

/// Verifies a segment entry by entry and cuts its files after the last intact entry. With a
/// `bound` (the next segment's base offset) entries at or past it are ignored, and the result
/// says whether the segment reached it. The segment comes back unsealed (indexes in memory).
#[allow(clippy::too_many_arguments)]
fn scan_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    base: i64,
    bound: Option<i64>,
    config: &LogConfig,
    prev: Option<&Segment>,
    log_start_cp: Option<LogStart>,
    report: &mut RecoveryReport,
) -> Result<(Segment, bool)> {
    let span = bound.map(|b| (b - base) as u64);
    let entries_path = Segment::path(dir, base, ENTRIES_EXT);
    let log_path = Segment::path(dir, base, LOG_EXT);
    let expected_first = prev.map(Segment::next_index);
    let header = match read_header(fs, &entries_path)? {
        Some((_, Ok(h)))
            if h.base_offset == base && expected_first.is_none_or(|f| f == h.first_index) =>
        {
            Some(h)
        }
        Some((_, Ok(_))) => {
            report.notes.push(format!("entry index of the active segment {base} does not match its neighbours; its entries are dropped"));
            None
        }
        Some((_, Err(reason))) => {
            report.notes.push(format!("entry index header of the active segment {base} is unreadable ({reason}); its entries are dropped"));
            None
        }
        None => {
            report.notes.push(format!(
                "entry index of the active segment {base} is missing; its entries are dropped"
            ));
            None
        }
    };
    let header = match header {
        Some(h) => h,
        None => {
            let (first_index, prev_term) = match (prev, log_start_cp.and_then(|c| c.purged)) {
                (Some(p), _) => (p.next_index(), p.tail_term()),
                (None, Some((i, t, _))) => (i + 1, Some(t)),
                (None, None) => (0, None),
            };
            let h = EntriesHeader {
                base_offset: base,
                first_index,
                prev_term,
            };
            let f = fs
                .open(&entries_path, OpenMode::CreateTruncate)
                .ctx("create", &entries_path)?;
            f.write_all_at(&h.encode(), 0).ctx("write", &entries_path)?;
            h
        }
    };
    let ef = open_existing(fs, &entries_path)?
        .ok_or_else(|| Error::corrupt(&entries_path, 0, "entry index vanished"))?;
    let lf = open_existing(fs, &log_path)?
        .ok_or_else(|| Error::corrupt(&log_path, 0, "log file vanished"))?;
    let ent_len = ef.len().ctx("stat", &entries_path)?;
    let log_len = lf.len().ctx("stat", &log_path)?;

    // Scan with temporary mappings, dropped before the files are cut.
    let (kept, valid_len, next_rel, last_term, dropped, garbage) = {
        let emap = if ent_len > 0 {
            Some(ef.map(ent_len as usize).ctx("mmap", &entries_path)?)
        } else {
            None
        };
        let lmap = if log_len > 0 {
            Some(lf.map(log_len as usize).ctx("mmap", &log_path)?)
        } else {
            None
        };
        let ents: &[u8] = whole(&emap, ent_len, &entries_path)?;
        let data: &[u8] = whole(&lmap, log_len, &log_path)?;
        let mut slot = 0u64;
        let mut pos = 0u64;
        let mut rel = 0u64;
        let mut last_term = header.prev_term;
        while let Some(rec) = EntryRecord::decode(ents, slot, header.first_index + slot) {
            if span.is_some_and(|span| u64::from(rec.relative_offset) >= span)
                || !entry_is_intact(&rec, data, base, pos, rel, last_term)
            {
                break;
            }
            pos = rec.end_position();
            rel = rec.end_relative_offset();
            last_term = Some(rec.term);
            slot += 1;
        }
        let mut dropped = 0u64;
        while EntryRecord::decode(ents, slot + dropped, header.first_index + slot + dropped)
            .is_some()
        {
            dropped += 1;
        }
        let garbage = data[pos as usize..]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i as u64 + 1);
        (slot, pos, rel, last_term, dropped, garbage)
    };
    let complete = span.is_none_or(|span| next_rel == span);
    if !complete || bound.is_none() {
        // Only a segment that ends the log can have a torn tail; past a bound lie the remains
        // of a truncation.
        if garbage > 0 || dropped > 0 {
            report.notes.push(format!(
                "segment {base}: kept {kept} entries ({valid_len} bytes), cut {garbage} bytes of torn or unindexed tail"
            ));
        }
        report.truncated_log_bytes += garbage;
        report.dropped_entries += dropped;
    }
    let ent_valid = entry_index::file_len_for(kept);
    if log_len != valid_len {
        lf.set_len(valid_len).ctx("truncate", &log_path)?;
    }
    if ent_len != ent_valid {
        ef.set_len(ent_valid).ctx("truncate", &entries_path)?;
    }
    lf.sync_data().ctx("fsync", &log_path)?;
    ef.sync_data().ctx("fsync", &entries_path)?;
    let log = MappedFile::from_handle(&log_path, lf, valid_len, config.segment_bytes)?;
    let entries = MappedFile::from_handle(&entries_path, ef, ent_valid, 0)?;
    let mut seg = Segment::from_parts(
        dir,
        header,
        log,
        entries,
        SparseIndexes::Building(Default::default()),
        kept,
        base + next_rel as i64,
        (kept > 0).then_some(last_term).flatten(),
        config.index_interval_bytes,
    );
    seg.rebuild_indexes(false)?;
    // Index files are rewritten when the segment is sealed; drop stale ones.
    for ext in [OFFSET_INDEX_EXT, TIME_INDEX_EXT] {
        let p = Segment::path(dir, base, ext);
        match fs.remove_file(&p) {
            Ok(()) => report.removed_files.push(file_name(base, ext)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", p, e)),
        }
    }
    Ok((seg, complete))
}

/// Whether entry `rec` is contiguous with what precedes it and its bytes are whole, valid
/// batches with the expected offsets and leader epoch.
fn entry_is_intact(
    rec: &EntryRecord,
    data: &[u8],
    base: i64,
    pos: u64,
    rel: u64,
    last_term: Option<u64>,
) -> bool {
    if u64::from(rec.position) != pos
        || u64::from(rec.relative_offset) != rel
        || rec.offset_count == 0
        || rec.end_position() > data.len() as u64
        || rec.term > i32::MAX as u64
        || last_term.is_some_and(|t| rec.term < t)
    {
        return false;
    }
    let bytes = &data[pos as usize..rec.end_position() as usize];
    let mut at = 0usize;
    let mut next = base + rel as i64;
    while at < bytes.len() {
        let Ok(len) = record_batch::batch_len_at(&bytes[at..]) else {
            return false;
        };
        let Ok(h) = record_batch::validate_stored(&bytes[at..at + len]) else {
            return false;
        };
        if h.base_offset != next || h.partition_leader_epoch != rec.term as i32 {
            return false;
        }
        next = h.next_offset();
        at += len;
    }
    next - (base + rel as i64) == i64::from(rec.offset_count)
}

/// The leader-epoch cache: the checkpoint for sealed segments (verified), extended with the
/// active segment's terms; rebuilt from every entry record when the checkpoint fails a check.
fn load_epochs(
    fs: &dyn FileSystem,
    dir: &Path,
    segments: &[Segment],
    purged: Option<LogId>,
    report: &mut RecoveryReport,
) -> Result<LeaderEpochCache> {
    let active = &segments[segments.len() - 1];
    let first_index = purged.map_or(segments[0].first_index, |p| {
        (p.index + 1).max(segments[0].first_index)
    });
    let checkpoint = match checkpoint::read(fs, dir, leader_epoch::CHECKPOINT_FILE)? {
        Some(text) => match LeaderEpochCache::decode(&text) {
            Ok(c) => Some(c),
            Err(reason) => {
                report.notes.push(format!(
                    "leader-epoch checkpoint unreadable ({reason}); rebuilt"
                ));
                None
            }
        },
        None => None,
    };
    let sealed_end = active.first_index;
    if first_index >= active.next_index() {
        return Ok(LeaderEpochCache::for_empty_log(
            purged.map(|p| p.term),
            active.next_offset,
            active.next_index(),
        ));
    }
    let mut cache = match checkpoint {
        Some(mut c) => {
            c.truncate_from_end(sealed_end);
            if epochs_consistent(&c, segments, first_index, sealed_end)? {
                c
            } else {
                report
                    .notes
                    .push("leader-epoch checkpoint disagrees with the entry index; rebuilt".into());
                rebuild_epochs(segments, first_index, sealed_end)?
            }
        }
        None => rebuild_epochs(segments, first_index, sealed_end)?,
    };
    for slot in 0..active.entry_count {
        let index = active.first_index + slot;
        if index < first_index {
            continue;
        }
        let rec = active.record(slot)?;
        cache.assign(EpochEntry {
            epoch: rec.term,
            start_offset: active.base_offset + i64::from(rec.relative_offset),
            start_index: index,
        });
    }
    if let Some(p) = purged {
        let start = if p.index + 1 < active.next_index() {
            let si = segments
                .partition_point(|s| s.first_index <= p.index + 1)
                .saturating_sub(1);
            let s = &segments[si];
            s.base_offset + i64::from(s.record(p.index + 1 - s.first_index)?.relative_offset)
        } else {
            active.next_offset
        };
        cache.truncate_from_start(p.index + 1, start);
    }
    Ok(cache)
}

fn epochs_consistent(
    c: &LeaderEpochCache,
    segments: &[Segment],
    first_index: u64,
    sealed_end: u64,
) -> Result<bool> {
    if sealed_end <= first_index {
        return Ok(true);
    }
    let mut prev_epoch = None;
    for e in c.entries() {
        if e.start_index >= sealed_end {
            return Ok(false);
        }
        if e.start_index >= first_index {
            if term_at(segments, e.start_index)? != Some(e.epoch) {
                return Ok(false);
            }
            if e.start_index > first_index && term_at(segments, e.start_index - 1)? == Some(e.epoch)
            {
                return Ok(false);
            }
        }
        prev_epoch = Some(e.epoch);
    }
    // The epoch in force at the end of the sealed segments must be the latest one listed.
    Ok(prev_epoch.is_some() && term_at(segments, sealed_end - 1)? == prev_epoch)
}

fn rebuild_epochs(
    segments: &[Segment],
    first_index: u64,
    sealed_end: u64,
) -> Result<LeaderEpochCache> {
    let mut cache = LeaderEpochCache::default();
    for seg in segments {
        for slot in 0..seg.entry_count {
            let index = seg.first_index + slot;
            if index < first_index || index >= sealed_end {
                continue;
            }
            let rec = seg.record(slot)?;
            cache.assign(EpochEntry {
                epoch: rec.term,
                start_offset: seg.base_offset + i64::from(rec.relative_offset),
                start_index: index,
            });
        }
    }
    Ok(cache)
}
