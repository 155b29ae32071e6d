//! Unit tests of `PartitionLog` on the real file system.

use std::sync::Arc;

use bytes::Bytes;

use crate::record_batch::validate_stored;
use crate::*;

fn batch(records: usize, ts: i64) -> Bytes {
    let mut b = BatchBuilder::new(ts);
    for i in 0..records {
        b.add_record(
            ts + i as i64,
            Some(b"key"),
            Some(format!("value-{ts}-{i}").as_bytes()),
            &[],
        );
    }
    b.build()
}

fn entry(batches: &[Bytes]) -> Bytes {
    let mut v = Vec::new();
    for b in batches {
        v.extend_from_slice(b);
    }
    Bytes::from(v)
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

fn open(dir: &std::path::Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config, RealFs::shared()).unwrap()
}

/// Every batch of a read, checked and parsed.
fn headers(bytes: &Bytes) -> Vec<BatchHeader> {
    split_batches(bytes)
        .map(|b| validate_stored(&b.unwrap()).unwrap())
        .collect()
}

#[test]
fn the_log_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
    assert_send_sync::<PendingFlush>();
    assert_send_sync::<Flusher>();
}

#[test]
fn append_assigns_offsets_stamps_headers_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let info = log.append(0, 1, &batch(3, 100), 1_000).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.next_offset),
        (0, 2, 3)
    );
    let info = log
        .append(1, 1, &entry(&[batch(2, 200), batch(1, 300)]), 1_000)
        .unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.next_offset),
        (3, 5, 6)
    );
    assert_eq!(info.batches.len(), 2);
    assert_eq!(
        (info.batches[1].base_offset, info.batches[1].last_offset),
        (5, 5)
    );
    assert_eq!((info.max_timestamp, info.offset_of_max_timestamp), (300, 5));
    let info = log.append(2, 4, &batch(1, 400), 1_000).unwrap();
    assert_eq!(info.base_offset, 6);
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(
        (log.first_index(), log.next_index(), log.last_index()),
        (0, 3, Some(2))
    );
    assert_eq!(log.last_term(), Some(4));

    let r = log.read(0, 1 << 20, i64::MAX, false).unwrap();
    let hs = headers(&r.records);
    assert_eq!(
        hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 3, 5, 6]
    );
    assert_eq!(
        hs.iter()
            .map(|h| h.partition_leader_epoch)
            .collect::<Vec<_>>(),
        vec![1, 1, 1, 4]
    );
    assert_eq!((r.first_offset, r.next_offset), (Some(0), 7));
    // From inside a batch: the whole batch containing the offset.
    let r = log.read(4, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!(headers(&r.records)[0].base_offset, 3);
    // Upper bound: only batches entirely below it.
    let r = log.read(0, 1 << 20, 5, false).unwrap();
    assert_eq!(headers(&r.records).len(), 2);
    assert_eq!(r.next_offset, 5);
    let r = log.read(0, 1 << 20, 2, false).unwrap();
    assert!(r.records.is_empty());
    // max_bytes and min_one.
    let first_len = headers(&log.read(0, 1 << 20, i64::MAX, false).unwrap().records)[0].total_len();
    assert!(
        log.read(0, first_len - 1, i64::MAX, false)
            .unwrap()
            .records
            .is_empty()
    );
    let r = log.read(0, first_len - 1, i64::MAX, true).unwrap();
    assert_eq!(r.records.len(), first_len);
    let r = log.read(0, first_len + 10, i64::MAX, false).unwrap();
    assert_eq!(headers(&r.records).len(), 1);
    // End and out of range.
    assert!(log.read(7, 100, i64::MAX, true).unwrap().records.is_empty());
    assert!(matches!(
        log.read(8, 100, i64::MAX, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 100, i64::MAX, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

#[test]
fn invalid_appends_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    log.append(0, 2, &batch(1, 1), 0).unwrap();
    let size = log.size_bytes();
    let good = batch(2, 5);
    let mut bad_crc = good.to_vec();
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 1;
    let bad = entry(&[good.clone(), Bytes::from(bad_crc)]);
    assert!(matches!(
        log.append(1, 2, &bad, 0),
        Err(Error::Batch {
            source: BatchError::BadCrc { .. },
            ..
        })
    ));
    let torn = Bytes::from(good[..good.len() - 3].to_vec());
    assert!(matches!(
        log.append(1, 2, &torn, 0),
        Err(Error::Batch { .. })
    ));
    assert!(matches!(
        log.append(1, 2, &Bytes::new(), 0),
        Err(Error::EmptyEntry)
    ));
    assert!(matches!(
        log.append(5, 2, &good, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        log.append(1, 1, &good, 0),
        Err(Error::TermRegression { .. })
    ));
    assert!(matches!(
        log.append(1, 1 << 40, &good, 0),
        Err(Error::TermTooLarge(_))
    ));
    let small_dir = tempfile::tempdir().unwrap();
    let mut small = open(
        small_dir.path(),
        LogConfig {
            max_entry_bytes: 100,
            ..LogConfig::default()
        },
    );
    assert!(matches!(
        small.append(0, 0, &batch(10, 0), 0),
        Err(Error::EntryTooLarge { .. })
    ));
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.next_index(), 1);
    assert_eq!(log.append(1, 2, &good, 0).unwrap().base_offset, 1);
}

#[test]
fn rolls_on_size_and_time_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1_000,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    let mut next = 0;
    for i in 0..20u64 {
        let info = log.append(i, 1, &batch(2, 10 * i as i64), 0).unwrap();
        assert_eq!(info.base_offset, next);
        next = info.next_offset;
    }
    assert!(log.segment_count() > 2, "size-based roll");
    for seg_base in log.segment_base_offsets() {
        let r = log.read(seg_base, 1 << 20, i64::MAX, false).unwrap();
        assert_eq!(r.first_offset, Some(seg_base));
    }
    for o in 0..next {
        let r = log.read(o, 1, i64::MAX, true).unwrap();
        let h = headers(&r.records);
        assert!(h[0].base_offset <= o && o <= h[0].last_offset());
    }
    // Time roll: a batch whose timestamp is more than segment_ms after the segment's first.
    let dir2 = tempfile::tempdir().unwrap();
    let mut log2 = open(
        dir2.path(),
        LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        },
    );
    log2.append(0, 1, &batch(1, 5_000), 0).unwrap();
    log2.append(1, 1, &batch(1, 5_500), 0).unwrap();
    assert_eq!(log2.segment_count(), 1);
    log2.append(2, 1, &batch(1, 6_001), 0).unwrap();
    assert_eq!(log2.segment_count(), 2);
    // Without timestamps the wall clock since the segment was created counts.
    let dir3 = tempfile::tempdir().unwrap();
    let mut log3 = open(
        dir3.path(),
        LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        },
    );
    log3.append(0, 1, &batch(1, -1), 10_000).unwrap();
    log3.append(1, 1, &batch(1, -1), 10_900).unwrap();
    assert_eq!(log3.segment_count(), 1);
    log3.append(2, 1, &batch(1, -1), 11_001).unwrap();
    assert_eq!(log3.segment_count(), 2);
}

#[test]
fn timestamp_and_epoch_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 400,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    // Timestamps rise with a dip, across several segments.
    let ts = [100, 200, 150, 300, 400, 350, 500, 600, 550, 700];
    let terms = [1, 1, 1, 3, 3, 3, 3, 6, 6, 6];
    for (i, (&t, &term)) in ts.iter().zip(&terms).enumerate() {
        log.append(i as u64, term, &batch(3, t), 0).unwrap();
    }
    assert!(log.segment_count() > 2);
    let found = |t| {
        log.find_batch_by_timestamp(t, 0)
            .unwrap()
            .map(|b| b.base_offset)
    };
    for (i, &t) in ts.iter().enumerate() {
        // The first batch whose max timestamp (t + 2) reaches the target.
        let expect = ts.iter().position(|&x| x + 2 >= t).map(|p| p as i64 * 3);
        assert_eq!(found(t), expect, "ts {t} (entry {i})");
    }
    assert_eq!(found(0), Some(0));
    assert_eq!(found(10_000), None);
    // The batch holding the starting offset counts; the broker skips records below it.
    assert_eq!(
        log.find_batch_by_timestamp(150, 4)
            .unwrap()
            .map(|b| b.base_offset),
        Some(3)
    );
    assert_eq!(
        log.find_batch_by_timestamp(150, 6)
            .unwrap()
            .map(|b| b.base_offset),
        Some(6)
    );
    let max = log.max_timestamp_batch().unwrap().unwrap();
    assert_eq!((max.base_offset, max.max_timestamp), (27, 702));

    let starts: Vec<(u64, i64, u64)> = log
        .epoch_starts()
        .iter()
        .map(|e| (e.epoch, e.start_offset, e.start_index))
        .collect();
    assert_eq!(starts, vec![(1, 0, 0), (3, 9, 3), (6, 21, 7)]);
    let eo = |e| log.end_offset_for_epoch(e).map(|x| (x.epoch, x.end_offset));
    assert_eq!(eo(6), Some((6, 30)));
    assert_eq!(eo(3), Some((3, 21)));
    assert_eq!(eo(4), Some((3, 21)));
    assert_eq!(eo(0), Some((0, 0)));
    assert_eq!(eo(7), None);
    assert_eq!(log.epoch_for_offset(10), Some(3));

    // Survives a reopen (sealed indexes from files, epochs from the checkpoint).
    drop(log);
    let log = open(dir.path(), config);
    assert_eq!(
        log.find_batch_by_timestamp(450, 0)
            .unwrap()
            .map(|b| b.base_offset),
        Some(18)
    );
    assert_eq!(log.max_timestamp_batch().unwrap().unwrap().base_offset, 27);
    assert_eq!(log.epoch_starts().len(), 3);
    assert_eq!(log.end_offset_for_epoch(3).map(|x| x.end_offset), Some(21));
}

#[test]
fn entry_access_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let mut sizes = Vec::new();
    for i in 0..10u64 {
        let e = entry(&[batch(1, i as i64), batch(2, i as i64)]);
        sizes.push(e.len());
        log.append(i, 1 + i / 4, &e, 0).unwrap();
    }
    let m = log.entry_meta(5).unwrap().unwrap();
    assert_eq!(
        (m.index, m.term, m.base_offset, m.next_offset),
        (5, 2, 15, 18)
    );
    assert_eq!(m.size_bytes as usize, sizes[5]);
    assert_eq!(log.entry_meta(10).unwrap(), None);
    assert_eq!(log.term_of(9).unwrap(), Some(3));
    let all = log.read_entries(0, 10, usize::MAX).unwrap();
    assert_eq!(all.len(), 10);
    for (i, e) in all.iter().enumerate() {
        let hs = headers(&e.bytes);
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].base_offset, 3 * i as i64);
        assert_eq!(hs[0].partition_leader_epoch as u64, e.meta.term);
    }
    let some = log.read_entries(2, 10, sizes[2] + sizes[3] + 1).unwrap();
    assert_eq!(some.len(), 2);
    assert_eq!(
        log.read_entries(2, 10, 1).unwrap().len(),
        1,
        "at least one entry"
    );
    assert!(log.read_entries(3, 3, 100).unwrap().is_empty());
    assert!(matches!(
        log.read_entries(0, 11, 100),
        Err(Error::IndexOutOfRange { .. })
    ));
}

#[test]
fn truncation_keeps_handed_out_bytes_and_is_not_resurrected() {
    for cut in [Some(13u64), Some(12), Some(3), Some(0), None] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config());
        for i in 0..20u64 {
            log.append(i, 1 + i / 5, &batch(2, i as i64), 0).unwrap();
        }
        let held = log.read(0, 1 << 20, i64::MAX, false).unwrap().records;
        let held_copy = held.to_vec();
        let held_entries = log.read_entries(0, 20, usize::MAX).unwrap();
        log.truncate_after(cut).unwrap();
        let next = cut.map_or(0, |c| c + 1);
        assert_eq!(log.next_index(), next);
        assert_eq!(log.log_end_offset(), 2 * next as i64);
        assert_eq!(held.to_vec(), held_copy, "handed-out bytes unchanged");
        assert_eq!(
            log.durable().next_offset,
            2 * next as i64,
            "truncation is durable"
        );
        // Append new entries with a new term after the cut.
        for i in next..next + 3 {
            log.append(i, 9, &batch(2, 1000 + i as i64), 0).unwrap();
        }
        let expect_epochs: Vec<u64> = (0..next).map(|i| 1 + i / 5).chain([9, 9, 9]).collect();
        let check = |log: &PartitionLog| {
            let got: Vec<u64> = log
                .read_entries(0, next + 3, usize::MAX)
                .unwrap()
                .iter()
                .map(|e| e.meta.term)
                .collect();
            assert_eq!(got, expect_epochs, "cut {cut:?}");
            for i in 0..next {
                assert_eq!(
                    log.read_entries(i, i + 1, usize::MAX).unwrap()[0].bytes,
                    held_entries[i as usize].bytes
                );
            }
            assert_eq!(
                log.end_offset_for_epoch(9).map(|e| e.end_offset),
                Some(2 * (next as i64 + 3))
            );
            assert_eq!(
                log.epoch_starts().last().map(|e| (e.epoch, e.start_index)),
                Some((9, next))
            );
            let r = log.read(0, 1 << 20, i64::MAX, false).unwrap();
            let all: Vec<i64> = headers(&r.records).iter().map(|h| h.base_offset).collect();
            assert!(all.windows(2).all(|w| w[1] == w[0] + 2));
        };
        check(&log);
        drop(log);
        let log = open(dir.path(), small_config());
        check(&log);
        assert_eq!(log.next_index(), next + 3);
    }
}

#[test]
fn purge_reset_and_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..20u64 {
        log.append(i, 1 + i / 10, &batch(2, i as i64), 0).unwrap();
    }
    let segs = log.segment_count();
    log.purge_upto(11, 2).unwrap();
    assert!(log.segment_count() < segs);
    assert_eq!((log.first_index(), log.log_start_offset()), (12, 24));
    assert_eq!(log.last_purged(), Some(LogId { index: 11, term: 2 }));
    assert_eq!(log.entry_meta(11).unwrap(), None);
    assert_eq!(log.term_of(11).unwrap(), Some(2));
    assert!(matches!(
        log.read(23, 10, i64::MAX, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.read(24, 1 << 20, i64::MAX, true).unwrap().first_offset,
        Some(24)
    );
    assert!(matches!(
        log.purge_upto(13, 1),
        Err(Error::TermMismatch { .. })
    ));
    assert!(matches!(
        log.purge_upto(20, 2),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert_eq!(log.epoch_starts()[0].start_index, 12);
    drop(log);
    let mut log = open(dir.path(), small_config());
    assert_eq!((log.first_index(), log.log_start_offset()), (12, 24));
    assert_eq!(log.last_purged(), Some(LogId { index: 11, term: 2 }));

    // DeleteRecords inside an entry.
    assert!(log.advance_log_start_offset(27).unwrap());
    assert!(!log.advance_log_start_offset(26).unwrap());
    assert_eq!(
        log.read(27, 1 << 20, i64::MAX, true).unwrap().first_offset,
        Some(26)
    );
    assert!(matches!(
        log.advance_log_start_offset(41),
        Err(Error::OffsetOutOfRange { .. })
    ));

    // Purge everything: the log is empty but keeps counting.
    log.purge_upto(19, 2).unwrap();
    assert_eq!(
        (log.first_index(), log.next_index(), log.last_index()),
        (20, 20, None)
    );
    assert_eq!(log.last_log_id(), Some(LogId { index: 19, term: 2 }));
    assert_eq!(log.log_start_offset(), 40);
    assert_eq!(log.append(20, 3, &batch(1, 0), 0).unwrap().base_offset, 40);

    // Reset: a follower installing a snapshot far ahead.
    log.reset(
        101,
        500,
        LogId {
            index: 100,
            term: 7,
        },
    )
    .unwrap();
    assert_eq!(
        (
            log.first_index(),
            log.next_index(),
            log.log_end_offset(),
            log.log_start_offset()
        ),
        (101, 101, 500, 500)
    );
    assert_eq!(log.last_term(), Some(7));
    assert!(matches!(
        log.append(101, 6, &batch(1, 0), 0),
        Err(Error::TermRegression { .. })
    ));
    log.append(101, 8, &batch(2, 0), 0).unwrap();
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(
        (
            log.first_index(),
            log.next_index(),
            log.log_end_offset(),
            log.log_start_offset()
        ),
        (101, 102, 502, 500)
    );
    assert_eq!(
        log.last_purged(),
        Some(LogId {
            index: 100,
            term: 7
        })
    );
    assert!(matches!(
        log.read(499, 10, i64::MAX, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_bytes_time_and_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 10_000,
        retention_bytes: -1,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    for i in 0..30u64 {
        log.append(i, 1, &batch(2, 1_000 * i as i64), 0).unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    // Nothing is old enough.
    assert_eq!(log.retention_point(0, i64::MAX).unwrap(), None);
    // At now = 25_000 segments whose newest record is older than 15_000 go, whole segments only.
    let p = log.retention_point(25_000, i64::MAX).unwrap().unwrap();
    assert!(bases.contains(&p.next_offset));
    let seg_after = bases.iter().position(|&b| b == p.next_offset).unwrap();
    assert!(seg_after >= 1);
    // The high watermark bounds it.
    let bounded = log.retention_point(25_000, bases[1]).unwrap().unwrap();
    assert_eq!(bounded.next_offset, bases[1]);
    assert_eq!(log.retention_point(25_000, bases[1] - 1).unwrap(), None);
    // Never the active segment.
    let all = log.retention_point(i64::MAX, i64::MAX).unwrap().unwrap();
    assert_eq!(all.next_offset, *bases.last().unwrap());
    let applied = log.apply_retention(25_000).unwrap().unwrap();
    assert_eq!(applied, p);
    assert_eq!(log.log_start_offset(), p.next_offset);
    assert_eq!(log.segment_base_offsets()[0], p.next_offset);

    // Size-based retention keeps at most retention_bytes (Kafka: delete while the rest still
    // exceeds the limit).
    let dir2 = tempfile::tempdir().unwrap();
    let mut log2 = open(
        dir2.path(),
        LogConfig {
            retention_bytes: 2048,
            retention_ms: -1,
            ..small_config()
        },
    );
    for i in 0..40u64 {
        log2.append(i, 1, &batch(2, 0), 0).unwrap();
    }
    log2.apply_retention(0).unwrap().unwrap();
    assert!(log2.size_bytes() <= 2048 + 1024);
    assert!(log2.size_bytes() >= 1024);

    // Log-start breach: DeleteRecords past whole segments frees them.
    let dir3 = tempfile::tempdir().unwrap();
    let mut log3 = open(
        dir3.path(),
        LogConfig {
            retention_ms: -1,
            ..small_config()
        },
    );
    for i in 0..30u64 {
        log3.append(i, 1, &batch(2, 0), 0).unwrap();
    }
    let b = log3.segment_base_offsets();
    log3.advance_log_start_offset(b[2] + 1).unwrap();
    let p = log3.apply_retention(0).unwrap().unwrap();
    assert_eq!(p.next_offset, b[2]);
    assert_eq!(log3.segment_base_offsets()[0], b[2]);
    assert_eq!(log3.log_start_offset(), b[2] + 1);
}

#[test]
fn flush_split_and_durable_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(
        log.durable(),
        DurablePoint {
            index: None,
            next_offset: 0
        }
    );
    assert!(log.begin_flush().unwrap().is_none());
    log.append(0, 1, &batch(2, 0), 0).unwrap();
    let pending = log.begin_flush().unwrap().unwrap();
    assert_eq!(
        pending.target(),
        DurablePoint {
            index: Some(0),
            next_offset: 2
        }
    );
    // Appends continue while the sync runs; the sync covers what came before it began.
    log.append(1, 1, &batch(2, 0), 0).unwrap();
    let synced = pending.sync();
    assert_eq!(
        log.finish_flush(synced).unwrap(),
        DurablePoint {
            index: Some(0),
            next_offset: 2
        }
    );
    assert!(log.has_unflushed());
    assert_eq!(
        log.flush().unwrap(),
        DurablePoint {
            index: Some(1),
            next_offset: 4
        }
    );
    assert!(!log.has_unflushed());
}

#[test]
fn second_open_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = open(dir.path(), LogConfig::default());
    assert!(matches!(
        PartitionLog::open(dir.path(), LogConfig::default(), RealFs::shared()),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn recovery_cuts_a_torn_or_corrupt_active_tail() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    for i in 0..5u64 {
        log.append(i, 1, &batch(3, i as i64), 0).unwrap();
    }
    let meta3 = log.entry_meta(3).unwrap().unwrap();
    let pos = log.read_entries(3, 4, usize::MAX).unwrap()[0]
        .meta
        .base_offset;
    assert_eq!(pos, 9);
    drop(log);
    // Flip a byte inside entry 3's records: entries 3.. are dropped, 0..3 kept.
    let log_path = dir.path().join(format!("{:020}.log", 0));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log_path)
        .unwrap();
    let entry3_pos: u64 = (0..3).map(|_| batch(3, 0).len() as u64).sum();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, entry3_pos + 70).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], entry3_pos + 70).unwrap();
    drop(f);
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.next_index(), 3);
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(
        log.recovery_report().dropped_entries,
        2,
        "{:?}",
        log.recovery_report()
    );
    assert!(log.recovery_report().truncated_log_bytes > 0);
    assert!(meta3.size_bytes > 0);
    drop(log);
    // Garbage appended after the last entry (an unindexed write) is cut too.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.write_all_at(&[0xAB; 100], len).unwrap();
    drop(f);
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(log.next_index(), 3);
    assert_eq!(log.recovery_report().truncated_log_bytes, 100);
    assert_eq!(log.append(3, 1, &batch(1, 0), 0).unwrap().base_offset, 9);
}

#[test]
fn corrupt_sealed_data_is_reported_and_missing_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..20u64 {
        log.append(i, 1, &batch(2, 100 * i as i64), 0).unwrap();
    }
    let bases = log.segment_base_offsets();
    let before = log
        .find_batch_by_timestamp(950, 0)
        .unwrap()
        .unwrap()
        .base_offset;
    // A clean close makes the sealed segments durable: below the recovery point.
    log.close().unwrap();
    std::fs::remove_file(dir.path().join(format!("{:020}.index", bases[1]))).unwrap();
    std::fs::write(
        dir.path().join(format!("{:020}.timeindex", bases[0])),
        [1, 2, 3],
    )
    .unwrap();
    let log = open(dir.path(), small_config());
    let mut rebuilt = log.recovery_report().rebuilt_indexes.clone();
    rebuilt.sort_unstable();
    assert_eq!(rebuilt, vec![bases[0], bases[1]]);
    assert_eq!(
        log.find_batch_by_timestamp(950, 0)
            .unwrap()
            .unwrap()
            .base_offset,
        before
    );
    drop(log);
    // Damage inside a sealed segment: rebuilding its index detects it and open fails.
    let p = dir.path().join(format!("{:020}.log", bases[0]));
    let mut data = std::fs::read(&p).unwrap();
    data[80] ^= 0xff;
    std::fs::write(&p, &data).unwrap();
    std::fs::remove_file(dir.path().join(format!("{:020}.index", bases[0]))).unwrap();
    assert!(matches!(
        PartitionLog::open(dir.path(), small_config(), RealFs::shared()),
        Err(Error::Corrupt { .. })
    ));
    // A sealed segment missing its tail is corrupt, not silently shortened.
    data[80] ^= 0xff;
    std::fs::write(&p, &data[..data.len() - 10]).unwrap();
    assert!(matches!(
        PartitionLog::open(dir.path(), small_config(), RealFs::shared()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn flusher_group_commits_and_reports_in_order() {
    use std::sync::Mutex;
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(open(dir.path(), LogConfig::default())));
    let (tx, rx) = mpsc::channel();
    let flusher = Flusher::spawn(
        Arc::clone(&log),
        FlushPolicy::GroupCommit,
        Arc::new(SystemClock),
        Box::new(move |r| {
            let _ = tx.send(r.map(|p| p.next_offset).map_err(|e| e.to_string()));
        }),
    )
    .unwrap();
    for i in 0..50u64 {
        log.lock().unwrap().append(i, 1, &batch(1, 0), 0).unwrap();
        flusher.notify();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = 0;
    while last < 50 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let got = rx
            .recv_timeout(left)
            .expect("durable point before the deadline")
            .unwrap();
        assert!(got > last, "durable points only move forward");
        last = got;
    }
    flusher.shutdown();
    assert_eq!(log.lock().unwrap().durable().next_offset, 50);
}

#[test]
fn interval_flusher_waits_for_the_clock() {
    use std::sync::Mutex;
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(open(dir.path(), LogConfig::default())));
    let clock = Arc::new(ManualClock::new(0));
    let (tx, rx) = mpsc::channel();
    let flusher = Flusher::spawn(
        Arc::clone(&log),
        FlushPolicy::IntervalMs(1_000),
        Arc::clone(&clock) as Arc<dyn Clock>,
        Box::new(move |r| {
            let _ = tx.send(r.map(|p| p.next_offset).map_err(|e| e.to_string()));
        }),
    )
    .unwrap();
    log.lock().unwrap().append(0, 1, &batch(1, 0), 0).unwrap();
    flusher.notify();
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(50))
            .is_err(),
        "not due yet"
    );
    clock.advance(1_000);
    flusher.notify();
    let got = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    assert_eq!(got, Ok(1));
    drop(flusher);
}

#[test]
fn an_unsynced_sealed_segment_cut_short_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..10u64 {
        log.append(i, 1, &batch(2, i as i64), 0).unwrap();
    }
    log.flush().unwrap();
    let durable_segments = log.segment_count();
    for i in 10..40u64 {
        log.append(i, 1, &batch(2, i as i64), 0).unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() > durable_segments + 2);
    drop(log);
    // Damage a sealed segment that was never synced (as a power loss could leave it).
    let victim = bases[durable_segments + 1];
    let p = dir.path().join(format!("{victim:020}.log"));
    let mut data = std::fs::read(&p).unwrap();
    let n = data.len();
    data[n - 20] ^= 0xff;
    std::fs::write(&p, &data).unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(*log.segment_base_offsets().last().unwrap(), victim);
    assert!(log.next_index() >= 10, "flushed entries stay");
    assert!(
        log.log_end_offset() > victim,
        "the intact entries of the damaged segment stay"
    );
    assert!(log.recovery_report().removed_files.len() >= bases.len() - durable_segments - 2);
    let r = log.read(0, usize::MAX, i64::MAX, true).unwrap();
    assert!(!r.records.is_empty());
}
