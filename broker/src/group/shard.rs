//! One `__consumer_offsets` partition's share of the group coordinator (Kafka's
//! `GroupCoordinatorShard` with the classic half of `GroupMetadataManager` and
//! `OffsetMetadataManager`): the classic groups and committed offsets whose group ids hash to the
//! partition, their state machine, and their timers.
//!
//! Pure and synchronous: every operation takes the time (`now_ms`) and returns what the runtime
//! must do — records to append to the partition, parked requests to answer now, and work to run
//! once the records are committed ([`Outcome`]). The runtime owns the IO; this owns the
//! decisions, so the whole state machine is tested here without a runtime.
//!
//! State follows Kafka's rules: Empty → PreparingRebalance → CompletingRebalance → Stable (→
//! PreparingRebalance again) and Dead; member ids and `MEMBER_ID_REQUIRED` from JoinGroup v4;
//! static members (`group.instance.id`) replaced without a rebalance when the protocol stays;
//! session, rebalance, sync and new-member timeouts; the delayed initial rebalance; generation
//! fencing; offset retention.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use shoal_protocol::error_code::ResponseError;

use super::classic::{ClassicGroup, GroupState, JoinedMember, Member, Protocol, WaiterId};
use super::config::GroupConfig;
use super::records::{CoordinatorRecord, OffsetCommitValue};
use super::timer::{Timer, TimerKey, TimerTask};

type E = ResponseError;

/// Kafka's `JoinGroupRequest.UNKNOWN_MEMBER_ID`.
pub const UNKNOWN_MEMBER_ID: &str = "";

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub client_id: String,
    /// As Kafka writes it: `/` and the address.
    pub client_host: String,
    pub api_version: i16,
}

/// A JoinGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    pub session_timeout_ms: i32,
    /// Already the session timeout for v0 requests.
    pub rebalance_timeout_ms: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub reason: Option<String>,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    /// An error answer (Kafka's `new JoinGroupResponseData().setMemberId(..).setErrorCode(..)`).
    pub fn error(member_id: &str, error: ResponseError) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: vec![],
        }
    }

    fn success(group: &ClassicGroup, member_id: &str, members: Vec<JoinedMember>) -> Self {
        JoinResponse {
            error: None,
            generation_id: group.generation_id,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            leader: group.leader().unwrap_or_default().to_string(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members,
        }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: ResponseError) -> Self {
        SyncResponse {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer for a parked JoinGroup or SyncGroup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Join(WaiterId, JoinResponse),
    Sync(WaiterId, SyncResponse),
}

/// Work that waits for the operation's records to be committed (Kafka's append futures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// The leader's assignment is stored: hand it out and become Stable.
    PropagateAssignment {
        group: String,
        generation: i32,
        assignments: BTreeMap<String, Bytes>,
    },
    /// A static member that replaced its old member id is stored: answer its JoinGroup.
    CompleteStaticJoin {
        group: String,
        member: String,
        /// The leader before the replacement (pre-v9 answers carry it).
        previous_leader: Option<String>,
        supports_skip_assignment: bool,
    },
}

/// What the runtime must do after an operation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Records to append to the partition, in order.
    pub records: Vec<CoordinatorRecord>,
    /// Parked requests to answer now.
    pub completions: Vec<Completion>,
    /// Work to run once `records` (and everything before them) are committed.
    pub on_commit: Vec<Deferred>,
}

impl Outcome {
    fn complete_join(&mut self, waiter: Option<WaiterId>, response: JoinResponse) {
        if let Some(w) = waiter {
            self.completions.push(Completion::Join(w, response));
        }
    }

    fn complete_sync(&mut self, waiter: Option<WaiterId>, response: SyncResponse) {
        if let Some(w) = waiter {
            self.completions.push(Completion::Sync(w, response));
        }
    }

    /// Appends `other`'s effects after this one's.
    pub fn extend(&mut self, other: Outcome) {
        self.records.extend(other.records);
        self.completions.extend(other.completions);
        self.on_commit.extend(other.on_commit);
    }
}

/// A member leaving (LeaveGroup v3+ batches them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub reason: Option<String>,
}

/// The per-member answer to LeaveGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub error: Option<ResponseError>,
}

/// An OffsetCommit request (partitions already checked against the metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// -1: the broker's `offsets.retention.minutes` applies.
    pub retention_time_ms: i64,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
    pub api_version: i16,
}

/// One partition's committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Per topic, per partition: the commit's error, if any.
pub type CommitResults = Vec<(String, Vec<(i32, Option<ResponseError>)>)>;

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub error: Option<ResponseError>,
}

/// One group's OffsetFetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedGroup {
    pub group_id: String,
    pub error: Option<ResponseError>,
    pub topics: Vec<(String, Vec<FetchedOffset>)>,
}

/// A group as ListGroups lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    pub group_type: &'static str,
}

/// A member as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Empty unless the group is Stable.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub error: Option<ResponseError>,
    /// Set with the error (DescribeGroups v6+).
    pub error_message: Option<String>,
    pub state: &'static str,
    pub protocol_type: String,
    /// The protocol name, for Stable groups only.
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CommittedOffset {
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    commit_timestamp_ms: i64,
    expire_timestamp_ms: Option<i64>,
}

type GroupOffsets = BTreeMap<String, BTreeMap<i32, CommittedOffset>>;

/// Generates member id suffixes (UUIDs in production; injected for deterministic tests).
pub type IdGenerator = Box<dyn FnMut() -> String + Send>;

/// See the module documentation.
pub struct GroupShard {
    config: GroupConfig,
    groups: HashMap<String, ClassicGroup>,
    offsets: HashMap<String, GroupOffsets>,
    timer: Timer,
    ids: IdGenerator,
}

impl std::fmt::Debug for GroupShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupShard")
            .field("groups", &self.groups.len())
            .field("offsets", &self.offsets.len())
            .field("timers", &self.timer.len())
            .finish()
    }
}

fn heartbeat_key(group: &str, member: &str) -> TimerKey {
    TimerKey::Heartbeat {
        group: group.to_string(),
        member: member.to_string(),
    }
}

fn join_key(group: &str) -> TimerKey {
    TimerKey::Join {
        group: group.to_string(),
    }
}

fn sync_key(group: &str) -> TimerKey {
    TimerKey::Sync {
        group: group.to_string(),
    }
}

fn reason(r: &Option<String>) -> &str {
    r.as_deref()
        .filter(|r| !r.is_empty())
        .unwrap_or("not provided")
}

/// Kafka's `isProtocolInconsistent`.
/// Why a join cannot proceed at all, whoever the member is: the group was unloaded (its
/// partition moved away), or the member speaks none of the group's protocols.
fn join_refusal(group: &ClassicGroup, request: &JoinRequest) -> Option<E> {
    if group.is(GroupState::Dead) {
        Some(E::CoordinatorNotAvailable)
    } else if !group.supports_protocols(&request.protocol_type, &request.protocols) {
        Some(E::InconsistentGroupProtocol)
    } else {
        None
    }
}

fn protocol_inconsistent(request: Option<&str>, group: Option<&str>) -> bool {
    matches!((request, group), (Some(r), Some(g)) if r != g)
}

impl GroupShard {
    /// An empty shard; `ids` makes the random part of new member ids.
    pub fn new(config: GroupConfig, ids: IdGenerator) -> Self {
        GroupShard {
            config,
            groups: HashMap::new(),
            offsets: HashMap::new(),
            timer: Timer::default(),
            ids,
        }
    }

    /// A shard whose member ids use random UUIDs.
    pub fn with_random_ids(config: GroupConfig) -> Self {
        Self::new(config, Box::new(|| uuid::Uuid::new_v4().to_string()))
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&ClassicGroup> {
        self.groups.get(group_id)
    }

    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }

    /// The earliest timer deadline.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timer.next_deadline()
    }

    /// Runs every timer due at `now_ms`.
    pub fn fire_timers(&mut self, now_ms: i64) -> Outcome {
        let mut out = Outcome::default();
        while let Some(task) = self.timer.pop_expired(now_ms) {
            match task {
                TimerTask::ExpireHeartbeat { group, member } => {
                    self.expire_heartbeat(&group, &member, now_ms, &mut out)
                }
                TimerTask::CompleteJoin { group } => {
                    if self.groups.contains_key(&group) {
                        self.complete_join(&group, now_ms, &mut out);
                    }
                }
                TimerTask::InitialRebalance {
                    group,
                    delay_ms,
                    remaining_ms,
                } => {
                    self.initial_rebalance_timeout(&group, delay_ms, remaining_ms, now_ms, &mut out)
                }
                TimerTask::ExpirePendingSync { group, generation } => {
                    self.expire_pending_sync(&group, generation, now_ms, &mut out)
                }
                TimerTask::CleanupGroupMetadata => {
                    out.extend(self.cleanup_group_metadata(now_ms));
                }
            }
        }
        out
    }

    // ------------------------------------------------------------------------------------
    // Loading

    /// Applies one record read from the partition (Kafka's `replay`).
    pub fn replay(&mut self, record: CoordinatorRecord, now_ms: i64) {
        match record {
            CoordinatorRecord::OffsetCommit {
                group,
                topic,
                partition,
                value: Some(value),
            } => {
                self.groups
                    .entry(group.clone())
                    .or_insert_with(|| ClassicGroup::new(group.clone(), now_ms));
                self.put_offset(&group, topic, partition, &value);
            }
            CoordinatorRecord::OffsetCommit {
                group,
                topic,
                partition,
                value: None,
            } => self.remove_offset(&group, &topic, partition),
            CoordinatorRecord::GroupMetadata {
                group,
                value: Some(value),
            } => {
                self.groups
                    .insert(group.clone(), ClassicGroup::from_record(&group, &value));
            }
            CoordinatorRecord::GroupMetadata { group, value: None } => {
                self.groups.remove(&group);
            }
        }
    }

    /// Everything is loaded (Kafka's `onLoaded`): sessions run from now on, oversized groups
    /// rebalance, and the offset expiration starts.
    pub fn on_loaded(&mut self, now_ms: i64) -> Outcome {
        let mut out = Outcome::default();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            let Some(group) = self.groups.get(&id) else {
                continue;
            };
            let members: Vec<(String, i32)> = group
                .members()
                .map(|m| (m.member_id.clone(), m.session_timeout_ms))
                .collect();
            let oversized = group.num_members() > self.config.max_size;
            tracing::info!(group = %id, members = members.len(), "loaded classic group");
            for (member, session) in members {
                self.schedule_heartbeat(&id, &member, i64::from(session), now_ms);
            }
            if oversized {
                self.prepare_rebalance(
                    &id,
                    "freshly loaded group is over capacity",
                    now_ms,
                    &mut out,
                );
            }
        }
        self.timer.schedule(
            TimerKey::Expiration,
            now_ms + self.config.offsets_retention_check_interval_ms,
            TimerTask::CleanupGroupMetadata,
        );
        out
    }

    /// The partition is no longer ours (Kafka's `onUnloaded`): parked requests get
    /// `NOT_COORDINATOR`, every group is Dead, timers stop.
    pub fn unload(&mut self, now_ms: i64) -> Outcome {
        let mut out = Outcome::default();
        for group in self.groups.values_mut() {
            group.transition_to(GroupState::Dead, now_ms);
            let previous = group.previous_state();
            for id in group.member_ids() {
                match previous {
                    GroupState::PreparingRebalance => {
                        let w = group.take_join_waiter(&id);
                        out.complete_join(w, JoinResponse::error(&id, E::NotCoordinator));
                    }
                    GroupState::CompletingRebalance | GroupState::Stable => {
                        let w = group.take_sync_waiter(&id);
                        out.complete_sync(w, SyncResponse::error(E::NotCoordinator));
                    }
                    GroupState::Empty | GroupState::Dead => {}
                }
            }
        }
        self.timer.clear();
        out
    }

    // ------------------------------------------------------------------------------------
    // JoinGroup

    /// Kafka's `GroupCoordinatorService.joinGroup` checks and `classicGroupJoin`. `waiter`
    /// identifies the request; its answer comes in some [`Outcome`]'s completions, now or later.
    pub fn join(
        &mut self,
        ctx: &RequestContext,
        request: JoinRequest,
        waiter: WaiterId,
        now_ms: i64,
    ) -> Outcome {
        let mut out = Outcome::default();
        if request.group_id.is_empty() {
            out.complete_join(
                Some(waiter),
                JoinResponse::error(&request.member_id, E::InvalidGroupId),
            );
            return out;
        }
        if request.session_timeout_ms < self.config.min_session_timeout_ms
            || request.session_timeout_ms > self.config.max_session_timeout_ms
        {
            out.complete_join(
                Some(waiter),
                JoinResponse::error(&request.member_id, E::InvalidSessionTimeout),
            );
            return out;
        }
        let group_id = request.group_id.clone();
        tracing::debug!(group = %group_id, member = %request.member_id, instance = ?request.group_instance_id, state = ?self.groups.get(&group_id).map(ClassicGroup::state), "JoinGroup");
        let is_unknown_member = request.member_id == UNKNOWN_MEMBER_ID;
        let is_new_group = !self.groups.contains_key(&group_id);
        if is_new_group {
            if !is_unknown_member {
                out.complete_join(
                    Some(waiter),
                    JoinResponse::error(&request.member_id, E::UnknownMemberId),
                );
                return out;
            }
            self.groups.insert(
                group_id.clone(),
                ClassicGroup::new(group_id.clone(), now_ms),
            );
        }
        let records_before = out.records.len();
        if !self.accept_joining_member(&group_id, &request.member_id) {
            if let Some(g) = self.groups.get_mut(&group_id) {
                g.remove(&request.member_id);
            }
            out.complete_join(
                Some(waiter),
                JoinResponse::error(UNKNOWN_MEMBER_ID, E::GroupMaxSizeReached),
            );
        } else if is_unknown_member {
            self.join_new_member(ctx, &request, waiter, now_ms, &mut out);
        } else {
            self.join_existing_member(ctx, &request, waiter, now_ms, &mut out);
        }
        if is_new_group && out.records.len() == records_before {
            // Commits the new group to the log (Kafka's empty group metadata record).
            if let Some(g) = self.groups.get(&group_id) {
                out.records.push(CoordinatorRecord::GroupMetadata {
                    group: group_id.clone(),
                    value: Some(g.to_empty_record()),
                });
            }
        }
        out
    }

    fn accept_joining_member(&self, group_id: &str, member_id: &str) -> bool {
        let Some(g) = self.groups.get(group_id) else {
            return true;
        };
        match g.state() {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                g.member(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || g.num_awaiting_join() < self.config.max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                g.has_member(member_id) || g.num_members() < self.config.max_size
            }
        }
    }

    fn join_new_member(
        &mut self,
        ctx: &RequestContext,
        request: &JoinRequest,
        waiter: WaiterId,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let Some(group) = self.groups.get(&request.group_id) else {
            return;
        };
        if let Some(error) = join_refusal(group, request) {
            out.complete_join(Some(waiter), JoinResponse::error(UNKNOWN_MEMBER_ID, error));
            return;
        }
        // Kafka's `generateMemberId`: the instance id or client id, '-', a random UUID.
        let prefix = request
            .group_instance_id
            .as_deref()
            .unwrap_or(&ctx.client_id);
        let new_member_id = format!("{prefix}-{}", (self.ids)());
        match request.group_instance_id.clone() {
            Some(instance) => match group.static_member_id(&instance).map(str::to_string) {
                Some(existing) => {
                    tracing::info!(group = %request.group_id, instance = %instance, old = %existing, new = %new_member_id, state = group.state().name(), "static member with unknown member id joins; replacing the previous member id");
                    self.update_static_member_then_rebalance_or_complete_join(
                        ctx,
                        request,
                        &existing,
                        &new_member_id,
                        waiter,
                        now_ms,
                        out,
                    );
                }
                None => self.add_member_then_rebalance_or_complete_join(
                    ctx,
                    request,
                    &new_member_id,
                    waiter,
                    now_ms,
                    out,
                ),
            },
            None if ctx.api_version >= 4 => {
                // MEMBER_ID_REQUIRED: the member rejoins with this id; until then it is pending
                // and expires after its session timeout.
                let group_id = request.group_id.clone();
                if let Some(g) = self.groups.get_mut(&group_id) {
                    g.add_pending_member(&new_member_id);
                }
                self.schedule_heartbeat(
                    &group_id,
                    &new_member_id,
                    i64::from(request.session_timeout_ms),
                    now_ms,
                );
                out.complete_join(
                    Some(waiter),
                    JoinResponse::error(&new_member_id, E::MemberIdRequired),
                );
            }
            None => self.add_member_then_rebalance_or_complete_join(
                ctx,
                request,
                &new_member_id,
                waiter,
                now_ms,
                out,
            ),
        }
    }

    fn join_existing_member(
        &mut self,
        ctx: &RequestContext,
        request: &JoinRequest,
        waiter: WaiterId,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let member_id = request.member_id.as_str();
        let Some(group) = self.groups.get(&request.group_id) else {
            return;
        };
        if let Some(error) = join_refusal(group, request) {
            out.complete_join(Some(waiter), JoinResponse::error(member_id, error));
            return;
        }
        if group.is_pending_member(member_id) {
            if request.group_instance_id.is_some() {
                // Kafka treats this as an internal error: pending members are never static.
                out.complete_join(
                    Some(waiter),
                    JoinResponse::error(member_id, E::UnknownServerError),
                );
                return;
            }
            self.add_member_then_rebalance_or_complete_join(
                ctx, request, member_id, waiter, now_ms, out,
            );
            return;
        }
        if let Err(e) = validate_member(group, member_id, request.group_instance_id.as_deref()) {
            out.complete_join(Some(waiter), JoinResponse::error(member_id, e));
            return;
        }
        let Some(member) = group.member(member_id) else {
            return;
        };
        let same_protocols = member.matches(&request.protocols);
        match group.state() {
            GroupState::PreparingRebalance => {
                self.update_member_then_rebalance_or_complete_join(
                    request,
                    waiter,
                    "member is joining group during PreparingRebalance",
                    now_ms,
                    out,
                );
            }
            GroupState::CompletingRebalance => {
                if same_protocols {
                    // The member probably missed its JoinGroup answer: give it again.
                    let members = if group.is_leader(member_id) {
                        group.joined_members()
                    } else {
                        vec![]
                    };
                    out.complete_join(
                        Some(waiter),
                        JoinResponse::success(group, member_id, members),
                    );
                } else {
                    self.update_member_then_rebalance_or_complete_join(
                        request,
                        waiter,
                        "member changed its metadata during CompletingRebalance",
                        now_ms,
                        out,
                    );
                }
            }
            GroupState::Stable => {
                if group.is_leader(member_id) {
                    // The leader may rejoin to trigger a rebalance (e.g. topic metadata changed).
                    self.update_member_then_rebalance_or_complete_join(
                        request,
                        waiter,
                        "leader re-joining group during Stable",
                        now_ms,
                        out,
                    );
                } else if !same_protocols {
                    self.update_member_then_rebalance_or_complete_join(
                        request,
                        waiter,
                        "member changed its metadata during Stable",
                        now_ms,
                        out,
                    );
                } else {
                    out.complete_join(
                        Some(waiter),
                        JoinResponse::success(group, member_id, vec![]),
                    );
                }
            }
            GroupState::Empty | GroupState::Dead => {
                tracing::warn!(group = %request.group_id, member = %member_id, state = group.state().name(), "rejoining member found the group in an unexpected state");
                out.complete_join(
                    Some(waiter),
                    JoinResponse::error(member_id, E::UnknownMemberId),
                );
            }
        }
    }

    fn update_member_then_rebalance_or_complete_join(
        &mut self,
        request: &JoinRequest,
        waiter: WaiterId,
        why: &str,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return;
        };
        group.update_member(
            &request.member_id,
            request.protocols.clone(),
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            Some(waiter),
        );
        let why = format!(
            "{why} ({}); client reason: {}",
            request.member_id,
            reason(&request.reason)
        );
        self.maybe_prepare_rebalance_or_complete_join(&request.group_id, &why, now_ms, out);
    }

    fn add_member_then_rebalance_or_complete_join(
        &mut self,
        ctx: &RequestContext,
        request: &JoinRequest,
        member_id: &str,
        waiter: WaiterId,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return;
        };
        let member = Member {
            member_id: member_id.to_string(),
            group_instance_id: request.group_instance_id.clone(),
            client_id: ctx.client_id.clone(),
            client_host: ctx.client_host.clone(),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            session_timeout_ms: request.session_timeout_ms,
            protocol_type: request.protocol_type.clone(),
            protocols: request.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: true,
        };
        if group.is(GroupState::PreparingRebalance) && group.previous_state() == GroupState::Empty {
            group.new_member_added = true;
        }
        group.add(member, Some(waiter));
        // A new member cannot heartbeat while its JoinGroup is parked; it is expired after
        // Kafka's new-member join timeout instead (it retries if it is still there).
        let timeout = self.config.new_member_join_timeout_ms;
        self.schedule_heartbeat(&request.group_id, member_id, timeout, now_ms);
        let why = format!(
            "adding new member {member_id} with group instance id {:?}; client reason: {}",
            request.group_instance_id,
            reason(&request.reason)
        );
        self.maybe_prepare_rebalance_or_complete_join(&request.group_id, &why, now_ms, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn update_static_member_then_rebalance_or_complete_join(
        &mut self,
        ctx: &RequestContext,
        request: &JoinRequest,
        old_member_id: &str,
        new_member_id: &str,
        waiter: WaiterId,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let group_id = request.group_id.clone();
        let Some(group) = self.groups.get_mut(&group_id) else {
            return;
        };
        let instance = request.group_instance_id.clone().unwrap_or_default();
        let previous_leader = group.leader().map(str::to_string);
        let (fenced_join, fenced_sync) =
            group.replace_static_member(&instance, old_member_id, new_member_id);
        // The old member id's requests are fenced at once.
        out.complete_join(
            fenced_join,
            JoinResponse {
                protocol_name: None,
                ..JoinResponse::error(old_member_id, E::FencedInstanceId)
            },
        );
        out.complete_sync(fenced_sync, SyncResponse::error(E::FencedInstanceId));
        let session = group
            .member(new_member_id)
            .map_or(i64::from(request.session_timeout_ms), |m| {
                i64::from(m.session_timeout_ms)
            });
        group.update_member(
            new_member_id,
            request.protocols.clone(),
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            Some(waiter),
        );
        self.timer.cancel(&heartbeat_key(&group_id, old_member_id));
        self.schedule_heartbeat(&group_id, new_member_id, session, now_ms);
        let Some(group) = self.groups.get(&group_id) else {
            return;
        };
        match group.state() {
            GroupState::Stable => {
                if group.protocol_name == group.select_protocol() {
                    tracing::info!(group = %group_id, "static member which joins during Stable and does not change the selected protocol does not trigger a rebalance");
                    out.records.push(CoordinatorRecord::GroupMetadata {
                        group: group_id.clone(),
                        value: Some(group.to_record()),
                    });
                    out.on_commit.push(Deferred::CompleteStaticJoin {
                        group: group_id,
                        member: new_member_id.to_string(),
                        previous_leader,
                        supports_skip_assignment: ctx.api_version >= 9,
                    });
                } else {
                    let why = format!(
                        "group's selected protocol will change because static member {new_member_id} with instance id {instance} joined with a change of protocol; client reason: {}",
                        reason(&request.reason)
                    );
                    self.maybe_prepare_rebalance_or_complete_join(&group_id, &why, now_ms, out);
                }
            }
            GroupState::CompletingRebalance => {
                // The leader may already hold the old member id; rebalance so assignments match.
                let why = format!(
                    "updating metadata for static member {new_member_id} with instance id {instance}; client reason: {}",
                    reason(&request.reason)
                );
                self.prepare_rebalance(&group_id, &why, now_ms, out);
            }
            GroupState::PreparingRebalance => {
                self.maybe_complete_join_phase(&group_id, now_ms, out)
            }
            GroupState::Empty | GroupState::Dead => {
                tracing::error!(group = %group_id, "static member rejoined a group in state {}", group.state().name());
            }
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        group_id: &str,
        why: &str,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        if group.can_rebalance() {
            self.prepare_rebalance(group_id, why, now_ms, out);
        } else {
            self.maybe_complete_join_phase(group_id, now_ms, out);
        }
    }

    /// Kafka's `prepareRebalance`.
    fn prepare_rebalance(&mut self, group_id: &str, why: &str, now_ms: i64, out: &mut Outcome) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.is(GroupState::CompletingRebalance) {
            // Parked SyncGroup requests must rejoin.
            for id in group.member_ids() {
                if let Some(m) = group.member_mut(&id) {
                    m.assignment = Bytes::new();
                }
            }
            let answered = propagate_assignment(group, Some(E::RebalanceInProgress), out);
            self.reschedule_heartbeats(group_id, answered, now_ms);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        group.clear_pending_sync_members();
        self.timer.cancel(&sync_key(group_id));
        let initial = group.is(GroupState::Empty);
        if initial {
            // A new group: give more members the chance to join before the first generation.
            let delay = self.config.initial_rebalance_delay_ms;
            let remaining = (i64::from(group.rebalance_timeout_ms()) - delay).max(0);
            self.timer.schedule(
                join_key(group_id),
                now_ms + delay,
                TimerTask::InitialRebalance {
                    group: group_id.to_string(),
                    delay_ms: delay,
                    remaining_ms: remaining,
                },
            );
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        group.transition_to(GroupState::PreparingRebalance, now_ms);
        tracing::info!(group = %group_id, generation = group.generation_id, reason = %why, "preparing to rebalance group");
        if !initial {
            self.maybe_complete_join_else_schedule(group_id, now_ms, out);
        }
    }

    fn maybe_complete_join_else_schedule(
        &mut self,
        group_id: &str,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        if group.has_all_members_joined() {
            self.complete_join(group_id, now_ms, out);
        } else {
            let timeout = i64::from(group.rebalance_timeout_ms());
            self.timer.schedule(
                join_key(group_id),
                now_ms + timeout,
                TimerTask::CompleteJoin {
                    group: group_id.to_string(),
                },
            );
        }
    }

    fn initial_rebalance_timeout(
        &mut self,
        group_id: &str,
        delay_ms: i64,
        remaining_ms: i64,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.new_member_added && remaining_ms != 0 {
            // Someone joined during the delay: wait a little longer (within the rebalance timeout).
            group.new_member_added = false;
            let new_delay = self.config.initial_rebalance_delay_ms.min(remaining_ms);
            let new_remaining = (remaining_ms - delay_ms).max(0);
            self.timer.schedule(
                join_key(group_id),
                now_ms + new_delay,
                TimerTask::InitialRebalance {
                    group: group_id.to_string(),
                    delay_ms: new_delay,
                    remaining_ms: new_remaining,
                },
            );
        } else {
            self.complete_join(group_id, now_ms, out);
        }
    }

    /// Kafka's `maybeCompleteJoinPhase`: not during the initial rebalance's delay.
    fn maybe_complete_join_phase(&mut self, group_id: &str, now_ms: i64, out: &mut Outcome) {
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        if group.is(GroupState::PreparingRebalance)
            && group.previous_state() != GroupState::Empty
            && group.has_all_members_joined()
        {
            self.complete_join(group_id, now_ms, out);
        }
    }

    /// Kafka's `completeClassicGroupJoin`: dynamic members that did not rejoin are removed, the
    /// next generation starts, and every member gets its JoinGroup answer (the leader with
    /// the members' metadata).
    fn complete_join(&mut self, group_id: &str, now_ms: i64, out: &mut Outcome) {
        self.timer.cancel(&join_key(group_id));
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let not_rejoined: Vec<String> = group
            .not_yet_rejoined_members()
            .into_iter()
            .filter(|id| {
                group
                    .member(id)
                    .is_some_and(|m| m.group_instance_id.is_none())
            })
            .collect();
        for id in &not_rejoined {
            group.remove(id);
        }
        for id in &not_rejoined {
            self.timer.cancel(&heartbeat_key(group_id, id));
        }
        if !not_rejoined.is_empty() {
            tracing::info!(group = %group_id, members = ?not_rejoined, "removed dynamic members that did not rejoin");
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.is(GroupState::Dead) {
            return;
        }
        if !group.maybe_elect_new_joined_leader() && group.num_members() > 0 {
            // Nobody rejoined: wait another rebalance timeout for sessions to expire them.
            tracing::error!(group = %group_id, "group could not complete rebalance because no members rejoined");
            let timeout = i64::from(group.rebalance_timeout_ms());
            self.timer.schedule(
                join_key(group_id),
                now_ms + timeout,
                TimerTask::CompleteJoin {
                    group: group_id.to_string(),
                },
            );
            return;
        }
        group.init_next_generation(now_ms);
        if group.is(GroupState::Empty) {
            tracing::info!(group = %group_id, generation = group.generation_id, "group is now empty");
            out.records.push(CoordinatorRecord::GroupMetadata {
                group: group_id.to_string(),
                value: Some(group.to_record()),
            });
            return;
        }
        tracing::info!(group = %group_id, generation = group.generation_id, members = group.num_members(), "stabilized group");
        let ids = group.member_ids();
        let mut sessions = Vec::with_capacity(ids.len());
        for id in &ids {
            let members = if group.is_leader(id) {
                group.joined_members()
            } else {
                vec![]
            };
            let response = JoinResponse::success(group, id, members);
            let waiter = group.take_join_waiter(id);
            out.complete_join(waiter, response);
            if let Some(m) = group.member_mut(id) {
                m.is_new = false;
                sessions.push((id.clone(), i64::from(m.session_timeout_ms)));
            }
            group.add_pending_sync_member(id);
        }
        let generation = group.generation_id;
        let timeout = i64::from(group.rebalance_timeout_ms());
        for (id, session) in sessions {
            self.schedule_heartbeat(group_id, &id, session, now_ms);
        }
        self.timer.schedule(
            sync_key(group_id),
            now_ms + timeout,
            TimerTask::ExpirePendingSync {
                group: group_id.to_string(),
                generation,
            },
        );
    }

    fn expire_pending_sync(
        &mut self,
        group_id: &str,
        generation: i32,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if generation != group.generation_id {
            tracing::error!(group = %group_id, generation, current = group.generation_id, "sync expiration for an old generation");
            return;
        }
        if !matches!(
            group.state(),
            GroupState::CompletingRebalance | GroupState::Stable
        ) || group.has_received_sync_from_all_members()
        {
            return;
        }
        let pending = group.pending_sync_members();
        for id in &pending {
            group.remove(id);
        }
        for id in &pending {
            self.timer.cancel(&heartbeat_key(group_id, id));
        }
        let why = format!("removing {pending:?} on pending sync request expiration");
        self.prepare_rebalance(group_id, &why, now_ms, out);
    }

    // ------------------------------------------------------------------------------------
    // SyncGroup

    /// Kafka's `syncGroup` checks and `classicGroupSync`.
    pub fn sync(&mut self, request: SyncRequest, waiter: WaiterId, now_ms: i64) -> Outcome {
        let mut out = Outcome::default();
        tracing::debug!(group = %request.group_id, member = %request.member_id, generation = request.generation_id, state = ?self.groups.get(&request.group_id).map(ClassicGroup::state), "SyncGroup");
        let fail = |out: &mut Outcome, e| out.complete_sync(Some(waiter), SyncResponse::error(e));
        if request.group_id.is_empty() {
            fail(&mut out, E::InvalidGroupId);
            return out;
        }
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            fail(&mut out, E::UnknownMemberId);
            return out;
        };
        if group.is(GroupState::Empty) {
            fail(&mut out, E::UnknownMemberId);
            return out;
        }
        if group.is(GroupState::Dead) {
            fail(&mut out, E::CoordinatorNotAvailable);
            return out;
        }
        if let Err(e) = validate_member(
            group,
            &request.member_id,
            request.group_instance_id.as_deref(),
        ) {
            fail(&mut out, e);
            return out;
        }
        if request.generation_id != group.generation_id {
            fail(&mut out, E::IllegalGeneration);
            return out;
        }
        if protocol_inconsistent(
            request.protocol_type.as_deref(),
            group.protocol_type.as_deref(),
        ) || protocol_inconsistent(
            request.protocol_name.as_deref(),
            group.protocol_name.as_deref(),
        ) {
            fail(&mut out, E::InconsistentGroupProtocol);
            return out;
        }
        let group_id = request.group_id.clone();
        match group.state() {
            GroupState::PreparingRebalance => fail(&mut out, E::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                if let Some(m) = group.member_mut(&request.member_id) {
                    m.awaiting_sync = Some(waiter);
                }
                self.remove_pending_sync_member(&group_id, &request.member_id);
                let Some(group) = self.groups.get(&group_id) else {
                    return out;
                };
                if group.is_leader(&request.member_id) {
                    tracing::info!(group = %group_id, leader = %request.member_id, generation = group.generation_id, members = group.num_members(), static_members = group.num_static_members(), "assignment received from the leader");
                    let mut assignments: BTreeMap<String, Bytes> =
                        request.assignments.into_iter().collect();
                    for id in group.member_ids() {
                        assignments.entry(id).or_default();
                    }
                    let mut record = group.to_record();
                    for m in &mut record.members {
                        m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    out.records.push(CoordinatorRecord::GroupMetadata {
                        group: group_id.clone(),
                        value: Some(record),
                    });
                    out.on_commit.push(Deferred::PropagateAssignment {
                        group: group_id,
                        generation: request.generation_id,
                        assignments,
                    });
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(&group_id, &request.member_id);
                if let Some(group) = self.groups.get(&group_id) {
                    let assignment = group
                        .member(&request.member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default();
                    out.complete_sync(
                        Some(waiter),
                        SyncResponse {
                            error: None,
                            protocol_type: group.protocol_type.clone(),
                            protocol_name: group.protocol_name.clone(),
                            assignment,
                        },
                    );
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
        let _ = now_ms;
        out
    }

    fn remove_pending_sync_member(&mut self, group_id: &str, member_id: &str) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        group.remove_pending_sync_member(member_id);
        let done = match group.state() {
            GroupState::Dead | GroupState::Empty | GroupState::PreparingRebalance => true,
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.has_received_sync_from_all_members()
            }
        };
        if done {
            self.timer.cancel(&sync_key(group_id));
        }
    }

    /// Runs work whose records are now committed.
    pub fn on_committed(&mut self, deferred: Deferred, now_ms: i64) -> Outcome {
        let mut out = Outcome::default();
        match deferred {
            Deferred::PropagateAssignment {
                group: group_id,
                generation,
                assignments,
            } => {
                let Some(group) = self.groups.get_mut(&group_id) else {
                    return out;
                };
                // Another member may have joined meanwhile: only the same generation, still
                // waiting for its assignment, takes it.
                if group.is(GroupState::CompletingRebalance) && group.generation_id == generation {
                    group.set_assignments(&assignments);
                    let answered = propagate_assignment(group, None, &mut out);
                    group.transition_to(GroupState::Stable, now_ms);
                    self.reschedule_heartbeats(&group_id, answered, now_ms);
                }
            }
            Deferred::CompleteStaticJoin {
                group: group_id,
                member,
                previous_leader,
                supports_skip_assignment,
            } => {
                let Some(group) = self.groups.get_mut(&group_id) else {
                    return out;
                };
                let response = if supports_skip_assignment {
                    let is_leader = group.is_leader(&member);
                    let members = if is_leader {
                        group.joined_members()
                    } else {
                        vec![]
                    };
                    JoinResponse {
                        skip_assignment: is_leader,
                        ..JoinResponse::success(group, &member, members)
                    }
                } else {
                    JoinResponse {
                        leader: previous_leader.unwrap_or_default(),
                        ..JoinResponse::success(group, &member, vec![])
                    }
                };
                let waiter = group.take_join_waiter(&member);
                out.complete_join(waiter, response);
            }
        }
        out
    }

    /// Restarts the sessions of members whose parked SyncGroup was just answered (Kafka
    /// reschedules the heartbeat of every member whose sync future it completes).
    fn reschedule_heartbeats(&mut self, group_id: &str, members: Vec<(String, i64)>, now_ms: i64) {
        for (id, session) in members {
            self.schedule_heartbeat(group_id, &id, session, now_ms);
        }
    }

    // ------------------------------------------------------------------------------------
    // Heartbeat, LeaveGroup, member expiry

    /// Kafka's `heartbeat` checks and `classicGroupHeartbeat`.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(E::InvalidGroupId);
        }
        let group = self.groups.get(group_id).ok_or(E::UnknownMemberId)?;
        if group.is(GroupState::Dead) {
            return Err(E::CoordinatorNotAvailable);
        }
        validate_member(group, member_id, group_instance_id)?;
        if generation_id != group.generation_id {
            return Err(E::IllegalGeneration);
        }
        let session = group
            .member(member_id)
            .map_or(0, |m| i64::from(m.session_timeout_ms));
        match group.state() {
            GroupState::Empty => Err(E::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.schedule_heartbeat(group_id, member_id, session, now_ms);
                Err(E::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.schedule_heartbeat(group_id, member_id, session, now_ms);
                Ok(())
            }
            GroupState::Dead => Err(E::CoordinatorNotAvailable),
        }
    }

    /// Kafka's `leaveGroup` checks and `classicGroupLeave`. `Err` is the top-level error.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: Vec<LeavingMember>,
        now_ms: i64,
    ) -> (Result<Vec<LeftMember>, ResponseError>, Outcome) {
        let mut out = Outcome::default();
        if group_id.is_empty() {
            return (Err(E::InvalidGroupId), out);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            // Kafka: UNKNOWN_MEMBER_ID for every member.
            let left = members
                .into_iter()
                .map(|m| LeftMember {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    error: Some(E::UnknownMemberId),
                })
                .collect();
            return (Ok(left), out);
        };
        if group.is(GroupState::Dead) {
            return (Err(E::CoordinatorNotAvailable), out);
        }
        let mut responses = Vec::with_capacity(members.len());
        let mut removed = Vec::new();
        for m in members {
            let error = if m.member_id == UNKNOWN_MEMBER_ID {
                // Administrative removal by instance id.
                match m
                    .group_instance_id
                    .as_deref()
                    .and_then(|i| group.static_member_id(i))
                    .map(str::to_string)
                {
                    Some(current) => {
                        remove_current_member(group, &current, reason(&m.reason), &mut out);
                        removed.push(current);
                        None
                    }
                    None => Some(E::UnknownMemberId),
                }
            } else if group.is_pending_member(&m.member_id) {
                group.remove(&m.member_id);
                removed.push(m.member_id.clone());
                tracing::info!(group = %group_id, member = %m.member_id, reason = reason(&m.reason), "pending member left the group");
                None
            } else {
                match validate_member(group, &m.member_id, m.group_instance_id.as_deref()) {
                    Ok(()) => {
                        remove_current_member(group, &m.member_id, reason(&m.reason), &mut out);
                        removed.push(m.member_id.clone());
                        None
                    }
                    Err(e) => Some(e),
                }
            };
            responses.push(LeftMember {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                error,
            });
        }
        for id in &removed {
            self.timer.cancel(&heartbeat_key(group_id, id));
        }
        if responses.iter().any(|r| r.error.is_none()) {
            let state = self.groups.get(group_id).map(ClassicGroup::state);
            let why = "explicit LeaveGroup request";
            match state {
                Some(GroupState::Stable | GroupState::CompletingRebalance) => {
                    self.maybe_prepare_rebalance_or_complete_join(group_id, why, now_ms, &mut out)
                }
                Some(GroupState::PreparingRebalance) => {
                    self.maybe_complete_join_phase(group_id, now_ms, &mut out)
                }
                _ => {}
            }
        }
        (Ok(responses), out)
    }

    fn expire_heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
        out: &mut Outcome,
    ) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.is(GroupState::Dead) {
            return;
        }
        if group.is_pending_member(member_id) {
            tracing::info!(group = %group_id, member = %member_id, "pending member removed after its session timeout");
            group.remove(member_id);
            if group.is(GroupState::PreparingRebalance) && group.has_all_members_joined() {
                self.complete_join(group_id, now_ms, out);
            }
            return;
        }
        let Some(member) = group.member(member_id) else {
            return;
        };
        if member.has_satisfied_heartbeat() {
            return;
        }
        tracing::info!(group = %group_id, member = %member_id, "member failed (session timeout); removing it from the group");
        let waiter = group.take_join_waiter(member_id);
        out.complete_join(
            waiter,
            JoinResponse::error(UNKNOWN_MEMBER_ID, E::UnknownMemberId),
        );
        group.remove(member_id);
        match group.state() {
            GroupState::Stable | GroupState::CompletingRebalance => {
                let why = format!("removing member {member_id} on heartbeat expiration");
                self.maybe_prepare_rebalance_or_complete_join(group_id, &why, now_ms, out);
            }
            GroupState::PreparingRebalance if group.has_all_members_joined() => {
                self.complete_join(group_id, now_ms, out);
            }
            _ => {}
        }
    }

    fn schedule_heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        timeout_ms: i64,
        now_ms: i64,
    ) {
        self.timer.schedule(
            heartbeat_key(group_id, member_id),
            now_ms.saturating_add(timeout_ms),
            TimerTask::ExpireHeartbeat {
                group: group_id.to_string(),
                member: member_id.to_string(),
            },
        );
    }

    // ------------------------------------------------------------------------------------
    // Offsets

    /// Kafka's `commitOffsets` checks and `commitOffset`. `Err` fails every partition with
    /// that error.
    pub fn commit_offsets(
        &mut self,
        request: &CommitRequest,
        now_ms: i64,
    ) -> (Result<CommitResults, ResponseError>, Outcome) {
        let mut out = Outcome::default();
        if let Err(e) = self.validate_offset_commit(request, now_ms) {
            return (Err(e), out);
        }
        let group_id = request.group_id.as_str();
        if let Some(group) = self.groups.get(group_id)
            && matches!(
                group.state(),
                GroupState::Stable | GroupState::PreparingRebalance
            )
            && let Some(member) = group.member(&request.member_id)
        {
            let session = i64::from(member.session_timeout_ms);
            self.schedule_heartbeat(group_id, &request.member_id, session, now_ms);
        }
        let expire = (request.retention_time_ms != -1)
            .then(|| now_ms.saturating_add(request.retention_time_ms));
        let mut results = Vec::with_capacity(request.topics.len());
        for (topic, partitions) in &request.topics {
            let mut topic_results = Vec::with_capacity(partitions.len());
            for p in partitions {
                if p.metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > self.config.offset_metadata_max_bytes)
                {
                    topic_results.push((p.partition, Some(E::OffsetMetadataTooLarge)));
                    continue;
                }
                topic_results.push((p.partition, None));
                let value = OffsetCommitValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata.clone().unwrap_or_default(),
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: expire.unwrap_or(-1),
                };
                self.put_offset(group_id, topic.clone(), p.partition, &value);
                out.records.push(CoordinatorRecord::OffsetCommit {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: p.partition,
                    value: Some(value),
                });
            }
            results.push((topic.clone(), topic_results));
        }
        (Ok(results), out)
    }

    fn validate_offset_commit(
        &mut self,
        request: &CommitRequest,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        let group_id = request.group_id.as_str();
        if !self.groups.contains_key(group_id) {
            if request.generation_id < 0 {
                tracing::info!(group = %group_id, "creating a simple consumer group via a manual offset commit");
                self.groups
                    .insert(group_id.to_string(), ClassicGroup::new(group_id, now_ms));
            } else if request.api_version >= 9 {
                return Err(E::GroupIdNotFound);
            } else {
                return Err(E::IllegalGeneration);
            }
        }
        let group = self
            .groups
            .get(group_id)
            .ok_or(E::CoordinatorNotAvailable)?;
        if group.is(GroupState::Dead) {
            return Err(E::CoordinatorNotAvailable);
        }
        if request.generation_id < 0 && group.is(GroupState::Empty) {
            // The admin client or a consumer outside group management.
            return Ok(());
        }
        if request.generation_id >= 0
            || !request.member_id.is_empty()
            || request.group_instance_id.is_some()
        {
            validate_member(
                group,
                &request.member_id,
                request.group_instance_id.as_deref(),
            )?;
            if request.generation_id != group.generation_id {
                return Err(E::IllegalGeneration);
            }
        } else if !group.is(GroupState::Empty) {
            return Err(E::UnknownMemberId);
        }
        if group.is(GroupState::CompletingRebalance) {
            return Err(E::RebalanceInProgress);
        }
        Ok(())
    }

    fn put_offset(
        &mut self,
        group: &str,
        topic: String,
        partition: i32,
        value: &OffsetCommitValue,
    ) {
        self.offsets
            .entry(group.to_string())
            .or_default()
            .entry(topic)
            .or_default()
            .insert(
                partition,
                CommittedOffset {
                    offset: value.offset,
                    leader_epoch: value.leader_epoch,
                    metadata: value.metadata.clone(),
                    commit_timestamp_ms: value.commit_timestamp_ms,
                    expire_timestamp_ms: (value.expire_timestamp_ms >= 0)
                        .then_some(value.expire_timestamp_ms),
                },
            );
    }

    fn remove_offset(&mut self, group: &str, topic: &str, partition: i32) {
        let Some(topics) = self.offsets.get_mut(group) else {
            return;
        };
        if let Some(partitions) = topics.get_mut(topic) {
            partitions.remove(&partition);
            if partitions.is_empty() {
                topics.remove(topic);
            }
        }
        if topics.is_empty() {
            self.offsets.remove(group);
        }
    }

    /// Kafka's `fetchOffsets` (`topics` = `Some`) and `fetchAllOffsets` (`None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> FetchedGroup {
        let exists = self
            .groups
            .get(group_id)
            .is_some_and(|g| !g.is(GroupState::Dead));
        let offsets = exists.then(|| self.offsets.get(group_id)).flatten();
        let fetched = |o: Option<&CommittedOffset>, partition: i32| match o {
            Some(o) => FetchedOffset {
                partition,
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata.clone(),
                error: None,
            },
            None => FetchedOffset {
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
                error: None,
            },
        };
        let topics = match topics {
            Some(requested) => requested
                .iter()
                .map(|(topic, partitions)| {
                    let known = offsets.and_then(|o| o.get(topic));
                    let list = partitions
                        .iter()
                        .map(|p| fetched(known.and_then(|k| k.get(p)), *p))
                        .collect();
                    (topic.clone(), list)
                })
                .collect(),
            None => offsets
                .map(|o| {
                    o.iter()
                        .map(|(topic, partitions)| {
                            let list = partitions
                                .iter()
                                .map(|(p, v)| fetched(Some(v), *p))
                                .collect();
                            (topic.clone(), list)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        FetchedGroup {
            group_id: group_id.to_string(),
            error: None,
            topics,
        }
    }

    /// Kafka's `deleteOffsets` (OffsetDelete). `Err` is the top-level error.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> (Result<CommitResults, ResponseError>, Outcome) {
        let mut out = Outcome::default();
        if group_id.is_empty() {
            return (Err(E::InvalidGroupId), out);
        }
        let Some(group) = self.groups.get(group_id) else {
            return (Err(E::GroupIdNotFound), out);
        };
        match group.state() {
            GroupState::Dead => return (Err(E::GroupIdNotFound), out),
            GroupState::Stable
            | GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
                if !group.uses_consumer_protocol() =>
            {
                return (Err(E::NonEmptyGroup), out);
            }
            _ => {}
        }
        let mut results = Vec::with_capacity(topics.len());
        let mut tombstones = Vec::new();
        for (topic, partitions) in topics {
            if group.is_subscribed_to_topic(topic) {
                results.push((
                    topic.clone(),
                    partitions
                        .iter()
                        .map(|p| (*p, Some(E::GroupSubscribedToTopic)))
                        .collect(),
                ));
                continue;
            }
            for p in partitions {
                let has = self
                    .offsets
                    .get(group_id)
                    .and_then(|t| t.get(topic))
                    .is_some_and(|ps| ps.contains_key(p));
                if has {
                    tombstones.push((topic.clone(), *p));
                }
            }
            results.push((
                topic.clone(),
                partitions.iter().map(|p| (*p, None)).collect(),
            ));
        }
        for (topic, partition) in tombstones {
            self.remove_offset(group_id, &topic, partition);
            out.records.push(CoordinatorRecord::OffsetCommit {
                group: group_id.to_string(),
                topic,
                partition,
                value: None,
            });
        }
        (Ok(results), out)
    }

    /// Kafka's `deleteGroups`: only Empty groups (or groups that hold offsets alone) go, with
    /// their offsets.
    pub fn delete_groups(
        &mut self,
        group_ids: &[String],
    ) -> (Vec<(String, Option<ResponseError>)>, Outcome) {
        let mut out = Outcome::default();
        let mut results = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            let error = match self.groups.get(id).map(ClassicGroup::state) {
                None | Some(GroupState::Dead) => Some(E::GroupIdNotFound),
                Some(
                    GroupState::Stable
                    | GroupState::PreparingRebalance
                    | GroupState::CompletingRebalance,
                ) => Some(E::NonEmptyGroup),
                Some(GroupState::Empty) => {
                    self.delete_group(id, &mut out);
                    None
                }
            };
            results.push((id.clone(), error));
        }
        (results, out)
    }

    /// Tombstones every offset of the group and the group itself.
    fn delete_group(&mut self, group_id: &str, out: &mut Outcome) {
        if let Some(topics) = self.offsets.remove(group_id) {
            for (topic, partitions) in topics {
                for partition in partitions.into_keys() {
                    out.records.push(CoordinatorRecord::OffsetCommit {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition,
                        value: None,
                    });
                }
            }
        }
        out.records.push(CoordinatorRecord::GroupMetadata {
            group: group_id.to_string(),
            value: None,
        });
        self.groups.remove(group_id);
        self.timer.cancel(&join_key(group_id));
        self.timer.cancel(&sync_key(group_id));
    }

    /// Kafka's `cleanupGroupMetadata`: expired offsets go, then groups left empty without
    /// offsets; reschedules itself.
    pub fn cleanup_group_metadata(&mut self, now_ms: i64) -> Outcome {
        let mut out = Outcome::default();
        let retention = self.config.offsets_retention_ms;
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        let mut expired_total = 0usize;
        for id in ids {
            let Some(group) = self.groups.get(&id) else {
                continue;
            };
            let all_expired = match self.offsets.get(&id) {
                None => true,
                Some(topics) => match offset_expiration_base(group) {
                    None => false,
                    Some(base) => {
                        let mut all = true;
                        let mut expired = Vec::new();
                        for (topic, partitions) in topics {
                            if group.is_subscribed_to_topic(topic) {
                                all = false;
                                continue;
                            }
                            for (p, o) in partitions {
                                let is_expired = match o.expire_timestamp_ms {
                                    Some(at) => now_ms >= at,
                                    None => {
                                        let from = match base {
                                            ExpirationBase::StateTimestamp(Some(ts)) => ts,
                                            _ => o.commit_timestamp_ms,
                                        };
                                        now_ms - from >= retention
                                    }
                                };
                                if is_expired {
                                    expired.push((topic.clone(), *p));
                                } else {
                                    all = false;
                                }
                            }
                        }
                        for (topic, partition) in expired {
                            expired_total += 1;
                            self.remove_offset(&id, &topic, partition);
                            out.records.push(CoordinatorRecord::OffsetCommit {
                                group: id.clone(),
                                topic,
                                partition,
                                value: None,
                            });
                        }
                        all
                    }
                },
            };
            if all_expired
                && self
                    .groups
                    .get(&id)
                    .is_some_and(|g| g.is(GroupState::Empty))
            {
                self.delete_group(&id, &mut out);
            }
        }
        if !out.records.is_empty() {
            tracing::info!(
                records = out.records.len(),
                expired_offsets = expired_total,
                "removed expired offsets and empty groups"
            );
        }
        self.timer.schedule(
            TimerKey::Expiration,
            now_ms + self.config.offsets_retention_check_interval_ms,
            TimerTask::CleanupGroupMetadata,
        );
        out
    }

    /// Tombstones the committed offsets of deleted partitions (Kafka's `onPartitionsDeleted`).
    pub fn on_partitions_deleted(&mut self, deleted: &BTreeMap<String, BTreeSet<i32>>) -> Outcome {
        let mut out = Outcome::default();
        let mut tombstones = Vec::new();
        for (group, topics) in &self.offsets {
            for (topic, partitions) in topics {
                if let Some(gone) = deleted.get(topic) {
                    for p in partitions.keys().filter(|p| gone.contains(p)) {
                        tombstones.push((group.clone(), topic.clone(), *p));
                    }
                }
            }
        }
        for (group, topic, partition) in tombstones {
            self.remove_offset(&group, &topic, partition);
            out.records.push(CoordinatorRecord::OffsetCommit {
                group,
                topic,
                partition,
                value: None,
            });
        }
        out
    }

    // ------------------------------------------------------------------------------------
    // ListGroups, DescribeGroups

    /// Kafka's `listGroups`: states compared case-insensitively; an unknown type matches nothing.
    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<ListedGroup> {
        let states: BTreeSet<String> = states.iter().map(|s| s.trim().to_lowercase()).collect();
        let types_ok = types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case("classic"));
        if !types_ok {
            return vec![];
        }
        let mut listed: Vec<ListedGroup> = self
            .groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state().name().to_lowercase()))
            .map(|g| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state().name(),
                group_type: "classic",
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed
    }

    /// Kafka's `describeGroups`: an unknown group is described as Dead, without an error before
    /// v6 and with `GROUP_ID_NOT_FOUND` from v6 (KIP-1043).
    pub fn describe_group(&self, group_id: &str, api_version: i16) -> DescribedGroup {
        let Some(group) = self.groups.get(group_id) else {
            let not_found = api_version >= 6;
            return DescribedGroup {
                group_id: group_id.to_string(),
                error: not_found.then_some(E::GroupIdNotFound),
                error_message: not_found.then(|| format!("Group {group_id} not found.")),
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol_data: String::new(),
                members: vec![],
            };
        };
        let stable = group.is(GroupState::Stable);
        let protocol = group.protocol_name.clone().unwrap_or_default();
        DescribedGroup {
            group_id: group_id.to_string(),
            error: None,
            error_message: None,
            state: group.state().name(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// What offset expiration counts from (Kafka's `offsetExpirationCondition`).
enum ExpirationBase {
    /// The time the group became Empty (or each offset's commit time if unknown).
    StateTimestamp(Option<i64>),
    /// Each offset's commit time.
    CommitTimestamp,
}

fn offset_expiration_base(group: &ClassicGroup) -> Option<ExpirationBase> {
    if group.protocol_type.is_some() {
        if group.is(GroupState::Empty) {
            Some(ExpirationBase::StateTimestamp(
                group.current_state_timestamp_ms(),
            ))
        } else if group.uses_consumer_protocol()
            && group.subscribed_topics().is_some()
            && group.is(GroupState::Stable)
        {
            Some(ExpirationBase::CommitTimestamp)
        } else {
            None
        }
    } else {
        Some(ExpirationBase::CommitTimestamp)
    }
}

/// Kafka's `ClassicGroup.validateMember`.
fn validate_member(
    group: &ClassicGroup,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    if let Some(instance) = group_instance_id {
        match group.static_member_id(instance) {
            None => return Err(E::UnknownMemberId),
            Some(existing) if existing != member_id => {
                tracing::info!(group = %group.group_id, member = %member_id, instance = %instance, existing = %existing, "static member is fenced by its newer member id");
                return Err(E::FencedInstanceId);
            }
            Some(_) => {}
        }
    }
    if !group.has_member(member_id) {
        return Err(E::UnknownMemberId);
    }
    Ok(())
}

/// Kafka's `removeCurrentMemberFromClassicGroup`.
fn remove_current_member(group: &mut ClassicGroup, member_id: &str, why: &str, out: &mut Outcome) {
    tracing::info!(group = %group.group_id, member = %member_id, reason = why, "member left the group");
    let waiter = group.take_join_waiter(member_id);
    out.complete_join(
        waiter,
        JoinResponse::error(UNKNOWN_MEMBER_ID, E::UnknownMemberId),
    );
    group.remove(member_id);
}

/// Kafka's `propagateAssignment`: answers every parked SyncGroup. Returns the members answered,
/// with their session timeouts.
fn propagate_assignment(
    group: &mut ClassicGroup,
    error: Option<ResponseError>,
    out: &mut Outcome,
) -> Vec<(String, i64)> {
    let mut answered = Vec::new();
    let (protocol_type, protocol_name) = if error.is_none() {
        (group.protocol_type.clone(), group.protocol_name.clone())
    } else {
        (None, None)
    };
    for id in group.member_ids() {
        let assignment = group
            .member(&id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default();
        if error.is_none() && assignment.is_empty() {
            tracing::warn!(group = %group.group_id, member = %id, generation = group.generation_id, "sending an empty assignment without an error");
        }
        let waiter = group.take_sync_waiter(&id);
        if waiter.is_some()
            && let Some(m) = group.member(&id)
        {
            answered.push((id.clone(), i64::from(m.session_timeout_ms)));
        }
        out.complete_sync(
            waiter,
            SyncResponse {
                error,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment,
            },
        );
    }
    answered
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
