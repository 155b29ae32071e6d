//! Compaction tests: exact results, codecs, Raft entries, follower replay, a model-based
//! property test and interruption of the swap at every step.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use crate::cleaner::{CleanerLimits, for_each_record};
use crate::compression;
use crate::fault_fs::{CrashMode, FaultFs, FaultKind, FaultOp, FaultRule};
use crate::record_batch::{
    ATTRIBUTES_AT, BATCH_HEADER_LEN, BatchHeader, Compression, LENGTH_AT, LOG_OVERHEAD,
    split_batches, validate, write_crc,
};
use crate::{BatchBuilder, CleanupPolicy, EntryMeta, FileSystem, LogConfig, PartitionLog, RealFs};

type Record = (i64, Option<Vec<u8>>, Option<Vec<u8>>);
/// A record to append: key and value (None: null).
type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 100,
        ..LogConfig::default()
    }
}

/// A batch of `(key, value)` records at `ts`, compressed with `codec`.
fn batch(records: &[KeyValue<'_>], ts: i64, codec: Compression) -> Bytes {
    let mut b = BatchBuilder::new(ts);
    for (k, v) in records {
        b.add_record(ts, *k, *v, &[]);
    }
    let plain = b.build();
    if codec == Compression::None {
        return plain;
    }
    let packed = compression::compress(codec, &plain[BATCH_HEADER_LEN..]).unwrap();
    let mut out = plain[..BATCH_HEADER_LEN].to_vec();
    out.extend_from_slice(&packed);
    let attributes =
        i16::from_be_bytes([out[ATTRIBUTES_AT], out[ATTRIBUTES_AT + 1]]) | i16::from(codec.id());
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let len = (out.len() - LOG_OVERHEAD) as i32;
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&len.to_be_bytes());
    write_crc(&mut out);
    validate(&out).unwrap();
    Bytes::from(out)
}

/// Every record in the log, from the log start, with the raw batches read.
fn records(log: &PartitionLog) -> (Vec<Record>, Vec<Bytes>) {
    let mut out = Vec::new();
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 1 << 20, end, true).unwrap();
        assert!(r.next_offset > offset, "read made no progress at {offset}");
        for b in split_batches(&r.records) {
            let b = b.unwrap();
            let h = crate::record_batch::validate_stored(&b).unwrap();
            if !h.is_control() && h.record_count > 0 {
                for_each_record(&b, &h, |rec| {
                    out.push((
                        rec.offset,
                        rec.key.map(<[u8]>::to_vec),
                        rec.value.map(<[u8]>::to_vec),
                    ))
                })
                .unwrap();
            }
            batches.push(b);
        }
        offset = r.next_offset;
    }
    (out, batches)
}

/// Every entry's index, term and offsets (its byte size changes with compaction).
fn metas(log: &PartitionLog) -> Vec<(u64, u64, i64, i64)> {
    (log.first_index()..log.next_index())
        .map(|i| {
            let m: EntryMeta = log.entry_meta(i).unwrap().unwrap();
            (m.index, m.term, m.base_offset, m.next_offset)
        })
        .collect()
}

fn limits() -> CleanerLimits {
    CleanerLimits::default()
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn compaction_keeps_the_latest_value_of_every_key_and_every_offset() {
    for codec in CODECS {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
        let mut expected: BTreeMap<Vec<u8>, (i64, Vec<u8>)> = BTreeMap::new();
        let mut offset = 0i64;
        for i in 0..60u64 {
            let recs: Vec<(Vec<u8>, Vec<u8>)> = (0..3)
                .map(|j| {
                    (
                        format!("k{}", (i * 3 + j) % 7).into_bytes(),
                        format!("v{i}-{j}").into_bytes(),
                    )
                })
                .collect();
            let view: Vec<KeyValue<'_>> = recs
                .iter()
                .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
                .collect();
            log.append(i, 1, &batch(&view, i as i64, codec), i as i64)
                .unwrap();
            for (k, v) in recs {
                expected.insert(k, (offset, v));
                offset += 1;
            }
        }
        log.roll().unwrap();
        let before = metas(&log);
        let stats = log
            .clean(log.log_end_offset(), 100, limits())
            .unwrap()
            .unwrap();
        assert!(
            stats.applied && stats.records_removed > 0,
            "{codec:?} {stats:?}"
        );
        // The next pass merges the now small segments (Kafka groups by size).
        let segments_before = log.segment_count();
        let mut everything = log.config().clone();
        everything.segment_bytes = 4096;
        log.set_config(everything).unwrap();
        log.append(
            60,
            1,
            &batch(&[(Some(b"k0"), Some(b"last"))], 60, codec),
            60,
        )
        .unwrap();
        log.roll().unwrap();
        expected.insert(b"k0".to_vec(), (offset, b"last".to_vec()));
        let before = {
            let mut b = before;
            b.push((60, 1, offset, offset + 1));
            b
        };
        log.clean(log.log_end_offset(), 100, limits())
            .unwrap()
            .unwrap();
        assert!(log.segment_count() < segments_before, "groups were merged");
        assert_eq!(metas(&log), before, "Raft entries keep their offsets");
        let (got, batches) = records(&log);
        let want: Vec<Record> = {
            let mut w: Vec<Record> = expected
                .iter()
                .map(|(k, (o, v))| (*o, Some(k.clone()), Some(v.clone())))
                .collect();
            w.sort();
            w
        };
        assert_eq!(got, want, "{codec:?}");
        // Surviving data batches keep their codec; emptied ones are bare headers.
        for b in &batches {
            let h = BatchHeader::parse(b).unwrap();
            if h.record_count > 0 {
                assert_eq!(h.compression().unwrap(), codec);
            } else {
                assert_eq!(b.len(), BATCH_HEADER_LEN);
            }
        }
        // Reopening (recovery of compacted segments) gives the same log.
        drop(log);
        let log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
        assert_eq!(records(&log).0, want);
        assert_eq!(metas(&log), before);
    }
}

#[test]
fn a_follower_replaying_compacted_entries_gets_the_same_offsets_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
    for i in 0..40u64 {
        let k = format!("k{}", i % 4).into_bytes();
        let v = format!("v{i}").into_bytes();
        let b = batch(&[(Some(&k), Some(&v))], i as i64, Compression::Lz4);
        let b2 = batch(&[(Some(b"other"), Some(&v))], i as i64, Compression::None);
        let mut entry = b.to_vec();
        entry.extend_from_slice(&b2);
        log.append(i, 1 + i / 10, &Bytes::from(entry), i as i64)
            .unwrap();
    }
    log.roll().unwrap();
    log.clean(log.log_end_offset(), 100, limits())
        .unwrap()
        .unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = PartitionLog::open(follower_dir.path(), config(), RealFs::shared()).unwrap();
    let entries = log.read_entries(0, log.next_index(), usize::MAX).unwrap();
    for e in &entries {
        let info = follower
            .append(e.meta.index, e.meta.term, &e.bytes, 0)
            .unwrap();
        assert_eq!(
            (info.base_offset, info.next_offset),
            (e.meta.base_offset, e.meta.next_offset)
        );
    }
    let again = follower
        .read_entries(0, follower.next_index(), usize::MAX)
        .unwrap();
    assert_eq!(again, entries);
    assert_eq!(records(&follower).0, records(&log).0);
    assert_eq!(
        follower.producer_state().end_offset(),
        log.producer_state().end_offset()
    );
}

#[test]
fn tombstones_go_after_delete_retention_and_nothing_above_the_upper_offset_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
    let mut index = 0;
    let mut put = |log: &mut PartitionLog, k: &[u8], v: Option<&[u8]>, ts: i64| {
        log.append(index, 1, &batch(&[(Some(k), v)], ts, Compression::None), ts)
            .unwrap();
        index += 1;
    };
    for i in 0..10 {
        put(&mut log, b"a", Some(format!("{i}").as_bytes()), 10);
        put(&mut log, b"b", Some(b"x"), 10);
    }
    put(&mut log, b"a", None, 10); // tombstone at offset 20
    put(&mut log, b"keyless-follows", Some(b"y"), 10);
    log.append(
        index,
        1,
        &batch(&[(None, Some(b"z"))], 10, Compression::None),
        10,
    )
    .unwrap();
    log.roll().unwrap();
    let upper = 12; // only segments ending at or below offset 12 may change
    let before = records(&log).0;
    log.clean(upper, 20, limits()).unwrap().unwrap();
    let after = records(&log).0;
    let cleanable_end = *log
        .segment_base_offsets()
        .iter()
        .filter(|b| **b <= upper)
        .max()
        .unwrap();
    assert!(cleanable_end > 0);
    let untouched: Vec<&Record> = before.iter().filter(|r| r.0 >= cleanable_end).collect();
    let kept: Vec<&Record> = after.iter().filter(|r| r.0 >= cleanable_end).collect();
    assert_eq!(kept, untouched);
    assert!(after.len() < before.len());

    // Everything cleanable: the tombstone survives the first pass, and goes once its segment
    // was cleaned and is older than delete.retention.ms (100 ms).
    let end = log.log_end_offset();
    log.clean(end, 30, limits()).unwrap().unwrap();
    let (got, _) = records(&log);
    assert!(
        got.iter().any(|r| r.0 == 20 && r.2.is_none()),
        "tombstone kept"
    );
    assert!(
        got.iter()
            .all(|r| r.1.as_deref() != Some(b"a") || r.0 == 20)
    );
    assert!(
        got.iter().all(|r| r.1.is_some()),
        "keyless records are dropped"
    );
    // Nothing new is dirty: no pass is due until the kept tombstone's horizon (its segment's
    // newest timestamp, 10, plus delete.retention.ms, 100) has passed; then one runs by itself.
    assert!(log.clean(end, 100, limits()).unwrap().is_none());
    let stats = log.clean(end, 111, limits()).unwrap().unwrap();
    assert_eq!(stats.tombstones_removed, 1);
    let (got, _) = records(&log);
    assert!(got.iter().all(|r| r.1.as_deref() != Some(b"a")));
    assert!(
        log.clean(end, 1_000, limits()).unwrap().is_none(),
        "nothing left to do"
    );
    let k = log.next_index();
    log.append(
        k,
        1,
        &batch(&[(Some(b"c"), Some(b"1"))], 1_000, Compression::None),
        1_000,
    )
    .unwrap();
    log.roll().unwrap();
    let end = log.log_end_offset();
    log.clean(end, 1_000, limits()).unwrap().unwrap();
    let (got, _) = records(&log);
    assert!(
        got.iter().all(|r| r.1.as_deref() != Some(b"a")),
        "tombstone removed"
    );
    assert_eq!(
        got.iter().map(|r| r.1.clone().unwrap()).collect::<Vec<_>>(),
        vec![b"b".to_vec(), b"keyless-follows".to_vec(), b"c".to_vec()]
    );
}

#[test]
fn dirty_ratio_and_compaction_lags_decide_when_a_pass_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        min_compaction_lag_ms: 1_000,
        max_compaction_lag_ms: 10_000,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone(), RealFs::shared()).unwrap();
    for i in 0..30u64 {
        log.append(
            i,
            1,
            &batch(&[(Some(b"k"), Some(b"v"))], 100, Compression::None),
            100,
        )
        .unwrap();
    }
    log.roll().unwrap();
    let end = log.log_end_offset();
    assert!(log.clean(end, 500, limits()).unwrap().is_none(), "min lag");
    log.clean(end, 1_200, limits()).unwrap().unwrap();
    assert_eq!(log.first_dirty_offset(), end);
    // A little new dirty data: below the ratio, until max.compaction.lag.ms passes.
    for i in 30..32u64 {
        log.append(
            i,
            1,
            &batch(&[(Some(b"k"), Some(b"w"))], 2_000, Compression::None),
            2_000,
        )
        .unwrap();
    }
    log.roll().unwrap();
    let end2 = log.log_end_offset();
    let mut ratio_only = log.config().clone();
    ratio_only.min_cleanable_dirty_ratio = 0.99;
    log.set_config(ratio_only).unwrap();
    assert!(log.clean(end2, 5_000, limits()).unwrap().is_none(), "ratio");
    log.clean(end2, 12_001, limits()).unwrap().unwrap();
    assert_eq!(
        records(&log).0,
        vec![(31, Some(b"k".to_vec()), Some(b"w".to_vec()))]
    );
    // A bad configuration is refused and changes nothing.
    let mut bad = log.config().clone();
    bad.min_cleanable_dirty_ratio = 2.0;
    assert!(log.set_config(bad).is_err());
    assert_eq!(log.config().min_cleanable_dirty_ratio, 0.99);
    // Not compacted: never cleaned.
    let mut delete = log.config().clone();
    delete.cleanup_policy = CleanupPolicy::default();
    log.set_config(delete).unwrap();
    assert!(
        log.plan_clean(i64::MAX, i64::MAX, limits())
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_small_offset_map_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
    for i in 0..200u64 {
        let k = format!("key-{}", i % 50).into_bytes();
        log.append(
            i,
            1,
            &batch(&[(Some(&k), Some(b"v"))], 1, Compression::None),
            1,
        )
        .unwrap();
    }
    log.roll().unwrap();
    let end = log.log_end_offset();
    let small = CleanerLimits {
        max_map_bytes: 20 * 70,
    };
    let mut passes = 0;
    while let Some(stats) = log.clean(end, 10, small).unwrap() {
        assert!(stats.applied);
        passes += 1;
        assert!(passes < 100);
    }
    assert!(passes > 1);
    let (got, _) = records(&log);
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|r| r.0 >= 150));
}

#[test]
fn readers_keep_the_bytes_of_a_replaced_segment_and_a_stale_plan_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
    for i in 0..30u64 {
        log.append(
            i,
            1,
            &batch(&[(Some(b"k"), Some(&[i as u8; 20]))], 1, Compression::None),
            1,
        )
        .unwrap();
    }
    log.roll().unwrap();
    let held = log.read(0, 1 << 20, i64::MAX, true).unwrap().records;
    let copy = held.to_vec();
    let stale = log
        .plan_clean(log.log_end_offset(), 10, limits())
        .unwrap()
        .unwrap();
    log.clean(log.log_end_offset(), 10, limits())
        .unwrap()
        .unwrap();
    assert_eq!(&held[..], &copy[..], "a held read is unchanged");
    let out = stale.run().unwrap();
    let stats = log.finish_clean(out).unwrap();
    assert!(!stats.applied);
    let names = RealFs.list_dir(dir.path()).unwrap();
    assert!(names.iter().all(|n| !n.ends_with(".cleaned")), "{names:?}");
}

#[test]
fn truncation_makes_the_replaced_range_dirty_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
    for i in 0..30u64 {
        log.append(
            i,
            1,
            &batch(&[(Some(b"k"), Some(b"v"))], 1, Compression::None),
            1,
        )
        .unwrap();
    }
    log.roll().unwrap();
    log.clean(log.log_end_offset(), 10, limits())
        .unwrap()
        .unwrap();
    assert_eq!(log.first_dirty_offset(), 30);
    log.truncate_after(Some(9)).unwrap();
    assert_eq!(log.first_dirty_offset(), 10);
    drop(log);
    let log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
    assert_eq!(log.first_dirty_offset(), 10);
}

/// Builds a log of `n` single-record entries over a few keys with small segments.
fn build(dir: &Path, fs: Arc<dyn FileSystem>, n: u64) -> PartitionLog {
    let mut log = PartitionLog::open(dir, config(), fs).unwrap();
    for i in 0..n {
        let k = format!("k{}", i % 5).into_bytes();
        let v = format!("value-{i}").into_bytes();
        log.append(
            i,
            1,
            &batch(&[(Some(&k), Some(&v))], 1, Compression::Gzip),
            1,
        )
        .unwrap();
    }
    log.roll().unwrap();
    log.flush().unwrap();
    log
}

#[test]
fn a_clean_interrupted_at_any_step_recovers_to_the_old_or_the_new_log() {
    // The reference results: before and after a complete clean.
    let ref_dir = tempfile::tempdir().unwrap();
    let mut reference = build(ref_dir.path(), RealFs::shared(), 24);
    let old = records(&reference).0;
    let old_metas = metas(&reference);
    reference
        .clean(reference.log_end_offset(), 10, limits())
        .unwrap()
        .unwrap();
    let new = records(&reference).0;
    assert_ne!(old, new);

    for op in [FaultOp::Rename, FaultOp::Remove, FaultOp::SyncDir] {
        for step in 0..18u32 {
            for mode in [CrashMode::KeepAll, CrashMode::DropUnsynced] {
                let dir = tempfile::tempdir().unwrap();
                let fs = FaultFs::new();
                let mut log = build(dir.path(), Arc::new(fs.clone()), 24);
                let plan = log
                    .plan_clean(log.log_end_offset(), 10, limits())
                    .unwrap()
                    .unwrap();
                let out = plan.run().unwrap();
                fs.inject(FaultRule::always(op, FaultKind::Eio).after(step));
                let finished = log.finish_clean(out);
                drop(log);
                fs.clear_faults();
                fs.crash(mode).unwrap();
                let log = PartitionLog::open(dir.path(), config(), Arc::new(fs.clone()))
                    .unwrap_or_else(|e| panic!("{op:?} step {step} {mode:?}: {e}"));
                // Each group swaps atomically: the log is the old one with some groups
                // cleaned, so it holds every record of the fully cleaned log and nothing that
                // was not in the old one.
                let got = records(&log).0;
                assert!(
                    new.iter().all(|r| got.contains(r)) && got.iter().all(|r| old.contains(r)),
                    "{op:?} step {step} {mode:?} ({finished:?}): {got:?}"
                );
                if finished.is_ok() && mode == CrashMode::KeepAll {
                    assert_eq!(got, new);
                }
                assert_eq!(metas(&log), old_metas, "{op:?} step {step} {mode:?}");
                let names = fs.list_dir(dir.path()).unwrap();
                assert!(
                    names
                        .iter()
                        .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap")),
                    "{names:?}"
                );
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// One entry of batches; each record (key index, value or tombstone).
    Append {
        batches: Vec<Vec<(u8, Option<u8>)>>,
        codec: usize,
    },
    Roll,
    /// Clean with the upper offset this far below the log end, after time advanced.
    Clean {
        behind: i64,
        advance_ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::collection::vec(
                prop::collection::vec((0u8..6, prop::option::weighted(0.85, any::<u8>())), 1..4),
                1..3
            ),
            0usize..5
        )
            .prop_map(|(batches, codec)| Op::Append { batches, codec }),
        1 => Just(Op::Roll),
        2 => (0i64..15, 0i64..80).prop_map(|(behind, advance_ms)| Op::Clean { behind, advance_ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compaction_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
        // The model: every record ever appended, by offset.
        let mut model: BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)> = BTreeMap::new();
        let mut now = 0i64;
        let mut index = 0u64;
        for op in ops {
            match op {
                Op::Append { batches, codec } => {
                    let mut entry = Vec::new();
                    let mut offset = log.log_end_offset();
                    for recs in &batches {
                        let owned: Vec<(Vec<u8>, Option<Vec<u8>>)> = recs
                            .iter()
                            .map(|(k, v)| (vec![b'k', *k], v.map(|v| vec![v; 3])))
                            .collect();
                        let view: Vec<KeyValue<'_>> = owned
                            .iter()
                            .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
                            .collect();
                        entry.extend_from_slice(&batch(&view, now, CODECS[codec]));
                        for (k, v) in owned {
                            model.insert(offset, (k, v));
                            offset += 1;
                        }
                    }
                    log.append(index, 1, &Bytes::from(entry), now).unwrap();
                    index += 1;
                }
                Op::Roll => log.roll().unwrap(),
                Op::Clean { behind, advance_ms } => {
                    now += advance_ms;
                    let upper = (log.log_end_offset() - behind).max(0);
                    let before_metas = metas(&log);
                    let (before, _) = records(&log);
                    log.clean(upper, now, limits()).unwrap();
                    let (after, _) = records(&log);
                    prop_assert_eq!(metas(&log), before_metas);
                    check_against_model(&model, &before, &after, upper)?;
                }
            }
        }
        // A final full clean, reopened and replayed on a follower, is consistent too.
        log.roll().unwrap();
        let end = log.log_end_offset();
        let (before, _) = records(&log);
        log.clean(end, now + 1, limits()).unwrap();
        let (after, _) = records(&log);
        check_against_model(&model, &before, &after, end)?;
        let follower_dir = tempfile::tempdir().unwrap();
        let mut follower =
            PartitionLog::open(follower_dir.path(), config(), RealFs::shared()).unwrap();
        if log.next_index() > 0 {
            for e in log.read_entries(0, log.next_index(), usize::MAX).unwrap() {
                follower.append(e.meta.index, e.meta.term, &e.bytes, now).unwrap();
            }
        }
        prop_assert_eq!(records(&follower).0, after.clone());
        drop(log);
        let log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
        prop_assert_eq!(records(&log).0, after);
    }
}

fn check_against_model(
    model: &BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)>,
    before: &[Record],
    after: &[Record],
    upper: i64,
) -> Result<(), TestCaseError> {
    // Offsets never change: every surviving record is the model's record at its offset.
    for (o, k, v) in after {
        let (mk, mv) = model
            .get(o)
            .ok_or_else(|| TestCaseError::fail(format!("offset {o}")))?;
        prop_assert_eq!(Some(mk), k.as_ref());
        prop_assert_eq!(mv, v);
    }
    // Nothing at or above the upper offset is touched; nothing that was gone comes back.
    let after_set: HashMap<i64, &Record> = after.iter().map(|r| (r.0, r)).collect();
    for r in before {
        if r.0 >= upper {
            prop_assert!(
                after_set.contains_key(&r.0),
                "record {} above {upper} removed",
                r.0
            );
        }
    }
    let before_set: HashMap<i64, &Record> = before.iter().map(|r| (r.0, r)).collect();
    prop_assert!(after.iter().all(|r| before_set.contains_key(&r.0)));
    // For every key the latest value survives; a removed tombstone leaves nothing of its key.
    let mut latest: HashMap<&Vec<u8>, (i64, &Option<Vec<u8>>)> = HashMap::new();
    for (o, (k, v)) in model {
        latest.insert(k, (*o, v));
    }
    for (k, (o, v)) in latest {
        if v.is_some() {
            prop_assert!(
                after_set.contains_key(&o),
                "latest value of {k:?} at {o} lost"
            );
        } else if !after_set.contains_key(&o) {
            prop_assert!(
                after.iter().all(|r| r.1.as_ref() != Some(k)),
                "older records of deleted key {k:?} survive their tombstone"
            );
        }
    }
    Ok(())
}

#[test]
fn idempotent_producer_state_rebuilt_from_a_compacted_log_still_detects_retries() {
    let dir = tempfile::tempdir().unwrap();
    let pid_batch = |seq: i32, key: &[u8]| {
        let mut b = BatchBuilder::new(1).producer(7, 0, seq);
        b.add_record(1, Some(key), Some(b"v"), &[]);
        b.add_record(1, Some(key), Some(b"w"), &[]);
        b.build()
    };
    let mut log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
    let mut last = Bytes::new();
    for i in 0..30u64 {
        last = pid_batch(i as i32 * 2, b"same-key");
        log.append_checked(i, 1, &last, 1).unwrap();
    }
    log.roll().unwrap();
    log.clean(log.log_end_offset(), 10, limits())
        .unwrap()
        .unwrap();
    let (_, batches) = records(&log);
    assert!(
        batches
            .iter()
            .any(|b| BatchHeader::parse(b).unwrap().record_count == 0)
    );
    drop(log);
    // Without snapshots the state is rebuilt from the compacted batches alone.
    for name in RealFs.list_dir(dir.path()).unwrap() {
        if name.ends_with(".producers") {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
    }
    let mut log = PartitionLog::open(dir.path(), config(), RealFs::shared()).unwrap();
    let retry = log.append_checked(30, 1, &last, 1).unwrap();
    assert!(
        matches!(retry, crate::CheckedAppend::Duplicate(ref m) if m.last_offset == 59),
        "{retry:?}"
    );
    let next = log.append_checked(30, 1, &pid_batch(60, b"k"), 1).unwrap();
    assert!(matches!(next, crate::CheckedAppend::Appended(_)));
    assert!(
        log.append_checked(31, 1, &pid_batch(70, b"k"), 1).is_err(),
        "a gap is refused"
    );
}
