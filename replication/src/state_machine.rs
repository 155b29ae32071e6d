//! The state machine of a group. For a partition it holds metadata only: applying an entry
//! reads the offsets `append` assigned (from the dense entry index, no data read) and answers
//! the proposer with them. For the controller group it also feeds each command to the
//! caller's [`crate::ControllerStateMachine`].
//!
//! Every `ApplyResponder` is answered, also for Blank and Membership entries (their offsets
//! are those of their control record), or `client_write` and membership changes never return.
//!
//! Snapshots are metadata (last log id, membership, the Kafka offset after the last entry)
//! plus the controller's serialized state. A partition snapshot is built only where retention
//! asks for one (a segment boundary, see `GroupStorage::snapshot_request`); openraft then
//! purges the log up to it. A follower that needs purged entries installs the snapshot and
//! restarts its log at the snapshot's next offset.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};

use crate::control_batch;
use crate::controller::ControllerStateMachine;
use crate::group_files::{Checkpoint, StoredSnapshot};
use crate::log_store::{GroupStorage, offset_after};
use crate::types::{
    ApplyOutcome, C, RaftLogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

type App = Arc<Mutex<Box<dyn ControllerStateMachine>>>;

/// See the module documentation.
pub(crate) struct ReplicaStateMachine {
    s: Arc<GroupStorage>,
    applied: Option<RaftLogId>,
    /// Memberships since the last snapshot, in log order (the first is the snapshot's).
    memberships: Vec<StoredMembership>,
    app: Option<App>,
}

impl std::fmt::Debug for ReplicaStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaStateMachine")
            .field("group", &self.s.group)
            .field("applied", &self.applied)
            .field("controller", &self.app.is_some())
            .finish()
    }
}

impl ReplicaStateMachine {
    /// Restores the applied state from the snapshot and, for partitions, the checkpoint (the
    /// controller's state lives only in its snapshot, so it re-applies from there).
    pub(crate) fn new(
        s: Arc<GroupStorage>,
        checkpoint: Option<Checkpoint>,
        app: Option<Box<dyn ControllerStateMachine>>,
    ) -> io::Result<Self> {
        let snapshot = lock(&s.snapshot).clone();
        let mut applied = None;
        let mut memberships = Vec::new();
        if let Some(snap) = &snapshot {
            applied = snap.meta.last_log_id;
            memberships.push(snap.meta.last_membership.clone());
        }
        if app.is_none()
            && let Some(cp) = checkpoint
            && cp.applied > applied
            && !cp.memberships.is_empty()
        {
            applied = cp.applied;
            memberships = cp.memberships;
        }
        let app = app.map(|a| Arc::new(Mutex::new(a)));
        if let (Some(app), Some(snap)) = (&app, &snapshot) {
            lock(app)
                .restore(snap.data.app_state.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        }
        let sm = ReplicaStateMachine {
            s,
            applied,
            memberships,
            app,
        };
        sm.publish_applied(None);
        Ok(sm)
    }

    fn membership(&self) -> StoredMembership {
        self.memberships.last().cloned().unwrap_or_default()
    }

    fn publish_applied(&self, next_offset: Option<i64>) {
        {
            let mut a = lock(&self.s.applied);
            a.applied = self.applied;
            if a.memberships.len() != self.memberships.len()
                || a.memberships.last() != self.memberships.last()
            {
                a.memberships = self.memberships.clone();
            }
        }
        if let Some(next) = next_offset {
            self.s.applied_offset.send_if_modified(|cur| {
                if next > *cur {
                    *cur = next;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Offsets of an applied entry, from the entry index. `None` if the log does not hold
    /// this entry (only openraft's storage test suite applies such entries; for a Normal entry
    /// `apply` turns that into an error).
    fn offsets(&self, id: &RaftLogId) -> io::Result<Option<(i64, i64)>> {
        let log = self.s.read_log();
        Ok(log
            .entry_meta(id.index)
            .map_err(io_err)?
            .filter(|meta| meta.term == id.leader_id.term)
            .map(|meta| (meta.base_offset, meta.next_offset - 1)))
    }

    /// The next offset after entry `index` as the snapshot needs it.
    fn next_offset_after(&self, index: u64) -> io::Result<i64> {
        if let Some(snap) = lock(&self.s.snapshot).as_ref()
            && snap.meta.last_log_id.map(|l| l.index) == Some(index)
        {
            return Ok(snap.data.next_offset);
        }
        let log = self.s.read_log();
        Ok(offset_after(&log, index)
            .map_err(io_err)?
            // Only openraft's storage suite snapshots entries the log never held.
            .unwrap_or_else(|| log.log_end_offset()))
    }
}

/// Builds the snapshot captured when the builder was created.
pub(crate) struct SnapshotBuilder {
    s: Arc<GroupStorage>,
    snapshot: StoredSnapshot,
}

impl RaftSnapshotBuilder<C> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let snap = self.snapshot.clone();
        let s = Arc::clone(&self.s);
        let to_write = snap.clone();
        tokio::task::spawn_blocking(move || s.files.write_snapshot(&to_write))
            .await
            .map_err(io_err)??;
        let mut current = lock(&self.s.snapshot);
        // Never replace a newer snapshot (one installed meanwhile).
        if current
            .as_ref()
            .is_none_or(|c| c.meta.last_log_id <= snap.meta.last_log_id)
        {
            *current = Some(snap.clone());
        }
        Ok(Snapshot {
            meta: snap.meta,
            snapshot: snap.data,
        })
    }
}

impl RaftStateMachine<C> for ReplicaStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<RaftLogId>, StoredMembership), io::Error> {
        Ok((self.applied, self.membership()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut next_offset = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            let offsets = self.offsets(&entry.log_id)?;
            let (base_offset, last_offset) = offsets.unwrap_or((-1, -1));
            let mut reply = None;
            match &entry.payload {
                EntryPayload::Normal(records) => {
                    if offsets.is_none() {
                        return Err(io::Error::other(format!(
                            "applying {} which the log does not hold",
                            entry.log_id
                        )));
                    }
                    if let Some(app) = &self.app {
                        let command = control_batch::single_record_value(&records.batches)
                            .map_err(|e| {
                                io::Error::new(io::ErrorKind::InvalidData, e.to_string())
                            })?;
                        reply = Some(lock(app).apply(base_offset, command));
                    }
                }
                EntryPayload::Blank => {}
                EntryPayload::Membership(m) => {
                    self.memberships
                        .push(StoredMembership::new(Some(entry.log_id), m.clone()));
                }
            }
            self.applied = Some(entry.log_id);
            if offsets.is_some() {
                next_offset = Some(last_offset + 1);
            }
            if let Some(r) = responder {
                r.send(ApplyOutcome {
                    base_offset,
                    last_offset,
                    reply,
                });
            }
        }
        self.publish_applied(next_offset);
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<Self::SnapshotBuilder> {
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The controller snapshots at its applied point, where its state is. A partition
        // snapshots where retention asked (never past what is applied), or else where its log
        // was already purged: a partition snapshot lets a lagging replica skip the log up to
        // it, so it must not cover entries the log still holds.
        let requested = lock(&self.s.snapshot_request).take();
        let point = if self.app.is_some() {
            self.applied
        } else if let Some(r) = requested.filter(|r| Some(*r) <= self.applied) {
            Some(r)
        } else {
            self.s
                .read_log()
                .last_purged()
                .map(crate::types::from_storage_id)
                .filter(|p| Some(*p) <= self.applied)
                .or(self.applied)
        };
        let current = lock(&self.s.snapshot).clone();
        let snapshot = match (&current, point) {
            // Never move the snapshot backwards.
            (Some(c), p) if c.meta.last_log_id >= p => c.clone(),
            (_, None) => StoredSnapshot {
                meta: SnapshotMeta::default(),
                data: SnapshotData::default(),
            },
            (_, Some(p)) => {
                let membership = self
                    .memberships
                    .iter()
                    .rev()
                    .find(|m| m.log_id().as_ref() <= Some(&p))
                    .cloned()
                    .unwrap_or_default();
                let next_offset = match self.next_offset_after(p.index) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(group = %self.s.group, error = %e, "snapshot offset unreadable");
                        -1
                    }
                };
                let app_state = self
                    .app
                    .as_ref()
                    .map(|a| lock(a).snapshot())
                    .unwrap_or_default();
                // Memberships older than the one effective at the snapshot are no longer needed.
                if let Some(keep) = self
                    .memberships
                    .iter()
                    .rposition(|m| m.log_id().as_ref() <= Some(&p))
                {
                    self.memberships.drain(..keep);
                }
                StoredSnapshot {
                    meta: SnapshotMeta {
                        last_log_id: Some(p),
                        last_membership: membership,
                    },
                    data: SnapshotData {
                        next_offset,
                        app_state,
                    },
                }
            }
        };
        SnapshotBuilder {
            s: Arc::clone(&self.s),
            snapshot,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot,
        };
        if let Some(app) = &self.app {
            lock(app)
                .restore(stored.data.app_state.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        }
        let s = Arc::clone(&self.s);
        let to_write = stored.clone();
        tokio::task::spawn_blocking(move || s.files.write_snapshot(&to_write))
            .await
            .map_err(io_err)??;
        *lock(&self.s.snapshot) = Some(stored.clone());
        self.applied = meta.last_log_id;
        self.memberships = vec![meta.last_membership.clone()];
        self.publish_applied(Some(stored.data.next_offset));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(lock(&self.s.snapshot).clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: s.data,
        }))
    }
}
