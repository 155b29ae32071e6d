//! The small files a Raft group keeps next to its partition log (through the storage crate's
//! [`FileSystem`] seam, so fault-injection tests cover them):
//!
//! - `raft-vote`: the vote, replaced atomically and fsynced on every change (Raft's safety
//!   rests on it).
//! - `raft-snapshot`: the last snapshot's metadata (last log id, membership, next offset) and
//!   the caller's state (controller groups only); fsynced, since a purge relies on it.
//! - `raft-checkpoint`: applied and committed log ids plus the membership history, written
//!   periodically without fsync. It only saves a restart from re-applying and rescanning the
//!   whole log; a missing, stale or damaged checkpoint falls back to the snapshot.
//!
//! Each file is `magic (4) | version (1) | body | CRC-32C of everything before (4)`, big-endian.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use shoal_storage::{FileSystem, OpenMode};

use crate::binary_codec::{
    DecodeError, Reader, invalid, put_opt_log_id, put_stored_membership, put_vote,
};
use crate::types::{RaftLogId, SnapshotData, SnapshotMeta, StoredMembership, Vote};

const VOTE_FILE: &str = "raft-vote";
const SNAPSHOT_FILE: &str = "raft-snapshot";
const CHECKPOINT_FILE: &str = "raft-checkpoint";
const TMP_SUFFIX: &str = ".tmp";
const VERSION: u8 = 0;
/// Largest file read back (a controller snapshot holds the whole metadata image).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// What survives a restart besides the log: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Checkpoint {
    pub(crate) applied: Option<RaftLogId>,
    pub(crate) committed: Option<RaftLogId>,
    /// Memberships in log order, the last effective at `applied`.
    pub(crate) memberships: Vec<StoredMembership>,
}

/// A snapshot as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: SnapshotData,
}

/// A group's files in its directory.
#[derive(Debug, Clone)]
pub(crate) struct GroupFiles {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
}

fn corrupt(path: &Path, e: DecodeError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is damaged: {e}", path.display()),
    )
}

impl GroupFiles {
    pub(crate) fn new(fs: Arc<dyn FileSystem>, dir: impl Into<PathBuf>) -> Self {
        GroupFiles {
            fs,
            dir: dir.into(),
        }
    }

    pub(crate) fn read_vote(&self) -> io::Result<Option<Vote>> {
        let path = self.dir.join(VOTE_FILE);
        let Some(body) = self.read_file(&path, *b"SHRV")? else {
            return Ok(None);
        };
        // A damaged vote file is an error, never a silent reset: forgetting a vote could let
        // this node vote twice in one term.
        let mut r = Reader::new(&body);
        let vote = r.vote().map_err(|e| corrupt(&path, e))?;
        r.finish("vote").map_err(|e| corrupt(&path, e))?;
        Ok(Some(vote))
    }

    /// Replaces the vote durably (data and directory entry fsynced).
    pub(crate) fn write_vote(&self, vote: &Vote) -> io::Result<()> {
        let mut body = Vec::with_capacity(17);
        put_vote(&mut body, vote);
        self.write_file(VOTE_FILE, *b"SHRV", &body, true)
    }

    pub(crate) fn read_snapshot(&self) -> io::Result<Option<StoredSnapshot>> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let Some(body) = self.read_file(&path, *b"SHRS")? else {
            return Ok(None);
        };
        decode_snapshot(&body)
            .map(Some)
            .map_err(|e| corrupt(&path, e))
    }

    pub(crate) fn write_snapshot(&self, s: &StoredSnapshot) -> io::Result<()> {
        let mut body = Vec::with_capacity(128 + s.data.app_state.len());
        put_opt_log_id(&mut body, s.meta.last_log_id.as_ref());
        put_stored_membership(&mut body, &s.meta.last_membership);
        body.put_i64(s.data.next_offset);
        body.put_u32(s.data.app_state.len() as u32);
        body.extend_from_slice(&s.data.app_state);
        self.write_file(SNAPSHOT_FILE, *b"SHRS", &body, true)
    }

    /// The checkpoint, or `None` if missing or damaged (it is only an optimization).
    pub(crate) fn read_checkpoint(&self) -> Option<Checkpoint> {
        let path = self.dir.join(CHECKPOINT_FILE);
        let body = match self.read_file(&path, *b"SHRC") {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                // Expected after a crash: the checkpoint is written without fsync.
                tracing::info!(path = %path.display(), error = %e, "ignoring unreadable checkpoint");
                return None;
            }
        };
        match decode_checkpoint(&body) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::info!(path = %path.display(), error = %e, "ignoring damaged checkpoint");
                None
            }
        }
    }

    pub(crate) fn write_checkpoint(&self, c: &Checkpoint) -> io::Result<()> {
        let mut body = Vec::with_capacity(64 + 64 * c.memberships.len());
        put_opt_log_id(&mut body, c.applied.as_ref());
        put_opt_log_id(&mut body, c.committed.as_ref());
        body.put_u32(c.memberships.len() as u32);
        for m in &c.memberships {
            put_stored_membership(&mut body, m);
        }
        self.write_file(CHECKPOINT_FILE, *b"SHRC", &body, false)
    }

    fn read_file(&self, path: &Path, magic: [u8; 4]) -> io::Result<Option<Vec<u8>>> {
        let f = match self.fs.open(path, OpenMode::Existing) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = f.len()?;
        if len > MAX_FILE_BYTES {
            return Err(corrupt(path, invalid("file", format!("{len} bytes"))));
        }
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, 0)?;
        if buf.len() < 9 || buf[..4] != magic {
            return Err(corrupt(path, invalid("file", "bad header")));
        }
        let (content, crc) = buf.split_at(buf.len() - 4);
        let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(content) != stored {
            return Err(corrupt(path, invalid("file", "checksum mismatch")));
        }
        if content[4] != VERSION {
            return Err(corrupt(
                path,
                invalid("file", format!("unknown version {}", content[4])),
            ));
        }
        Ok(Some(content[5..].to_vec()))
    }

    fn write_file(&self, name: &str, magic: [u8; 4], body: &[u8], durable: bool) -> io::Result<()> {
        let mut content = Vec::with_capacity(body.len() + 9);
        content.extend_from_slice(&magic);
        content.push(VERSION);
        content.extend_from_slice(body);
        let crc = crc32c::crc32c(&content);
        content.extend_from_slice(&crc.to_be_bytes());
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        let f = self.fs.open(&tmp, OpenMode::CreateTruncate)?;
        f.write_all_at(&content, 0)?;
        if durable {
            f.sync_data()?;
        }
        drop(f);
        self.fs.rename(&tmp, &self.dir.join(name))?;
        if durable {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn decode_snapshot(body: &[u8]) -> Result<StoredSnapshot, DecodeError> {
    let mut r = Reader::new(body);
    let last_log_id = r.opt_log_id()?;
    let last_membership = r.stored_membership()?;
    let next_offset = r.i64("snapshot next offset")?;
    let app_state = Bytes::copy_from_slice(r.len_prefixed("snapshot state")?);
    r.finish("snapshot")?;
    Ok(StoredSnapshot {
        meta: SnapshotMeta {
            last_log_id,
            last_membership,
        },
        data: SnapshotData {
            next_offset,
            app_state,
        },
    })
}

fn decode_checkpoint(body: &[u8]) -> Result<Checkpoint, DecodeError> {
    let mut r = Reader::new(body);
    let applied = r.opt_log_id()?;
    let committed = r.opt_log_id()?;
    let n = r.u32("checkpoint memberships")?;
    if n > 1024 {
        return Err(invalid("checkpoint", format!("{n} memberships")));
    }
    let mut memberships = Vec::with_capacity(n as usize);
    for _ in 0..n {
        memberships.push(r.stored_membership()?);
    }
    r.finish("checkpoint")?;
    Ok(Checkpoint {
        applied,
        committed,
        memberships,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use shoal_storage::RealFs;
    use shoal_storage::fault_fs::{CrashMode, FaultFs, FaultKind, FaultOp, FaultRule};

    use super::*;
    use crate::types::{Membership, log_id};

    fn files() -> (tempfile::TempDir, GroupFiles) {
        let dir = tempfile::tempdir().unwrap();
        let f = GroupFiles::new(RealFs::shared(), dir.path());
        (dir, f)
    }

    fn membership() -> StoredMembership {
        let voters: BTreeSet<u64> = [1, 2, 3].into();
        StoredMembership::new(
            Some(log_id(1, 0)),
            Membership::new_with_defaults(vec![voters], []),
        )
    }

    #[test]
    fn vote_round_trips_and_damage_is_an_error() {
        let (dir, f) = files();
        assert_eq!(f.read_vote().unwrap(), None);
        f.write_vote(&Vote::new(3, 2)).unwrap();
        f.write_vote(&Vote::new_committed(4, 1)).unwrap();
        assert_eq!(f.read_vote().unwrap(), Some(Vote::new_committed(4, 1)));
        let path = dir.path().join(VOTE_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            f.read_vote().unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        std::fs::write(&path, b"junk").unwrap();
        assert!(f.read_vote().is_err());
    }

    #[test]
    fn snapshot_and_checkpoint_round_trip() {
        let (dir, f) = files();
        assert_eq!(f.read_snapshot().unwrap(), None);
        assert_eq!(f.read_checkpoint(), None);
        let snap = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(log_id(2, 40)),
                last_membership: membership(),
            },
            data: SnapshotData {
                next_offset: 1234,
                app_state: Bytes::from_static(b"state"),
            },
        };
        f.write_snapshot(&snap).unwrap();
        assert_eq!(f.read_snapshot().unwrap(), Some(snap));
        let cp = Checkpoint {
            applied: Some(log_id(2, 50)),
            committed: Some(log_id(2, 51)),
            memberships: vec![membership()],
        };
        f.write_checkpoint(&cp).unwrap();
        assert_eq!(f.read_checkpoint(), Some(cp));
        // A damaged checkpoint is ignored, a damaged snapshot is an error.
        for name in [CHECKPOINT_FILE, SNAPSHOT_FILE] {
            let path = dir.path().join(name);
            let mut bytes = std::fs::read(&path).unwrap();
            let n = bytes.len();
            bytes[n / 2] ^= 0x55;
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(f.read_checkpoint(), None);
        assert!(f.read_snapshot().is_err());
    }

    #[test]
    fn a_saved_vote_survives_power_loss_and_a_failed_write_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let f = GroupFiles::new(Arc::new(fs.clone()), dir.path());
        f.write_vote(&Vote::new(7, 3)).unwrap();
        fs.inject(FaultRule::once(FaultOp::SyncData, FaultKind::Eio));
        assert!(f.write_vote(&Vote::new(8, 3)).is_err());
        fs.crash(CrashMode::DropUnsynced).unwrap();
        let f = GroupFiles::new(Arc::new(fs.clone()), dir.path());
        assert_eq!(f.read_vote().unwrap(), Some(Vote::new(7, 3)));
    }
}
