//! Read-only memory mappings of segment and index files: the only `unsafe` code in the crate.
//!
//! Invariants the rest of the crate keeps (and that make the mappings sound):
//! 1. A mapping never extends past the end of its file when it is created (checked here).
//! 2. A file that is mapped is never shrunk while any mapping of it is alive. Files grow with
//!    `set_len` before they are remapped; truncation of the log rolls a new file instead of
//!    shrinking one; recovery trims files only before it maps them; a segment's files are
//!    unlinked (which leaves existing mappings valid) rather than truncated.
//! 3. The log directory belongs to one process (an exclusive lock file is held while a log is
//!    open), so no other process shrinks the files under us.
//! 4. Bytes are only written with positional writes (`pwrite`), never through a mapping, so a
//!    mapping is a read-only view and `&[u8]` borrows of it never alias a Rust `&mut`.
//!
//! Readers only ever look at bytes the log has published (written successfully and below its
//! logical end); bytes past that may change under the mapping and are never handed out.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::ops::{Deref, Range};
use std::sync::Arc;

use bytes::Bytes;

/// A read-only shared mapping of the first `len` bytes of a file.
#[derive(Debug)]
pub struct Mapping {
    map: memmap2::Mmap,
}

impl Mapping {
    /// Maps `len` bytes of `file` (which must be at least that long; `len` > 0).
    pub(crate) fn map(file: &File, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map zero bytes",
            ));
        }
        let file_len = file.metadata()?.len();
        if file_len < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("mapping of {len} bytes exceeds the file length {file_len}"),
            ));
        }
        // SAFETY: the mapping covers only bytes that exist in the file (checked just above), and
        // by the module invariants the file is not shrunk while this mapping lives (so no access
        // can fault with SIGBUS) and nothing writes through another mapping that Rust could see
        // as aliased: all writes are `pwrite`s to the file, which the kernel makes visible
        // through the shared page cache. The mapping is read-only.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(Mapping { map })
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Deref for Mapping {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

/// A `Bytes` owner: keeps the mapping alive for as long as any slice of it is referenced.
struct MappedSlice {
    map: Arc<Mapping>,
    range: Range<usize>,
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

/// A zero-copy `Bytes` over `range` of the mapping. Panics if `range` is outside the mapping,
/// which callers rule out by slicing only published bytes.
pub(crate) fn mapped_bytes(map: &Arc<Mapping>, range: Range<usize>) -> Bytes {
    assert!(
        range.start <= range.end && range.end <= map.len(),
        "slice outside the mapping"
    );
    if range.is_empty() {
        return Bytes::new();
    }
    Bytes::from_owner(MappedSlice {
        map: Arc::clone(map),
        range,
    })
}
