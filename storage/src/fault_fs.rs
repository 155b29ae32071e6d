//! A fault-injecting [`FileSystem`] for tests: real files underneath (so mappings are real), plus
//! a record of what has been made durable, so that [`FaultFs::crash`] can rebuild the directory
//! as a power loss could leave it, and rules that make chosen operations fail (EIO, ENOSPC, torn
//! writes, failed fsyncs).
//!
//! Durability model: a file's data becomes durable at a successful `sync_data`; a creation,
//! rename or removal becomes durable at the next successful `sync_dir`. A crash keeps the durable
//! state plus a random prefix of the later operations (data writes per file, namespace
//! operations in order), the last kept write possibly torn.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::file_system::{DirLock, FileHandle, FileSystem, OpenMode, RealFs};
use crate::mmap::Mapping;

/// The operation a [`FaultRule`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    Write,
    SetLen,
    SyncData,
    SyncDir,
    Create,
    Rename,
    Remove,
}

/// What a matching operation does instead of succeeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Fails with EIO, nothing done.
    Eio,
    /// Fails with ENOSPC, nothing done.
    NoSpace,
    /// Writes the first `written` bytes, then fails with EIO.
    TornWrite { written: usize },
}

/// Makes the matching operations fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub op: FaultOp,
    /// Only paths containing this string match (any path if `None`).
    pub path_contains: Option<String>,
    /// Matching operations to let through before failing.
    pub skip: u32,
    /// How many operations fail (`None`: every later one).
    pub count: Option<u32>,
    pub kind: FaultKind,
}

impl FaultRule {
    /// Fails every later `op` with `kind`.
    pub fn always(op: FaultOp, kind: FaultKind) -> Self {
        FaultRule {
            op,
            path_contains: None,
            skip: 0,
            count: None,
            kind,
        }
    }

    /// Fails the next `op` once with `kind`.
    pub fn once(op: FaultOp, kind: FaultKind) -> Self {
        FaultRule {
            count: Some(1),
            ..Self::always(op, kind)
        }
    }

    pub fn on_path(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_string());
        self
    }

    pub fn after(mut self, skip: u32) -> Self {
        self.skip = skip;
        self
    }
}

#[derive(Debug, Clone)]
enum DataOp {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone)]
enum NsOp {
    Create { path: PathBuf, id: u64 },
    Remove { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

#[derive(Debug, Default)]
struct Track {
    durable: Vec<u8>,
    pending: Vec<DataOp>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    next_id: u64,
    files: HashMap<u64, Track>,
    current: HashMap<PathBuf, u64>,
    durable: HashMap<PathBuf, u64>,
    pending_ns: Vec<NsOp>,
    rules: Vec<FaultRule>,
    syncs: u64,
}

impl State {
    /// The fault to inject for this operation, if a rule fires.
    fn fault(&mut self, op: FaultOp, path: &Path) -> Option<FaultKind> {
        let path = path.to_string_lossy();
        let mut fired = None;
        let mut exhausted = None;
        for (i, rule) in self.rules.iter_mut().enumerate() {
            if rule.op != op {
                continue;
            }
            if let Some(fragment) = &rule.path_contains
                && !path.contains(fragment.as_str())
            {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            fired = Some(rule.kind);
            if let Some(count) = rule.count.as_mut() {
                *count -= 1;
                if *count == 0 {
                    exhausted = Some(i);
                }
            }
            break;
        }
        if let Some(i) = exhausted {
            self.rules.remove(i);
        }
        fired
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

fn fault_error(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::NoSpace => io::Error::from(io::ErrorKind::StorageFull),
        FaultKind::Eio | FaultKind::TornWrite { .. } => io::Error::from_raw_os_error(5),
    }
}

fn apply(content: &mut Vec<u8>, op: &DataOp) {
    match op {
        DataOp::Write { pos, data } => {
            let pos = *pos as usize;
            if content.len() < pos + data.len() {
                content.resize(pos + data.len(), 0);
            }
            content[pos..pos + data.len()].copy_from_slice(data);
        }
        DataOp::SetLen(len) => content.resize(*len as usize, 0),
    }
}

/// Small deterministic generator so crashes are reproducible from a seed.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=n`.
    fn upto(&mut self, n: usize) -> usize {
        (self.next() % (n as u64 + 1)) as usize
    }
}

/// How much unsynced state a crash keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Process crash: the page cache survives, every completed write is kept.
    KeepAll,
    /// Power loss: only what was synced survives.
    DropUnsynced,
    /// Power loss that kept a random prefix of the unsynced operations (seeded).
    RandomPrefix { seed: u64 },
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct FaultFs {
    state: Arc<Mutex<State>>,
}

impl FaultFs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a failed test; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn inject(&self, rule: FaultRule) {
        self.lock().rules.push(rule);
    }

    pub fn clear_faults(&self) {
        self.lock().rules.clear();
    }

    /// Successful `sync_data` calls so far.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// Rebuilds the directory as a crash would leave it. Handles opened before the crash fail
    /// with EIO afterwards; drop every log using this file system before reopening.
    pub fn crash(&self, mode: CrashMode) -> io::Result<()> {
        let mut st = self.lock();
        st.generation += 1;
        let mut rng = SplitMix(match mode {
            CrashMode::RandomPrefix { seed } => seed,
            _ => 0,
        });
        let pending_ns = std::mem::take(&mut st.pending_ns);
        let keep_ns = match mode {
            CrashMode::KeepAll => pending_ns.len(),
            CrashMode::DropUnsynced => 0,
            CrashMode::RandomPrefix { .. } => rng.upto(pending_ns.len()),
        };
        let mut ns = st.durable.clone();
        for op in &pending_ns[..keep_ns] {
            match op {
                NsOp::Create { path, id } => {
                    ns.insert(path.clone(), *id);
                }
                NsOp::Remove { path } => {
                    ns.remove(path);
                }
                NsOp::Rename { from, to } => {
                    if let Some(id) = ns.remove(from) {
                        ns.insert(to.clone(), id);
                    }
                }
            }
        }
        let mut contents: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut ids: Vec<u64> = ns.values().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let track = st.files.remove(&id).unwrap_or_default();
            let mut content = track.durable;
            let keep = match mode {
                CrashMode::KeepAll => track.pending.len(),
                CrashMode::DropUnsynced => 0,
                CrashMode::RandomPrefix { .. } => rng.upto(track.pending.len()),
            };
            for op in &track.pending[..keep] {
                apply(&mut content, op);
            }
            if let CrashMode::RandomPrefix { .. } = mode
                && keep < track.pending.len()
                && rng.upto(1) == 1
                && let DataOp::Write { pos, data } = &track.pending[keep]
            {
                let torn = rng.upto(data.len());
                apply(
                    &mut content,
                    &DataOp::Write {
                        pos: *pos,
                        data: data[..torn].to_vec(),
                    },
                );
            }
            contents.insert(id, content);
        }
        // Materialize: unlink everything we track (live mappings stay valid), write fresh files.
        let tracked: Vec<PathBuf> = st.current.keys().cloned().collect();
        for path in tracked {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        st.files.clear();
        st.current.clear();
        for (path, id) in &ns {
            let content = contents.get(id).cloned().unwrap_or_default();
            std::fs::write(path, &content)?;
            st.files.insert(
                *id,
                Track {
                    durable: content,
                    pending: Vec::new(),
                },
            );
            st.current.insert(path.clone(), *id);
        }
        st.durable = ns;
        Ok(())
    }
}

#[derive(Debug)]
struct FaultFile {
    real: Arc<dyn FileHandle>,
    id: u64,
    path: PathBuf,
    generation: u64,
    fs: FaultFs,
}

impl FaultFile {
    fn live(&self, st: &State) -> io::Result<()> {
        if st.generation != self.generation {
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(())
    }
}

impl FileHandle for FaultFile {
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        self.live(&st)?;
        let (data, result) = match st.fault(FaultOp::Write, &self.path) {
            None => (buf, Ok(())),
            Some(FaultKind::TornWrite { written }) => (
                &buf[..written.min(buf.len())],
                Err(fault_error(FaultKind::Eio)),
            ),
            Some(kind) => return Err(fault_error(kind)),
        };
        self.real.write_all_at(data, pos)?;
        if let Some(track) = st.files.get_mut(&self.id) {
            track.pending.push(DataOp::Write {
                pos,
                data: data.to_vec(),
            });
        }
        result
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.live(&self.fs.lock())?;
        self.real.read_exact_at(buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        self.live(&self.fs.lock())?;
        self.real.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        self.live(&st)?;
        if let Some(kind) = st.fault(FaultOp::SetLen, &self.path) {
            return Err(fault_error(kind));
        }
        self.real.set_len(len)?;
        if let Some(track) = st.files.get_mut(&self.id) {
            track.pending.push(DataOp::SetLen(len));
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.fs.lock();
        self.live(&st)?;
        if let Some(kind) = st.fault(FaultOp::SyncData, &self.path) {
            return Err(fault_error(kind));
        }
        self.real.sync_data()?;
        if let Some(track) = st.files.get_mut(&self.id) {
            let pending = std::mem::take(&mut track.pending);
            for op in &pending {
                apply(&mut track.durable, op);
            }
        }
        st.syncs += 1;
        Ok(())
    }

    fn map(&self, len: usize) -> io::Result<Mapping> {
        self.live(&self.fs.lock())?;
        self.real.map(len)
    }

    fn modified_ms(&self) -> io::Result<i64> {
        self.live(&self.fs.lock())?;
        self.real.modified_ms()
    }
}

impl FileSystem for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealFs.create_dir_all(dir)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut st = self.lock();
        let existing = st.current.get(path).copied();
        let id = match (mode, existing) {
            (OpenMode::Existing, Some(id)) => {
                let real = RealFs.open(path, mode)?;
                return Ok(self.wrap(real, id, path, &st));
            }
            (OpenMode::Existing, None) => {
                // A file that predates this FaultFs: take its current content as durable.
                let content = std::fs::read(path)?;
                let id = st.new_id();
                st.files.insert(
                    id,
                    Track {
                        durable: content,
                        pending: Vec::new(),
                    },
                );
                st.current.insert(path.to_path_buf(), id);
                st.durable.insert(path.to_path_buf(), id);
                id
            }
            (OpenMode::CreateTruncate, Some(id)) => {
                if let Some(kind) = st.fault(FaultOp::SetLen, path) {
                    return Err(fault_error(kind));
                }
                if let Some(track) = st.files.get_mut(&id) {
                    track.pending.push(DataOp::SetLen(0));
                }
                id
            }
            (OpenMode::CreateTruncate, None) => {
                if let Some(kind) = st.fault(FaultOp::Create, path) {
                    return Err(fault_error(kind));
                }
                if std::fs::exists(path)? {
                    // Present on disk but unknown: adopt it as durable before truncating.
                    let content = std::fs::read(path)?;
                    let id = st.new_id();
                    st.files.insert(
                        id,
                        Track {
                            durable: content,
                            pending: vec![DataOp::SetLen(0)],
                        },
                    );
                    st.current.insert(path.to_path_buf(), id);
                    st.durable.insert(path.to_path_buf(), id);
                    id
                } else {
                    let id = st.new_id();
                    st.files.insert(id, Track::default());
                    st.current.insert(path.to_path_buf(), id);
                    st.pending_ns.push(NsOp::Create {
                        path: path.to_path_buf(),
                        id,
                    });
                    id
                }
            }
        };
        let real = RealFs.open(path, mode)?;
        Ok(self.wrap(real, id, path, &st))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(kind) = st.fault(FaultOp::Remove, path) {
            return Err(fault_error(kind));
        }
        if !st.current.contains_key(path) && std::fs::exists(path)? {
            let content = std::fs::read(path)?;
            let id = st.new_id();
            st.files.insert(
                id,
                Track {
                    durable: content,
                    pending: Vec::new(),
                },
            );
            st.durable.insert(path.to_path_buf(), id);
        }
        RealFs.remove_file(path)?;
        st.current.remove(path);
        st.pending_ns.push(NsOp::Remove {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(kind) = st.fault(FaultOp::Rename, from) {
            return Err(fault_error(kind));
        }
        RealFs.rename(from, to)?;
        if let Some(id) = st.current.remove(from) {
            st.current.insert(to.to_path_buf(), id);
        }
        st.pending_ns.push(NsOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        RealFs.list_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(kind) = st.fault(FaultOp::SyncDir, dir) {
            return Err(fault_error(kind));
        }
        RealFs.sync_dir(dir)?;
        let pending = std::mem::take(&mut st.pending_ns);
        for op in pending {
            match op {
                NsOp::Create { path, id } => {
                    st.durable.insert(path, id);
                }
                NsOp::Remove { path } => {
                    st.durable.remove(&path);
                }
                NsOp::Rename { from, to } => {
                    if let Some(id) = st.durable.remove(&from) {
                        st.durable.insert(to, id);
                    }
                }
            }
        }
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLock>> {
        RealFs.lock_dir(dir)
    }
}

impl FaultFs {
    fn wrap(
        &self,
        real: Arc<dyn FileHandle>,
        id: u64,
        path: &Path,
        st: &State,
    ) -> Arc<dyn FileHandle> {
        Arc::new(FaultFile {
            real,
            id,
            path: path.to_path_buf(),
            generation: st.generation,
            fs: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_synced_data_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let p = dir.path().join("a");
        let f = fs.open(&p, OpenMode::CreateTruncate).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(dir.path()).unwrap();
        f.write_all_at(b" world", 5).unwrap();
        let q = dir.path().join("b");
        let g = fs.open(&q, OpenMode::CreateTruncate).unwrap();
        g.write_all_at(b"x", 0).unwrap();
        g.sync_data().unwrap();
        fs.crash(CrashMode::DropUnsynced).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert!(!q.exists(), "unsynced directory entry must vanish");
        assert!(
            f.write_all_at(b"z", 0).is_err(),
            "old handles are dead after a crash"
        );
    }

    #[test]
    fn rules_fire_after_skips_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        fs.inject(FaultRule::once(FaultOp::Write, FaultKind::NoSpace).after(1));
        let f = fs
            .open(&dir.path().join("a"), OpenMode::CreateTruncate)
            .unwrap();
        f.write_all_at(b"1", 0).unwrap();
        let err = f.write_all_at(b"2", 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        f.write_all_at(b"3", 1).unwrap();
        fs.inject(FaultRule::once(
            FaultOp::Write,
            FaultKind::TornWrite { written: 2 },
        ));
        assert!(f.write_all_at(b"abcd", 2).is_err());
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"13ab");
    }
}
