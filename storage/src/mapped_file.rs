//! A file written with positional writes at its end and read through a read-only mapping that
//! is created ahead of the writes (remapped, longer, when they outgrow it). Only the published
//! prefix (`len`) is ever read.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, IoContext, Result};
use crate::file_system::{FileHandle, FileSystem, OpenMode};
use crate::mmap::{Mapping, mapped_bytes};

const PAGE: u64 = 4096;
const MIN_CAPACITY: u64 = 64 * 1024;

fn round_up(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

#[derive(Debug)]
pub(crate) struct MappedFile {
    path: PathBuf,
    file: Arc<dyn FileHandle>,
    map: Option<Arc<Mapping>>,
    /// Length of the mapping (may exceed the file).
    capacity: u64,
    /// Published logical length.
    len: u64,
    /// Capacity the file normally grows to (a segment's size); exceeded only when one write
    /// needs more.
    growth_limit: u64,
}

impl MappedFile {
    /// Creates (truncating) an empty file.
    pub(crate) fn create(fs: &dyn FileSystem, path: &Path, growth_limit: u64) -> Result<Self> {
        let file = fs
            .open(path, OpenMode::CreateTruncate)
            .ctx("create", path)?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            file,
            map: None,
            capacity: 0,
            len: 0,
            growth_limit,
        })
    }

    /// Opens an existing file whose first `len` bytes are published. The file may be longer.
    pub(crate) fn open(
        fs: &dyn FileSystem,
        path: &Path,
        len: u64,
        growth_limit: u64,
    ) -> Result<Self> {
        let file = fs.open(path, OpenMode::Existing).ctx("open", path)?;
        Self::from_handle(path, file, len, growth_limit)
    }

    pub(crate) fn from_handle(
        path: &Path,
        file: Arc<dyn FileHandle>,
        len: u64,
        growth_limit: u64,
    ) -> Result<Self> {
        let file_len = file.len().ctx("stat", path)?;
        if file_len < len {
            return Err(Error::corrupt(
                path,
                file_len,
                format!("file holds {file_len} bytes but {len} are expected"),
            ));
        }
        let map = if file_len > 0 {
            Some(Arc::new(file.map(file_len as usize).ctx("mmap", path)?))
        } else {
            None
        };
        Ok(MappedFile {
            path: path.to_path_buf(),
            file,
            map,
            capacity: file_len,
            len,
            growth_limit,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn handle(&self) -> &Arc<dyn FileHandle> {
        &self.file
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn shorter_than_published(&self) -> Error {
        Error::corrupt(
            &self.path,
            self.len,
            "file is shorter than the data written to it (changed by another process?)",
        )
    }

    /// The published bytes.
    pub(crate) fn published(&self) -> Result<&[u8]> {
        match &self.map {
            Some(map) => map
                .prefix(self.len as usize)
                .ok_or_else(|| self.shorter_than_published()),
            None if self.len == 0 => Ok(&[]),
            None => Err(self.shorter_than_published()),
        }
    }

    /// A zero-copy `Bytes` of a published range (clamped to the published length).
    pub(crate) fn bytes(&self, range: Range<u64>) -> Result<Bytes> {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        match &self.map {
            Some(map) => mapped_bytes(map, start as usize..end as usize)
                .ok_or_else(|| self.shorter_than_published()),
            None if end == 0 => Ok(Bytes::new()),
            None => Err(self.shorter_than_published()),
        }
    }

    /// Makes the mapping cover `needed` bytes (the file grows by the writes themselves).
    fn ensure_capacity(&mut self, needed: u64) -> Result<()> {
        if needed <= self.capacity {
            return Ok(());
        }
        let mut target = needed
            .max(self.capacity.saturating_mul(2))
            .max(MIN_CAPACITY);
        if self.growth_limit > 0 {
            target = target.min(needed.max(self.growth_limit));
        }
        let target = round_up(target);
        let map = self.file.map(target as usize).ctx("mmap", &self.path)?;
        self.map = Some(Arc::new(map));
        self.capacity = target;
        Ok(())
    }

    /// Writes `data` at `pos` without publishing it.
    pub(crate) fn write_at(&mut self, data: &[u8], pos: u64) -> Result<()> {
        self.ensure_capacity(pos + data.len() as u64)?;
        self.file.write_all_at(data, pos).ctx("write", &self.path)
    }

    /// Sets the published length (callers only publish bytes they wrote, or shrink it).
    pub(crate) fn publish(&mut self, len: u64) {
        debug_assert!(len <= self.capacity);
        self.len = len;
    }

    /// Cuts the file to `len` (not synced). Only for files whose mapping never left this struct
    /// (index files), so no reader can hold the bytes being cut.
    pub(crate) fn shrink(&mut self, len: u64) -> Result<()> {
        self.map = None;
        if let Err(e) = self.file.set_len(len) {
            // The file kept its length: map it again so the published bytes stay readable.
            if self.capacity > 0 {
                self.map = Some(Arc::new(
                    self.file
                        .map(self.capacity as usize)
                        .ctx("mmap", &self.path)?,
                ));
            }
            return Err(crate::error::Error::io("truncate", &self.path, e));
        }
        self.capacity = len;
        self.len = self.len.min(len);
        if len > 0 {
            self.map = Some(Arc::new(
                self.file.map(len as usize).ctx("mmap", &self.path)?,
            ));
        }
        self.sync()
    }

    pub(crate) fn file_len(&self) -> Result<u64> {
        self.file.len().ctx("stat", &self.path)
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_data().ctx("fsync", &self.path)
    }
}
