//! KIP-392: which replica a consumer should fetch from (Kafka's `ReplicaManager.
//! findPreferredReadReplica` with `RackAwareReplicaSelector`), as plain functions over plain data.
//!
//! The partition leader gathers, for each replica, what replication knows ([`ReplicaState`]: log
//! end, log start, ISR membership, when it was last caught up; supplied by
//! [`crate::partition::PartitionHandle::replica_states`]) and what the metadata knows (rack,
//! whether the broker is live and has an endpoint on the client's listener), joined into a
//! [`ReplicaView`]. [`preferred_read_replica`] then decides:
//! 1. only the leader selects, only when a rack-aware selector is configured, only for consumer
//!    Fetch v11+ that names (or was given) a client rack ([`selection_applies`]);
//! 2. candidates are the leader and the followers that are in the ISR, hold the fetch offset
//!    (log start ≤ offset ≤ log end), are live and reachable on the client's listener
//!    ([`is_candidate`]; Kafka drops a fenced or unreachable choice only after choosing it, which
//!    can send the consumer to the leader although another same-rack follower would do);
//! 3. the leader if it shares the client's rack, else the most caught-up same-rack candidate
//!    (highest log end, then shortest time since last caught up, then highest broker id), else
//!    the leader ([`rack_aware_choice`]).
//!
//! A result of `None` means "the leader serves the fetch itself".

/// `replica.selector.class` naming Kafka's rack-aware selector.
pub const RACK_AWARE_SELECTOR_CLASS: &str =
    "org.apache.kafka.common.replica.RackAwareReplicaSelector";
/// `replica.selector.class` naming Kafka's leader selector (what an unset class means).
pub const LEADER_SELECTOR_CLASS: &str = "org.apache.kafka.common.replica.LeaderReplicaSelector";

/// The first Fetch version that carries `rack_id` and `preferred_read_replica`.
pub const MIN_FETCH_VERSION: i16 = 11;

/// Which selector the broker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectorKind {
    /// Always the leader (Kafka's default, `replica.selector.class` unset).
    #[default]
    Leader,
    /// Kafka's `RackAwareReplicaSelector`.
    RackAware,
}

/// A `replica.selector.class` Shoal does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "replica.selector.class={0} is not supported; use {RACK_AWARE_SELECTOR_CLASS} (or follower.fetching.enabled=true), {LEADER_SELECTOR_CLASS}, or leave it unset"
)]
pub struct UnknownSelectorClass(pub String);

impl SelectorKind {
    /// The selector named by `replica.selector.class` (empty: unset).
    pub fn from_class(class: &str) -> Result<SelectorKind, UnknownSelectorClass> {
        match class.trim() {
            "" | LEADER_SELECTOR_CLASS => Ok(SelectorKind::Leader),
            RACK_AWARE_SELECTOR_CLASS => Ok(SelectorKind::RackAware),
            other => Err(UnknownSelectorClass(other.to_string())),
        }
    }
}

/// Replication state of one replica as the partition leader tracks it (Kafka's `Replica`
/// bookkeeping from the follower's last fetch). This is what a replicated
/// [`crate::partition::PartitionHandle`] provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaState {
    /// The replica's broker.
    pub broker_id: i32,
    /// Its log end offset as the leader knows it (the offset after its last replicated record).
    pub log_end_offset: i64,
    /// Its log start offset as the leader knows it.
    pub log_start_offset: i64,
    /// Whether it is in the partition's in-sync replica set.
    pub in_sync: bool,
    /// When (ms, broker clock) it was last caught up with the leader's log end; `None` when
    /// longer ago than the leader remembers. The leader itself is caught up now.
    pub last_caught_up_ms: Option<i64>,
}

/// What a partition leader knows of its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStates {
    /// The leader itself (this broker).
    pub leader: ReplicaState,
    /// Every other replica, in any order.
    pub followers: Vec<ReplicaState>,
}

/// One replica as the selection sees it: replication state joined with cluster metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaView<'a> {
    /// Replication state.
    pub state: ReplicaState,
    /// The broker's `broker.rack`.
    pub rack: Option<&'a str>,
    /// Registered and not fenced.
    pub live: bool,
    /// Advertises an endpoint on the listener the client is connected to.
    pub has_endpoint: bool,
}

/// Who sent a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOrigin<'a> {
    /// Fetch request version.
    pub version: i16,
    /// `replica_id` (v15+: `replica_state.replica_id`); negative for consumers.
    pub replica_id: i32,
    /// The client's rack: the request's `rack_id`, or one inferred from its address; `None` or
    /// empty when unknown.
    pub client_rack: Option<&'a str>,
}

impl FetchOrigin<'_> {
    /// Kafka's `FetchRequest.isConsumer` for what arrives over the wire.
    pub fn is_consumer(&self) -> bool {
        self.replica_id < 0
    }
}

/// Whether a preferred read replica is computed at all for this fetch on this replica.
pub fn selection_applies(kind: SelectorKind, is_leader: bool, origin: &FetchOrigin<'_>) -> bool {
    kind == SelectorKind::RackAware
        && is_leader
        && origin.version >= MIN_FETCH_VERSION
        && origin.is_consumer()
        && origin.client_rack.is_some_and(|r| !r.is_empty())
}

/// Whether a follower may be chosen for a fetch at `fetch_offset`.
pub fn is_candidate(follower: &ReplicaView<'_>, fetch_offset: i64) -> bool {
    follower.state.in_sync
        && follower.state.log_end_offset >= fetch_offset
        && follower.state.log_start_offset <= fetch_offset
        && follower.live
        && follower.has_endpoint
}

/// Kafka's `ReplicaView.comparator()` key: larger is better (highest log end, then shortest
/// time since caught up, then highest broker id).
fn rank(view: &ReplicaView<'_>, now_ms: i64) -> (i64, i64, i32) {
    let since = match view.state.last_caught_up_ms {
        Some(at) => now_ms.saturating_sub(at).max(0),
        None => i64::MAX,
    };
    (view.state.log_end_offset, -since, view.state.broker_id)
}

/// `RackAwareReplicaSelector.select` over the leader and the candidate followers: the broker id
/// of the replica to read from (possibly the leader).
pub fn rack_aware_choice(
    client_rack: &str,
    leader: &ReplicaView<'_>,
    candidates: &[ReplicaView<'_>],
    now_ms: i64,
) -> i32 {
    if client_rack.is_empty() || leader.rack == Some(client_rack) {
        return leader.state.broker_id;
    }
    candidates
        .iter()
        .filter(|c| c.rack == Some(client_rack))
        .max_by_key(|c| rank(c, now_ms))
        .map_or(leader.state.broker_id, |c| c.state.broker_id)
}

/// The replica (other than the leader) a consumer should fetch `fetch_offset` from, or `None`
/// when the leader serves the fetch.
pub fn preferred_read_replica(
    kind: SelectorKind,
    is_leader: bool,
    origin: &FetchOrigin<'_>,
    fetch_offset: i64,
    leader: &ReplicaView<'_>,
    followers: &[ReplicaView<'_>],
    now_ms: i64,
) -> Option<i32> {
    if !selection_applies(kind, is_leader, origin) {
        return None;
    }
    let client_rack = origin.client_rack.unwrap_or_default();
    let candidates: Vec<ReplicaView<'_>> = followers
        .iter()
        .filter(|f| f.state.broker_id != leader.state.broker_id && is_candidate(f, fetch_offset))
        .copied()
        .collect();
    let chosen = rack_aware_choice(client_rack, leader, &candidates, now_ms);
    (chosen != leader.state.broker_id).then_some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn state(id: i32, leo: i64) -> ReplicaState {
        ReplicaState {
            broker_id: id,
            log_end_offset: leo,
            log_start_offset: 0,
            in_sync: true,
            last_caught_up_ms: Some(NOW),
        }
    }

    fn view(id: i32, rack: &str, leo: i64) -> ReplicaView<'_> {
        ReplicaView {
            state: state(id, leo),
            rack: Some(rack),
            live: true,
            has_endpoint: true,
        }
    }

    fn consumer(rack: &str) -> FetchOrigin<'_> {
        FetchOrigin {
            version: 11,
            replica_id: -1,
            client_rack: Some(rack),
        }
    }

    fn select(
        origin: &FetchOrigin<'_>,
        offset: i64,
        leader: &ReplicaView<'_>,
        followers: &[ReplicaView<'_>],
    ) -> Option<i32> {
        preferred_read_replica(
            SelectorKind::RackAware,
            true,
            origin,
            offset,
            leader,
            followers,
            NOW,
        )
    }

    #[test]
    fn selector_classes() {
        assert_eq!(SelectorKind::from_class(""), Ok(SelectorKind::Leader));
        assert_eq!(
            SelectorKind::from_class(LEADER_SELECTOR_CLASS),
            Ok(SelectorKind::Leader)
        );
        assert_eq!(
            SelectorKind::from_class(&format!(" {RACK_AWARE_SELECTOR_CLASS} ")),
            Ok(SelectorKind::RackAware)
        );
        let err = SelectorKind::from_class("com.example.Mine").unwrap_err();
        assert!(err.to_string().contains("com.example.Mine"), "{err}");
        assert!(err.to_string().contains(RACK_AWARE_SELECTOR_CLASS), "{err}");
        assert_eq!(SelectorKind::default(), SelectorKind::Leader);
    }

    #[test]
    fn selection_needs_every_condition() {
        let ok = consumer("r2");
        assert!(selection_applies(SelectorKind::RackAware, true, &ok));
        assert!(!selection_applies(SelectorKind::Leader, true, &ok));
        assert!(
            !selection_applies(SelectorKind::RackAware, false, &ok),
            "followers never select (KAFKA-13778)"
        );
        let old = FetchOrigin { version: 10, ..ok };
        assert!(!selection_applies(SelectorKind::RackAware, true, &old));
        let replica = FetchOrigin {
            replica_id: 2,
            ..ok
        };
        assert!(!selection_applies(SelectorKind::RackAware, true, &replica));
        let debug = FetchOrigin {
            replica_id: -2,
            ..ok
        };
        assert!(selection_applies(SelectorKind::RackAware, true, &debug));
        let no_rack = FetchOrigin {
            client_rack: None,
            ..ok
        };
        assert!(!selection_applies(SelectorKind::RackAware, true, &no_rack));
        let empty_rack = FetchOrigin {
            client_rack: Some(""),
            ..ok
        };
        assert!(!selection_applies(
            SelectorKind::RackAware,
            true,
            &empty_rack
        ));
        let v17 = FetchOrigin { version: 17, ..ok };
        assert!(selection_applies(SelectorKind::RackAware, true, &v17));
    }

    #[test]
    fn same_rack_follower_is_preferred() {
        let leader = view(1, "r1", 100);
        let followers = [view(2, "r2", 100), view(3, "r3", 100)];
        assert_eq!(select(&consumer("r2"), 50, &leader, &followers), Some(2));
        assert_eq!(select(&consumer("r3"), 50, &leader, &followers), Some(3));
    }

    #[test]
    fn leader_in_the_client_rack_wins_over_followers_there() {
        let leader = view(1, "r1", 100);
        let followers = [view(2, "r1", 100), view(3, "r1", 100)];
        assert_eq!(select(&consumer("r1"), 50, &leader, &followers), None);
    }

    #[test]
    fn no_same_rack_replica_means_the_leader() {
        let leader = view(1, "r1", 100);
        let followers = [view(2, "r2", 100)];
        assert_eq!(select(&consumer("r9"), 50, &leader, &followers), None);
        let unracked = ReplicaView {
            rack: None,
            ..view(3, "", 100)
        };
        assert_eq!(select(&consumer("r9"), 50, &leader, &[unracked]), None);
        let no_rack_leader = ReplicaView {
            rack: None,
            ..view(1, "", 100)
        };
        assert_eq!(
            select(&consumer("r2"), 50, &no_rack_leader, &followers),
            Some(2)
        );
    }

    #[test]
    fn rack_names_match_exactly() {
        let leader = view(1, "r1", 100);
        let followers = [view(2, "R2", 100), view(3, "r2 ", 100)];
        assert_eq!(select(&consumer("r2"), 50, &leader, &followers), None);
    }

    #[test]
    fn most_caught_up_same_rack_follower_wins() {
        let leader = view(1, "r1", 100);
        let followers = [view(2, "r2", 90), view(3, "r2", 95), view(4, "r3", 100)];
        assert_eq!(select(&consumer("r2"), 50, &leader, &followers), Some(3));
    }

    #[test]
    fn ties_break_on_recency_then_broker_id() {
        let leader = view(1, "r1", 100);
        let mut stale = view(2, "r2", 100);
        stale.state.last_caught_up_ms = Some(NOW - 500);
        let mut fresh = view(3, "r2", 100);
        fresh.state.last_caught_up_ms = Some(NOW - 10);
        assert_eq!(
            select(&consumer("r2"), 50, &leader, &[stale, fresh]),
            Some(3)
        );
        fresh.state.last_caught_up_ms = None;
        assert_eq!(
            select(&consumer("r2"), 50, &leader, &[stale, fresh]),
            Some(2),
            "unknown catch-up time ranks last"
        );
        let a = view(2, "r2", 100);
        let b = view(5, "r2", 100);
        let c = view(4, "r2", 100);
        assert_eq!(select(&consumer("r2"), 50, &leader, &[a, b, c]), Some(5));
        // A clock that went backwards does not make a replica look better than "now".
        let mut future = view(2, "r2", 100);
        future.state.last_caught_up_ms = Some(NOW + 10_000);
        let now = view(6, "r2", 100);
        assert_eq!(
            select(&consumer("r2"), 50, &leader, &[future, now]),
            Some(6)
        );
    }

    #[test]
    fn only_in_sync_followers_holding_the_offset_are_candidates() {
        let leader = view(1, "r1", 100);
        let mut out_of_sync = view(2, "r2", 100);
        out_of_sync.state.in_sync = false;
        assert_eq!(
            select(&consumer("r2"), 50, &leader, &[out_of_sync]),
            None,
            "KAFKA-14372: lagging followers outside the ISR are never chosen"
        );

        let behind = view(2, "r2", 40);
        assert_eq!(select(&consumer("r2"), 50, &leader, &[behind]), None);
        let exactly = view(2, "r2", 50);
        assert_eq!(
            select(&consumer("r2"), 50, &leader, &[exactly]),
            Some(2),
            "log end == fetch offset is enough: the follower long-polls there"
        );

        let mut trimmed = view(2, "r2", 100);
        trimmed.state.log_start_offset = 60;
        assert_eq!(select(&consumer("r2"), 50, &leader, &[trimmed]), None);
        trimmed.state.log_start_offset = 50;
        assert_eq!(select(&consumer("r2"), 50, &leader, &[trimmed]), Some(2));
    }

    #[test]
    fn dead_or_unreachable_followers_are_skipped_for_the_next_best() {
        let leader = view(1, "r1", 100);
        let mut fenced = view(2, "r2", 100);
        fenced.live = false;
        let mut no_endpoint = view(3, "r2", 100);
        no_endpoint.has_endpoint = false;
        let behind_but_usable = view(4, "r2", 80);
        assert_eq!(
            select(&consumer("r2"), 50, &leader, &[fenced, no_endpoint]),
            None
        );
        assert_eq!(
            select(
                &consumer("r2"),
                50,
                &leader,
                &[fenced, no_endpoint, behind_but_usable]
            ),
            Some(4)
        );
    }

    #[test]
    fn the_leader_listed_among_followers_is_ignored() {
        let leader = view(1, "r1", 100);
        let followers = [view(1, "r2", 200), view(2, "r2", 100)];
        assert_eq!(select(&consumer("r2"), 50, &leader, &followers), Some(2));
    }

    #[test]
    fn gating_short_circuits_the_choice() {
        let leader = view(1, "r1", 100);
        let followers = [view(2, "r2", 100)];
        let origin = consumer("r2");
        assert_eq!(
            preferred_read_replica(
                SelectorKind::Leader,
                true,
                &origin,
                50,
                &leader,
                &followers,
                NOW
            ),
            None
        );
        assert_eq!(
            preferred_read_replica(
                SelectorKind::RackAware,
                false,
                &origin,
                50,
                &leader,
                &followers,
                NOW
            ),
            None
        );
        let v10 = FetchOrigin {
            version: 10,
            ..origin
        };
        assert_eq!(select(&v10, 50, &leader, &followers), None);
    }

    #[test]
    fn rack_aware_choice_is_kafkas_selector() {
        let leader = view(1, "r1", 100);
        assert_eq!(rack_aware_choice("", &leader, &[view(2, "", 100)], NOW), 1);
        assert_eq!(
            rack_aware_choice("r1", &leader, &[view(2, "r1", 200)], NOW),
            1
        );
        assert_eq!(rack_aware_choice("r2", &leader, &[], NOW), 1);
        assert_eq!(
            rack_aware_choice("r2", &leader, &[view(2, "r2", 0)], NOW),
            2
        );
    }
}
