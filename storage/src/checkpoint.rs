//! Small checkpoint files (text, written via temp file + fsync + rename + directory fsync).
//!
//! `log-start.checkpoint`: version line `1`, then `log_start_offset purged_index purged_term
//! purged_next_offset` (`-1 -1 -1` when nothing was purged).

use std::io;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::file_system::{FileSystem, OpenMode};
use crate::segment::write_file_atomically;

pub(crate) const LOG_START_FILE: &str = "log-start.checkpoint";

/// Reads a checkpoint; `None` if it does not exist.
pub(crate) fn read(fs: &dyn FileSystem, dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(name);
    let f = match fs.open(&path, OpenMode::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let len = f.len().ctx("stat", &path)?;
    if len > 1 << 24 {
        return Ok(Some(String::new()));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0).ctx("read", &path)?;
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Replaces a checkpoint durably.
pub(crate) fn write(fs: &dyn FileSystem, dir: &Path, name: &str, text: &str) -> Result<()> {
    write_file_atomically(fs, dir, name, text.as_bytes())?;
    fs.sync_dir(dir).ctx("fsync directory", dir)
}

/// The log start and the last purged Raft entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogStart {
    pub(crate) log_start_offset: i64,
    /// Last purged entry: index, term, and the offset right after it.
    pub(crate) purged: Option<(u64, u64, i64)>,
}

impl LogStart {
    pub(crate) fn encode(&self) -> String {
        match self.purged {
            Some((i, t, o)) => format!("1\n{} {i} {t} {o}\n", self.log_start_offset),
            None => format!("1\n{} -1 -1 -1\n", self.log_start_offset),
        }
    }

    pub(crate) fn decode(text: &str) -> Option<LogStart> {
        let mut lines = text.lines();
        if lines.next()? != "1" {
            return None;
        }
        let parts: Vec<&str> = lines.next()?.split_whitespace().collect();
        if lines.next().is_some() {
            return None;
        }
        match parts.as_slice() {
            [o, "-1", "-1", "-1"] => Some(LogStart {
                log_start_offset: o.parse().ok().filter(|o: &i64| *o >= 0)?,
                purged: None,
            }),
            [o, i, t, n] => Some(LogStart {
                log_start_offset: o.parse().ok().filter(|o: &i64| *o >= 0)?,
                purged: Some((
                    i.parse().ok()?,
                    t.parse().ok()?,
                    n.parse().ok().filter(|n: &i64| *n >= 0)?,
                )),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_start_round_trips() {
        for ls in [
            LogStart {
                log_start_offset: 0,
                purged: None,
            },
            LogStart {
                log_start_offset: 42,
                purged: Some((7, 3, 40)),
            },
        ] {
            assert_eq!(LogStart::decode(&ls.encode()), Some(ls));
        }
        assert_eq!(LogStart::decode("1\n-3 -1 -1 -1\n"), None);
        assert_eq!(LogStart::decode("2\n0 -1 -1 -1\n"), None);
        assert_eq!(LogStart::decode("1\n0 x 1 1\n"), None);
    }
}
