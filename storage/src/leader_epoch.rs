//! The leader-epoch cache: the first entry (offset and Raft index) of every term that has
//! entries in the log, with Kafka's `LeaderEpochFileCache` semantics, persisted as
//! `leader-epochs.checkpoint`.
//!
//! Checkpoint format (text, like Kafka's checkpoint files, written via temp file + fsync +
//! rename): a version line `1`, a count line, then `epoch start_offset start_index` per line.

/// The start of one leader epoch (= Raft term).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: u64,
    pub start_offset: i64,
    pub start_index: u64,
}

/// Kafka's answer to OffsetForLeaderEpoch: the largest epoch <= the requested one and where it
/// ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: u64,
    pub end_offset: i64,
}

pub(crate) const CHECKPOINT_FILE: &str = "leader-epochs.checkpoint";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    #[cfg(test)]
    pub(crate) fn from_entries(entries: Vec<EpochEntry>) -> Self {
        LeaderEpochCache { entries }
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest(&self) -> Option<&EpochEntry> {
        self.entries.last()
    }

    /// Records that `entry.epoch` starts at this entry, if it is newer than the latest epoch.
    /// Returns whether the cache changed.
    /// Like Kafka's `assign`, an earlier entry starting at the same place (an epoch that
    /// never got entries, such as the one an emptied log carries) is replaced.
    pub(crate) fn assign(&mut self, entry: EpochEntry) -> bool {
        if self
            .entries
            .last()
            .is_some_and(|last| last.epoch >= entry.epoch)
        {
            return false;
        }
        while self.entries.last().is_some_and(|last| {
            last.start_index >= entry.start_index || last.start_offset >= entry.start_offset
        }) {
            self.entries.pop();
        }
        self.entries.push(entry);
        true
    }

    /// The cache of a log without entries: the last purged entry's term (if any) is the
    /// latest epoch and starts at the log end, as Kafka keeps the latest epoch of a log
    /// emptied by retention.
    pub(crate) fn for_empty_log(
        purged_term: Option<u64>,
        log_end_offset: i64,
        next_index: u64,
    ) -> Self {
        LeaderEpochCache {
            entries: purged_term
                .map(|epoch| EpochEntry {
                    epoch,
                    start_offset: log_end_offset,
                    start_index: next_index,
                })
                .into_iter()
                .collect(),
        }
    }

    /// Drops epochs that start at or after `next_index` (Kafka's `truncateFromEnd`).
    pub(crate) fn truncate_from_end(&mut self, next_index: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_index < next_index);
        before != self.entries.len()
    }

    /// Drops epochs that start at or before the new first entry and re-adds the latest of them
    /// starting there (Kafka's `truncateFromStart`).
    pub(crate) fn truncate_from_start(&mut self, first_index: u64, start_offset: i64) -> bool {
        let removed = self
            .entries
            .iter()
            .take_while(|e| e.start_index <= first_index)
            .count();
        if removed == 0 {
            return false;
        }
        let last = self.entries[removed - 1];
        self.entries.drain(..removed);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: last.epoch,
                start_offset,
                start_index: first_index,
            },
        );
        true
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: `None` is Kafka's
    /// (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET).
    pub(crate) fn end_offset_for(
        &self,
        requested: u64,
        log_end_offset: i64,
    ) -> Option<EpochEndOffset> {
        let latest = self.entries.last()?;
        if latest.epoch == requested {
            return Some(EpochEndOffset {
                epoch: requested,
                end_offset: log_end_offset,
            });
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            None => Some(EpochEndOffset {
                epoch: requested,
                end_offset: higher.start_offset,
            }),
            Some(floor) => Some(EpochEndOffset {
                epoch: floor.epoch,
                end_offset: higher.start_offset,
            }),
        }
    }

    /// Kafka's `epochForOffset`.
    pub(crate) fn epoch_for_offset(&self, offset: i64) -> Option<u64> {
        let mut previous = None;
        for e in &self.entries {
            if e.start_offset == offset {
                return Some(e.epoch);
            }
            if e.start_offset > offset {
                return previous;
            }
            previous = Some(e.epoch);
        }
        previous
    }

    pub(crate) fn encode(&self) -> String {
        let mut s = format!("1\n{}\n", self.entries.len());
        for e in &self.entries {
            s.push_str(&format!(
                "{} {} {}\n",
                e.epoch, e.start_offset, e.start_index
            ));
        }
        s
    }

    pub(crate) fn decode(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some("1") {
            return Err("unknown checkpoint version".into());
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("missing entry count")?;
        let mut entries = Vec::with_capacity(count.min(1 << 16));
        for line in lines.by_ref().take(count) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let parsed = match parts.as_slice() {
                [e, o, i] => e.parse().ok().zip(o.parse().ok()).zip(i.parse().ok()).map(
                    |((epoch, start_offset), start_index)| EpochEntry {
                        epoch,
                        start_offset,
                        start_index,
                    },
                ),
                _ => None,
            };
            let entry = parsed.ok_or_else(|| format!("malformed line {line:?}"))?;
            if let Some(prev) = entries.last()
                && !(prev_lt(prev, &entry))
            {
                return Err("entries are not increasing".into());
            }
            entries.push(entry);
        }
        if entries.len() != count || lines.next().is_some() {
            return Err("entry count does not match".into());
        }
        Ok(LeaderEpochCache { entries })
    }
}

fn prev_lt(a: &EpochEntry, b: &EpochEntry) -> bool {
    a.epoch < b.epoch && a.start_offset < b.start_offset && a.start_index < b.start_index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(u64, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(
            entries
                .iter()
                .enumerate()
                .map(|(i, &(epoch, start_offset))| EpochEntry {
                    epoch,
                    start_offset,
                    start_index: i as u64 * 10,
                })
                .collect(),
        )
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(2, 10), (4, 20), (7, 35)]);
        let eo = |epoch, end_offset| Some(EpochEndOffset { epoch, end_offset });
        // Latest epoch: the log end offset.
        assert_eq!(c.end_offset_for(7, 50), eo(7, 50));
        // Known epoch: start of the next one.
        assert_eq!(c.end_offset_for(2, 50), eo(2, 20));
        assert_eq!(c.end_offset_for(4, 50), eo(4, 35));
        // Unknown epoch between known ones: floor epoch, start of the next higher.
        assert_eq!(c.end_offset_for(5, 50), eo(4, 35));
        // Below every known epoch: the requested epoch and the first start offset.
        assert_eq!(c.end_offset_for(1, 50), eo(1, 10));
        // Above the latest: undefined.
        assert_eq!(c.end_offset_for(8, 50), None);
        assert_eq!(LeaderEpochCache::default().end_offset_for(1, 0), None);
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(2, 10), (4, 20), (7, 35)]);
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries().len(), 2);
        assert!(!c.truncate_from_end(20));
        assert!(c.truncate_from_start(15, 17));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 4,
                start_offset: 17,
                start_index: 15
            }]
        );
        assert_eq!(c.epoch_for_offset(17), Some(4));
        assert_eq!(c.epoch_for_offset(16), None);
        assert_eq!(c.epoch_for_offset(99), Some(4));
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_garbage() {
        let c = cache(&[(2, 10), (4, 20)]);
        assert_eq!(LeaderEpochCache::decode(&c.encode()).unwrap(), c);
        assert!(LeaderEpochCache::decode("1\n2\n2 10 0\n").is_err());
        assert!(LeaderEpochCache::decode("0\n0\n").is_err());
        assert!(LeaderEpochCache::decode("1\n2\n4 10 0\n2 20 10\n").is_err());
        assert!(LeaderEpochCache::decode("1\n1\n2 x 0\n").is_err());
        assert!(
            LeaderEpochCache::decode("1\n0\n")
                .unwrap()
                .entries()
                .is_empty()
        );
    }
}
