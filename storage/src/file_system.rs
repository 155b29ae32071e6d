//! The IO seam: every file operation of the log goes through [`FileSystem`] and [`FileHandle`],
//! so tests can swap in [`crate::fault_fs::FaultFs`] to inject torn writes, EIO, ENOSPC, failed
//! fsyncs and crashes.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::mmap::Mapping;

/// How [`FileSystem::open`] treats an existing or missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file; fail if it is missing.
    Existing,
    /// Create the file, truncating any previous content.
    CreateTruncate,
}

/// An open file, read and written with positional IO.
pub trait FileHandle: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `pos` (extending the file if needed).
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Fills `buf` from `pos`; fails on a short file.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// Maps the first `len` bytes read-only (`len` <= the file length).
    fn map(&self, len: usize) -> io::Result<Mapping>;
    /// Last modification time in ms since the epoch (Kafka's retention fallback).
    fn modified_ms(&self) -> io::Result<i64>;
}

/// Held while a log directory is open; dropping it releases the directory.
pub trait DirLock: Send + Sync + fmt::Debug {}

/// Directory-level operations.
pub trait FileSystem: Send + Sync + fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Names of the regular files in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `dir` (fails with `WouldBlock` if held elsewhere).
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl RealFs {
    /// The real file system as the shared handle `PartitionLog::open` takes.
    pub fn shared() -> Arc<dyn FileSystem> {
        Arc::new(RealFs)
    }
}

/// A file of the real file system.
#[derive(Debug)]
pub struct RealFile {
    file: File,
}

impl FileHandle for RealFile {
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.file.write_all_at(buf, pos)
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn map(&self, len: usize) -> io::Result<Mapping> {
        Mapping::map(&self.file, len)
    }

    fn modified_ms(&self) -> io::Result<i64> {
        let modified = self.file.metadata()?.modified()?;
        Ok(match modified.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        })
    }
}

#[derive(Debug)]
struct RealDirLock {
    _file: File,
}

impl DirLock for RealDirLock {}

/// Name of the lock file inside a log directory.
pub const LOCK_FILE: &str = ".lock";

impl FileSystem for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if mode == OpenMode::CreateTruncate {
            opts.create(true).truncate(true);
        }
        Ok(Arc::new(RealFile {
            file: opts.open(path)?,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Ok(name) = entry.file_name().into_string()
            {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(RealDirLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "log directory is locked",
            )),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
