//! Producer-state snapshot files (`{offset:020}.producers`, format in `producer_state.rs`):
//! listing, reading, writing (temp file, fsync, rename, directory fsync) and removal.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::file_system::{FileSystem, OpenMode};
use crate::producer_state::{ProducerStateMap, SNAPSHOT_EXT};
use crate::segment::write_file_atomically;

/// Largest snapshot read back (a corrupt length never makes us allocate more).
const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;

pub(crate) fn file_name(offset: i64) -> String {
    format!("{offset:020}.{SNAPSHOT_EXT}")
}

fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(file_name(offset))
}

/// Offsets of the snapshot files in `dir`.
pub(crate) fn list(fs: &dyn FileSystem, dir: &Path) -> Result<BTreeSet<i64>> {
    let names = fs.list_dir(dir).ctx("list", dir)?;
    Ok(names
        .iter()
        .filter_map(|name| {
            let (stem, ext) = name.split_once('.')?;
            (ext == SNAPSHOT_EXT && stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
                .then(|| stem.parse().ok())
                .flatten()
        })
        .collect())
}

/// Why a snapshot could not be used.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The file is damaged or does not describe `offset`: delete it and use an older one.
    Unusable(String),
    /// The file system failed.
    Io(Error),
}

pub(crate) fn read(
    fs: &dyn FileSystem,
    dir: &Path,
    offset: i64,
) -> std::result::Result<ProducerStateMap, ReadFailure> {
    let p = path(dir, offset);
    let f = fs
        .open(&p, OpenMode::Existing)
        .map_err(|e| ReadFailure::Io(Error::io("open", &p, e)))?;
    let len = f
        .len()
        .map_err(|e| ReadFailure::Io(Error::io("stat", &p, e)))?;
    if len > MAX_SNAPSHOT_BYTES {
        return Err(ReadFailure::Unusable(format!("{len} bytes is too large")));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0)
        .map_err(|e| ReadFailure::Io(Error::io("read", &p, e)))?;
    let map = ProducerStateMap::decode(&buf).map_err(|e| ReadFailure::Unusable(e.to_string()))?;
    if map.end_offset() != offset {
        return Err(ReadFailure::Unusable(format!(
            "it describes offset {} but is named for {offset}",
            map.end_offset()
        )));
    }
    Ok(map)
}

/// Writes the snapshot of `map` at its end offset, durably.
pub(crate) fn write(fs: &dyn FileSystem, dir: &Path, map: &ProducerStateMap) -> Result<()> {
    write_file_atomically(fs, dir, &file_name(map.end_offset()), &map.encode())?;
    fs.sync_dir(dir).ctx("fsync directory", dir)
}

/// Removes the snapshot at `offset` (a missing file is fine).
pub(crate) fn remove(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Result<()> {
    let p = path(dir, offset);
    match fs.remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", p, e)),
    }
}
