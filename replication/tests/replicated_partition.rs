//! Three replicas of a partition in one process on the simulated network (no faults): offsets,
//! high watermarks, failover, leadership transfer, replica progress, reads.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use harness::{Cluster, batch, partition};
use shoal_replication::{ProposeError, ReadBound, ReplicationConfig, Role};
use shoal_storage::{Clock, LogConfig};

const T: Duration = Duration::from_secs(20);

async fn cluster() -> Result<Cluster> {
    Cluster::new(
        &[1, 2, 3],
        7,
        ReplicationConfig::fast_for_tests(),
        LogConfig::default(),
    )
    .await
}

/// All live replicas hold byte-identical entries (same index, term, offsets and bytes).
fn assert_identical_logs(c: &Cluster, p: &shoal_replication::PartitionId) -> Result<usize> {
    let nodes = c.up_nodes();
    let reference = c.entries(nodes[0], p)?;
    for n in &nodes[1..] {
        let other = c.entries(*n, p)?;
        assert_eq!(reference.len(), other.len(), "entry count on node {n}");
        for (a, b) in reference.iter().zip(&other) {
            assert_eq!(a.meta, b.meta, "entry meta on node {n}");
            assert_eq!(
                a.bytes, b.bytes,
                "entry bytes of {} on node {n}",
                a.meta.index
            );
        }
    }
    Ok(reference.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_assign_the_same_offsets_and_hold_identical_bytes() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(0);
    c.create_partition(p, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    assert_eq!(leader, 1, "the bootstrapping replica leads first");
    let mut next = None;
    for i in 0..40usize {
        let records = 1 + i % 5;
        let (base, last) = c
            .append_committed(&p, batch(records, 50, i as u8), T)
            .await?;
        assert_eq!(last - base + 1, records as i64);
        if let Some(n) = next {
            // The new leader's blank entry takes one offset (a control batch) only after an
            // election; within one term offsets are contiguous.
            assert_eq!(base, n);
        }
        next = Some(last + 1);
    }
    let hw = next.unwrap_or(0);
    let leader_replica = c.replica(leader, &p)?;
    assert_eq!(leader_replica.high_watermark(), hw);
    c.wait_hw(&p, hw, T).await?;
    let entries = assert_identical_logs(&c, &p)?;
    // Membership + blank + 40 appends.
    assert_eq!(entries, 42);
    // Followers serve reads up to their high watermark; consumers skip the control batches.
    let follower = c.replica(2, &p)?;
    let read = follower.read(0, 1 << 20, ReadBound::HighWatermark, true)?;
    assert_eq!(read.first_offset, Some(0));
    assert!(read.next_offset <= hw);
    for n in c.up_nodes() {
        let r = c.replica(n, &p)?;
        let log = r.log();
        assert!(log.log_start_offset() <= r.high_watermark());
        assert!(r.high_watermark() <= log.log_end_offset());
    }
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_appends_with_a_leader_hint() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(1);
    c.create_partition(p, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    c.append_committed(&p, batch(1, 10, 1), T).await?;
    let follower = if leader == 2 { 3 } else { 2 };
    let err = c
        .replica(follower, &p)?
        .append(batch(1, 10, 2))
        .await
        .unwrap_err();
    match err {
        ProposeError::NotLeader { leader: hint, .. } => assert_eq!(hint, Some(leader)),
        other => panic!("expected NotLeader, got {other}"),
    }
    assert!(matches!(
        c.replica(leader, &p)?
            .append(bytes::Bytes::from_static(b"garbage"))
            .await,
        Err(ProposeError::InvalidRecords { .. })
    ));
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_on_request_and_the_epoch_grows() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(2);
    c.create_partition(p, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    let (_, last) = c.append_committed(&p, batch(3, 10, 1), T).await?;
    let epoch = c.replica(leader, &p)?.leadership().epoch;
    let target = if leader == 3 { 2 } else { 3 };
    c.replica(leader, &p)?
        .transfer_leadership(target, T)
        .await?;
    assert_eq!(c.wait_leader(&p, T).await?, target);
    let l = c.replica(target, &p)?.leadership();
    assert!(l.epoch > epoch, "epoch {} after {epoch}", l.epoch);
    assert_eq!(c.replica(leader, &p)?.leadership().role, Role::Follower);
    // The new leader continues after its blank entry's control record.
    let (base, _) = c.append_committed(&p, batch(2, 10, 2), T).await?;
    assert_eq!(base, last + 2);
    // Batches appended in the new term carry the new epoch.
    let r = c.replica(target, &p)?;
    assert_eq!(r.log().epoch_for_offset(base), Some(l.epoch));
    c.wait_hw(&p, base + 2, T).await?;
    assert_identical_logs(&c, &p)?;
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_and_catches_up_after_restart() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(3);
    c.create_partition(p, &[1, 2, 3]).await?;
    let old = c.wait_leader(&p, T).await?;
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.push(c.append_committed(&p, batch(2, 20, i), T).await?);
    }
    c.crash(old).await?;
    let new = c.wait_leader(&p, T).await?;
    assert_ne!(new, old);
    for i in 10..20 {
        acked.push(c.append_committed(&p, batch(2, 20, i), T).await?);
    }
    c.restart(old).await?;
    let hw = acked.last().map(|(_, l)| l + 1).unwrap_or(0);
    c.wait_hw(&p, hw, T).await?;
    assert_identical_logs(&c, &p)?;
    // Every acknowledged record is still there, on every replica.
    for n in c.up_nodes() {
        let r = c.replica(n, &p)?;
        for (base, last) in &acked {
            let out = r.read(*base, 1 << 20, ReadBound::HighWatermark, true)?;
            assert_eq!(out.first_offset, Some(*base), "node {n} offset {base}");
            assert!(out.next_offset > *last);
        }
    }
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_reports_follower_progress() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(4);
    c.create_partition(p, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    let (_, last) = c.append_committed(&p, batch(5, 10, 1), T).await?;
    let r = c.replica(leader, &p)?;
    let deadline = std::time::Instant::now() + T;
    loop {
        let progress = r.follower_progress().expect("leader reports progress");
        let nodes: BTreeSet<u64> = progress.iter().map(|f| f.node).collect();
        assert_eq!(
            nodes,
            [1, 2, 3].into_iter().filter(|n| *n != leader).collect()
        );
        if progress
            .iter()
            .all(|f| f.matched_offset == last + 1 && f.last_caught_up_ms.is_some())
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{progress:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let follower = if leader == 1 { 2 } else { 1 };
    assert!(c.replica(follower, &p)?.follower_progress().is_none());
    c.shutdown().await;
    Ok(())
}

/// Every replica folds the idempotent producers of the replicated batches into its own state,
/// and forgets them by `producer.id.expiration.ms` from the batch timestamps it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_tracks_and_expires_idempotent_producers() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(5);
    c.create_partition(p, &[1, 2, 3]).await?;
    c.wait_leader(&p, T).await?;
    let stamped_ms = 1_700_000_000_000;
    let mut b = shoal_storage::BatchBuilder::new(stamped_ms).producer(42, 0, 0);
    b.add_value(b"v");
    let (_, last) = c.append_committed(&p, b.build(), T).await?;
    c.wait_hw(&p, last + 1, T).await?;
    for n in c.up_nodes() {
        let r = c.replica(n, &p)?;
        assert!(
            r.log().producer_state().get(42).is_some(),
            "node {n} tracks the producer"
        );
        assert_eq!(
            r.remove_expired_producers(stamped_ms + 999, 1_000),
            0,
            "node {n}: not idle long enough"
        );
        assert_eq!(
            r.remove_expired_producers(stamped_ms + 1_000, 1_000),
            1,
            "node {n}"
        );
        assert!(
            r.log().producer_state().get(42).is_none(),
            "node {n} forgot the producer"
        );
    }
    c.shutdown().await;
    Ok(())
}

/// Entries present on every live replica (a replica may have purged a different prefix) are
/// identical.
fn assert_common_suffix_identical(c: &Cluster, p: &shoal_replication::PartitionId) -> Result<()> {
    let nodes = c.up_nodes();
    let logs: Vec<Vec<shoal_storage::StoredEntry>> = nodes
        .iter()
        .map(|n| c.entries(*n, p))
        .collect::<Result<_>>()?;
    let first = logs
        .iter()
        .filter_map(|l| l.first().map(|e| e.meta.index))
        .max()
        .unwrap_or(0);
    let last = logs
        .iter()
        .filter_map(|l| l.last().map(|e| e.meta.index))
        .min()
        .unwrap_or(0);
    for idx in first..=last {
        let reference = logs[0].iter().find(|e| e.meta.index == idx);
        for (n, l) in nodes.iter().zip(&logs) {
            let e = l.iter().find(|e| e.meta.index == idx);
            assert_eq!(e, reference, "entry {idx} on node {n}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_replicated_logs_and_a_lagging_replica_restarts_at_the_new_log_start()
-> Result<()> {
    let log_config = LogConfig {
        segment_bytes: 4096,
        retention_bytes: 8192,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let mut c = Cluster::new(
        &[1, 2, 3],
        9,
        ReplicationConfig::fast_for_tests(),
        log_config,
    )
    .await?;
    let p = partition(5);
    c.create_partition(p, &[1, 2, 3]).await?;
    c.wait_leader(&p, T).await?;
    c.append_committed(&p, batch(1, 10, 0), T).await?;
    c.wait_hw(&p, 1, T).await?;
    let lagging = 3;
    c.stop(lagging).await?;
    let mut hw = 0;
    for i in 0..120u8 {
        hw = c.append_committed(&p, batch(2, 200, i), T).await?.1 + 1;
    }
    // Retention runs on each replica; openraft purges after the snapshot.
    let now = shoal_storage::SystemClock.now_ms();
    let deadline = std::time::Instant::now() + T;
    let leader = c.wait_leader(&p, T).await?;
    loop {
        for n in c.up_nodes() {
            c.replica(n, &p)?.enforce_retention(now).await?;
        }
        let start = c.replica(leader, &p)?.log().log_start_offset();
        if start > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "leader never purged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader_start = c.replica(leader, &p)?.log().log_start_offset();
    // The lagging replica needs purged entries: it installs the snapshot and continues from
    // the new log start with the same offsets.
    c.restart(lagging).await?;
    hw = hw.max(c.append_committed(&p, batch(1, 10, 200), T).await?.1 + 1);
    c.wait_hw(&p, hw, T).await?;
    let r = c.replica(lagging, &p)?;
    let start = r.log().log_start_offset();
    assert!(
        start >= leader_start && start > 1,
        "lagging replica starts at {start}"
    );
    assert_eq!(
        r.log().log_end_offset(),
        c.replica(leader, &p)?.log().log_end_offset()
    );
    assert_common_suffix_identical(&c, &p)?;
    for n in c.up_nodes() {
        let r = c.replica(n, &p)?;
        let log = r.log();
        assert!(
            log.log_start_offset() <= r.high_watermark()
                && r.high_watermark() <= log.log_end_offset()
        );
    }
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_reassigned_through_a_membership_change() -> Result<()> {
    let mut c = Cluster::new(
        &[1, 2, 3, 4],
        5,
        ReplicationConfig::fast_for_tests(),
        LogConfig::default(),
    )
    .await?;
    let p = partition(6);
    c.create_partition(p, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    for i in 0..10 {
        c.append_committed(&p, batch(3, 30, i), T).await?;
    }
    // The new replica opens the partition (without bootstrapping), then the leader moves it
    // into the replica set in place of a node that is not the leader.
    let spec = shoal_replication::PartitionSpec {
        id: p,
        dir: c.dir(4, &p),
        log_config: LogConfig::default(),
        replicas: [1, 2, 3].into(),
        bootstrap: false,
        observer: None,
    };
    c.manager(4)?.open_partition(spec).await?;
    let removed = [1, 2, 3].into_iter().find(|n| *n != leader).unwrap_or(3);
    let mut new_set: BTreeSet<u64> = [1, 2, 3, 4].into();
    new_set.remove(&removed);
    c.replica(leader, &p)?
        .change_replicas(new_set.clone())
        .await?;
    let r = c.replica(leader, &p)?.replicas();
    assert_eq!(r.voters, new_set);
    assert!(!r.changing);
    let (_, last) = c.append_committed(&p, batch(1, 30, 99), T).await?;
    let four = c.replica(4, &p)?;
    let mut hw = four.watch_high_watermark();
    tokio::time::timeout(T, hw.wait_for(|h| *h > last)).await??;
    // The new replica holds the whole log from offset 0.
    let read = four.read(0, 1 << 20, ReadBound::HighWatermark, true)?;
    assert_eq!(read.first_offset, Some(0));
    let leader_entries = c.entries(leader, &p)?;
    let new_entries = c.entries(4, &p)?;
    assert_eq!(leader_entries, new_entries);
    c.shutdown().await;
    Ok(())
}

/// Records what a replica's log told it.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<(i64, i64)>>);

impl shoal_replication::LogObserver for Recorder {
    fn appended(&self, info: &shoal_storage::AppendInfo) {
        if info.batches.iter().all(|b| !b.is_control) {
            self.0
                .lock()
                .unwrap()
                .push((info.base_offset, info.last_offset));
        }
    }

    fn truncated(&self, next_offset: i64) {
        self.0.lock().unwrap().retain(|(b, _)| *b < next_offset);
    }

    fn reset(&self, _next_offset: i64) {
        self.0.lock().unwrap().clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_observes_the_appends_of_its_log() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(7);
    let replicas: BTreeSet<u64> = [1, 2, 3].into();
    let mut recorders = Vec::new();
    for n in [1u64, 2, 3] {
        let r = std::sync::Arc::new(Recorder::default());
        recorders.push(r.clone());
        c.manager(n)?
            .open_partition(shoal_replication::PartitionSpec {
                id: p,
                dir: c.dir(n, &p),
                log_config: LogConfig::default(),
                replicas: replicas.clone(),
                bootstrap: n == 1,
                observer: Some(r),
            })
            .await?;
    }
    c.partitions.insert(p, replicas);
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(
            c.append_committed(&p, batch(1 + i % 3, 10, i as u8), T)
                .await?,
        );
    }
    c.wait_hw(&p, acked.last().map_or(0, |a| a.1 + 1), T)
        .await?;
    for r in &recorders {
        assert_eq!(*r.0.lock().unwrap(), acked);
    }
    c.shutdown().await;
    Ok(())
}
