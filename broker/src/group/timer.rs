//! The coordinator's timers (Kafka's `CoordinatorTimer`): keyed deadlines on the injected clock.
//! Scheduling a key again replaces its deadline; the runtime sleeps until
//! [`Timer::next_deadline`] and then runs what [`Timer::pop_expired`] returns.

use std::collections::{BTreeSet, HashMap};

/// What a timer is for; one timer per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A member's session (and a new member's join timeout).
    Heartbeat { group: String, member: String },
    /// A group's join phase (rebalance timeout or initial delay).
    Join { group: String },
    /// A group's wait for SyncGroup requests.
    Sync { group: String },
    /// The periodic removal of expired offsets and empty groups.
    Expiration,
}

/// What to do when a timer fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerTask {
    /// Kafka's `expireClassicGroupMemberHeartbeat`.
    ExpireHeartbeat { group: String, member: String },
    /// Kafka's `completeClassicGroupJoin` on the rebalance timeout.
    CompleteJoin { group: String },
    /// Kafka's `tryCompleteInitialRebalanceElseSchedule`.
    InitialRebalance {
        group: String,
        delay_ms: i64,
        remaining_ms: i64,
    },
    /// Kafka's `expirePendingSync`.
    ExpirePendingSync { group: String, generation: i32 },
    /// Kafka's `cleanupGroupMetadata`.
    CleanupGroupMetadata,
}

/// Keyed deadlines.
#[derive(Debug, Default)]
pub struct Timer {
    by_key: HashMap<TimerKey, (i64, u64, TimerTask)>,
    by_deadline: BTreeSet<(i64, u64, TimerKey)>,
    seq: u64,
}

impl Timer {
    /// Runs `task` at `deadline_ms`, replacing the key's previous timer.
    pub fn schedule(&mut self, key: TimerKey, deadline_ms: i64, task: TimerTask) {
        self.cancel(&key);
        self.seq += 1;
        self.by_deadline
            .insert((deadline_ms, self.seq, key.clone()));
        self.by_key.insert(key, (deadline_ms, self.seq, task));
    }

    pub fn cancel(&mut self, key: &TimerKey) {
        if let Some((deadline, seq, _)) = self.by_key.remove(key) {
            self.by_deadline.remove(&(deadline, seq, key.clone()));
        }
    }

    pub fn is_scheduled(&self, key: &TimerKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// The deadline of a scheduled key.
    pub fn deadline(&self, key: &TimerKey) -> Option<i64> {
        self.by_key.get(key).map(|(d, _, _)| *d)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<i64> {
        self.by_deadline.first().map(|(d, _, _)| *d)
    }

    /// Removes and returns the next task due at `now_ms`, earliest first.
    pub fn pop_expired(&mut self, now_ms: i64) -> Option<TimerTask> {
        let (deadline, _, key) = self.by_deadline.first()?.clone();
        if deadline > now_ms {
            return None;
        }
        self.by_key.remove(&key).map(|(deadline, seq, task)| {
            self.by_deadline.remove(&(deadline, seq, key));
            task
        })
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn clear(&mut self) {
        self.by_key.clear();
        self.by_deadline.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(g: &str) -> (TimerKey, TimerTask) {
        (
            TimerKey::Join { group: g.into() },
            TimerTask::CompleteJoin { group: g.into() },
        )
    }

    #[test]
    fn rescheduling_replaces_and_tasks_fire_in_deadline_order() {
        let mut t = Timer::default();
        let (k1, t1) = join("a");
        let (k2, t2) = join("b");
        t.schedule(k1.clone(), 100, t1.clone());
        t.schedule(k2.clone(), 50, t2.clone());
        t.schedule(k1.clone(), 30, t1.clone());
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline(), Some(30));
        assert_eq!(t.pop_expired(29), None);
        assert_eq!(t.pop_expired(60), Some(t1));
        assert_eq!(t.pop_expired(60), Some(t2));
        assert_eq!(t.pop_expired(1000), None);
        t.schedule(k2.clone(), 10, TimerTask::CleanupGroupMetadata);
        t.cancel(&k2);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }
}
