//! Fault injection: ENOSPC, EIO, torn writes and failed fsyncs through `FaultFs`. Every
//! failure is a typed error, nothing half-written becomes visible, the log stays readable,
//! and a reopen agrees with what was acknowledged.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use shoal_storage::fault_fs::{CrashMode, FaultFs, FaultKind, FaultOp, FaultRule};
use shoal_storage::record_batch::validate;
use shoal_storage::{BatchBuilder, Error, LogConfig, PartitionLog, split_batches};

fn batch(i: u64) -> Bytes {
    let mut b = BatchBuilder::new(i as i64);
    b.add_record(i as i64, None, Some(&[i as u8; 100]), &[]);
    b.add_record(i as i64, None, Some(&[i as u8; 50]), &[]);
    b.build()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, fs: &FaultFs) -> PartitionLog {
    PartitionLog::open(dir, config(), Arc::new(fs.clone())).expect("open")
}

/// The log holds exactly entries `0..n`, each at offsets 2i, 2i+1, readable and CRC-valid.
fn assert_entries(log: &PartitionLog, n: u64) {
    assert_eq!(log.next_index(), n);
    assert_eq!(log.log_end_offset(), 2 * n as i64);
    let r = log.read(0, usize::MAX, i64::MAX, true).unwrap();
    let mut offsets = Vec::new();
    for seg_start in log.segment_base_offsets() {
        let r = log.read(seg_start, usize::MAX, i64::MAX, true).unwrap();
        for b in split_batches(&r.records) {
            offsets.push(validate(&b.unwrap()).unwrap().base_offset);
        }
    }
    assert_eq!(offsets, (0..n as i64).map(|i| 2 * i).collect::<Vec<_>>());
    assert!(n == 0 || !r.records.is_empty());
}

#[test]
fn enospc_and_eio_on_append_leave_the_log_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let mut log = open(dir.path(), &fs);
    for i in 0..5 {
        log.append(i, 1, &batch(i), 0).unwrap();
    }
    // Disk full while writing the data.
    fs.inject(FaultRule::once(FaultOp::Write, FaultKind::NoSpace).on_path(".log"));
    assert!(matches!(
        log.append(5, 1, &batch(5), 0),
        Err(Error::NoSpace { .. })
    ));
    assert_entries(&log, 5);
    // EIO on the entry record after the data went in: still not visible.
    fs.inject(FaultRule::once(FaultOp::Write, FaultKind::Eio).on_path(".entries"));
    assert!(matches!(
        log.append(5, 1, &batch(5), 0),
        Err(Error::Io { .. })
    ));
    assert_entries(&log, 5);
    // A torn data write.
    fs.inject(
        FaultRule::once(FaultOp::Write, FaultKind::TornWrite { written: 40 }).on_path(".log"),
    );
    assert!(log.append(5, 1, &batch(5), 0).is_err());
    assert_entries(&log, 5);
    // The disk stays full for a while, across a segment roll.
    for i in 5..12 {
        log.append(i, 1, &batch(i), 0).unwrap();
    }
    fs.inject(FaultRule::always(FaultOp::Write, FaultKind::NoSpace).after(3));
    let mut failures = 0;
    let mut n = 12;
    for _ in 0..40 {
        match log.append(n, 1, &batch(n), 0) {
            Ok(_) => n += 1,
            Err(Error::NoSpace { .. }) => failures += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(failures, 40 - (n - 12));
    assert!(failures > 30);
    assert_entries(&log, n);
    fs.clear_faults();
    assert_entries(&log, n);
    // Space is back: appends continue at the same offsets, and a reopen agrees.
    log.append(n, 1, &batch(n), 0).unwrap();
    n += 1;
    log.flush().unwrap();
    assert!(!log.is_poisoned(), "write errors do not poison");
    drop(log);
    fs.crash(CrashMode::KeepAll).unwrap();
    let log = open(dir.path(), &fs);
    assert_entries(&log, n);
}

#[test]
fn a_failed_fsync_poisons_the_log_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let mut log = open(dir.path(), &fs);
    for i in 0..3 {
        log.append(i, 1, &batch(i), 0).unwrap();
    }
    log.flush().unwrap();
    log.append(3, 1, &batch(3), 0).unwrap();
    fs.inject(FaultRule::once(FaultOp::SyncData, FaultKind::Eio));
    let pending = log.begin_flush().unwrap().unwrap();
    let synced = pending.sync();
    assert!(!synced.is_ok());
    assert!(matches!(log.finish_flush(synced), Err(Error::Io { .. })));
    assert!(log.is_poisoned());
    // The fault is gone, but the log never retries.
    assert!(matches!(log.flush(), Err(Error::Poisoned)));
    assert!(matches!(
        log.append(4, 1, &batch(4), 0),
        Err(Error::Poisoned)
    ));
    assert!(matches!(log.truncate_after(Some(1)), Err(Error::Poisoned)));
    assert!(matches!(log.purge_upto(0, 1), Err(Error::Poisoned)));
    assert!(matches!(log.roll(), Err(Error::Poisoned)));
    assert_eq!(log.durable().next_offset, 6);
    // Reads keep working.
    assert_entries(&log, 4);
    // After a power loss everything that was durable is there.
    drop(log);
    fs.crash(CrashMode::DropUnsynced).unwrap();
    let log = open(dir.path(), &fs);
    assert!(log.next_index() >= 3);
}

#[test]
fn a_failed_fsync_while_sealing_a_segment_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let mut log = open(dir.path(), &fs);
    log.append(0, 1, &batch(0), 0).unwrap();
    fs.inject(FaultRule::once(FaultOp::SyncData, FaultKind::Eio));
    assert!(matches!(log.roll(), Err(Error::Io { .. })));
    assert!(log.is_poisoned());
    assert!(matches!(
        log.append(1, 1, &batch(1), 0),
        Err(Error::Poisoned)
    ));
    assert_entries(&log, 1);
}

#[test]
fn failures_while_rolling_are_retried_by_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let mut log = open(dir.path(), &fs);
    let mut n = 0;
    // Fill the first segment.
    while log.segment_count() == 1 {
        log.append(n, 1, &batch(n), 0).unwrap();
        n += 1;
    }
    let segments = log.segment_count();
    // The next roll cannot create its files.
    fs.inject(FaultRule::always(FaultOp::Create, FaultKind::NoSpace).on_path(".log"));
    let mut rejected = 0;
    for _ in 0..20 {
        match log.append(n, 1, &batch(n), 0) {
            Ok(_) => n += 1,
            Err(Error::NoSpace { .. }) => rejected += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(rejected > 0);
    fs.clear_faults();
    log.append(n, 1, &batch(n), 0).unwrap();
    n += 1;
    assert!(log.segment_count() > segments);
    assert_entries(&log, n);
    drop(log);
    let log = open(dir.path(), &fs);
    assert_entries(&log, n);
}

#[test]
fn failures_while_truncating_poison_and_leave_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let mut log = open(dir.path(), &fs);
    for i in 0..40 {
        log.append(i, 1, &batch(i), 0).unwrap();
    }
    assert!(log.segment_count() > 3);
    // Removing a segment fails part way: the log refuses writes until reopened.
    fs.inject(FaultRule::once(FaultOp::Remove, FaultKind::Eio).after(1));
    assert!(matches!(log.truncate_after(Some(4)), Err(Error::Io { .. })));
    assert!(matches!(
        log.append(40, 1, &batch(40), 0),
        Err(Error::Poisoned)
    ));
    drop(log);
    let mut log = open(dir.path(), &fs);
    let next = log.next_index();
    assert!(
        (5..=40).contains(&next),
        "a prefix at least as long as requested: {next}"
    );
    assert_entries(&log, next);
    log.truncate_after(Some(4)).unwrap();
    assert_entries(&log, 5);
    // Creating the new segment fails after the cut.
    for i in 5..30 {
        log.append(i, 2, &batch(i), 0).unwrap();
    }
    fs.inject(FaultRule::once(FaultOp::Create, FaultKind::NoSpace).on_path(".entries"));
    assert!(matches!(
        log.truncate_after(Some(9)),
        Err(Error::NoSpace { .. })
    ));
    assert!(log.is_poisoned());
    drop(log);
    fs.crash(CrashMode::DropUnsynced).unwrap();
    let mut log = open(dir.path(), &fs);
    assert_eq!(
        log.next_index(),
        10,
        "the cut segment was sealed and synced"
    );
    assert_entries(&log, 10);
    log.append(10, 3, &batch(10), 0).unwrap();
    assert_entries(&log, 11);
    // Argument errors do not poison.
    assert!(matches!(
        log.purge_upto(20, 1),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        log.purge_upto(3, 9),
        Err(Error::TermMismatch { .. })
    ));
    assert!(!log.is_poisoned());
}

#[test]
fn power_loss_right_after_a_truncation_does_not_resurrect_entries() {
    for seed in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let mut log = open(dir.path(), &fs);
        for i in 0..30 {
            log.append(i, 1, &batch(i), 0).unwrap();
        }
        log.flush().unwrap();
        log.truncate_after(Some(12 + seed % 5)).unwrap();
        let kept = log.next_index();
        for i in kept..kept + 3 {
            log.append(i, 2, &batch(i), 0).unwrap();
        }
        drop(log);
        fs.crash(CrashMode::RandomPrefix { seed }).unwrap();
        let log = open(dir.path(), &fs);
        let next = log.next_index();
        assert!(
            (kept..=kept + 3).contains(&next),
            "seed {seed}: {next} entries after truncating to {kept}"
        );
        for i in kept..next {
            assert_eq!(
                log.entry_meta(i).unwrap().unwrap().term,
                2,
                "seed {seed}: truncated entry {i} came back"
            );
        }
    }
}

#[test]
fn a_reset_or_cut_that_fails_midway_keeps_the_log_readable() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let mut log = open(dir.path(), &fs);
    for i in 0..10 {
        log.append(i, 1, &batch(i), 0).unwrap();
    }
    let held = log.read(0, usize::MAX, i64::MAX, true).unwrap().records;
    fs.inject(FaultRule::once(FaultOp::Create, FaultKind::NoSpace).on_path(".entries"));
    assert!(
        log.reset(50, 100, shoal_storage::LogId { index: 49, term: 2 })
            .is_err()
    );
    assert!(log.is_poisoned());
    // Nothing panics; reads answer from what is in memory; handed-out bytes are unchanged.
    let start = log.log_start_offset();
    assert!(log.read(start, usize::MAX, i64::MAX, true).is_ok());
    assert!(log.entry_meta(3).is_ok());
    assert_eq!(split_batches(&held).count(), held_batches(&held));
    drop(log);
    let mut log = open(dir.path(), &fs);
    // The reset's checkpoint was written first, so recovery finishes it.
    assert_eq!((log.next_index(), log.log_end_offset()), (50, 100));
    log.append(50, 2, &batch(50), 0).unwrap();

    // A cut at a segment's base whose replacement cannot be created.
    fs.inject(FaultRule::once(FaultOp::Create, FaultKind::Eio).on_path(".entries"));
    assert!(log.truncate_after(Some(49)).is_err());
    assert!(log.read(100, usize::MAX, i64::MAX, true).is_ok());
    drop(log);
    let log = open(dir.path(), &fs);
    assert_eq!(log.next_index(), 50);
}

fn held_batches(b: &Bytes) -> usize {
    split_batches(b)
        .filter(|x| x.as_ref().is_ok_and(|x| validate(x).is_ok()))
        .count()
}
