//! When was a follower last caught up? Kafka's ISR rule (`replica.lag.time.max.ms`) needs,
//! per follower, the last time its log reached the leader's log end. A follower that matches
//! entry `m` was caught up until the leader's log first grew past `m`, so the leader keeps a
//! short history of when its log grew ([`LogEndHistory`]) and answers from it. Plain data,
//! no IO, no clock of its own.

use std::collections::VecDeque;

/// Appends within one bucket share a sample (bounds the history's size under load).
const BUCKET_MS: i64 = 10;
/// Samples kept at most.
const MAX_SAMPLES: usize = 8192;

/// Times at which the local log grew, coarsened to [`BUCKET_MS`].
#[derive(Debug, Default)]
pub(crate) struct LogEndHistory {
    /// `(time of the first append of the bucket, last index after the bucket's appends)`,
    /// oldest first.
    samples: VecDeque<(i64, u64)>,
}

impl LogEndHistory {
    /// The log's last index became `last_index` at `now_ms`.
    pub(crate) fn record(&mut self, now_ms: i64, last_index: u64) {
        if let Some((t, idx)) = self.samples.back_mut()
            && now_ms.div_euclid(BUCKET_MS) == t.div_euclid(BUCKET_MS)
        {
            *idx = last_index.max(*idx);
            return;
        }
        // A truncation can lower the index; entries past it will be appended again.
        while self
            .samples
            .back()
            .is_some_and(|(_, idx)| *idx >= last_index)
            && self.samples.len() > 1
        {
            self.samples.pop_back();
        }
        self.samples.push_back((now_ms, last_index));
        if self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// The last time a follower that matches `matched` (its last replicated index, `None` for
    /// nothing) was caught up with this log, whose last index is now `last_index`: `now_ms`
    /// if it matches everything; otherwise the time the log first grew past `matched`
    /// (conservative by up to one bucket); `None` if that happened before the history starts.
    pub(crate) fn caught_up_at(
        &self,
        matched: Option<u64>,
        last_index: Option<u64>,
        now_ms: i64,
    ) -> Option<i64> {
        let Some(last) = last_index else {
            return Some(now_ms);
        };
        if matched.is_some_and(|m| m >= last) {
            return Some(now_ms);
        }
        let first_beyond = self
            .samples
            .iter()
            .position(|(_, idx)| matched.is_none_or(|m| *idx > m))?;
        if first_beyond == 0 {
            // The log grew past `matched` before the oldest sample.
            return None;
        }
        Some(self.samples[first_beyond].0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_matching_the_end_is_caught_up_now() {
        let mut h = LogEndHistory::default();
        h.record(100, 5);
        assert_eq!(h.caught_up_at(Some(5), Some(5), 200), Some(200));
        assert_eq!(h.caught_up_at(None, None, 200), Some(200));
    }

    #[test]
    fn a_lagging_follower_was_caught_up_until_the_log_grew_past_it() {
        let mut h = LogEndHistory::default();
        h.record(1000, 3);
        h.record(2000, 7);
        h.record(2005, 8); // same bucket as 2000
        h.record(3000, 12);
        // Matches 7: the log grew past it in the bucket starting at 2000.
        assert_eq!(h.caught_up_at(Some(7), Some(12), 5000), Some(2000));
        // Matches 8: grew past it at 3000.
        assert_eq!(h.caught_up_at(Some(8), Some(12), 5000), Some(3000));
        // Matches 5: grew past 5 at 2000 (from 3 to 7).
        assert_eq!(h.caught_up_at(Some(5), Some(12), 5000), Some(2000));
        // Matches 1: the log was already past it at the oldest sample.
        assert_eq!(h.caught_up_at(Some(1), Some(12), 5000), None);
        assert_eq!(h.caught_up_at(None, Some(12), 5000), None);
    }

    #[test]
    fn truncation_drops_samples_past_the_new_end() {
        let mut h = LogEndHistory::default();
        h.record(0, 1);
        h.record(100, 10);
        h.record(200, 4); // truncated back to 4, then grows again
        h.record(300, 6);
        assert_eq!(h.caught_up_at(Some(4), Some(6), 400), Some(300));
    }

    #[test]
    fn history_is_bounded() {
        let mut h = LogEndHistory::default();
        for i in 0..(MAX_SAMPLES as u64 + 100) {
            h.record(i as i64 * BUCKET_MS, i);
        }
        assert_eq!(h.samples.len(), MAX_SAMPLES);
    }
}
