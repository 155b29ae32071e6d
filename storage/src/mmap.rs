//! Read-only memory mappings of segment and index files: the only `unsafe` code in the crate.
//!
//! A mapping may be longer than its file: the active segment is mapped ahead of its writes
//! (which append at the end of the file, so the file system never sees holes). Bytes past the
//! end of the file must never be touched (SIGBUS), so a slice is only ever made of a prefix
//! that has been checked against the file's length ([`Mapping::prefix`]). That check is
//! sufficient because of the invariants the rest of the crate keeps:
//! 1. A file that is mapped is never shrunk while any mapping of it is alive: truncation of the
//!    log rolls a new file instead of cutting one; recovery trims files only before mapping
//!    them; index files are cut only after their (never shared) mapping is dropped; deleting a
//!    segment unlinks its files, which leaves existing mappings valid.
//! 2. The log directory belongs to one process (an exclusive lock is held while a log is open),
//!    so nobody else shrinks the files.
//! 3. Bytes are written only with positional writes (`pwrite`), never through a mapping, and a
//!    byte inside a published prefix is never written again, so `&[u8]` slices of it never see
//!    a Rust-visible mutation.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// A read-only shared mapping of the first `len()` bytes of a file (possibly past its end).
#[derive(Debug)]
pub struct Mapping {
    raw: memmap2::MmapRaw,
    /// Length of the prefix known to lie inside the file.
    verified: AtomicUsize,
    /// A handle to re-check the file's length when a longer prefix is needed (`None` when the
    /// whole mapping was inside the file from the start).
    file: Option<File>,
}

impl Mapping {
    /// Maps `len` (> 0) bytes of `file`; `len` may exceed the file's current length.
    pub(crate) fn map(file: &File, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map zero bytes",
            ));
        }
        let file_len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        // A raw mapping hands out no references; reads go through `prefix`, which only exposes
        // bytes checked to lie inside the file (see the module invariants).
        let raw = memmap2::MmapOptions::new()
            .len(len)
            .map_raw_read_only(file)?;
        let verified = file_len.min(len);
        let file = if verified < len {
            Some(file.try_clone()?)
        } else {
            None
        };
        Ok(Mapping {
            raw,
            verified: AtomicUsize::new(verified),
            file,
        })
    }

    /// Length of the mapping (not all of it need be readable).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.len() == 0
    }

    /// Checks that the first `end` bytes lie inside the file.
    fn ensure_readable(&self, end: usize) -> bool {
        if end > self.raw.len() {
            return false;
        }
        if end <= self.verified.load(Ordering::Acquire) {
            return true;
        }
        let Some(file) = &self.file else { return false };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        let file_len = usize::try_from(meta.len())
            .unwrap_or(usize::MAX)
            .min(self.raw.len());
        self.verified.fetch_max(file_len, Ordering::AcqRel);
        end <= file_len
    }

    /// The first `end` bytes, if they are inside the mapping and the file.
    pub(crate) fn prefix(&self, end: usize) -> Option<&[u8]> {
        if !self.ensure_readable(end) {
            return None;
        }
        // SAFETY: `[0, end)` lies within the mapping and within the file (checked against its
        // length just above or earlier; files never shrink while mapped), so every byte is
        // backed by the file and readable; the pointer of a live mapping is non-null and the
        // slice lives no longer than `self`. Nothing writes these bytes through Rust (module
        // invariant 3).
        Some(unsafe { std::slice::from_raw_parts(self.raw.as_ptr(), end) })
    }
}

/// A `Bytes` owner: keeps the mapping alive for as long as any slice of it is referenced.
struct MappedSlice {
    map: Arc<Mapping>,
    range: Range<usize>,
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `mapped_bytes` checked that `range.end` is readable before creating this
        // owner, readability never shrinks (module invariant 1), and `range.start <= range.end`.
        unsafe {
            std::slice::from_raw_parts(
                self.map.raw.as_ptr().add(self.range.start),
                self.range.len(),
            )
        }
    }
}

/// A zero-copy `Bytes` over `range` of the mapping, or `None` if the range is not readable.
pub(crate) fn mapped_bytes(map: &Arc<Mapping>, range: Range<usize>) -> Option<Bytes> {
    if range.start > range.end || !map.ensure_readable(range.end) {
        return None;
    }
    if range.is_empty() {
        return Some(Bytes::new());
    }
    Some(Bytes::from_owner(MappedSlice {
        map: Arc::clone(map),
        range,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_bytes_inside_the_file_are_readable() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"hello").unwrap();
        let m = Arc::new(Mapping::map(&f, 1 << 16).unwrap());
        assert_eq!(m.prefix(5), Some(&b"hello"[..]));
        assert_eq!(m.prefix(6), None);
        f.write_all(b" world").unwrap();
        assert_eq!(m.prefix(11), Some(&b"hello world"[..]));
        let b = mapped_bytes(&m, 6..11).unwrap();
        drop(m);
        assert_eq!(&b[..], b"world");
        assert!(Mapping::map(&f, 0).is_err());
    }
}
