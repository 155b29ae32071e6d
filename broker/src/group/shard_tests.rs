//! The classic group state machine, driven without a runtime: a manual clock, parked requests
//! as waiter ids, and "commit" as running the deferred work.

use std::collections::HashMap;

use super::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;
const DELAY: i64 = 3_000;

fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

fn protocols(names: &[&str], topics: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: (*n).to_string(),
            metadata: subscription(topics),
        })
        .collect()
}

/// A shard, a clock, and everything the runtime would do with outcomes.
struct Harness {
    shard: GroupShard,
    now: i64,
    next_waiter: WaiterId,
    joins: HashMap<WaiterId, JoinResponse>,
    syncs: HashMap<WaiterId, SyncResponse>,
    log: Vec<CoordinatorRecord>,
    uncommitted: Vec<Deferred>,
}

impl Harness {
    fn new() -> Self {
        Self::with(GroupConfig {
            initial_rebalance_delay_ms: DELAY,
            ..GroupConfig::default()
        })
    }

    fn with(config: GroupConfig) -> Self {
        let mut n = 0u64;
        Harness {
            shard: GroupShard::new(
                config,
                Box::new(move || {
                    n += 1;
                    format!("uuid{n}")
                }),
            ),
            now: 1_000_000,
            next_waiter: 0,
            joins: HashMap::new(),
            syncs: HashMap::new(),
            log: Vec::new(),
            uncommitted: Vec::new(),
        }
    }

    fn absorb(&mut self, out: Outcome) {
        self.log.extend(out.records);
        for c in out.completions {
            match c {
                Completion::Join(w, r) => assert!(
                    self.joins.insert(w, r).is_none(),
                    "waiter {w} answered twice"
                ),
                Completion::Sync(w, r) => assert!(
                    self.syncs.insert(w, r).is_none(),
                    "waiter {w} answered twice"
                ),
            }
        }
        self.uncommitted.extend(out.on_commit);
    }

    /// The log's records are committed: deferred work runs.
    fn commit(&mut self) {
        for d in std::mem::take(&mut self.uncommitted) {
            let out = self.shard.on_committed(d, self.now);
            self.absorb(out);
        }
    }

    fn advance(&mut self, ms: i64) {
        let end = self.now + ms;
        while let Some(deadline) = self.shard.next_deadline().filter(|d| *d <= end) {
            self.now = self.now.max(deadline);
            let out = self.shard.fire_timers(self.now);
            self.absorb(out);
            self.commit();
        }
        self.now = end;
    }

    fn ctx(client: &str, version: i16) -> RequestContext {
        RequestContext {
            client_id: client.into(),
            client_host: "/127.0.0.1".into(),
            api_version: version,
        }
    }

    fn join_with(&mut self, version: i16, request: JoinRequest) -> WaiterId {
        self.next_waiter += 1;
        let w = self.next_waiter;
        let client = request
            .member_id
            .split('-')
            .next()
            .unwrap_or("c")
            .to_string();
        let out = self.shard.join(
            &Self::ctx(if client.is_empty() { "c" } else { &client }, version),
            request,
            w,
            self.now,
        );
        self.absorb(out);
        w
    }

    fn join(
        &mut self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        protos: &[&str],
    ) -> WaiterId {
        self.join_with(
            9,
            JoinRequest {
                group_id: group.into(),
                session_timeout_ms: SESSION,
                rebalance_timeout_ms: REBALANCE,
                member_id: member.into(),
                group_instance_id: instance.map(str::to_string),
                protocol_type: "consumer".into(),
                protocols: protocols(protos, &["t"]),
                reason: None,
            },
        )
    }

    /// A dynamic member's full first join (MEMBER_ID_REQUIRED, then the real JoinGroup).
    fn join_new(&mut self, group: &str) -> (String, WaiterId) {
        let w = self.join(group, "", None, &["range"]);
        let r = self.joins.remove(&w).expect("answered at once");
        assert_eq!(r.error, Some(E::MemberIdRequired));
        let id = r.member_id;
        let w = self.join(group, &id, None, &["range"]);
        (id, w)
    }

    fn answer(&mut self, w: WaiterId) -> JoinResponse {
        self.joins
            .remove(&w)
            .unwrap_or_else(|| panic!("join {w} not answered"))
    }

    fn sync(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> WaiterId {
        self.next_waiter += 1;
        let w = self.next_waiter;
        let out = self.shard.sync(
            SyncRequest {
                group_id: group.into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments,
            },
            w,
            self.now,
        );
        self.absorb(out);
        w
    }

    fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
    ) -> Result<(), ResponseError> {
        self.shard
            .heartbeat(group, member, None, generation, self.now)
    }

    fn state(&self, group: &str) -> GroupState {
        self.shard
            .group(group)
            .map_or(GroupState::Dead, ClassicGroup::state)
    }

    fn generation(&self, group: &str) -> i32 {
        self.shard.group(group).unwrap().generation_id
    }

    /// Leader syncs with an assignment per member, followers sync, all commit; returns the
    /// assignments received.
    fn sync_all(&mut self, group: &str, leader: &str, members: &[&str]) -> HashMap<String, Bytes> {
        let generation = self.generation(group);
        let assignments: Vec<(String, Bytes)> = members
            .iter()
            .map(|m| (m.to_string(), Bytes::from(format!("assignment-of-{m}"))))
            .collect();
        let mut waiters = vec![(
            leader.to_string(),
            self.sync(group, leader, generation, assignments),
        )];
        for m in members.iter().filter(|m| **m != leader) {
            waiters.push((m.to_string(), self.sync(group, m, generation, vec![])));
        }
        self.commit();
        waiters
            .into_iter()
            .map(|(m, w)| {
                let r = self
                    .syncs
                    .remove(&w)
                    .unwrap_or_else(|| panic!("sync of {m} not answered"));
                assert_eq!(r.error, None, "sync of {m}");
                (m, r.assignment)
            })
            .collect()
    }
}

#[test]
fn a_new_group_waits_for_the_initial_delay_then_stabilises() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    assert!(h.log.iter().any(|r| matches!(r, CoordinatorRecord::GroupMetadata { value: Some(v), .. } if v.generation == 0)), "a new group is written");
    assert_eq!(h.state("g"), GroupState::PreparingRebalance);
    h.advance(DELAY - 1);
    assert!(
        !h.joins.contains_key(&wa),
        "parked during the initial delay"
    );
    // A second member within the delay extends it.
    let (b, wb) = h.join_new("g");
    h.advance(1);
    assert!(!h.joins.contains_key(&wa));
    h.advance(2 * DELAY);
    let ra = h.answer(wa);
    let rb = h.answer(wb);
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    assert_eq!(ra.leader, a);
    assert_eq!(
        ra.members.len(),
        2,
        "the leader gets every member's metadata"
    );
    assert!(rb.members.is_empty());
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.state("g"), GroupState::CompletingRebalance);

    let got = h.sync_all("g", &a, &[&a, &b]);
    assert_eq!(got[&b], Bytes::from(format!("assignment-of-{b}")));
    assert_eq!(h.state("g"), GroupState::Stable);
    let stored = h.log.iter().rev().find_map(|r| match r {
        CoordinatorRecord::GroupMetadata { value: Some(v), .. } => Some(v.clone()),
        _ => None,
    });
    let stored = stored.unwrap();
    assert_eq!((stored.generation, stored.members.len()), (1, 2));
    assert!(stored.members.iter().all(|m| !m.assignment.is_empty()));
    assert_eq!(h.heartbeat("g", &a, 1), Ok(()));
}

#[test]
fn joining_a_stable_group_rebalances_and_heartbeats_say_so() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    h.advance(2 * DELAY);
    h.answer(wa);
    h.sync_all("g", &a, &[&a]);
    let (b, wb) = h.join_new("g");
    assert_eq!(h.state("g"), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat("g", &a, 1), Err(E::RebalanceInProgress));
    // A stale sync during the rebalance.
    let w = h.sync("g", &a, 1, vec![]);
    assert_eq!(h.syncs[&w].error, Some(E::RebalanceInProgress));
    // a rejoins: everyone is in, no initial delay this time.
    let wa = h.join("g", &a, None, &["range"]);
    let (ra, rb) = (h.answer(wa), h.answer(wb));
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    assert_eq!(h.heartbeat("g", &a, 1), Err(E::IllegalGeneration));
    h.sync_all("g", &a, &[&a, &b]);
    assert_eq!(h.state("g"), GroupState::Stable);
}

#[test]
fn leave_triggers_a_rebalance_and_the_last_leaver_empties_the_group() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    let (b, wb) = h.join_new("g");
    h.advance(2 * DELAY);
    h.answer(wa);
    h.answer(wb);
    h.sync_all("g", &a, &[&a, &b]);
    let (left, out) = h.shard.leave(
        "g",
        vec![
            LeavingMember {
                member_id: a.clone(),
                group_instance_id: None,
                reason: Some("bye".into()),
            },
            LeavingMember {
                member_id: "nobody".into(),
                group_instance_id: None,
                reason: None,
            },
        ],
        h.now,
    );
    h.absorb(out);
    let left = left.unwrap();
    assert_eq!(left[0].error, None);
    assert_eq!(left[1].error, Some(E::UnknownMemberId));
    assert_eq!(h.state("g"), GroupState::PreparingRebalance);
    assert!(
        h.shard.group("g").unwrap().is_leader(&b),
        "leadership moves"
    );
    let wb = h.join("g", &b, None, &["range"]);
    assert_eq!(h.answer(wb).generation_id, 2);
    h.sync_all("g", &b, &[&b]);
    let (_, out) = h.shard.leave(
        "g",
        vec![LeavingMember {
            member_id: b.clone(),
            group_instance_id: None,
            reason: None,
        }],
        h.now,
    );
    h.absorb(out);
    assert_eq!(h.state("g"), GroupState::Empty);
    assert_eq!(h.generation("g"), 3);
    assert!(
        matches!(h.log.last(), Some(CoordinatorRecord::GroupMetadata { value: Some(v), .. }) if v.members.is_empty() && v.generation == 3)
    );
    // LeaveGroup for an unknown group answers every member with UNKNOWN_MEMBER_ID.
    let (left, _) = h.shard.leave(
        "nope",
        vec![LeavingMember {
            member_id: "x".into(),
            group_instance_id: None,
            reason: None,
        }],
        h.now,
    );
    assert_eq!(left.unwrap()[0].error, Some(E::UnknownMemberId));
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    let (b, wb) = h.join_new("g");
    h.advance(2 * DELAY);
    h.answer(wa);
    h.answer(wb);
    h.sync_all("g", &a, &[&a, &b]);
    h.advance(i64::from(SESSION) / 2);
    assert_eq!(h.heartbeat("g", &a, 1), Ok(()));
    h.advance(i64::from(SESSION) / 2);
    // b's session (10 s) ran out: the group is rebalancing.
    assert!(!h.shard.group("g").unwrap().has_member(&b));
    assert_eq!(h.heartbeat("g", &b, 1), Err(E::UnknownMemberId));
    assert_eq!(h.heartbeat("g", &a, 1), Err(E::RebalanceInProgress));
    let wa = h.join("g", &a, None, &["range"]);
    let r = h.answer(wa);
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

#[test]
fn members_that_do_not_rejoin_in_time_are_dropped_but_static_members_stay() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    let (b, wb) = h.join_new("g");
    let ws = h.join("g", "", Some("static-1"), &["range"]);
    h.advance(2 * DELAY);
    let s = h.answer(ws).member_id;
    assert!(s.starts_with("static-1-"));
    h.answer(wa);
    h.answer(wb);
    h.sync_all("g", &a, &[&a, &b, &s]);
    // a triggers a rebalance by rejoining with new metadata; b and s keep heartbeating but do
    // not rejoin before the rebalance timeout.
    let wa = h.join_with(
        9,
        JoinRequest {
            group_id: "g".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            member_id: a.clone(),
            group_instance_id: None,
            protocol_type: "consumer".into(),
            protocols: protocols(&["range"], &["t", "u"]),
            reason: Some("subscription changed".into()),
        },
    );
    for _ in 0..(REBALANCE / (SESSION / 2)) {
        h.advance(i64::from(SESSION) / 2);
        let _ = h.heartbeat("g", &b, 1);
        let _ = h.shard.heartbeat("g", &s, Some("static-1"), 1, h.now);
    }
    let r = h.answer(wa);
    assert_eq!(r.generation_id, 2);
    let g = h.shard.group("g").unwrap();
    assert!(
        !g.has_member(&b),
        "the dynamic member that did not rejoin is gone"
    );
    assert!(g.has_member(&s), "the static member is kept");
    assert_eq!(r.members.len(), 2);
}

#[test]
fn a_follower_that_never_syncs_is_removed() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    let (b, wb) = h.join_new("g");
    h.advance(2 * DELAY);
    h.answer(wa);
    h.answer(wb);
    let assignments = vec![
        (a.clone(), Bytes::from_static(b"x")),
        (b.clone(), Bytes::from_static(b"y")),
    ];
    let w = h.sync("g", &a, 1, assignments);
    h.commit();
    assert_eq!(h.syncs.remove(&w).unwrap().error, None);
    assert_eq!(h.state("g"), GroupState::Stable);
    // Both keep their sessions alive, but b never asks for its assignment.
    for _ in 0..=(REBALANCE / (SESSION / 2)) {
        h.advance(i64::from(SESSION / 2));
        let _ = h.heartbeat("g", &a, 1);
        let _ = h.heartbeat("g", &b, 1);
    }
    assert!(h.shard.group("g").unwrap().has_member(&a));
    assert!(!h.shard.group("g").unwrap().has_member(&b));
    assert_eq!(h.state("g"), GroupState::PreparingRebalance);
}

#[test]
fn static_member_restart_replaces_the_old_member_without_a_rebalance() {
    let mut h = Harness::new();
    let w1 = h.join("g", "", Some("i1"), &["range"]);
    let w2 = h.join("g", "", Some("i2"), &["range"]);
    h.advance(2 * DELAY);
    let m1 = h.answer(w1).member_id;
    let m2 = h.answer(w2).member_id;
    let leader = h.shard.group("g").unwrap().leader().unwrap().to_string();
    let got = h.sync_all("g", &leader, &[&m1, &m2]);
    let generation = h.generation("g");
    // i2 restarts: it joins again with no member id.
    let w = h.join("g", "", Some("i2"), &["range"]);
    assert_eq!(
        h.state("g"),
        GroupState::Stable,
        "no rebalance: {:?}",
        h.joins.get(&w)
    );
    assert!(
        !h.joins.contains_key(&w),
        "answered once the new member id is stored"
    );
    h.commit();
    let r = h.answer(w);
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, generation);
    let new_id = r.member_id;
    assert_ne!(new_id, m2);
    // The restarted member keeps its assignment; the old id is fenced.
    let ws = h.next_waiter + 1;
    let out = h.shard.sync(
        SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: new_id.clone(),
            group_instance_id: Some("i2".into()),
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: vec![],
        },
        ws,
        h.now,
    );
    h.next_waiter = ws;
    h.absorb(out);
    assert_eq!(h.syncs[&ws].assignment, got[&m2]);
    assert_eq!(
        h.shard.heartbeat("g", &m2, Some("i2"), generation, h.now),
        Err(E::FencedInstanceId)
    );
    assert_eq!(
        h.shard
            .heartbeat("g", &new_id, Some("i2"), generation, h.now),
        Ok(())
    );
    assert_eq!(h.generation("g"), generation);
}

#[test]
fn static_member_with_a_new_protocol_forces_a_rebalance() {
    let mut h = Harness::new();
    let w1 = h.join("g", "", Some("i1"), &["range"]);
    h.advance(2 * DELAY);
    let m1 = h.answer(w1).member_id;
    h.sync_all("g", &m1, &[&m1]);
    // A protocol the group does not support at all is refused.
    let w = h.join("g", "", Some("i1"), &["roundrobin"]);
    assert_eq!(h.answer(w).error, Some(E::InconsistentGroupProtocol));
    // One it supports, but preferring another, changes the group's protocol: a rebalance.
    let w = h.join("g", "", Some("i1"), &["roundrobin", "range"]);
    let r = h.answer(w);
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
    assert_eq!(r.generation_id, 2);
}

#[test]
fn protocol_and_request_validation() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    h.advance(2 * DELAY);
    h.answer(wa);
    let w = h.join("g", "", None, &["roundrobin"]);
    assert_eq!(h.answer(w).error, Some(E::InconsistentGroupProtocol));
    let w = h.join_with(
        9,
        JoinRequest {
            group_id: "g".into(),
            session_timeout_ms: 10,
            rebalance_timeout_ms: REBALANCE,
            member_id: String::new(),
            group_instance_id: None,
            protocol_type: "consumer".into(),
            protocols: protocols(&["range"], &["t"]),
            reason: None,
        },
    );
    assert_eq!(h.answer(w).error, Some(E::InvalidSessionTimeout));
    let w = h.join("", "", None, &["range"]);
    assert_eq!(h.answer(w).error, Some(E::InvalidGroupId));
    let w = h.join("other", "someone", None, &["range"]);
    assert_eq!(h.answer(w).error, Some(E::UnknownMemberId));
    // Sync with the wrong protocol name or generation.
    let w = h.sync("g", &a, 0, vec![]);
    assert_eq!(h.syncs[&w].error, Some(E::IllegalGeneration));
    assert_eq!(h.heartbeat("unknown", &a, 1), Err(E::UnknownMemberId));
}

#[test]
fn join_v3_adds_the_member_without_member_id_required() {
    let mut h = Harness::new();
    let w = h.join_with(
        3,
        JoinRequest {
            group_id: "g".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            member_id: String::new(),
            group_instance_id: None,
            protocol_type: "consumer".into(),
            protocols: protocols(&["range"], &["t"]),
            reason: None,
        },
    );
    h.advance(2 * DELAY);
    let r = h.answer(w);
    assert_eq!(r.error, None);
    assert!(r.member_id.starts_with("c-"));
}

#[test]
fn a_pending_member_expires_after_its_session() {
    let mut h = Harness::new();
    let w = h.join("g", "", None, &["range"]);
    assert_eq!(h.answer(w).error, Some(E::MemberIdRequired));
    assert_eq!(h.shard.group("g").unwrap().num_pending_join_members(), 1);
    h.advance(i64::from(SESSION));
    assert_eq!(h.shard.group("g").unwrap().num_pending_join_members(), 0);
}

#[test]
fn max_group_size_is_enforced() {
    let mut h = Harness::with(GroupConfig {
        max_size: 1,
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let (_a, wa) = h.join_new("g");
    h.advance(1);
    assert_eq!(h.answer(wa).error, None);
    // The group is full: a new member is refused before it even gets a member id.
    let w = h.join("g", "", None, &["range"]);
    let r = h.answer(w);
    assert_eq!(
        (r.error, r.member_id.as_str()),
        (Some(E::GroupMaxSizeReached), "")
    );
    assert_eq!(h.shard.group("g").unwrap().num_members(), 1);
}

fn commit_request(group: &str, member: &str, generation: i32, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics: vec![(
            "t".into(),
            vec![CommitPartition {
                partition: 0,
                offset,
                leader_epoch: 3,
                metadata: Some("m".into()),
            }],
        )],
        api_version: 9,
    }
}

#[test]
fn commits_are_fenced_by_generation_and_rebalances() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    h.advance(2 * DELAY);
    h.answer(wa);
    // CompletingRebalance: REBALANCE_IN_PROGRESS.
    let (r, _) = h
        .shard
        .commit_offsets(&commit_request("g", &a, 1, 5), h.now);
    assert_eq!(r, Err(E::RebalanceInProgress));
    h.sync_all("g", &a, &[&a]);
    let (r, out) = h
        .shard
        .commit_offsets(&commit_request("g", &a, 1, 5), h.now);
    assert_eq!(r.unwrap()[0].1, vec![(0, None)]);
    assert_eq!(out.records.len(), 1);
    let (r, _) = h
        .shard
        .commit_offsets(&commit_request("g", &a, 0, 6), h.now);
    assert_eq!(r, Err(E::IllegalGeneration));
    let (r, _) = h
        .shard
        .commit_offsets(&commit_request("g", "stranger", 1, 6), h.now);
    assert_eq!(r, Err(E::UnknownMemberId));
    // Without member id and generation, commits are only allowed while the group is Empty.
    let (r, _) = h
        .shard
        .commit_offsets(&commit_request("g", "", -1, 6), h.now);
    assert_eq!(r, Err(E::UnknownMemberId));
    // To a group that does not exist with a generation: GROUP_ID_NOT_FOUND (v9), ILLEGAL_GENERATION before.
    let (r, _) = h
        .shard
        .commit_offsets(&commit_request("nope", "x", 1, 1), h.now);
    assert_eq!(r, Err(E::GroupIdNotFound));
    let mut v8 = commit_request("nope", "x", 1, 1);
    v8.api_version = 8;
    assert_eq!(
        h.shard.commit_offsets(&v8, h.now).0,
        Err(E::IllegalGeneration)
    );
    let f = h
        .shard
        .fetch_offsets("g", Some(&[("t".into(), vec![0, 1])]));
    assert_eq!(
        (f.topics[0].1[0].offset, f.topics[0].1[0].leader_epoch),
        (5, 3)
    );
    assert_eq!(f.topics[0].1[0].metadata, "m");
    assert_eq!(f.topics[0].1[1].offset, -1);
}

#[test]
fn standalone_commits_create_a_simple_group_and_metadata_size_is_checked() {
    let mut h = Harness::new();
    let mut request = commit_request("simple", "", -1, 9);
    request.topics[0].1.push(CommitPartition {
        partition: 1,
        offset: 1,
        leader_epoch: -1,
        metadata: Some("x".repeat(5000)),
    });
    let (r, out) = h.shard.commit_offsets(&request, h.now);
    assert_eq!(
        r.unwrap()[0].1,
        vec![(0, None), (1, Some(E::OffsetMetadataTooLarge))]
    );
    assert_eq!(out.records.len(), 1);
    assert!(h.shard.group("simple").unwrap().is_simple());
    let all = h.shard.fetch_offsets("simple", None);
    assert_eq!(all.topics.len(), 1);
    assert_eq!(all.topics[0].1.len(), 1);
    let listed = h.shard.list_groups(&[], &[]);
    assert_eq!(listed[0].state, "Empty");
    assert_eq!(listed[0].protocol_type, "");
    assert!(h.shard.list_groups(&["stable".into()], &[]).is_empty());
    assert_eq!(
        h.shard
            .list_groups(&["EMPTY".into()], &["Classic".into()])
            .len(),
        1
    );
    assert!(h.shard.list_groups(&[], &["consumer".into()]).is_empty());
}

#[test]
fn offsets_of_an_empty_group_expire_after_retention_and_then_the_group_goes() {
    let retention = 60_000;
    let mut h = Harness::with(GroupConfig {
        offsets_retention_ms: retention,
        offsets_retention_check_interval_ms: 1_000,
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let out = h.shard.on_loaded(h.now);
    h.absorb(out);
    let (a, wa) = h.join_new("g");
    h.advance(1);
    h.answer(wa);
    h.sync_all("g", &a, &[&a]);
    let (_, out) = h
        .shard
        .commit_offsets(&commit_request("g", &a, 1, 5), h.now);
    h.absorb(out);
    // While the consumer group is Stable and subscribed to t, its offsets never expire.
    for _ in 0..(2 * retention / i64::from(SESSION / 2)) {
        h.advance(i64::from(SESSION / 2));
        assert_eq!(h.heartbeat("g", &a, 1), Ok(()));
    }
    assert_eq!(
        h.shard.fetch_offsets("g", None).topics.len(),
        1,
        "kept while subscribed"
    );
    let (_, out) = h.shard.leave(
        "g",
        vec![LeavingMember {
            member_id: a.clone(),
            group_instance_id: None,
            reason: None,
        }],
        h.now,
    );
    h.absorb(out);
    assert_eq!(h.state("g"), GroupState::Empty);
    h.advance(retention - 1_000);
    assert_eq!(
        h.shard.fetch_offsets("g", None).topics.len(),
        1,
        "retention counts from when the group became empty"
    );
    h.advance(2_000);
    assert!(
        h.shard.group("g").is_none(),
        "offsets expired, then the empty group went"
    );
    let tail: Vec<_> = h.log.iter().rev().take(2).collect();
    assert!(matches!(
        tail[0],
        CoordinatorRecord::GroupMetadata { value: None, .. }
    ));
    assert!(matches!(
        tail[1],
        CoordinatorRecord::OffsetCommit { value: None, .. }
    ));
}

#[test]
fn commits_with_their_own_retention_expire_at_it() {
    let mut h = Harness::with(GroupConfig {
        offsets_retention_check_interval_ms: 1_000,
        ..GroupConfig::default()
    });
    let out = h.shard.on_loaded(h.now);
    h.absorb(out);
    let mut request = commit_request("simple", "", -1, 1);
    request.retention_time_ms = 5_000;
    request.api_version = 2;
    let (_, out) = h.shard.commit_offsets(&request, h.now);
    assert!(
        matches!(&out.records[0], CoordinatorRecord::OffsetCommit { value: Some(v), .. } if v.expire_timestamp_ms == h.now + 5_000)
    );
    h.absorb(out);
    h.advance(6_000);
    assert!(h.shard.group("simple").is_none());
}

#[test]
fn delete_groups_and_offsets() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("busy");
    h.advance(2 * DELAY);
    h.answer(wa);
    h.sync_all("busy", &a, &[&a]);
    let (_, out) = h
        .shard
        .commit_offsets(&commit_request("idle", "", -1, 3), h.now);
    h.absorb(out);
    let (results, out) = h
        .shard
        .delete_groups(&["busy".into(), "idle".into(), "ghost".into()]);
    assert_eq!(
        results,
        vec![
            ("busy".into(), Some(E::NonEmptyGroup)),
            ("idle".into(), None),
            ("ghost".into(), Some(E::GroupIdNotFound)),
        ]
    );
    assert_eq!(
        out.records.len(),
        2,
        "an offset tombstone and a group tombstone"
    );
    assert!(h.shard.group("idle").is_none());
    // OffsetDelete on a Stable consumer group: refused for subscribed topics only.
    let (_, out) = h
        .shard
        .commit_offsets(&commit_request("busy", &a, 1, 3), h.now);
    h.absorb(out);
    let (r, out) = h
        .shard
        .delete_offsets("busy", &[("t".into(), vec![0]), ("other".into(), vec![0])]);
    let r = r.unwrap();
    assert_eq!(r[0].1, vec![(0, Some(E::GroupSubscribedToTopic))]);
    assert_eq!(r[1].1, vec![(0, None)]);
    assert!(
        out.records.is_empty(),
        "nothing committed for the other topic"
    );
    assert_eq!(
        h.shard.delete_offsets("ghost", &[]).0,
        Err(E::GroupIdNotFound)
    );
}

#[test]
fn replaying_the_log_rebuilds_groups_and_offsets_and_sessions_restart() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    let (b, wb) = h.join_new("g");
    h.advance(2 * DELAY);
    h.answer(wa);
    h.answer(wb);
    h.sync_all("g", &a, &[&a, &b]);
    let (_, out) = h
        .shard
        .commit_offsets(&commit_request("g", &a, 1, 42), h.now);
    h.absorb(out);
    let (_, out) = h
        .shard
        .commit_offsets(&commit_request("simple", "", -1, 7), h.now);
    h.absorb(out);

    let mut loaded = GroupShard::with_random_ids(GroupConfig::default());
    for r in h.log.clone() {
        // Through the wire format, as loading reads it.
        let decoded = CoordinatorRecord::decode(&r.key(), r.value().as_deref())
            .unwrap()
            .unwrap();
        loaded.replay(decoded, h.now);
    }
    let out = loaded.on_loaded(h.now);
    assert!(out.records.is_empty(), "{:?}", out.records);
    let g = loaded.group("g").unwrap();
    assert_eq!(
        (g.state(), g.generation_id, g.num_members()),
        (GroupState::Stable, 1, 2)
    );
    assert_eq!(
        g.member(&b).unwrap().assignment,
        Bytes::from(format!("assignment-of-{b}"))
    );
    assert_eq!(loaded.fetch_offsets("g", None).topics[0].1[0].offset, 42);
    assert_eq!(
        loaded.fetch_offsets("simple", None).topics[0].1[0].offset,
        7
    );
    assert_eq!(loaded.heartbeat("g", &a, None, 1, h.now), Ok(()));
    // b never heartbeats after the restart: its session expires and the group rebalances.
    let half = h.now + i64::from(SESSION / 2);
    assert!(loaded.fire_timers(half).records.is_empty());
    assert_eq!(loaded.heartbeat("g", &a, None, 1, half), Ok(()));
    let out = loaded.fire_timers(h.now + i64::from(SESSION));
    assert!(out.records.is_empty());
    assert!(!loaded.group("g").unwrap().has_member(&b));
    assert_eq!(
        loaded.group("g").unwrap().state(),
        GroupState::PreparingRebalance
    );
}

#[test]
fn unloading_answers_parked_requests_with_not_coordinator() {
    let mut h = Harness::new();
    let (_a, wa) = h.join_new("g");
    let out = h.shard.unload(h.now);
    h.absorb(out);
    assert_eq!(h.answer(wa).error, Some(E::NotCoordinator));
}

#[test]
fn describe_reports_members_and_metadata_only_when_stable() {
    let mut h = Harness::new();
    let (a, wa) = h.join_new("g");
    assert_eq!(h.shard.describe_group("g", 5).state, "PreparingRebalance");
    h.advance(2 * DELAY);
    h.answer(wa);
    let d = h.shard.describe_group("g", 5);
    assert_eq!(
        (d.state, d.protocol_data.as_str()),
        ("CompletingRebalance", "")
    );
    assert!(d.members[0].metadata.is_empty());
    h.sync_all("g", &a, &[&a]);
    let d = h.shard.describe_group("g", 5);
    assert_eq!(
        (d.state, d.protocol_type.as_str(), d.protocol_data.as_str()),
        ("Stable", "consumer", "range")
    );
    assert_eq!(d.members[0].metadata, subscription(&["t"]));
    assert_eq!(d.members[0].client_host, "/127.0.0.1");
    let unknown = h.shard.describe_group("nope", 5);
    assert_eq!((unknown.state, unknown.error), ("Dead", None));
    let unknown = h.shard.describe_group("nope", 6);
    assert_eq!(
        (unknown.state, unknown.error),
        ("Dead", Some(E::GroupIdNotFound))
    );
    assert_eq!(
        unknown.error_message.as_deref(),
        Some("Group nope not found.")
    );
}
