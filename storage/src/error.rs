//! The crate's error type.

use std::io;
use std::path::PathBuf;

use crate::producer_state::ProducerStateError;
use crate::record_batch::BatchError;

/// Everything a log operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A batch handed to `append` is malformed; nothing was written.
    #[error("invalid record batch at byte {position} of the entry: {source}")]
    Batch {
        position: usize,
        #[source]
        source: BatchError,
    },
    /// An entry must carry at least one batch.
    #[error("entry carries no record batch")]
    EmptyEntry,
    #[error("entry of {size} bytes exceeds the limit of {max} bytes")]
    EntryTooLarge { size: usize, max: usize },
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error(
        "index {index} is outside the log (first index {first_index}, next index {next_index})"
    )]
    IndexOutOfRange {
        index: u64,
        first_index: u64,
        next_index: u64,
    },
    #[error("term {term} of entry {index} does not match the stored term {stored}")]
    TermMismatch { index: u64, term: u64, stored: u64 },
    #[error("term {term} is below the last term {last_term}")]
    TermRegression { term: u64, last_term: u64 },
    #[error("term {0} does not fit a Kafka partition leader epoch (i32)")]
    TermTooLarge(u64),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no space left on device during {op} on {}", path.display())]
    NoSpace { op: &'static str, path: PathBuf },
    /// An fsync failed earlier; the log refuses every further write and flush.
    #[error("log is poisoned by a failed fsync and accepts no further writes")]
    Poisoned,
    /// Stored data that should be intact is not. Never silently dropped.
    #[error("corrupt data in {} at byte {position}: {reason}", file.display())]
    Corrupt {
        file: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("invalid log configuration: {0}")]
    Config(String),
    #[error("log directory {} is already open (lock held)", dir.display())]
    Locked { dir: PathBuf },
    /// A client's idempotent batch is fenced or out of sequence; nothing was written.
    #[error(transparent)]
    Producer(#[from] ProducerStateError),
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Classifies an I/O failure: a full disk becomes [`Error::NoSpace`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        let path = path.into();
        if source.kind() == io::ErrorKind::StorageFull || source.raw_os_error() == Some(28) {
            Error::NoSpace { op, path }
        } else {
            Error::Io { op, path, source }
        }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        position: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            file: file.into(),
            position,
            reason: reason.into(),
        }
    }
}

/// Adds the operation and path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
