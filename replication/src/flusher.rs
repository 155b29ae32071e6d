//! Group commit for many partition logs with a few shared threads.
//!
//! openraft hands every append a callback to complete once the entries are on disk, and folds
//! completions into "the highest IO id flushed": completing a later append declares every
//! earlier one durable. So a log's callbacks are completed strictly in submission order, and
//! only after an fsync that started after their append.
//!
//! A [`FlushTarget`] is one log's queue of callbacks. Appends take a sequence number under the
//! log's write lock and queue their callback; the target is then scheduled on the
//! [`FlushPool`]. A pool thread takes the target, captures the files to sync together with the
//! highest sequence appended so far (both under the write lock, so the capture covers exactly
//! those appends), fsyncs without any lock, finishes the flush and completes every callback up
//! to the captured sequence. Appends that arrive meanwhile are covered by the next round: one
//! fsync per round, however many appends it covers. A failed fsync poisons the log (the
//! storage crate refuses further writes) and fails every queued callback, which stops the
//! group (openraft treats it as a storage error).
//!
//! Policies (`shoal_storage::FlushPolicy`): `GroupCommit` completes callbacks only after the
//! fsync (acknowledged means on disk on a majority). `Never` (Kafka's default) completes them
//! at once and syncs only segments that were sealed (as Kafka flushes on roll). `IntervalMs(n)`
//! completes them at once and fsyncs the log at most every `n` ms.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openraft::storage::IOFlushed;
use shoal_storage::{FlushPolicy, PartitionLog};

use crate::types::C;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Threads shared by every log of a node.
#[derive(Debug)]
pub(crate) struct FlushPool {
    shared: Arc<PoolShared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct PoolShared {
    state: Mutex<PoolState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct PoolState {
    ready: VecDeque<Arc<FlushTarget>>,
    /// Targets with a periodic flush due at the instant (`IntervalMs`).
    delayed: Vec<(Instant, Arc<FlushTarget>)>,
    stop: bool,
}

impl FlushPool {
    pub(crate) fn new(threads: usize) -> io::Result<Arc<FlushPool>> {
        let shared = Arc::new(PoolShared::default());
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let s = Arc::clone(&shared);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("shoal-raft-flush-{i}"))
                    .spawn(move || worker(&s))?,
            );
        }
        Ok(Arc::new(FlushPool {
            shared,
            threads: Mutex::new(handles),
        }))
    }

    /// A queue for one log.
    pub(crate) fn target(
        self: &Arc<Self>,
        log: Arc<RwLock<PartitionLog>>,
        policy: FlushPolicy,
    ) -> Arc<FlushTarget> {
        Arc::new(FlushTarget {
            log,
            policy,
            appended_seq: AtomicU64::new(0),
            state: Mutex::new(TargetState::default()),
            pool: Arc::clone(&self.shared),
        })
    }

    /// Stops the threads after the flushes already queued.
    pub(crate) fn shutdown(&self) {
        lock(&self.shared.state).stop = true;
        self.shared.cv.notify_all();
        for t in lock(&self.threads).drain(..) {
            // A panicked flush thread has already failed its targets' callbacks or left them
            // to the group's shutdown; nothing more to do with the join error.
            let _ = t.join();
        }
    }
}

impl Drop for FlushPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker(shared: &PoolShared) {
    loop {
        let target = {
            let mut st = lock(&shared.state);
            loop {
                let now = Instant::now();
                if let Some(i) = st.delayed.iter().position(|(due, _)| *due <= now) {
                    let (_, t) = st.delayed.swap_remove(i);
                    break t;
                }
                if let Some(t) = st.ready.pop_front() {
                    break t;
                }
                if st.stop {
                    return;
                }
                st = match st.delayed.iter().map(|(due, _)| *due).min() {
                    Some(due) => {
                        shared
                            .cv
                            .wait_timeout(st, due.saturating_duration_since(now))
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                    None => shared.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                };
            }
        };
        target.run_flush();
    }
}

/// One log's callbacks and scheduling state.
pub(crate) struct FlushTarget {
    log: Arc<RwLock<PartitionLog>>,
    policy: FlushPolicy,
    /// Sequence of the last append; advanced only under the log's write lock.
    appended_seq: AtomicU64,
    state: Mutex<TargetState>,
    pool: Arc<PoolShared>,
}

impl std::fmt::Debug for FlushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushTarget")
            .field("policy", &self.policy)
            .field("appended_seq", &self.appended_seq.load(Ordering::Relaxed))
            .finish()
    }
}

#[derive(Default)]
struct TargetState {
    pending: VecDeque<(u64, IOFlushed<C>)>,
    /// In the pool's ready or delayed queue.
    queued: bool,
    /// A pool thread is flushing this log.
    running: bool,
    /// Appends arrived since the running flush captured its target.
    dirty: bool,
    failed: Option<String>,
}

impl FlushTarget {
    /// Records an append; call while holding the log's write lock, right after the append.
    pub(crate) fn next_seq(&self) -> u64 {
        self.appended_seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Hands over an append's callback (in append order). `rolled`: the append sealed a
    /// segment, which must be synced even without a flush policy.
    pub(crate) fn submit(self: &Arc<Self>, seq: u64, callback: IOFlushed<C>, rolled: bool) {
        match self.policy {
            FlushPolicy::GroupCommit => {
                let mut st = lock(&self.state);
                if let Some(reason) = &st.failed {
                    callback.io_completed(Err(io::Error::other(reason.clone())));
                    return;
                }
                st.pending.push_back((seq, callback));
                self.schedule_locked(&mut st, None);
            }
            FlushPolicy::Never => {
                callback.io_completed(Ok(()));
                if rolled {
                    let mut st = lock(&self.state);
                    self.schedule_locked(&mut st, None);
                }
            }
            FlushPolicy::IntervalMs(ms) => {
                callback.io_completed(Ok(()));
                let mut st = lock(&self.state);
                let due = Instant::now() + Duration::from_millis(ms);
                self.schedule_locked(&mut st, Some(due));
            }
        }
    }

    fn schedule_locked(self: &Arc<Self>, st: &mut TargetState, due: Option<Instant>) {
        if st.running {
            st.dirty = true;
            return;
        }
        if st.queued || st.failed.is_some() {
            return;
        }
        st.queued = true;
        let mut pool = lock(&self.pool.state);
        match due {
            None => pool.ready.push_back(Arc::clone(self)),
            Some(due) => pool.delayed.push((due, Arc::clone(self))),
        }
        drop(pool);
        self.pool.cv.notify_one();
    }

    /// One flush round on a pool thread.
    fn run_flush(self: &Arc<Self>) {
        {
            let mut st = lock(&self.state);
            st.queued = false;
            st.running = true;
            st.dirty = false;
        }
        let result = self.flush_once(false);
        let mut st = lock(&self.state);
        st.running = false;
        match result {
            Ok(covered) => complete_through(&mut st, covered),
            Err(e) => fail_all(&mut st, e),
        }
        let again = st.dirty || !st.pending.is_empty();
        if again {
            let due = match self.policy {
                FlushPolicy::IntervalMs(ms) => Some(Instant::now() + Duration::from_millis(ms)),
                _ => None,
            };
            self.schedule_locked(&mut st, due);
        }
    }

    /// Begin under the write lock, fsync without it, finish under it. Returns the sequence
    /// the flush covers. `everything`: the whole log whatever the policy.
    fn flush_once(&self, everything: bool) -> Result<u64, String> {
        let (covered, pending) = {
            let mut log = self.log.write().unwrap_or_else(|e| e.into_inner());
            let covered = self.appended_seq.load(Ordering::SeqCst);
            let pending = match self.policy {
                FlushPolicy::Never if !everything => log.begin_flush_sealed(),
                _ => log.begin_flush(),
            };
            (covered, pending.map_err(|e| e.to_string())?)
        };
        if let Some(p) = pending {
            let synced = p.sync();
            let mut log = self.log.write().unwrap_or_else(|e| e.into_inner());
            log.finish_flush(synced).map_err(|e| e.to_string())?;
        }
        Ok(covered)
    }

    /// Flushes on the calling thread (a blocking context) and completes every callback the
    /// flush covers. Used before a vote is saved: openraft treats a saved vote as flushing
    /// every earlier log write.
    pub(crate) fn flush_blocking(&self) -> io::Result<()> {
        if self.policy != FlushPolicy::GroupCommit {
            return Ok(());
        }
        self.flush_now(false)
    }

    /// Flushes the whole log on the calling thread whatever the policy (a clean shutdown).
    pub(crate) fn flush_all_blocking(&self) -> io::Result<()> {
        self.flush_now(true)
    }

    fn flush_now(&self, everything: bool) -> io::Result<()> {
        let result = self.flush_once(everything);
        let mut st = lock(&self.state);
        match result {
            Ok(covered) => {
                complete_through(&mut st, covered);
                Ok(())
            }
            Err(e) => {
                fail_all(&mut st, e.clone());
                Err(io::Error::other(e))
            }
        }
    }

    /// Completes every queued callback: the caller made the whole log durable (a truncation
    /// or reset syncs everything it keeps).
    pub(crate) fn complete_all_durable(&self) {
        let covered = self.appended_seq.load(Ordering::SeqCst);
        complete_through(&mut lock(&self.state), covered);
    }
}

fn complete_through(st: &mut TargetState, covered: u64) {
    while st.pending.front().is_some_and(|(seq, _)| *seq <= covered) {
        if let Some((_, cb)) = st.pending.pop_front() {
            cb.io_completed(Ok(()));
        }
    }
}

fn fail_all(st: &mut TargetState, reason: String) {
    tracing::error!(%reason, "log flush failed; the group stops accepting writes");
    for (_, cb) in st.pending.drain(..) {
        cb.io_completed(Err(io::Error::other(reason.clone())));
    }
    st.failed = Some(reason);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::type_config::TypeConfigExt;
    use shoal_storage::fault_fs::{FaultFs, FaultKind, FaultOp, FaultRule};
    use shoal_storage::{BatchBuilder, LogConfig, RealFs};
    use tokio::sync::oneshot;

    use super::*;

    fn open_log(
        dir: &std::path::Path,
        fs: Arc<dyn shoal_storage::FileSystem>,
        policy: FlushPolicy,
    ) -> Arc<RwLock<PartitionLog>> {
        let cfg = LogConfig {
            flush_policy: policy,
            ..LogConfig::default()
        };
        Arc::new(RwLock::new(PartitionLog::open(dir, cfg, fs).unwrap()))
    }

    fn batch() -> Bytes {
        let mut b = BatchBuilder::new(1);
        b.add_value(b"v");
        b.build()
    }

    fn append(
        t: &Arc<FlushTarget>,
        log: &RwLock<PartitionLog>,
    ) -> oneshot::Receiver<io::Result<()>> {
        let (tx, rx) = C::oneshot();
        let seq = {
            let mut l = log.write().unwrap();
            let index = l.next_index();
            l.append(index, 1, &batch(), 1).unwrap();
            t.next_seq()
        };
        t.submit(seq, IOFlushed::signal(tx), false);
        rx
    }

    #[tokio::test]
    async fn callbacks_complete_in_order_after_a_covering_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let log = open_log(dir.path(), Arc::new(fs.clone()), FlushPolicy::GroupCommit);
        let pool = FlushPool::new(2).unwrap();
        let t = pool.target(Arc::clone(&log), FlushPolicy::GroupCommit);
        let mut rxs = Vec::new();
        for _ in 0..200 {
            rxs.push(append(&t, &log));
        }
        for rx in rxs {
            rx.await.unwrap().unwrap();
        }
        let durable = log.read().unwrap().durable();
        assert_eq!(durable.index, Some(199));
        // Group commit: far fewer fsync rounds than appends (each round syncs log + index).
        let syncs = fs.sync_count();
        assert!(syncs < 2 * 200, "{syncs} syncs for 200 appends");
        pool.shutdown();
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_every_callback_and_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let log = open_log(dir.path(), Arc::new(fs.clone()), FlushPolicy::GroupCommit);
        fs.inject(FaultRule::always(FaultOp::SyncData, FaultKind::Eio));
        let pool = FlushPool::new(1).unwrap();
        let t = pool.target(Arc::clone(&log), FlushPolicy::GroupCommit);
        assert!(append(&t, &log).await.unwrap().is_err());
        let (tx, rx) = C::oneshot();
        t.submit(99, IOFlushed::signal(tx), false);
        assert!(rx.await.unwrap().is_err());
        assert!(log.read().unwrap().is_poisoned());
    }

    #[tokio::test]
    async fn without_a_flush_policy_callbacks_complete_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), RealFs::shared(), FlushPolicy::Never);
        let pool = FlushPool::new(1).unwrap();
        let t = pool.target(Arc::clone(&log), FlushPolicy::Never);
        append(&t, &log).await.unwrap().unwrap();
        assert_eq!(log.read().unwrap().durable().index, None);
    }

    #[tokio::test]
    async fn interval_policy_flushes_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), RealFs::shared(), FlushPolicy::IntervalMs(20));
        let pool = FlushPool::new(1).unwrap();
        let t = pool.target(Arc::clone(&log), FlushPolicy::IntervalMs(20));
        append(&t, &log).await.unwrap().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.read().unwrap().durable().index != Some(0) {
            assert!(Instant::now() < deadline, "no background flush");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn blocking_flush_completes_queued_callbacks() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), RealFs::shared(), FlushPolicy::GroupCommit);
        // A pool with no free thread: only the blocking flush can complete the callback.
        let pool = FlushPool::new(1).unwrap();
        pool.shutdown();
        let t = pool.target(Arc::clone(&log), FlushPolicy::GroupCommit);
        let rx = append(&t, &log);
        t.flush_blocking().unwrap();
        rx.await.unwrap().unwrap();
        assert_eq!(log.read().unwrap().durable().index, Some(0));
    }
}
