//! Producer state as the log keeps it: updated on append, snapshotted on roll and close,
//! rebuilt on open and after truncation.

use bytes::Bytes;

use crate::*;

fn idempotent(pid: i64, epoch: i16, seq: i32, records: usize) -> Bytes {
    let mut b = BatchBuilder::new(1_000).producer(pid, epoch, seq);
    for i in 0..records {
        b.add_record(1_000 + i as i64, None, Some(b"v".as_slice()), &[]);
    }
    b.build()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

fn open(dir: &std::path::Path) -> PartitionLog {
    PartitionLog::open(dir, config(), RealFs::shared()).unwrap()
}

fn client_append(log: &mut PartitionLog, batch: &Bytes) -> CheckedAppend {
    let index = log.next_index();
    log.append_checked(index, 1, batch, 0).unwrap()
}

fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".producers"))
        .collect();
    names.sort();
    names
}

/// Writes batches of 2 records for producer 7 with sequences 0, 2, 4, ...; returns them.
fn write_sequence(log: &mut PartitionLog, batches: i32) -> Vec<Bytes> {
    (0..batches)
        .map(|i| {
            let b = idempotent(7, 0, i * 2, 2);
            assert!(matches!(client_append(log, &b), CheckedAppend::Appended(_)));
            b
        })
        .collect()
}

fn assert_duplicate_at(log: &mut PartitionLog, batch: &Bytes, first_offset: i64) {
    match client_append(log, batch) {
        CheckedAppend::Duplicate(b) => assert_eq!(b.first_offset(), first_offset),
        other => panic!("expected a duplicate at {first_offset}, got {other:?}"),
    }
}

#[test]
fn retries_are_recognised_and_out_of_order_batches_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let sent = write_sequence(&mut log, 3);
    let end = log.log_end_offset();
    assert_duplicate_at(&mut log, &sent[1], 2);
    assert_eq!(log.log_end_offset(), end, "a duplicate writes nothing");
    let gap = idempotent(7, 0, 9, 1);
    let index = log.next_index();
    assert!(matches!(
        log.append_checked(index, 1, &gap, 0),
        Err(Error::Producer(
            ProducerStateError::OutOfOrderSequence { .. }
        ))
    ));
    // The client's own epoch bump restarts at sequence 0; the old epoch is then fenced.
    let bumped = idempotent(7, 1, 0, 1);
    assert!(matches!(
        client_append(&mut log, &bumped),
        CheckedAppend::Appended(_)
    ));
    let zombie = idempotent(7, 0, 6, 1);
    let index = log.next_index();
    assert!(matches!(
        log.append_checked(index, 1, &zombie, 0),
        Err(Error::Producer(
            ProducerStateError::InvalidProducerEpoch { .. }
        ))
    ));
    let entry = log.producer_state().get(7).unwrap();
    assert_eq!((entry.producer_epoch, entry.last_seq()), (1, 0));
}

#[test]
fn state_survives_a_clean_restart_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let sent = write_sequence(&mut log, 12);
    assert!(log.segment_count() > 2, "the small segments rolled");
    assert!(!snapshot_files(dir.path()).is_empty(), "snapshots at rolls");
    let state = log.producer_state().clone();
    log.close().unwrap();
    let end_snapshot = format!("{:020}.producers", state.end_offset());
    assert!(snapshot_files(dir.path()).contains(&end_snapshot));

    let mut log = open(dir.path());
    assert_eq!(log.producer_state(), &state);
    // Every one of the last five batches is still recognised.
    for (i, b) in sent.iter().enumerate().skip(7) {
        assert_duplicate_at(&mut log, b, i as i64 * 2);
    }
    // A crash: no snapshot at the end; the state is rebuilt from the last roll snapshot and
    // the batches after it.
    let more = idempotent(7, 0, 24, 2);
    assert!(matches!(
        client_append(&mut log, &more),
        CheckedAppend::Appended(_)
    ));
    let state = log.producer_state().clone();
    drop(log);
    let mut log = open(dir.path());
    assert_eq!(log.producer_state(), &state);
    assert_duplicate_at(&mut log, &more, 24);
}

#[test]
fn truncation_rebuilds_the_state_of_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let sent = write_sequence(&mut log, 10);
    // Keep entries 0..=5 (sequences up to 11).
    log.truncate_after(Some(5)).unwrap();
    let entry = log.producer_state().get(7).unwrap();
    assert_eq!(entry.last_seq(), 11);
    // The truncated batch is new again; the kept one is still a duplicate.
    assert!(matches!(
        client_append(&mut log, &sent[6]),
        CheckedAppend::Appended(_)
    ));
    assert_duplicate_at(&mut log, &sent[5], 10);
    // Snapshots beyond the cut are gone.
    for name in snapshot_files(dir.path()) {
        let offset: i64 = name[..20].parse().unwrap();
        assert!(offset <= log.log_end_offset(), "{name}");
    }
}

#[test]
fn an_unusable_snapshot_is_removed_and_the_log_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    write_sequence(&mut log, 8);
    let state = log.producer_state().clone();
    log.close().unwrap();
    for name in snapshot_files(dir.path()) {
        std::fs::write(dir.path().join(name), b"garbage").unwrap();
    }
    let log = open(dir.path());
    assert_eq!(log.producer_state(), &state);
    assert!(
        log.recovery_report()
            .notes
            .iter()
            .any(|n| n.contains("unusable")),
        "{:?}",
        log.recovery_report()
    );
    assert!(snapshot_files(dir.path()).is_empty());
}

#[test]
fn reset_and_purge_drop_snapshots_outside_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    write_sequence(&mut log, 10);
    let last = log.last_log_id().unwrap();
    let first_kept = log.segment_base_offsets()[1];
    let purge_index = (log.first_index()..log.next_index())
        .find(|i| log.entry_meta(*i).unwrap().unwrap().next_offset == first_kept)
        .unwrap();
    let term = log.term_of(purge_index).unwrap().unwrap();
    log.purge_upto(purge_index, term).unwrap();
    for name in snapshot_files(dir.path()) {
        let offset: i64 = name[..20].parse().unwrap();
        assert!(offset >= first_kept, "{name}");
    }
    assert!(
        log.producer_state().get(7).is_some(),
        "state is kept in memory"
    );
    log.reset(
        last.index + 10,
        1_000,
        LogId {
            index: last.index + 9,
            term: last.term,
        },
    )
    .unwrap();
    assert!(log.producer_state().is_empty());
    assert!(snapshot_files(dir.path()).is_empty());
    assert_eq!(log.producer_state().end_offset(), 1_000);
}

#[test]
fn expired_producers_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    write_sequence(&mut log, 1);
    assert_eq!(log.remove_expired_producers(1_500, 10_000), 0);
    assert_eq!(log.remove_expired_producers(20_000, 10_000), 1);
    assert!(log.producer_state().is_empty());
    // An expired producer may start again at any sequence.
    let index = log.next_index();
    assert!(matches!(
        log.append_checked(index, 1, &idempotent(7, 0, 40, 1), 0),
        Ok(CheckedAppend::Appended(_))
    ));
}
