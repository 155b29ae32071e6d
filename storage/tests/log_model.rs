//! Property test: random sequences of append / read / truncate / purge / roll / flush /
//! reopen / crash against an in-memory model. Crashes go through `FaultFs` and drop unsynced
//! bytes at a random point; everything the log reported durable must survive, and what
//! survives must be a prefix of what was written.
//!
//! `PROPTEST_CASES` sets the number of cases (default 32).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use shoal_storage::fault_fs::{CrashMode, FaultFs};
use shoal_storage::record_batch::{set_base_offset, set_partition_leader_epoch, validate};
use shoal_storage::{BatchBuilder, LogConfig, LogId, PartitionLog, split_batches};

#[derive(Debug, Clone)]
enum Op {
    Append {
        batches: Vec<(u8, i16)>,
        new_term: bool,
    },
    Read {
        start: u16,
        max_bytes: u16,
        upper: u16,
        min_one: bool,
    },
    ReadEntries {
        from: u16,
        len: u8,
        max_bytes: u16,
    },
    Truncate {
        at: u16,
    },
    Purge {
        at: u16,
    },
    Roll,
    Flush,
    Reopen,
    Crash {
        mode: u8,
        seed: u64,
    },
    Reset {
        gap: u8,
        offset_gap: u8,
    },
    DeleteRecords {
        at: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::collection::vec((1u8..5, 0i16..2000), 1..4), prop::bool::weighted(0.15))
            .prop_map(|(batches, new_term)| Op::Append { batches, new_term }),
        3 => (any::<u16>(), any::<u16>(), any::<u16>(), any::<bool>())
            .prop_map(|(start, max_bytes, upper, min_one)| Op::Read { start, max_bytes, upper, min_one }),
        2 => (any::<u16>(), any::<u8>(), any::<u16>())
            .prop_map(|(from, len, max_bytes)| Op::ReadEntries { from, len, max_bytes }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        1 => any::<u16>().prop_map(|at| Op::Purge { at }),
        1 => Just(Op::Roll),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        2 => (0u8..3, any::<u64>()).prop_map(|(mode, seed)| Op::Crash { mode, seed }),
        1 => (0u8..4, 0u8..20).prop_map(|(gap, offset_gap)| Op::Reset { gap, offset_gap }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
    ]
}

#[derive(Debug, Clone)]
struct ModelEntry {
    term: u64,
    base_offset: i64,
    next_offset: i64,
    /// Stamped batches as the log must return them.
    batches: Vec<Bytes>,
}

#[derive(Debug, Default)]
struct Model {
    first_index: u64,
    entries: Vec<ModelEntry>,
    log_start_offset: i64,
    end_offset: i64,
    purged: Option<LogId>,
    epochs: Vec<(u64, i64, u64)>,
    term: u64,
    /// Offset where entry `first_index` starts.
    first_offset: i64,
}

impl Model {
    fn next_index(&self) -> u64 {
        self.first_index + self.entries.len() as u64
    }

    fn last_term(&self) -> Option<u64> {
        self.entries
            .last()
            .map(|e| e.term)
            .or(self.purged.map(|p| p.term))
    }

    /// An empty log's epoch cache: the last purged term, starting at the log end.
    fn normalize(&mut self) {
        if self.entries.is_empty() {
            self.epochs = self
                .purged
                .map(|p| vec![(p.term, self.end_offset, self.first_index)])
                .unwrap_or_default();
        }
    }

    fn entry(&self, index: u64) -> &ModelEntry {
        &self.entries[(index - self.first_index) as usize]
    }

    /// Keeps entries below `next` (a truncation or a crash that lost the tail).
    /// Keeps entries below `next` (a truncation, or a crash that lost the tail).
    fn cut(&mut self, next: u64) {
        let keep = (next - self.first_index) as usize;
        self.entries.truncate(keep);
        self.end_offset = self
            .entries
            .last()
            .map_or(self.first_offset, |e| e.next_offset);
        self.epochs.retain(|e| e.2 < next);
        self.normalize();
        self.log_start_offset = self.log_start_offset.min(self.end_offset);
    }
}

fn batch(records: u8, ts: i16) -> Bytes {
    let mut b = BatchBuilder::new(i64::from(ts));
    for i in 0..records {
        b.add_record(
            i64::from(ts) + i64::from(i),
            Some(&[i]),
            Some(&[records; 20]),
            &[],
        );
    }
    b.build()
}

fn stamp(b: &Bytes, base: i64, term: u64) -> Bytes {
    let mut v = b.to_vec();
    set_base_offset(&mut v, base).unwrap();
    set_partition_leader_epoch(&mut v, term as i32).unwrap();
    Bytes::from(v)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, fs: &FaultFs) -> PartitionLog {
    PartitionLog::open(dir, config(), Arc::new(fs.clone())).expect("open")
}

fn pick(v: u16, lo: i64, hi: i64) -> i64 {
    // A value in [lo - 1, hi + 1], biased to the valid range.
    let span = (hi - lo + 3).max(1);
    lo - 1 + i64::from(v) % span
}

fn check(log: &PartitionLog, m: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.first_index(), m.first_index);
    prop_assert_eq!(log.next_index(), m.next_index());
    prop_assert_eq!(log.log_end_offset(), m.end_offset);
    prop_assert_eq!(log.log_start_offset(), m.log_start_offset);
    prop_assert_eq!(log.last_term(), m.last_term());
    prop_assert_eq!(log.last_purged(), m.purged);
    let epochs: Vec<(u64, i64, u64)> = log
        .epoch_starts()
        .iter()
        .map(|e| (e.epoch, e.start_offset, e.start_index))
        .collect();
    prop_assert_eq!(&epochs, &m.epochs);
    for (i, e) in m.entries.iter().enumerate() {
        let index = m.first_index + i as u64;
        let meta = log.entry_meta(index).unwrap().expect("entry present");
        prop_assert_eq!(
            (meta.term, meta.base_offset, meta.next_offset),
            (e.term, e.base_offset, e.next_offset)
        );
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let mut log = Some(open(dir.path(), &fs));
    let mut m = Model {
        term: 1,
        ..Model::default()
    };
    for op in ops {
        let l = log.as_mut().unwrap();
        match op {
            Op::Append { batches, new_term } => {
                if new_term {
                    m.term += 1;
                }
                let mut data = Vec::new();
                let mut stamped = Vec::new();
                let mut next = m.end_offset;
                for (records, ts) in &batches {
                    let b = batch(*records, *ts);
                    data.extend_from_slice(&b);
                    stamped.push(stamp(&b, next, m.term));
                    next += i64::from(*records);
                }
                let index = m.next_index();
                let info = l.append(index, m.term, &Bytes::from(data), 0).unwrap();
                prop_assert_eq!((info.base_offset, info.next_offset), (m.end_offset, next));
                if m.epochs.last().is_none_or(|e| e.0 < m.term) {
                    // An epoch carried by an emptied log is replaced by one starting at the same
                    // entry.
                    m.epochs.retain(|e| e.2 < index);
                    m.epochs.push((m.term, m.end_offset, index));
                }
                m.entries.push(ModelEntry {
                    term: m.term,
                    base_offset: m.end_offset,
                    next_offset: next,
                    batches: stamped,
                });
                m.end_offset = next;
            }
            Op::Read {
                start,
                max_bytes,
                upper,
                min_one,
            } => {
                let start = pick(start, m.log_start_offset, m.end_offset);
                let upper = pick(upper, m.log_start_offset, m.end_offset);
                let max_bytes = usize::from(max_bytes % 2000);
                let r = l.read(start, max_bytes, upper, min_one);
                if start < m.log_start_offset || start > m.end_offset {
                    prop_assert!(r.is_err());
                    continue;
                }
                let r = r.unwrap();
                // Expected: batches from the one containing `start`, below `upper`, within the
                // byte budget (or exactly one if min_one), within one segment (so a prefix).
                let all: Vec<&Bytes> = m.entries.iter().flat_map(|e| e.batches.iter()).collect();
                let got: Vec<Bytes> = split_batches(&r.records).map(|b| b.unwrap()).collect();
                let first = all
                    .iter()
                    .position(|b| validate(b).unwrap().last_offset() >= start);
                match first {
                    None => prop_assert!(got.is_empty()),
                    Some(f) => {
                        let mut total = 0usize;
                        let mut expect_max = Vec::new();
                        for b in &all[f..] {
                            let h = validate(b).unwrap();
                            if h.last_offset() >= upper {
                                break;
                            }
                            if total + b.len() > max_bytes && !(expect_max.is_empty() && min_one) {
                                break;
                            }
                            total += b.len();
                            expect_max.push((*b).clone());
                        }
                        // One segment per read: a non-empty prefix of the expectation (or
                        // exactly it when it fits the segment).
                        prop_assert!(got.len() <= expect_max.len());
                        prop_assert_eq!(&got[..], &expect_max[..got.len()]);
                        if !expect_max.is_empty() {
                            prop_assert!(
                                !got.is_empty(),
                                "read returned nothing but {} batches qualify",
                                expect_max.len()
                            );
                        }
                    }
                }
            }
            Op::ReadEntries {
                from,
                len,
                max_bytes,
            } => {
                let from = pick(from, m.first_index as i64, m.next_index() as i64).max(0) as u64;
                let to = (from + u64::from(len % 8)).min(m.next_index() + 1);
                let r = l.read_entries(from, to, usize::from(max_bytes));
                if from < m.first_index || to > m.next_index() {
                    prop_assert!(r.is_err());
                    continue;
                }
                let r = r.unwrap();
                if to > from {
                    prop_assert!(!r.is_empty());
                }
                for e in &r {
                    let me = m.entry(e.meta.index);
                    let expect: Vec<u8> =
                        me.batches.iter().flat_map(|b| b.iter().copied()).collect();
                    prop_assert_eq!(&e.bytes[..], &expect[..]);
                }
            }
            Op::Truncate { at } => {
                if m.entries.is_empty() {
                    continue;
                }
                let keep_last = pick(at, m.first_index as i64 - 1, m.next_index() as i64 - 1);
                if keep_last < m.first_index as i64 - 1 {
                    continue;
                }
                let arg = if keep_last < m.first_index as i64 {
                    if m.first_index == 0 {
                        None
                    } else {
                        Some(m.first_index - 1)
                    }
                } else {
                    Some(keep_last as u64)
                };
                l.truncate_after(arg).unwrap();
                let next = arg
                    .map_or(0, |i| i + 1)
                    .max(m.first_index)
                    .min(m.next_index());
                let removed = next < m.next_index();
                m.cut(next);
                if removed {
                    prop_assert_eq!(
                        l.durable().next_offset,
                        m.end_offset,
                        "a truncation is durable"
                    );
                }
            }
            Op::Purge { at } => {
                if m.entries.is_empty() {
                    continue;
                }
                let idx = pick(at, m.first_index as i64, m.next_index() as i64 - 1);
                if idx < m.first_index as i64 || idx >= m.next_index() as i64 {
                    continue;
                }
                let idx = idx as u64;
                let e = m.entry(idx).clone();
                l.purge_upto(idx, e.term).unwrap();
                m.purged = Some(LogId {
                    index: idx,
                    term: e.term,
                });
                let drop_n = (idx + 1 - m.first_index) as usize;
                m.entries.drain(..drop_n);
                m.first_index = idx + 1;
                m.first_offset = e.next_offset;
                m.log_start_offset = m.log_start_offset.max(e.next_offset);
                // Kafka's truncateFromStart on the epoch cache.
                let removed: Vec<_> = m
                    .epochs
                    .iter()
                    .take_while(|x| x.2 <= idx + 1)
                    .copied()
                    .collect();
                if let Some(last) = removed.last().copied() {
                    m.epochs.drain(..removed.len());
                    m.epochs.insert(0, (last.0, e.next_offset, idx + 1));
                }
                m.normalize();
            }
            Op::Roll => l.roll().unwrap(),
            Op::Flush => {
                let d = l.flush().unwrap();
                prop_assert_eq!(d.next_offset, m.end_offset);
            }
            Op::Reopen => {
                drop(log.take());
                log = Some(open(dir.path(), &fs));
            }
            Op::Crash { mode, seed } => {
                let durable = l.durable();
                let before = m.next_index();
                drop(log.take());
                let mode = match mode {
                    0 => CrashMode::KeepAll,
                    1 => CrashMode::DropUnsynced,
                    _ => CrashMode::RandomPrefix { seed },
                };
                fs.crash(mode).unwrap();
                let reopened = open(dir.path(), &fs);
                let after = reopened.next_index();
                let durable_next = durable.index.map_or(0, |i| i + 1).max(m.first_index);
                prop_assert!(
                    after >= durable_next,
                    "lost durable entries: {} < {} ({:?})",
                    after,
                    durable_next,
                    mode
                );
                prop_assert!(after <= before);
                if mode == CrashMode::KeepAll {
                    prop_assert_eq!(after, before, "a process crash keeps every completed write");
                }
                m.cut(after);
                log = Some(reopened);
            }
            Op::Reset { gap, offset_gap } => {
                let next_index = m.next_index() + u64::from(gap);
                let next_offset = m.end_offset + i64::from(offset_gap);
                if next_index == 0 {
                    continue;
                }
                let term = m.last_term().unwrap_or(0).max(1) + u64::from(gap % 2);
                m.term = m.term.max(term);
                let purged = LogId {
                    index: next_index - 1,
                    term,
                };
                l.reset(next_index, next_offset, purged).unwrap();
                m.entries.clear();
                m.first_index = next_index;
                m.first_offset = next_offset;
                m.end_offset = next_offset;
                m.log_start_offset = next_offset;
                m.purged = Some(purged);
                m.normalize();
            }
            Op::DeleteRecords { at } => {
                let o = pick(at, m.log_start_offset, m.end_offset);
                let r = l.advance_log_start_offset(o);
                if o < 0 || o > m.end_offset {
                    prop_assert!(r.is_err());
                } else {
                    r.unwrap();
                    m.log_start_offset = m.log_start_offset.max(o);
                }
            }
        }
        check(log.as_ref().unwrap(), &m)?;
    }
    // Finally, a clean reopen must agree too.
    drop(log.take());
    let l = open(dir.path(), &fs);
    check(&l, &m)?;
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn log_agrees_with_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
