//! One classic group (Kafka's `ClassicGroup`, `ClassicGroupMember`, `ClassicGroupState`): its
//! members, state, generation, leader and protocol. Plain data and the bookkeeping Kafka does on
//! it; the decisions that move a group between states live in [`super::shard`].
//!
//! A member parked in JoinGroup or SyncGroup holds a [`WaiterId`]: the request that waits for
//! the group. Completing a waiter means answering that request.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::records::{GroupMetadataValue, MemberMetadata, subscription_topics};

/// Identifies a parked JoinGroup or SyncGroup request.
pub type WaiterId = u64;

/// The consumer protocol type (`ConsumerProtocol.PROTOCOL_TYPE`).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Kafka's `ClassicGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; the group may hold offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignment.
    Stable,
    /// Removed (deleted, expired, or unloaded).
    Dead,
}

impl GroupState {
    /// The name Kafka reports (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// States a group may move to this one from (Kafka's `validPreviousStates`).
    fn valid_previous(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }
}

/// One protocol a member supports: name and its opaque metadata (the subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// Kafka's `ClassicGroupMember`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// A JoinGroup request waiting for the join phase to complete.
    pub awaiting_join: Option<WaiterId>,
    /// A SyncGroup request waiting for the leader's assignment.
    pub awaiting_sync: Option<WaiterId>,
    /// Joined during the current rebalance (its session is not yet protected).
    pub is_new: bool,
}

impl Member {
    /// The metadata for `protocol`, empty if the member does not support it.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Kafka's `hasSatisfiedHeartbeat`: a member parked in join or sync counts as alive, unless
    /// it is new.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }

    /// Whether `protocols` equal the member's (names, metadata and order).
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The first of the member's protocols that is among `candidates` (its vote).
    fn vote(&self, candidates: &BTreeSet<String>) -> Option<&str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|n| candidates.contains(*n))
    }
}

/// A member as the JoinGroup leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// Kafka's `ClassicGroup`.
#[derive(Debug, Clone)]
pub struct ClassicGroup {
    pub group_id: String,
    state: GroupState,
    previous_state: GroupState,
    current_state_timestamp_ms: Option<i64>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation_id: i32,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    static_members: HashMap<String, String>,
    pending_join_members: BTreeSet<String>,
    num_members_awaiting_join: usize,
    supported_protocols: HashMap<String, usize>,
    pending_sync_members: BTreeSet<String>,
    subscribed_topics: Option<BTreeSet<String>>,
    /// A member joined during the initial rebalance's delay (which then extends it).
    pub new_member_added: bool,
}

impl ClassicGroup {
    /// A new, empty group.
    pub fn new(group_id: impl Into<String>, now_ms: i64) -> Self {
        ClassicGroup {
            group_id: group_id.into(),
            state: GroupState::Empty,
            previous_state: GroupState::Dead,
            current_state_timestamp_ms: Some(now_ms),
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_join_members: BTreeSet::new(),
            num_members_awaiting_join: 0,
            supported_protocols: HashMap::new(),
            pending_sync_members: BTreeSet::new(),
            subscribed_topics: None,
            new_member_added: false,
        }
    }

    /// A group as its metadata record describes it (Kafka's `replay(GroupMetadataKey, ..)`):
    /// Stable with its members, or Empty.
    pub fn from_record(group_id: &str, value: &GroupMetadataValue) -> Self {
        let protocol_type = (!value.protocol_type.is_empty()).then(|| value.protocol_type.clone());
        let mut group = ClassicGroup {
            state: if value.members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable
            },
            current_state_timestamp_ms: (value.current_state_timestamp_ms != -1)
                .then_some(value.current_state_timestamp_ms),
            protocol_type,
            protocol_name: value.protocol.clone(),
            generation_id: value.generation,
            leader_id: value.leader.clone(),
            ..ClassicGroup::new(group_id, 0)
        };
        for m in &value.members {
            group.add(
                Member {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: if m.rebalance_timeout_ms == -1 {
                        m.session_timeout_ms
                    } else {
                        m.rebalance_timeout_ms
                    },
                    session_timeout_ms: m.session_timeout_ms,
                    protocol_type: value.protocol_type.clone(),
                    protocols: vec![Protocol {
                        name: value.protocol.clone().unwrap_or_default(),
                        metadata: m.subscription.clone(),
                    }],
                    assignment: m.assignment.clone(),
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                },
                None,
            );
        }
        group.subscribed_topics = group.compute_subscribed_topics();
        group
    }

    /// The record describing the group (Kafka's `newGroupMetadataRecord`), with the members'
    /// current assignments.
    pub fn to_record(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: protocol.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.current_state_timestamp_ms.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The record of a freshly created, empty group (Kafka's `newEmptyGroupMetadataRecord`).
    pub fn to_empty_record(&self) -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: String::new(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: self.current_state_timestamp_ms.unwrap_or(-1),
            members: vec![],
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn previous_state(&self) -> GroupState {
        self.previous_state
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn current_state_timestamp_ms(&self) -> Option<i64> {
        self.current_state_timestamp_ms
    }

    /// Kafka's `isSimpleGroup`: created by offset commits alone.
    pub fn is_simple(&self) -> bool {
        self.protocol_type.is_none()
            && self.is(GroupState::Empty)
            && self.pending_join_members.is_empty()
    }

    pub fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    pub fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.get_mut(member_id)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member_ids(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    pub fn num_members(&self) -> usize {
        self.members.len()
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn static_member_id(&self, group_instance_id: &str) -> Option<&str> {
        self.static_members
            .get(group_instance_id)
            .map(String::as_str)
    }

    pub fn num_static_members(&self) -> usize {
        self.static_members.len()
    }

    pub fn subscribed_topics(&self) -> Option<&BTreeSet<String>> {
        self.subscribed_topics.as_ref()
    }

    /// Kafka's `add`. The caller has checked the protocols (`supports_protocols`).
    pub fn add(&mut self, mut member: Member, waiter: Option<WaiterId>) {
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        for p in &member.protocols {
            *self.supported_protocols.entry(p.name.clone()).or_default() += 1;
        }
        member.awaiting_join = waiter;
        if waiter.is_some() {
            self.num_members_awaiting_join += 1;
        }
        self.pending_join_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Kafka's `remove`: drops the member (its waiters are the caller's to complete first).
    pub fn remove(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.remove(member_id);
        if let Some(m) = &removed {
            self.decrement_protocols(&m.protocols);
            if m.awaiting_join.is_some() {
                self.num_members_awaiting_join -= 1;
            }
            if let Some(instance) = &m.group_instance_id {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_join_members.remove(member_id);
        self.pending_sync_members.remove(member_id);
        removed
    }

    fn decrement_protocols(&mut self, protocols: &[Protocol]) {
        for p in protocols {
            if let Some(count) = self.supported_protocols.get_mut(&p.name) {
                *count = count.saturating_sub(1);
            }
        }
    }

    /// Kafka's `maybeElectNewJoinedLeader`: keeps a leader that rejoined, else picks a member
    /// that did. False when the group has no leader or nobody rejoined.
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                tracing::info!(group = %self.group_id, old = %leader, new = %m.member_id, "group leader failed to join before the rebalance timeout; elected a new leader");
                self.leader_id = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Kafka's `replaceStaticMember`: the new member id takes over the old member (protocols,
    /// timeouts, assignment and leadership). Returns the old member's parked waiters, which the
    /// caller fences with `FENCED_INSTANCE_ID`.
    pub fn replace_static_member(
        &mut self,
        group_instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
    ) -> (Option<WaiterId>, Option<WaiterId>) {
        let Some(mut member) = self.members.remove(old_member_id) else {
            return (None, None);
        };
        let fenced = (member.awaiting_join.take(), member.awaiting_sync.take());
        if fenced.0.is_some() {
            self.num_members_awaiting_join -= 1;
        }
        member.member_id = new_member_id.to_string();
        member.is_new = false;
        self.members.insert(new_member_id.to_string(), member);
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_string());
        }
        self.static_members
            .insert(group_instance_id.to_string(), new_member_id.to_string());
        fenced
    }

    pub fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_join_members.contains(member_id)
    }

    pub fn add_pending_member(&mut self, member_id: &str) {
        self.pending_join_members.insert(member_id.to_string());
    }

    pub fn num_pending_join_members(&self) -> usize {
        self.pending_join_members.len()
    }

    pub fn add_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync_members.insert(member_id.to_string());
    }

    pub fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.pending_sync_members.remove(member_id);
    }

    pub fn has_received_sync_from_all_members(&self) -> bool {
        self.pending_sync_members.is_empty()
    }

    pub fn pending_sync_members(&self) -> Vec<String> {
        self.pending_sync_members.iter().cloned().collect()
    }

    pub fn clear_pending_sync_members(&mut self) {
        self.pending_sync_members.clear();
    }

    /// Members that have not rejoined in this rebalance.
    pub fn not_yet_rejoined_members(&self) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect()
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_members_awaiting_join && self.pending_join_members.is_empty()
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.num_members_awaiting_join
    }

    /// The group's rebalance timeout: the largest of its members'.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// Kafka's `isStaticMemberFenced`.
    pub fn is_static_member_fenced(&self, group_instance_id: &str, member_id: &str) -> bool {
        self.static_member_id(group_instance_id)
            .is_some_and(|existing| existing != member_id)
    }

    /// Kafka's `canRebalance`.
    pub fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance
            .valid_previous()
            .contains(&self.state)
    }

    /// Moves to `state` (Kafka's `transitionTo`). An invalid transition is a coordinator bug: it
    /// is logged (and fails tests), never a crash.
    pub fn transition_to(&mut self, state: GroupState, now_ms: i64) {
        if !state.valid_previous().contains(&self.state) {
            tracing::error!(group = %self.group_id, from = self.state.name(), to = state.name(), "invalid group state transition");
            debug_assert!(false, "invalid transition {:?} -> {:?}", self.state, state);
        }
        self.previous_state = self.state;
        self.state = state;
        self.current_state_timestamp_ms = Some(now_ms);
    }

    /// The protocols every member supports.
    fn candidate_protocols(&self) -> BTreeSet<String> {
        self.supported_protocols
            .iter()
            .filter(|(_, n)| **n == self.members.len())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Kafka's `selectProtocol`: each member votes for its most preferred protocol among those
    /// all members support; the most votes win (ties go to the name first in order).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(p) = m.vote(&candidates) {
                *votes.entry(p).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, n)| *n == best)
            .map(|(p, _)| p.to_string())
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty type and protocol list;
    /// otherwise the type must match and one protocol must be supported by every member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.is(GroupState::Empty) {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|p| {
                    self.supported_protocols.get(&p.name).copied().unwrap_or(0)
                        == self.members.len()
                })
        }
    }

    /// Kafka's `isSubscribedToTopic`.
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => self.uses_consumer_protocol(),
        }
    }

    /// Kafka's `computeSubscribedTopics`.
    fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if !self.uses_consumer_protocol() {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            match subscription_topics(&m.metadata(protocol)) {
                Ok(t) => topics.extend(t),
                Err(e) => {
                    tracing::warn!(group = %self.group_id, "cannot parse a member's subscription; the coordinator does not know the subscribed topics: {e}");
                    return None;
                }
            }
        }
        Some(topics)
    }

    /// Kafka's `updateMember`: new protocols and timeouts, and the waiter (if any).
    pub fn update_member(
        &mut self,
        member_id: &str,
        protocols: Vec<Protocol>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        waiter: Option<WaiterId>,
    ) {
        let Some(old) = self.members.get(member_id).map(|m| m.protocols.clone()) else {
            return;
        };
        self.decrement_protocols(&old);
        for p in &protocols {
            *self.supported_protocols.entry(p.name.clone()).or_default() += 1;
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        member.protocols = protocols;
        member.rebalance_timeout_ms = rebalance_timeout_ms;
        member.session_timeout_ms = session_timeout_ms;
        match (waiter.is_some(), member.awaiting_join.is_some()) {
            (true, false) => self.num_members_awaiting_join += 1,
            (false, true) => self.num_members_awaiting_join -= 1,
            _ => {}
        }
        member.awaiting_join = waiter;
    }

    /// Takes a member's parked JoinGroup waiter (Kafka's `completeJoinFuture` bookkeeping).
    pub fn take_join_waiter(&mut self, member_id: &str) -> Option<WaiterId> {
        let waiter = self.members.get_mut(member_id)?.awaiting_join.take();
        if waiter.is_some() {
            self.num_members_awaiting_join -= 1;
        }
        waiter
    }

    /// Takes a member's parked SyncGroup waiter.
    pub fn take_sync_waiter(&mut self, member_id: &str) -> Option<WaiterId> {
        self.members.get_mut(member_id)?.awaiting_sync.take()
    }

    /// Kafka's `initNextGeneration`.
    pub fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id = self.generation_id.wrapping_add(1);
        if !self.members.is_empty() {
            self.protocol_name = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::CompletingRebalance, now_ms);
        } else {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::Empty, now_ms);
        }
        self.clear_pending_sync_members();
    }

    /// The members as the leader's JoinGroup response lists them.
    pub fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    /// Every member's assignment, by member id.
    pub fn assignments(&self) -> BTreeMap<String, Bytes> {
        self.members
            .values()
            .map(|m| (m.member_id.clone(), m.assignment.clone()))
            .collect()
    }

    /// Sets every member's assignment (missing members get an empty one).
    pub fn set_assignments(&mut self, assignments: &BTreeMap<String, Bytes>) {
        for m in self.members.values_mut() {
            m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 1000,
            session_timeout_ms: 500,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| Protocol {
                    name: (*p).into(),
                    metadata: Bytes::from(p.to_string()),
                })
                .collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
        }
    }

    #[test]
    fn protocol_selection_votes_among_protocols_all_members_support() {
        let mut g = ClassicGroup::new("g", 0);
        g.add(member("a", &["range", "roundrobin"]), Some(1));
        g.add(member("b", &["roundrobin", "range"]), Some(2));
        g.add(member("c", &["roundrobin", "sticky"]), Some(3));
        // Only roundrobin is supported by all; every member votes for it.
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        g.remove("c");
        // Now range and roundrobin: one vote each, ties to the first name.
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
        g.transition_to(GroupState::PreparingRebalance, 1);
        assert!(g.supports_protocols("consumer", &member("x", &["range"]).protocols));
        assert!(!g.supports_protocols("consumer", &member("x", &["sticky"]).protocols));
        assert!(!g.supports_protocols("connect", &member("x", &["range"]).protocols));
    }

    #[test]
    fn leader_moves_when_it_leaves_and_join_counts_are_kept() {
        let mut g = ClassicGroup::new("g", 0);
        g.add(member("a", &["range"]), Some(1));
        g.add(member("b", &["range"]), None);
        assert!(g.is_leader("a"));
        assert!(!g.has_all_members_joined());
        g.update_member("b", member("b", &["range"]).protocols, 1000, 500, Some(2));
        assert!(g.has_all_members_joined());
        assert_eq!(g.take_join_waiter("a"), Some(1));
        assert_eq!(g.num_awaiting_join(), 1);
        g.remove("a");
        assert!(g.is_leader("b"));
        assert!(g.has_all_members_joined());
    }

    #[test]
    fn static_member_replacement_keeps_assignment_and_leadership() {
        let mut g = ClassicGroup::new("g", 0);
        let mut m = member("old", &["range"]);
        m.group_instance_id = Some("i1".into());
        m.assignment = Bytes::from_static(b"a");
        g.add(m, Some(7));
        let fenced = g.replace_static_member("i1", "old", "new");
        assert_eq!(fenced, (Some(7), None));
        assert!(g.is_leader("new"));
        assert_eq!(g.static_member_id("i1"), Some("new"));
        assert_eq!(
            g.member("new").unwrap().assignment,
            Bytes::from_static(b"a")
        );
        assert!(g.is_static_member_fenced("i1", "old"));
        assert_eq!(g.num_awaiting_join(), 0);
    }

    #[test]
    fn records_round_trip_a_stable_group() {
        let mut g = ClassicGroup::new("g", 5);
        let mut a = member("a", &["range"]);
        a.protocols[0].metadata =
            Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff");
        g.add(a, None);
        g.transition_to(GroupState::PreparingRebalance, 6);
        g.init_next_generation(7);
        g.transition_to(GroupState::Stable, 8);
        assert_eq!(
            g.subscribed_topics().unwrap().iter().collect::<Vec<_>>(),
            vec!["t"]
        );
        let record = g.to_record();
        let loaded = ClassicGroup::from_record("g", &record);
        assert!(loaded.is(GroupState::Stable));
        assert_eq!(loaded.generation_id, 1);
        assert_eq!(loaded.protocol_name.as_deref(), Some("range"));
        assert_eq!(loaded.to_record(), record);
        assert!(loaded.is_subscribed_to_topic("t"));
        assert!(!loaded.is_subscribed_to_topic("u"));
    }
}
