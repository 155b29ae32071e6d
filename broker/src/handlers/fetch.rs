//! Fetch (key 1): sessionless reads with long-polling.
//!
//! Every request is answered as a full fetch with session id 0 and exactly the partitions it
//! named (KIP-227 without sessions: Java and librdkafka fall back to full fetches). Incremental
//! requests (session epoch other than 0 or -1) get `FETCH_SESSION_ID_NOT_FOUND`. The response
//! respects `max_bytes` and each partition's limit, except that the first partition with data
//! always returns at least one whole batch (KIP-74). With fewer than `min_bytes` available the
//! request parks until a high watermark moves or `max_wait_ms` passes.
//!
//! KIP-392 (see `reference/kip392.md` and [`crate::replica_selector`]): a partition leader with a
//! rack-aware selector answers a v11+ consumer fetch whose client rack (the request's `rack_id`,
//! else `client.rack.cidrs`) is better served by an in-sync follower with that follower's id in
//! `preferred_read_replica`, no records and the leader's offsets, after checking the leader
//! epoch; such a response is sent at once, never parked. A follower serves v11+ consumer fetches
//! from its own log up to its own high watermark (LSO for read_committed) and refuses older
//! versions with `NOT_LEADER_OR_FOLLOWER`; an offset it holds but has not yet seen committed
//! parks like any fetch without data (up to `max_wait_ms`, woken when its high watermark moves)
//! instead of Kafka's immediate empty answer that makes clients spin. Offsets outside
//! `[log start, log end]` are `OFFSET_OUT_OF_RANGE`; `OFFSET_NOT_AVAILABLE` is never returned.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
};
use shoal_protocol::kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use shoal_protocol::registry::ApiSupport;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::Clock;
use crate::connection::Reply;
use crate::follower_fetching::FollowerFetching;
use crate::kafka_error::{BrokerError, kafka_error};
use crate::metadata::MetadataImage;
use crate::partition::{
    Isolation, PartitionError, PartitionHandle, PartitionLookup, ReadRequest, ReplicaState, Role,
    check_leader_epoch,
};
use crate::replica_selector::{self, FetchOrigin, MIN_FETCH_VERSION, ReplicaView};

/// v4+ (the Java 4.x floor); v13+ names topics by id; v18 (replica high watermark) is not
/// implemented.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::Fetch, 4, 17);

/// The byte budget of one response (`ReplicaManager.readFromLog`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchBudget {
    remaining: usize,
    min_one: bool,
}

impl FetchBudget {
    /// A budget of `max_bytes` (negative is zero) where the first non-empty partition may exceed
    /// it by one batch.
    pub fn new(max_bytes: i32) -> Self {
        Self {
            remaining: usize::try_from(max_bytes).unwrap_or(0),
            min_one: true,
        }
    }

    /// The limit for the next partition and whether it may return one oversized batch.
    pub fn next(&self, partition_max_bytes: i32) -> (usize, bool) {
        (
            usize::try_from(partition_max_bytes)
                .unwrap_or(0)
                .min(self.remaining),
            self.min_one,
        )
    }

    /// Records what a partition returned.
    pub fn consumed(&mut self, bytes: usize) {
        if bytes > 0 {
            self.min_one = false;
        }
        self.remaining = self.remaining.saturating_sub(bytes);
    }
}

/// Kafka's diverging-epoch rule for a fetch that names the epoch of the last batch it fetched:
/// the log diverges when that epoch ended earlier (or a smaller epoch ended) than the fetch offset.
pub fn diverging_epoch(
    fetch_offset: i64,
    last_fetched_epoch: i32,
    end: Option<(i32, i64)>,
) -> Option<(i32, i64)> {
    match end {
        Some((epoch, end_offset)) if epoch < last_fetched_epoch || end_offset < fetch_offset => {
            Some((epoch, end_offset))
        }
        _ => None,
    }
}

/// What a deferred fetch needs; owned, because the answer may come later.
#[derive(Debug, Clone)]
pub struct FetchContext {
    /// Hosted partitions.
    pub partitions: Arc<dyn PartitionLookup>,
    /// Metadata at the start of the request.
    pub image: Arc<MetadataImage>,
    /// Fires at shutdown: parked fetches answer at once.
    pub shutdown: CancellationToken,
    /// `fetch.max.bytes`: the response never exceeds this (one oversized first batch aside).
    pub max_bytes: i32,
    /// KIP-392 state of this node: selector, client racks, consumer-fetch metrics.
    pub follower_fetching: Arc<FollowerFetching>,
    /// The listener the client is connected to: a preferred replica must have an endpoint there.
    pub listener: Arc<str>,
    /// The client's address (its rack under `client.rack.cidrs`).
    pub peer: IpAddr,
    /// Broker time (how long ago a follower was last caught up).
    pub clock: Arc<dyn Clock>,
}

/// Who fetches and what a leader needs to pick a read replica for them.
struct Selection {
    follower_fetching: Arc<FollowerFetching>,
    image: Arc<MetadataImage>,
    listener: Arc<str>,
    clock: Arc<dyn Clock>,
    version: i16,
    replica_id: i32,
    client_rack: Option<Arc<str>>,
}

impl Selection {
    fn origin(&self) -> FetchOrigin<'_> {
        FetchOrigin {
            version: self.version,
            replica_id: self.replica_id,
            client_rack: self.client_rack.as_deref(),
        }
    }

    fn view(&self, state: ReplicaState) -> ReplicaView<'_> {
        let broker = self.image.brokers().get(&state.broker_id);
        ReplicaView {
            state,
            rack: broker.and_then(|b| b.rack.as_deref()),
            live: broker.is_some_and(|b| !b.fenced),
            has_endpoint: broker.is_some_and(|b| b.endpoint(&self.listener).is_some()),
        }
    }

    /// The replica this leader sends the client to for `fetch_offset`, if not itself.
    fn preferred_replica(&self, partition: &dyn PartitionHandle, fetch_offset: i64) -> Option<i32> {
        let ff = &self.follower_fetching;
        let is_leader = partition.role() == Role::Leader;
        let origin = self.origin();
        if !replica_selector::selection_applies(ff.selector, is_leader, &origin) {
            return None;
        }
        let now_ms = self.clock.now_ms();
        let states = partition.replica_states(ff.node_id, now_ms)?;
        let leader = self.view(states.leader);
        // Kafka's selector takes the partition's ISR; in a cluster that is the metadata's,
        // which a restarted follower rejoins only once it answers the leader again.
        let tp = partition.topic_partition();
        let metadata_isr = self
            .image
            .topic_by_id(&tp.topic_id)
            .and_then(|t| t.partitions.get(usize::try_from(tp.partition).ok()?))
            .map(|p| p.isr.clone());
        let followers: Vec<ReplicaView<'_>> = states
            .followers
            .into_iter()
            .map(|mut s| {
                if let Some(isr) = &metadata_isr {
                    s.in_sync &= isr.contains(&s.broker_id);
                }
                self.view(s)
            })
            .collect();
        replica_selector::preferred_read_replica(
            ff.selector,
            is_leader,
            &origin,
            fetch_offset,
            &leader,
            &followers,
            now_ms,
        )
    }
}

struct PlannedPartition {
    topic: usize,
    index: i32,
    target: Result<Arc<dyn PartitionHandle>, ResponseError>,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: Option<i32>,
    last_fetched_epoch: i32,
    leader: (i32, i32),
}

struct PlannedTopic {
    name: Option<String>,
    id: Uuid,
}

struct ReadOutcome {
    partitions: Vec<PartitionData>,
    bytes: usize,
    failed: bool,
    /// Some partition names a preferred read replica: the response goes out at once.
    redirected: bool,
}

/// One partition's answer.
struct Served {
    data: PartitionData,
    bytes: usize,
    diverged: bool,
    redirected: bool,
}

/// Handles a fetch request.
pub fn handle(ctx: FetchContext, request: FetchRequest, version: i16) -> Reply {
    if version >= 7 && !matches!(request.session_epoch, -1 | 0) {
        return Reply::now(ResponseKind::Fetch(
            FetchResponse::default()
                .with_error_code(ResponseError::FetchSessionIdNotFound.code())
                .with_session_id(0),
        ));
    }
    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let from_follower = replica_id >= 0;
    let isolation = Isolation::from_wire(request.isolation_level);

    let mut topics = Vec::with_capacity(request.topics.len());
    let mut plan = Vec::new();
    for topic in &request.topics {
        let image_topic = if version >= 13 {
            ctx.image.topic_by_id(&topic.topic_id)
        } else {
            ctx.image.topic_by_name(&topic.topic)
        };
        let missing = if version >= 13 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let topic_index = topics.len();
        topics.push(PlannedTopic {
            name: (version < 13).then(|| topic.topic.to_string()),
            id: topic.topic_id,
        });
        for p in &topic.partitions {
            let state = image_topic.and_then(|t| {
                usize::try_from(p.partition)
                    .ok()
                    .and_then(|i| t.partitions.get(i))
            });
            let target = match (image_topic, state) {
                (None, _) => Err(missing),
                (Some(_), None) => Err(ResponseError::UnknownTopicOrPartition),
                (Some(_), Some(_)) if from_follower => Err(ResponseError::NotLeaderOrFollower),
                (Some(t), Some(_)) => ctx
                    .partitions
                    .get(&t.id, p.partition)
                    .map_err(|e| kafka_error(BrokerError::Partition(&e)).error),
            };
            plan.push(PlannedPartition {
                topic: topic_index,
                index: p.partition,
                target,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: (version >= 9 && p.current_leader_epoch >= 0)
                    .then_some(p.current_leader_epoch),
                last_fetched_epoch: if version >= 12 {
                    p.last_fetched_epoch
                } else {
                    -1
                },
                leader: state.map_or((-1, -1), |s| (s.leader, s.leader_epoch)),
            });
        }
    }

    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = request.max_bytes.min(ctx.max_bytes);
    let selection = Selection {
        client_rack: ctx
            .follower_fetching
            .client_rack(version, &request.rack_id, ctx.peer),
        follower_fetching: ctx.follower_fetching.clone(),
        image: ctx.image.clone(),
        listener: ctx.listener.clone(),
        clock: ctx.clock.clone(),
        version,
        replica_id,
    };
    Reply::Defer(Box::pin(async move {
        // Subscribe before the first read so that no high-watermark change is missed.
        let mut watches: Vec<watch::Receiver<i64>> = plan
            .iter()
            .filter_map(|p| p.target.as_ref().ok().map(|t| t.high_watermark()))
            .collect();
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut outcome = read_all(&plan, max_bytes, isolation, &selection).await;
        loop {
            if max_wait.is_zero()
                || plan.is_empty()
                || outcome.failed
                || outcome.redirected
                || outcome.bytes >= min_bytes
            {
                break;
            }
            if watches.is_empty() {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = ctx.shutdown.cancelled() => {}
                }
                break;
            }
            let woke = tokio::select! {
                _ = select_all(watches.iter_mut().map(|w| Box::pin(w.changed()))) => true,
                () = tokio::time::sleep_until(deadline) => false,
                () = ctx.shutdown.cancelled() => break,
            };
            outcome = read_all(&plan, max_bytes, isolation, &selection).await;
            if !woke {
                break;
            }
            // A closed watch (deleted partition) fires forever; the re-read reports its error.
            watches.retain(|w| w.has_changed().is_ok());
        }
        if !from_follower {
            record_metrics(&selection, &plan, &outcome.partitions);
        }
        ResponseKind::Fetch(assemble(topics, &plan, outcome.partitions, version))
    }))
}

/// Counts what consumers were served (and where they were sent instead).
fn record_metrics(selection: &Selection, plan: &[PlannedPartition], answers: &[PartitionData]) {
    let ff = &selection.follower_fetching;
    let mut label = None;
    for (p, data) in plan.iter().zip(answers) {
        let Ok(partition) = &p.target else { continue };
        let bytes = data.records.as_ref().map_or(0, Bytes::len);
        if data.error_code != 0 || (bytes == 0 && data.preferred_read_replica.0 < 0) {
            continue;
        }
        let label = *label.get_or_insert_with(|| {
            ff.rack_label(selection.client_rack.as_deref(), &selection.image)
        });
        let tp = partition.topic_partition();
        if data.preferred_read_replica.0 >= 0 {
            ff.metrics
                .record_redirect(tp, label, data.preferred_read_replica.0);
        } else if let Some(records) = &data.records {
            ff.metrics.record_served(
                tp,
                partition.role(),
                label,
                bytes as u64,
                count_records(records),
            );
        }
    }
}

/// Records in the data batches of `batches` (whole v2 batches, as reads return them).
pub fn count_records(batches: &[u8]) -> u64 {
    let mut at = 0usize;
    let mut records = 0u64;
    while let Some(rest) = batches.get(at..) {
        let Ok(header) = shoal_storage::BatchHeader::parse(rest) else {
            break;
        };
        let len = header.total_len();
        if len == 0 {
            break;
        }
        if !header.is_control() {
            records += u64::try_from(header.record_count).unwrap_or(0);
        }
        at += len;
    }
    records
}

async fn read_all(
    plan: &[PlannedPartition],
    max_bytes: i32,
    isolation: Isolation,
    selection: &Selection,
) -> ReadOutcome {
    let version = selection.version;
    let mut budget = FetchBudget::new(max_bytes);
    let mut out = ReadOutcome {
        partitions: Vec::with_capacity(plan.len()),
        bytes: 0,
        failed: false,
        redirected: false,
    };
    for p in plan {
        let data = match &p.target {
            Err(code) => error_data(p, *code, version),
            Ok(partition) => {
                let (limit, min_one) = budget.next(p.partition_max_bytes);
                match read_one(partition.as_ref(), p, limit, min_one, isolation, selection).await {
                    Ok(Served {
                        mut data,
                        bytes,
                        diverged,
                        redirected,
                    }) => {
                        budget.consumed(bytes);
                        out.bytes += bytes;
                        out.failed |= diverged;
                        out.redirected |= redirected;
                        if version < 12 {
                            data.diverging_epoch = EpochEndOffset::default();
                        }
                        data.aborted_transactions =
                            (isolation == Isolation::ReadCommitted).then(Vec::new);
                        data
                    }
                    Err(e) => error_data(p, kafka_error(BrokerError::Partition(&e)).error, version),
                }
            }
        };
        if data.error_code != 0 {
            out.failed = true;
        }
        out.partitions.push(data);
    }
    out
}

async fn read_one(
    partition: &dyn PartitionHandle,
    p: &PlannedPartition,
    limit: usize,
    min_one: bool,
    isolation: Isolation,
    selection: &Selection,
) -> Result<Served, PartitionError> {
    // Kafka's `readFromLog`: the preferred replica is decided before anything is read, and its
    // answer still validates the leader epoch (`fetchOffsetSnapshot`).
    if let Some(replica) = selection.preferred_replica(partition, p.fetch_offset) {
        check_leader_epoch(p.current_leader_epoch, partition.leader_epoch())?;
        let offsets = partition.offsets();
        let data = PartitionData::default()
            .with_partition_index(p.index)
            .with_high_watermark(offsets.high_watermark)
            .with_last_stable_offset(offsets.last_stable)
            .with_log_start_offset(offsets.log_start)
            .with_preferred_read_replica(BrokerId(replica))
            .with_records(Some(Bytes::new()));
        return Ok(Served {
            data,
            bytes: 0,
            diverged: false,
            redirected: true,
        });
    }
    // `Partition.localLogWithEpochOrThrow`: epoch first; a follower serves consumers only from
    // Fetch v11 on (`FetchParams.fetchOnlyLeader`).
    if partition.role() == Role::Follower && selection.version < MIN_FETCH_VERSION {
        check_leader_epoch(p.current_leader_epoch, partition.leader_epoch())?;
        return Err(PartitionError::NotLeaderOrFollower);
    }
    if p.last_fetched_epoch >= 0 {
        let end = partition.end_offset_for_epoch(p.last_fetched_epoch, p.current_leader_epoch)?;
        if let Some((epoch, end_offset)) =
            diverging_epoch(p.fetch_offset, p.last_fetched_epoch, end)
        {
            let offsets = partition.offsets();
            let data = PartitionData::default()
                .with_partition_index(p.index)
                .with_high_watermark(offsets.high_watermark)
                .with_last_stable_offset(offsets.last_stable)
                .with_log_start_offset(offsets.log_start)
                .with_diverging_epoch(
                    EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end_offset),
                )
                .with_records(Some(Bytes::new()));
            return Ok(Served {
                data,
                bytes: 0,
                diverged: true,
                redirected: false,
            });
        }
    }
    let read = partition
        .read(ReadRequest {
            offset: p.fetch_offset,
            max_bytes: limit,
            min_one,
            isolation,
            current_leader_epoch: p.current_leader_epoch,
        })
        .await?;
    let bytes = read.records.len();
    let data = PartitionData::default()
        .with_partition_index(p.index)
        .with_error_code(0)
        .with_high_watermark(read.offsets.high_watermark)
        .with_last_stable_offset(read.offsets.last_stable)
        .with_log_start_offset(read.offsets.log_start)
        .with_records(Some(read.records));
    Ok(Served {
        data,
        bytes,
        diverged: false,
        redirected: false,
    })
}

/// Kafka's `createLogReadResult(exception)`: offsets unknown (-1), no records.
fn error_data(p: &PlannedPartition, error: ResponseError, version: i16) -> PartitionData {
    let mut data = PartitionData::default()
        .with_partition_index(p.index)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_aborted_transactions(None)
        .with_records(Some(Bytes::new()));
    if version >= 12
        && matches!(
            error,
            ResponseError::NotLeaderOrFollower | ResponseError::FencedLeaderEpoch
        )
        && p.leader.0 >= 0
    {
        data.current_leader = LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(p.leader.0))
            .with_leader_epoch(p.leader.1);
    }
    data
}

fn assemble(
    topics: Vec<PlannedTopic>,
    plan: &[PlannedPartition],
    partitions: Vec<PartitionData>,
    version: i16,
) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = topics
        .into_iter()
        .map(|t| {
            let mut r = FetchableTopicResponse::default();
            if version >= 13 {
                r.topic_id = t.id;
            } else {
                r.topic = shoal_protocol::kafka_protocol::messages::TopicName(super::s(
                    t.name.unwrap_or_default(),
                ));
            }
            r
        })
        .collect();
    for (p, data) in plan.iter().zip(partitions) {
        responses[p.topic].partitions.push(data);
    }
    let mut response = FetchResponse::default().with_responses(responses);
    if version >= 7 {
        response.error_code = 0;
        response.session_id = 0;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::broker::{ConfigInput, Origin, load};
    use crate::metadata::{BrokerEndpoint, BrokerRegistration, MetadataCommand};
    use crate::partition::scripted::{ScriptedPartition, ScriptedPartitions};
    use crate::partition::{ReplicaStates, TopicPartition};
    use shoal_protocol::kafka_protocol::messages::TopicName;
    use shoal_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use shoal_storage::BatchBuilder;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_700_000_000_000;
    const TOPIC_ID: u128 = 77;
    const EPOCH: i32 = 5;

    /// Three brokers in racks r1..r3 on listener PLAINTEXT, topic `t` with `partitions`
    /// partitions replicated on all three, led by broker 1.
    fn image(partitions: usize) -> Arc<MetadataImage> {
        let mut image = MetadataImage::empty("c");
        for id in 1..=3 {
            image = image
                .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
                    node_id: id,
                    rack: Some(format!("r{id}")),
                    endpoints: vec![BrokerEndpoint {
                        listener: "PLAINTEXT".into(),
                        host: "localhost".into(),
                        port: 9000 + id as u16,
                    }],
                    fenced: false,
                }))
                .unwrap();
        }
        image = image
            .apply(&MetadataCommand::CreateTopic {
                id: Uuid::from_u128(TOPIC_ID),
                name: "t".into(),
                assignments: vec![vec![1, 2, 3]; partitions],
                configs: BTreeMap::new(),
            })
            .unwrap();
        Arc::new(image)
    }

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition {
            topic_id: Uuid::from_u128(TOPIC_ID),
            topic: "t".into(),
            partition,
        }
    }

    fn batch(records: usize) -> Bytes {
        let mut builder = BatchBuilder::new(NOW);
        for i in 0..records {
            builder.add_record(
                NOW,
                Some(format!("k{i}").as_bytes()),
                Some(b"v".as_slice()),
                &[],
            );
        }
        builder.build()
    }

    /// A replica of partition `index` on this node with `records` single-record batches, its
    /// high watermark at `hw`.
    fn replica(index: i32, role: Role, records: usize, hw: i64) -> Arc<ScriptedPartition> {
        let p = ScriptedPartition::new(tp(index), role, EPOCH);
        for _ in 0..records {
            p.replicate(&batch(1));
        }
        p.set_high_watermark(hw);
        p
    }

    fn follower_state(id: i32, leo: i64, in_sync: bool) -> ReplicaState {
        ReplicaState {
            broker_id: id,
            log_end_offset: leo,
            log_start_offset: 0,
            in_sync,
            last_caught_up_ms: Some(NOW),
        }
    }

    /// Broker 1's replica states: followers 2 and 3 caught up to `leo`.
    fn caught_up(leo: i64) -> ReplicaStates {
        ReplicaStates {
            leader: follower_state(1, leo, true),
            followers: vec![follower_state(2, leo, true), follower_state(3, leo, true)],
        }
    }

    struct Node {
        partitions: Arc<ScriptedPartitions>,
        ff: Arc<FollowerFetching>,
        image: Arc<MetadataImage>,
        peer: IpAddr,
    }

    /// This node is broker 1 in rack r1 with `extra` properties.
    fn node(extra: &[(&str, &str)], partitions: &[Arc<ScriptedPartition>]) -> Node {
        let mut input = ConfigInput::default();
        for (k, v) in [("node.id", "1"), ("broker.rack", "r1")]
            .iter()
            .chain(extra)
        {
            input.set(*k, *v, Origin::Flag);
        }
        let config = load(&input, "h").unwrap().config;
        let lookup = Arc::new(ScriptedPartitions::default());
        for p in partitions {
            lookup.add(p.clone());
        }
        Node {
            partitions: lookup,
            ff: Arc::new(FollowerFetching::new(&config)),
            image: image(partitions.len().max(1)),
            peer: "127.0.0.1".parse().unwrap(),
        }
    }

    const FF_ON: &[(&str, &str)] = &[("follower.fetching.enabled", "true")];

    struct Fetch {
        version: i16,
        rack: &'static str,
        offsets: Vec<i64>,
        epoch: i32,
        max_wait_ms: i32,
        min_bytes: i32,
        isolation: i8,
    }

    fn fetch(version: i16, rack: &'static str, offset: i64) -> Fetch {
        Fetch {
            version,
            rack,
            offsets: vec![offset],
            epoch: EPOCH,
            max_wait_ms: 0,
            min_bytes: 1,
            isolation: 0,
        }
    }

    impl Fetch {
        fn request(&self) -> FetchRequest {
            let partitions = self
                .offsets
                .iter()
                .enumerate()
                .map(|(i, offset)| {
                    FetchPartition::default()
                        .with_partition(i as i32)
                        .with_fetch_offset(*offset)
                        .with_current_leader_epoch(self.epoch)
                        .with_partition_max_bytes(1 << 20)
                })
                .collect();
            let mut topic = FetchTopic::default().with_partitions(partitions);
            if self.version >= 13 {
                topic.topic_id = Uuid::from_u128(TOPIC_ID);
            } else {
                topic.topic = TopicName(crate::handlers::s("t"));
            }
            let mut request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(self.max_wait_ms)
                .with_min_bytes(self.min_bytes)
                .with_max_bytes(1 << 24)
                .with_isolation_level(self.isolation)
                .with_topics(vec![topic]);
            if self.version >= 11 {
                request.rack_id = crate::handlers::s(self.rack);
            }
            request
        }
    }

    async fn run(node: &Node, fetch: &Fetch) -> FetchResponse {
        let ctx = FetchContext {
            partitions: node.partitions.clone(),
            image: node.image.clone(),
            shutdown: CancellationToken::new(),
            max_bytes: 1 << 24,
            follower_fetching: node.ff.clone(),
            listener: Arc::from("PLAINTEXT"),
            peer: node.peer,
            clock: Arc::new(ManualClock::new(NOW)),
        };
        match handle(ctx, fetch.request(), fetch.version) {
            Reply::Defer(future) => match future.await {
                ResponseKind::Fetch(response) => response,
                other => panic!("not a fetch response: {other:?}"),
            },
            other => panic!("unexpected reply {other:?}"),
        }
    }

    fn only(response: &FetchResponse) -> &PartitionData {
        &response.responses[0].partitions[0]
    }

    fn records_in(data: &PartitionData) -> u64 {
        count_records(data.records.as_deref().unwrap_or_default())
    }

    #[tokio::test(start_paused = true)]
    async fn leader_redirects_a_consumer_to_the_follower_in_its_rack_at_once() {
        let leader = replica(0, Role::Leader, 10, 10);
        leader.set_replica_states(Some(caught_up(10)));
        let node = node(FF_ON, &[leader]);
        for (version, rack, expected) in [(11, "r2", 2), (12, "r3", 3), (17, "r2", 2)] {
            let mut request = fetch(version, rack, 4);
            request.max_wait_ms = 30_000;
            let started = tokio::time::Instant::now();
            let response = run(&node, &request).await;
            assert_eq!(started.elapsed(), Duration::ZERO, "a redirect never parks");
            let data = only(&response);
            assert_eq!(data.error_code, 0);
            assert_eq!(
                data.preferred_read_replica,
                BrokerId(expected),
                "v{version}"
            );
            assert_eq!(data.records.as_deref(), Some(&[][..]));
            assert_eq!(
                (
                    data.high_watermark,
                    data.last_stable_offset,
                    data.log_start_offset
                ),
                (10, 10, 0),
                "the leader's offsets"
            );
        }
        let text = node.ff.metrics.render();
        assert!(
            text.contains("shoal_preferred_read_replica_redirects_total{topic=\"t\",partition=\"0\",client_rack=\"r2\",replica=\"2\"} 2"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_leader_serves_when_no_redirect_applies() {
        let leader = replica(0, Role::Leader, 10, 10);
        leader.set_replica_states(Some(caught_up(10)));
        let enabled = node(FF_ON, std::slice::from_ref(&leader));
        let disabled = node(&[], std::slice::from_ref(&leader));
        let class = node(
            &[(
                "replica.selector.class",
                replica_selector::LEADER_SELECTOR_CLASS,
            )],
            std::slice::from_ref(&leader),
        );
        for (node, request, why) in [
            (&enabled, fetch(11, "r1", 4), "leader in the client's rack"),
            (&enabled, fetch(11, "", 4), "no client rack"),
            (
                &enabled,
                fetch(11, "r9", 4),
                "no replica in the client's rack",
            ),
            (&enabled, fetch(10, "r2", 4), "Fetch v10 has no rack"),
            (&disabled, fetch(11, "r2", 4), "selector off"),
            (&class, fetch(11, "r2", 4), "LeaderReplicaSelector"),
        ] {
            let response = run(node, &request).await;
            let data = only(&response);
            assert_eq!(data.error_code, 0, "{why}");
            assert_eq!(data.preferred_read_replica, BrokerId(-1), "{why}");
            assert_eq!(records_in(data), 6, "{why}");
        }
    }

    #[tokio::test]
    async fn followers_not_holding_the_offset_are_not_chosen() {
        let leader = replica(0, Role::Leader, 10, 10);
        let mut states = caught_up(10);
        states.followers[0] = follower_state(2, 3, true); // behind the fetch offset
        states.followers[1] = follower_state(3, 10, false); // out of the ISR
        leader.set_replica_states(Some(states));
        let node = node(FF_ON, &[leader]);
        for rack in ["r2", "r3"] {
            let response = run(&node, &fetch(11, rack, 4)).await;
            assert_eq!(
                only(&response).preferred_read_replica,
                BrokerId(-1),
                "{rack}"
            );
            assert_eq!(records_in(only(&response)), 6);
        }
    }

    #[tokio::test]
    async fn fenced_or_unreachable_followers_are_not_chosen() {
        let leader = replica(0, Role::Leader, 10, 10);
        leader.set_replica_states(Some(caught_up(10)));
        let mut node = node(FF_ON, &[leader]);
        let mut image = MetadataImage::clone(&node.image);
        image = image
            .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
                node_id: 2,
                rack: Some("r2".into()),
                endpoints: vec![],
                fenced: false,
            }))
            .unwrap()
            .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
                node_id: 3,
                rack: Some("r3".into()),
                endpoints: vec![BrokerEndpoint {
                    listener: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 1,
                }],
                fenced: true,
            }))
            .unwrap();
        node.image = Arc::new(image);
        for rack in ["r2", "r3"] {
            let response = run(&node, &fetch(11, rack, 4)).await;
            assert_eq!(
                only(&response).preferred_read_replica,
                BrokerId(-1),
                "{rack}"
            );
        }
    }

    #[tokio::test]
    async fn the_leader_epoch_is_checked_before_redirecting() {
        let leader = replica(0, Role::Leader, 10, 10);
        leader.set_replica_states(Some(caught_up(10)));
        let node = node(FF_ON, &[leader]);
        for (epoch, error) in [
            (EPOCH - 1, ResponseError::FencedLeaderEpoch),
            (EPOCH + 1, ResponseError::UnknownLeaderEpoch),
        ] {
            let mut request = fetch(12, "r2", 4);
            request.epoch = epoch;
            let response = run(&node, &request).await;
            let data = only(&response);
            assert_eq!(data.error_code, error.code());
            assert_eq!(data.preferred_read_replica, BrokerId(-1));
        }
        let mut request = fetch(12, "r2", 4);
        request.epoch = -1;
        assert_eq!(
            only(&run(&node, &request).await).preferred_read_replica,
            BrokerId(2),
            "no epoch, no check"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_redirect_answers_the_whole_request_at_once() {
        let p0 = replica(0, Role::Leader, 10, 10);
        p0.set_replica_states(Some(caught_up(10)));
        let p1 = replica(1, Role::Leader, 4, 4);
        // Partition 1's followers lag behind its fetch offset: the leader serves it.
        let mut lagging = caught_up(4);
        lagging
            .followers
            .iter_mut()
            .for_each(|f| f.log_end_offset = 2);
        p1.set_replica_states(Some(lagging));
        let node = node(FF_ON, &[p0, p1]);
        let mut request = fetch(11, "r2", 4);
        request.offsets = vec![4, 4];
        request.max_wait_ms = 30_000;
        let started = tokio::time::Instant::now();
        let response = run(&node, &request).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        let parts = &response.responses[0].partitions;
        assert_eq!(parts.len(), 2, "every requested partition is answered");
        assert_eq!(parts[0].preferred_read_replica, BrokerId(2));
        assert_eq!(parts[1].preferred_read_replica, BrokerId(-1));
        assert_eq!(parts[1].error_code, 0);
        assert_eq!(parts[1].high_watermark, 4);
    }

    #[tokio::test]
    async fn a_client_without_rack_id_gets_the_rack_of_its_address() {
        let leader = replica(0, Role::Leader, 10, 10);
        leader.set_replica_states(Some(caught_up(10)));
        let mut node = node(
            &[
                ("follower.fetching.enabled", "true"),
                (
                    "client.rack.cidrs",
                    "10.0.2.0/24=r2,10.0.3.0/24=r3,::ffff:0:0/96=r9",
                ),
            ],
            &[leader],
        );
        node.peer = "10.0.3.17".parse().unwrap();
        assert_eq!(
            only(&run(&node, &fetch(11, "", 4)).await).preferred_read_replica,
            BrokerId(3)
        );
        assert_eq!(
            only(&run(&node, &fetch(11, "r2", 4)).await).preferred_read_replica,
            BrokerId(2),
            "the rack the client names wins"
        );
        node.peer = "10.0.9.1".parse().unwrap();
        assert_eq!(
            only(&run(&node, &fetch(11, "", 4)).await).preferred_read_replica,
            BrokerId(-1)
        );
    }

    #[tokio::test]
    async fn a_follower_refuses_consumer_fetches_before_v11() {
        let follower = replica(0, Role::Follower, 10, 10);
        let node = node(FF_ON, &[follower]);
        for version in [4, 10] {
            let response = run(&node, &fetch(version, "", 0)).await;
            let data = only(&response);
            assert_eq!(
                data.error_code,
                ResponseError::NotLeaderOrFollower.code(),
                "v{version}"
            );
            assert_eq!(records_in(data), 0);
        }
        let mut stale = fetch(10, "", 0);
        stale.epoch = EPOCH - 1;
        assert_eq!(
            only(&run(&node, &stale).await).error_code,
            ResponseError::FencedLeaderEpoch.code(),
            "the epoch is checked first"
        );
    }

    #[tokio::test]
    async fn a_follower_serves_v11_consumers_up_to_its_high_watermark_and_never_redirects() {
        let follower = replica(0, Role::Follower, 10, 6);
        let node = node(FF_ON, &[follower]);
        for (version, rack) in [(11, ""), (11, "r2"), (12, "r3"), (17, "r1")] {
            let response = run(&node, &fetch(version, rack, 0)).await;
            let data = only(&response);
            assert_eq!(data.error_code, 0);
            assert_eq!(
                data.preferred_read_replica,
                BrokerId(-1),
                "followers never select"
            );
            assert_eq!(
                records_in(data),
                6,
                "nothing above the follower's high watermark"
            );
            assert_eq!((data.high_watermark, data.last_stable_offset), (6, 6));
        }
        let mut committed = fetch(11, "", 2);
        committed.isolation = 1;
        let response = run(&node, &committed).await;
        assert_eq!(
            records_in(only(&response)),
            4,
            "read_committed stops at the LSO"
        );
        let text = node.ff.metrics.render();
        assert!(
            text.contains("shoal_consumer_fetch_records_total{topic=\"t\",partition=\"0\",role=\"follower\",broker_rack=\"r1\",client_rack=\"r2\"} 6"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_follower_answers_out_of_range_offsets_with_offset_out_of_range() {
        let follower = replica(0, Role::Follower, 10, 6);
        follower.advance_log_start(3);
        let node = node(FF_ON, &[follower]);
        for offset in [11, 2, 0] {
            let response = run(&node, &fetch(11, "", offset)).await;
            assert_eq!(
                only(&response).error_code,
                ResponseError::OffsetOutOfRange.code(),
                "offset {offset}"
            );
        }
        let at_end = run(&node, &fetch(11, "", 10)).await;
        assert_eq!(
            only(&at_end).error_code,
            0,
            "the log end itself is in range"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_parks_an_uncommitted_offset_until_its_high_watermark_covers_it() {
        let follower = replica(0, Role::Follower, 10, 6);
        let node = Arc::new(node(FF_ON, std::slice::from_ref(&follower)));
        let mut request = fetch(11, "r1", 8);
        request.max_wait_ms = 10_000;
        let started = tokio::time::Instant::now();
        let parked = tokio::spawn({
            let node = node.clone();
            async move { run(&node, &request).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !parked.is_finished(),
            "offset 8 is above the high watermark 6: it waits"
        );
        follower.set_high_watermark(7);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!parked.is_finished(), "7 does not yet cover offset 8");
        follower.set_high_watermark(10);
        let response = parked.await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(10_000));
        let data = only(&response);
        assert_eq!(data.error_code, 0);
        assert_eq!(records_in(data), 2);
        assert_eq!(data.high_watermark, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_follower_fetch_ends_empty_at_max_wait_never_offset_not_available() {
        let follower = replica(0, Role::Follower, 10, 6);
        let node = node(FF_ON, &[follower]);
        let mut request = fetch(11, "", 9);
        request.max_wait_ms = 500;
        let started = tokio::time::Instant::now();
        let response = run(&node, &request).await;
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        let data = only(&response);
        assert_eq!(data.error_code, 0);
        assert_eq!(records_in(data), 0);
        assert_eq!(data.high_watermark, 6);
        let mut immediate = fetch(11, "", 9);
        immediate.min_bytes = 0;
        immediate.max_wait_ms = 500;
        let started = tokio::time::Instant::now();
        run(&node, &immediate).await;
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "min_bytes 0 asks not to wait"
        );
    }

    #[tokio::test]
    async fn leader_served_bytes_are_counted_with_the_client_rack() {
        let leader = replica(0, Role::Leader, 10, 10);
        let node = node(&[], &[leader]);
        let response = run(&node, &fetch(11, "r3", 7)).await;
        let bytes = only(&response).records.as_ref().unwrap().len();
        let text = node.ff.metrics.render();
        let series =
            "{topic=\"t\",partition=\"0\",role=\"leader\",broker_rack=\"r1\",client_rack=\"r3\"}";
        assert!(
            text.contains(&format!(
                "shoal_consumer_fetch_bytes_total{series} {bytes}\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("shoal_consumer_fetch_records_total{series} 3\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "shoal_consumer_fetch_cross_rack_bytes_total{series} {bytes}\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn records_are_counted_per_batch_without_control_records() {
        let mut data = batch(3).to_vec();
        data.extend_from_slice(&batch(2));
        let mut control = batch(1).to_vec();
        control[22] |= 0x20; // attributes bit 5: control batch
        data.extend_from_slice(&control);
        assert_eq!(count_records(&data), 5);
        assert_eq!(
            count_records(&data[..data.len() - 3]),
            5,
            "a partial batch counts nothing"
        );
        assert_eq!(count_records(&[]), 0);
    }

    #[test]
    fn budget_follows_kip74() {
        let mut budget = FetchBudget::new(100);
        assert_eq!(budget.next(1000), (100, true));
        budget.consumed(0);
        assert_eq!(
            budget.next(50),
            (50, true),
            "min_one stays until data is returned"
        );
        budget.consumed(150);
        assert_eq!(budget.next(50), (0, false));
        assert_eq!(FetchBudget::new(-5).next(10), (0, true));
    }

    #[test]
    fn diverging_epochs() {
        assert_eq!(diverging_epoch(10, 3, Some((3, 20))), None);
        assert_eq!(diverging_epoch(25, 3, Some((3, 20))), Some((3, 20)));
        assert_eq!(diverging_epoch(10, 5, Some((4, 30))), Some((4, 30)));
        assert_eq!(diverging_epoch(10, 5, None), None);
    }
}
