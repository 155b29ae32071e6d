//! The task that runs one loaded `__consumer_offsets` partition (Kafka's `CoordinatorRuntime`
//! for one shard): it owns the [`GroupShard`], takes requests one at a time from a bounded
//! queue, appends each operation's records through the partition's [`PartitionHandle`] before
//! taking the next request (log order = state order), answers a request once everything it
//! depends on is committed (the high watermark passed the last record written before it), runs
//! deferred work at commit, and fires the shard's timers.
//!
//! Failure handling: an append that fails, or a commit that takes longer than
//! `offsets.commit.timeout.ms`, means this broker cannot vouch for the shard's state: the task
//! answers everything parked or pending with `NOT_COORDINATOR` and stops; the coordinator then
//! loads the partition afresh from the log (which holds exactly what was appended).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use shoal_protocol::error_code::ResponseError;
use shoal_storage::{BatchBuilder, split_batches};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::classic::WaiterId;
use super::records::CoordinatorRecord;
use super::shard::{
    CommitRequest, CommitResults, Completion, DescribedGroup, FetchedGroup, GroupShard,
    JoinRequest, JoinResponse, LeavingMember, LeftMember, ListedGroup, Outcome, RequestContext,
    SyncRequest, SyncResponse,
};
use crate::clock::Clock;
use crate::partition::{
    AppendOrigin, AppendRequest, Isolation, PartitionError, PartitionHandle, ReadRequest,
};
use crate::records::key_values;

/// Requests queued per shard before senders wait (backpressure, not unbounded memory).
pub const COMMAND_QUEUE: usize = 1024;

type Reply<T> = oneshot::Sender<T>;

/// A request for the shard.
#[derive(Debug)]
pub enum Command {
    Join {
        ctx: RequestContext,
        request: JoinRequest,
        reply: Reply<JoinResponse>,
    },
    Sync {
        request: SyncRequest,
        reply: Reply<SyncResponse>,
    },
    Heartbeat {
        group_id: String,
        member_id: String,
        group_instance_id: Option<String>,
        generation_id: i32,
        reply: Reply<Result<(), ResponseError>>,
    },
    Leave {
        group_id: String,
        members: Vec<LeavingMember>,
        reply: Reply<Result<Vec<LeftMember>, ResponseError>>,
    },
    Commit {
        request: CommitRequest,
        reply: Reply<Result<CommitResults, ResponseError>>,
    },
    Fetch {
        group_id: String,
        topics: Option<Vec<(String, Vec<i32>)>>,
        reply: Reply<Result<FetchedGroup, ResponseError>>,
    },
    List {
        states: Vec<String>,
        types: Vec<String>,
        reply: Reply<Result<Vec<ListedGroup>, ResponseError>>,
    },
    Describe {
        group_ids: Vec<String>,
        api_version: i16,
        reply: Reply<Result<Vec<DescribedGroup>, ResponseError>>,
    },
    DeleteGroups {
        group_ids: Vec<String>,
        reply: Reply<Vec<(String, Option<ResponseError>)>>,
    },
    DeleteOffsets {
        group_id: String,
        topics: Vec<(String, Vec<i32>)>,
        reply: Reply<Result<CommitResults, ResponseError>>,
    },
    /// Topics or partitions were deleted: their offsets go.
    PartitionsDeleted {
        deleted: std::collections::BTreeMap<String, std::collections::BTreeSet<i32>>,
    },
}

/// Answers `command` with `error` (the shard cannot take it).
pub fn refuse(command: Command, error: ResponseError) {
    match command {
        Command::Join { request, reply, .. } => {
            let _ = reply.send(JoinResponse::error(&request.member_id, error));
        }
        Command::Sync { reply, .. } => {
            let _ = reply.send(SyncResponse::error(error));
        }
        Command::Heartbeat { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Leave { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Commit { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Fetch { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::List { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Describe { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::DeleteGroups { group_ids, reply } => {
            let _ = reply.send(group_ids.into_iter().map(|g| (g, Some(error))).collect());
        }
        Command::DeleteOffsets { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::PartitionsDeleted { .. } => {}
    }
}

/// A reply held until the records it depends on are committed: called with `None` then, or
/// with the error to send instead.
type PendingReply = Box<dyn FnOnce(Option<ResponseError>) + Send>;

enum Pending {
    Reply(PendingReply),
    Deferred(super::shard::Deferred),
}

/// Shared between the task and the coordinator's router.
#[derive(Debug)]
pub struct ShardHandle {
    /// The partition index.
    pub partition: i32,
    /// The leader epoch this shard was loaded for.
    pub leader_epoch: i32,
    /// Requests in.
    pub commands: mpsc::Sender<Command>,
    /// Whether loading finished (before that, requests get `COORDINATOR_LOAD_IN_PROGRESS`).
    pub loaded: AtomicBool,
    /// Stops the task (resignation).
    pub stop: CancellationToken,
    /// Fires when the task has ended (for whatever reason).
    pub stopped: CancellationToken,
}

/// Everything the task needs.
pub struct ShardTask {
    shard: GroupShard,
    partition: Arc<dyn PartitionHandle>,
    clock: Arc<dyn Clock>,
    handle: Arc<ShardHandle>,
    commands: mpsc::Receiver<Command>,
    next_waiter: WaiterId,
    joins: HashMap<WaiterId, Reply<JoinResponse>>,
    syncs: HashMap<WaiterId, Reply<SyncResponse>>,
    /// (commit offset, deadline, what waits for it), in offset order.
    pending: VecDeque<(i64, i64, Pending)>,
    /// The offset right after the last record this task appended (or the log end at load).
    written_end: i64,
    load_buffer_bytes: usize,
    commit_timeout_ms: i64,
}

impl std::fmt::Debug for ShardTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardTask")
            .field("partition", &self.handle.partition)
            .field("written_end", &self.written_end)
            .finish()
    }
}

/// Why the task stopped serving.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("resigned")]
    Resigned,
    #[error("the partition failed: {0}")]
    Partition(#[from] PartitionError),
    #[error("a write was not committed within {0} ms")]
    CommitTimeout(i64),
    #[error("the coordinator dropped the shard")]
    Dropped,
}

impl ShardTask {
    /// A task for `partition`; start it with [`ShardTask::run`].
    pub fn new(
        shard: GroupShard,
        partition: Arc<dyn PartitionHandle>,
        clock: Arc<dyn Clock>,
        partition_index: i32,
    ) -> (Self, Arc<ShardHandle>) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let handle = Arc::new(ShardHandle {
            partition: partition_index,
            leader_epoch: partition.leader_epoch(),
            commands: tx,
            loaded: AtomicBool::new(false),
            stop: CancellationToken::new(),
            stopped: CancellationToken::new(),
        });
        let load_buffer_bytes = shard.config().load_buffer_bytes.max(1);
        let commit_timeout_ms = i64::try_from(shard.config().commit_timeout_ms).unwrap_or(i64::MAX);
        let task = ShardTask {
            shard,
            partition,
            clock,
            handle: handle.clone(),
            commands: rx,
            next_waiter: 0,
            joins: HashMap::new(),
            syncs: HashMap::new(),
            pending: VecDeque::new(),
            written_end: 0,
            load_buffer_bytes,
            commit_timeout_ms,
        };
        (task, handle)
    }

    /// Loads the partition, then serves until resigned or failed. Everything still waiting is
    /// answered before it returns.
    pub async fn run(mut self) {
        let partition = self.handle.partition;
        let stop = self.handle.stop.clone();
        let result = tokio::select! {
            () = stop.cancelled() => Err(Stop::Resigned),
            loaded = self.load() => loaded,
        };
        let result = match result {
            Ok(()) => {
                self.handle.loaded.store(true, Ordering::SeqCst);
                self.serve().await
            }
            Err(e) => Err(e),
        };
        match &result {
            Err(Stop::Resigned) | Err(Stop::Dropped) => {
                tracing::info!(partition, "unloaded __consumer_offsets partition")
            }
            Err(e) => tracing::warn!(
                partition,
                "stopped serving __consumer_offsets partition: {e}"
            ),
            Ok(()) => {}
        }
        self.shutdown();
        self.handle.stopped.cancel();
    }

    /// Reads the partition from its start to its end (once all of it is committed) into the
    /// shard (Kafka's `CoordinatorLoaderImpl`).
    async fn load(&mut self) -> Result<(), Stop> {
        let started = std::time::Instant::now();
        let end = self.partition.offsets().log_end;
        // A new leader's log may end in entries not yet committed: wait until they are, so the
        // state loaded is the state every later write builds on.
        self.partition.wait_committed(end).await?;
        let mut offset = self.partition.offsets().log_start;
        let mut records = 0usize;
        let now = self.clock.now_ms();
        while offset < end {
            let read = self
                .partition
                .read(ReadRequest {
                    offset,
                    max_bytes: self.load_buffer_bytes,
                    min_one: true,
                    isolation: Isolation::ReadUncommitted,
                    current_leader_epoch: None,
                })
                .await?;
            if read.records.is_empty() {
                break;
            }
            let mut next = offset;
            for batch in split_batches(&read.records) {
                let batch = batch.map_err(|e| PartitionError::CorruptBatch(e.to_string()))?;
                let header = shoal_storage::BatchHeader::parse(&batch)
                    .map_err(|e| PartitionError::CorruptBatch(e.to_string()))?;
                next = header.base_offset + i64::from(header.last_offset_delta) + 1;
                if header.is_control() {
                    continue;
                }
                let kvs = match key_values(&batch, &header) {
                    Ok(kvs) => kvs,
                    Err(e) => {
                        tracing::error!(
                            partition = self.handle.partition,
                            offset = header.base_offset,
                            "skipping an unreadable batch of __consumer_offsets: {e}"
                        );
                        continue;
                    }
                };
                for kv in kvs.into_iter().filter(|kv| kv.offset >= offset) {
                    let Some(key) = kv.key else {
                        tracing::warn!(
                            partition = self.handle.partition,
                            offset = kv.offset,
                            "skipping a __consumer_offsets record without a key"
                        );
                        continue;
                    };
                    match CoordinatorRecord::decode(&key, kv.value.as_deref()) {
                        Ok(Some(record)) => {
                            self.shard.replay(record, now);
                            records += 1;
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!(
                            partition = self.handle.partition,
                            offset = kv.offset,
                            "skipping a __consumer_offsets record: {e}"
                        ),
                    }
                }
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        self.written_end = end;
        let out = self.shard.on_loaded(self.clock.now_ms());
        tracing::info!(
            partition = self.handle.partition,
            records,
            groups = self.shard.num_groups(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded __consumer_offsets partition"
        );
        self.apply(out).await
    }

    async fn serve(&mut self) -> Result<(), Stop> {
        let mut high_watermark = self.partition.high_watermark();
        let stop = self.handle.stop.clone();
        loop {
            let committed = *high_watermark.borrow_and_update();
            self.release_committed(committed).await?;
            let now = self.clock.now_ms();
            if let Some((_, deadline, _)) = self.pending.front()
                && *deadline <= now
            {
                return Err(Stop::CommitTimeout(self.commit_timeout_ms));
            }
            let wake = [
                self.shard.next_deadline(),
                self.pending.front().map(|(_, d, _)| *d),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = wake.map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)));
            tokio::select! {
                biased;
                () = stop.cancelled() => return Err(Stop::Resigned),
                changed = high_watermark.changed() => {
                    if changed.is_err() {
                        return Err(Stop::Partition(PartitionError::Closed));
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.handle_command(command).await?,
                    None => return Err(Stop::Dropped),
                },
                () = sleep_for(sleep) => {
                    let out = self.shard.fire_timers(self.clock.now_ms());
                    self.apply(out).await?;
                }
            }
        }
    }

    async fn handle_command(&mut self, command: Command) -> Result<(), Stop> {
        let now = self.clock.now_ms();
        match command {
            Command::Join {
                ctx,
                request,
                reply,
            } => {
                let waiter = self.waiter();
                self.joins.insert(waiter, reply);
                let out = self.shard.join(&ctx, request, waiter, now);
                self.apply(out).await
            }
            Command::Sync { request, reply } => {
                let waiter = self.waiter();
                self.syncs.insert(waiter, reply);
                let out = self.shard.sync(request, waiter, now);
                self.apply(out).await
            }
            Command::Heartbeat {
                group_id,
                member_id,
                group_instance_id,
                generation_id,
                reply,
            } => {
                let result = self.shard.heartbeat(
                    &group_id,
                    &member_id,
                    group_instance_id.as_deref(),
                    generation_id,
                    now,
                );
                if result.is_err() {
                    tracing::debug!(group = %group_id, member = %member_id, generation = generation_id, ?result, "Heartbeat");
                }
                self.reply_after_commit(reply, result, Err);
                Ok(())
            }
            Command::Leave {
                group_id,
                members,
                reply,
            } => {
                let (result, out) = self.shard.leave(&group_id, members, now);
                self.apply(out).await?;
                self.reply_after_commit(reply, result, Err);
                Ok(())
            }
            Command::Commit { request, reply } => {
                let (result, out) = self.shard.commit_offsets(&request, now);
                self.apply(out).await?;
                self.reply_after_commit(reply, result, Err);
                Ok(())
            }
            Command::Fetch {
                group_id,
                topics,
                reply,
            } => {
                let fetched = self.shard.fetch_offsets(&group_id, topics.as_deref());
                // Offsets are answered once what they show is committed (Kafka's read at the
                // last committed offset): a commit that never lands is never reported.
                self.reply_after_commit(reply, Ok(fetched), Err);
                Ok(())
            }
            Command::List {
                states,
                types,
                reply,
            } => {
                let listed = self.shard.list_groups(&states, &types);
                self.reply_after_commit(reply, Ok(listed), Err);
                Ok(())
            }
            Command::Describe {
                group_ids,
                api_version,
                reply,
            } => {
                let described = group_ids
                    .iter()
                    .map(|g| self.shard.describe_group(g, api_version))
                    .collect();
                self.reply_after_commit(reply, Ok(described), Err);
                Ok(())
            }
            Command::DeleteGroups { group_ids, reply } => {
                let (results, out) = self.shard.delete_groups(&group_ids);
                self.apply(out).await?;
                let ids = group_ids.clone();
                self.reply_after_commit(reply, results, move |e| {
                    ids.into_iter().map(|g| (g, Some(e))).collect()
                });
                Ok(())
            }
            Command::DeleteOffsets {
                group_id,
                topics,
                reply,
            } => {
                let (result, out) = self.shard.delete_offsets(&group_id, &topics);
                self.apply(out).await?;
                self.reply_after_commit(reply, result, Err);
                Ok(())
            }
            Command::PartitionsDeleted { deleted } => {
                let out = self.shard.on_partitions_deleted(&deleted);
                self.apply(out).await
            }
        }
    }

    fn waiter(&mut self) -> WaiterId {
        self.next_waiter += 1;
        self.next_waiter
    }

    /// Sends `value` once everything written so far is committed; on failure, what `on_error`
    /// makes of the error.
    fn reply_after_commit<T: Send + 'static>(
        &mut self,
        reply: Reply<T>,
        value: T,
        on_error: impl FnOnce(ResponseError) -> T + Send + 'static,
    ) {
        let send: PendingReply = Box::new(move |error| {
            let _ = reply.send(match error {
                None => value,
                Some(e) => on_error(e),
            });
        });
        let deadline = self.clock.now_ms().saturating_add(self.commit_timeout_ms);
        self.pending
            .push_back((self.written_end, deadline, Pending::Reply(send)));
    }

    /// Appends an outcome's records, answers its completions, queues its deferred work.
    async fn apply(&mut self, out: Outcome) -> Result<(), Stop> {
        if !out.records.is_empty() {
            let now = self.clock.now_ms();
            let appended = self
                .partition
                .append(AppendRequest {
                    batches: records_batch(&out.records, now),
                    now_ms: now,
                    origin: AppendOrigin::Coordinator,
                })
                .await?;
            self.written_end = appended.last_offset + 1;
        }
        for completion in out.completions {
            tracing::debug!(
                partition = self.handle.partition,
                ?completion,
                "answering a parked request"
            );
            self.answer(completion);
        }
        let deadline = self.clock.now_ms().saturating_add(self.commit_timeout_ms);
        for d in out.on_commit {
            self.pending
                .push_back((self.written_end, deadline, Pending::Deferred(d)));
        }
        Ok(())
    }

    /// Runs everything waiting for offsets below `high_watermark`.
    async fn release_committed(&mut self, high_watermark: i64) -> Result<(), Stop> {
        while let Some((offset, _, _)) = self.pending.front() {
            if *offset > high_watermark {
                break;
            }
            let Some((_, _, item)) = self.pending.pop_front() else {
                break;
            };
            match item {
                Pending::Reply(send) => send(None),
                Pending::Deferred(d) => {
                    let out = self.shard.on_committed(d, self.clock.now_ms());
                    self.apply(out).await?;
                }
            }
        }
        Ok(())
    }

    /// Answers a parked JoinGroup or SyncGroup; its client may have gone meanwhile.
    fn answer(&mut self, completion: Completion) {
        match completion {
            Completion::Join(w, r) => {
                if let Some(reply) = self.joins.remove(&w) {
                    let _ = reply.send(r);
                }
            }
            Completion::Sync(w, r) => {
                if let Some(reply) = self.syncs.remove(&w) {
                    let _ = reply.send(r);
                }
            }
        }
    }

    /// Answers everything still waiting: the shard is going away.
    fn shutdown(&mut self) {
        let out = self.shard.unload(self.clock.now_ms());
        for completion in out.completions {
            self.answer(completion);
        }
        for (_, reply) in self.joins.drain() {
            let _ = reply.send(JoinResponse::error("", ResponseError::NotCoordinator));
        }
        for (_, reply) in self.syncs.drain() {
            let _ = reply.send(SyncResponse::error(ResponseError::NotCoordinator));
        }
        for (_, _, item) in self.pending.drain(..) {
            if let Pending::Reply(send) = item {
                send(Some(ResponseError::NotCoordinator));
            }
        }
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            refuse(command, ResponseError::NotCoordinator);
        }
    }
}

async fn sleep_for(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// One uncompressed batch holding `records`, stamped `now_ms` (as Kafka's coordinator writes).
pub fn records_batch(records: &[CoordinatorRecord], now_ms: i64) -> Bytes {
    let mut batch = BatchBuilder::new(now_ms);
    for r in records {
        let key = r.key();
        let value = r.value();
        batch.add_record(now_ms, Some(&key), value.as_deref(), &[]);
    }
    batch.build()
}
