//! Durability: the flush split that lets one fdatasync run without the log's lock (group
//! commit), and [`Flusher`], a small std thread that drives a [`FlushPolicy`] for one log and
//! reports each new durable point to a listener, in order.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::FlushPolicy;
use crate::error::Error;
use crate::file_system::FileHandle;
use crate::log::PartitionLog;

/// Entries up to `index` (offsets below `next_offset`) are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurablePoint {
    pub index: Option<u64>,
    pub next_offset: i64,
}

/// A flush captured by [`PartitionLog::begin_flush`]; [`PendingFlush::sync`] needs no lock.
#[derive(Debug)]
pub struct PendingFlush {
    files: Vec<(PathBuf, Arc<dyn FileHandle>)>,
    target: DurablePoint,
    generation: u64,
}

/// The outcome of [`PendingFlush::sync`], handed to [`PartitionLog::finish_flush`].
#[derive(Debug)]
pub struct SyncedFlush {
    pub(crate) target: DurablePoint,
    pub(crate) generation: u64,
    pub(crate) result: Result<(), (PathBuf, io::Error)>,
}

impl PendingFlush {
    pub(crate) fn new(
        files: Vec<(PathBuf, Arc<dyn FileHandle>)>,
        target: DurablePoint,
        generation: u64,
    ) -> Self {
        PendingFlush {
            files,
            target,
            generation,
        }
    }

    /// The point this flush makes durable.
    pub fn target(&self) -> DurablePoint {
        self.target
    }

    /// fdatasyncs the captured files (the log first, then its entry index).
    pub fn sync(self) -> SyncedFlush {
        let mut result = Ok(());
        for (path, file) in &self.files {
            if let Err(e) = file.sync_data() {
                result = Err((path.clone(), e));
                break;
            }
        }
        SyncedFlush {
            target: self.target,
            generation: self.generation,
            result,
        }
    }
}

impl SyncedFlush {
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// Called on the flusher thread, outside the log lock, with each flush's outcome, in order.
pub type DurableListener = Box<dyn FnMut(Result<DurablePoint, Arc<Error>>) + Send>;

#[derive(Debug, Default)]
struct Signal {
    pending: bool,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    signal: Mutex<Signal>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Signal> {
        self.signal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drives a [`FlushPolicy`] for one log on a std thread.
///
/// `GroupCommit`: after [`Flusher::notify`], flush at once; appends that arrive during a sync
/// are covered by the next one. `IntervalMs(n)`: flush unflushed data once `n` ms (by the
/// injected clock) passed since the last flush. `Never`: the active segment stays in the page
/// cache; segments are synced in the background once sealed (as Kafka flushes on roll).
/// After a failed fsync the listener gets the error and the thread stops.
#[derive(Debug)]
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub fn spawn(
        log: Arc<Mutex<PartitionLog>>,
        policy: FlushPolicy,
        clock: Arc<dyn Clock>,
        mut listener: DurableListener,
    ) -> io::Result<Flusher> {
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("shoal-flusher".into())
            .spawn(move || {
                let mut last_flush_ms = clock.now_ms();
                loop {
                    let stop = {
                        let mut sig = s.lock();
                        loop {
                            if sig.stop {
                                break;
                            }
                            match policy {
                                FlushPolicy::GroupCommit | FlushPolicy::Never if sig.pending => {
                                    break;
                                }
                                FlushPolicy::IntervalMs(ms) => {
                                    let due = last_flush_ms.saturating_add(ms as i64);
                                    let now = clock.now_ms();
                                    if sig.pending && now >= due {
                                        break;
                                    }
                                    let wait = (due - now).clamp(1, ms as i64) as u64;
                                    sig =
                                        s.cv.wait_timeout(sig, Duration::from_millis(wait))
                                            .map(|(g, _)| g)
                                            .unwrap_or_else(|e| e.into_inner().0);
                                    continue;
                                }
                                _ => {}
                            }
                            sig = s.cv.wait(sig).unwrap_or_else(|e| e.into_inner());
                        }
                        sig.pending = false;
                        sig.stop
                    };
                    {
                        let sealed_only = policy == FlushPolicy::Never;
                        match flush_once(&log, sealed_only) {
                            Ok(Some(point)) => {
                                last_flush_ms = clock.now_ms();
                                listener(Ok(point));
                            }
                            Ok(None) => {}
                            Err(e) => {
                                listener(Err(Arc::new(e)));
                                return;
                            }
                        }
                    }
                    if stop {
                        return;
                    }
                }
            })?;
        Ok(Flusher {
            shared,
            thread: Some(thread),
        })
    }

    /// Tells the flusher that entries were appended.
    pub fn notify(&self) {
        self.shared.lock().pending = true;
        self.shared.cv.notify_one();
    }

    /// Stops the thread after a last flush (except with `Never`) and waits for it.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.cv.notify_one();
        if let Some(t) = self.thread.take() {
            // A panicking listener is the caller's bug; the join error carries nothing to act on.
            let _ = t.join();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One group commit: begin under the lock, sync without it, finish under it.
fn flush_once(log: &Mutex<PartitionLog>, sealed_only: bool) -> Result<Option<DurablePoint>, Error> {
    let pending = {
        let mut l = log.lock().map_err(|_| Error::Poisoned)?;
        if sealed_only {
            l.begin_flush_sealed()?
        } else {
            l.begin_flush()?
        }
    };
    let Some(pending) = pending else {
        return Ok(None);
    };
    let synced = pending.sync();
    let mut l = log.lock().map_err(|_| Error::Poisoned)?;
    l.finish_flush(synced).map(Some)
}
