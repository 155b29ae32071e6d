//! Test faults that cut one partition's replication to one follower
//! (`ReplicaManager::faults`), and leadership moves requested from another node
//! (`ReplicaManager::move_partition_leader`), on three replicas in one process.

mod harness;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use harness::{Cluster, batch, partition};
use shoal_replication::{ControlError, ReplicationConfig, Role};
use shoal_storage::LogConfig;

const T: Duration = Duration::from_secs(20);

async fn cluster() -> Result<Cluster> {
    Cluster::new(
        &[1, 2, 3],
        11,
        ReplicationConfig::fast_for_tests(),
        LogConfig::default(),
    )
    .await
}

/// Checks for `period` that `leader` keeps leading `p` in `epoch`, and that no replica moves
/// to a later term (a cut follower only runs pre-votes, which never raise its term).
async fn leadership_holds(
    c: &Cluster,
    p: &shoal_replication::PartitionId,
    leader: u64,
    epoch: u64,
    period: Duration,
) -> Result<()> {
    let until = Instant::now() + period;
    while Instant::now() < until {
        let l = c.replica(leader, p)?.leadership();
        ensure!(
            l.role == Role::Leader && l.epoch == epoch,
            "node {leader} lost the leadership: {l:?}"
        );
        for n in c.up_nodes() {
            let other = c.replica(n, p)?.leadership();
            ensure!(other.epoch == epoch, "node {n} moved on: {other:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_follower_falls_behind_without_deposing_the_leader_and_catches_up_after_heal()
-> Result<()> {
    let mut c = cluster().await?;
    let (p, other) = (partition(0), partition(1));
    c.create_partition(p, &[1, 2, 3]).await?;
    c.create_partition(other, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    c.wait_leader(&other, T).await?;
    for i in 0..5u8 {
        c.append_committed(&p, batch(3, 20, i), T).await?;
    }
    let (_, last) = c.append_committed(&p, batch(1, 20, 9), T).await?;
    c.wait_hw(&p, last + 1, T).await?;
    let epoch = c.replica(leader, &p)?.leadership().epoch;
    let follower = c.up_nodes().into_iter().find(|n| *n != leader).unwrap_or(3);
    let follower_hw = c.replica(follower, &p)?.high_watermark();

    assert!(c.manager(leader)?.faults().cut(p, follower));
    assert_eq!(c.manager(leader)?.faults().cuts(), vec![(p, follower)]);
    let mut end = last + 1;
    for i in 0..20u8 {
        let (_, last) = c.append_committed(&p, batch(2, 20, i), T).await?;
        end = last + 1;
    }
    // The other partition still replicates to the follower over the same connection.
    let (_, other_last) = c.append_committed(&other, batch(1, 20, 1), T).await?;
    c.wait_hw(&other, other_last + 1, T).await?;

    // Well past the follower's election timeout (300-600 ms): it stays a follower in the
    // leader's term, learns nothing, and the leader keeps leading with the third replica.
    leadership_holds(&c, &p, leader, epoch, Duration::from_millis(2500)).await?;
    let cut = c.replica(follower, &p)?;
    assert_eq!(
        cut.high_watermark(),
        follower_hw,
        "no commit reaches the follower"
    );
    assert!(
        cut.log().log_end_offset() < end,
        "no entry reaches the follower"
    );
    assert!(cut.high_watermark() <= cut.log().log_end_offset());
    let progress = c
        .replica(leader, &p)?
        .follower_progress()
        .unwrap_or_default();
    let seen = progress
        .iter()
        .find(|f| f.node == follower)
        .map(|f| f.matched_offset);
    assert!(
        seen.is_some_and(|m| m < end),
        "the leader sees the follower behind: {progress:?}"
    );

    assert!(c.manager(leader)?.faults().heal(p, follower));
    assert!(c.manager(leader)?.faults().cuts().is_empty());
    c.wait_hw(&p, end, T).await?;
    leadership_holds(&c, &p, leader, epoch, Duration::from_millis(1500)).await?;
    let (_, last) = c.append_committed(&p, batch(1, 20, 7), T).await?;
    c.wait_hw(&p, last + 1, T).await?;
    c.shutdown().await;
    Ok(())
}

/// On a partition nothing is written to, a follower that stops answering stops being caught
/// up (Kafka's `lastCaughtUpTimeMs` of a follower that stops fetching), while one that answers
/// heartbeats stays caught up; after the heal the cut one is caught up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_follower_of_an_idle_partition_stops_being_caught_up() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(2);
    c.create_partition(p, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    let (_, last) = c.append_committed(&p, batch(1, 20, 1), T).await?;
    c.wait_hw(&p, last + 1, T).await?;
    let followers: Vec<u64> = c.up_nodes().into_iter().filter(|n| *n != leader).collect();
    let (cut, healthy) = (followers[0], followers[1]);
    let caught_up = |node: u64| -> Result<Option<i64>> {
        let progress = c.replica(leader, &p)?.follower_progress();
        Ok(progress
            .unwrap_or_default()
            .into_iter()
            .find(|f| f.node == node)
            .and_then(|f| f.last_caught_up_ms))
    };
    assert!(c.manager(leader)?.faults().cut(p, cut));
    // Let an acknowledgement in flight at the cut land, then watch for a second.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (cut_before, healthy_before) = (caught_up(cut)?, caught_up(healthy)?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cut_after, healthy_after) = (caught_up(cut)?, caught_up(healthy)?);
    let (Some(cut_before), Some(cut_after)) = (cut_before, cut_after) else {
        anyhow::bail!("the cut follower answered before the cut: {cut_before:?} {cut_after:?}");
    };
    // Instants carried over to milliseconds may round by one.
    assert!(
        cut_after - cut_before <= 1,
        "cut follower still caught up: {cut_before} -> {cut_after}"
    );
    let (Some(healthy_before), Some(healthy_after)) = (healthy_before, healthy_after) else {
        anyhow::bail!("the healthy follower is not caught up");
    };
    // Heartbeats every 50 ms keep it caught up.
    assert!(
        healthy_after - healthy_before >= 500,
        "{healthy_before} -> {healthy_after}"
    );
    assert!(c.manager(leader)?.faults().heal(p, cut));
    let deadline = Instant::now() + T;
    while caught_up(cut)?.is_none_or(|t| t <= cut_after + 1) {
        ensure!(
            Instant::now() < deadline,
            "the healed follower is not caught up again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_can_ask_the_leader_to_move_its_leadership() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(0);
    c.create_partition(p, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    let (_, last) = c.append_committed(&p, batch(2, 20, 1), T).await?;
    c.wait_hw(&p, last + 1, T).await?;
    let nodes = c.up_nodes();
    let to = *nodes.iter().find(|n| **n != leader).unwrap_or(&2);
    let asker = *nodes
        .iter()
        .find(|n| **n != leader && **n != to)
        .unwrap_or(&3);
    c.manager(asker)?
        .move_partition_leader(p, leader, to, T)
        .await?;
    assert_eq!(c.wait_leader(&p, T).await?, to);
    // The old leader no longer leads: the asker learns who does.
    match c
        .manager(asker)?
        .move_partition_leader(p, leader, asker, T)
        .await
    {
        Err(ControlError::NotLeader { leader: hint, .. }) => assert_eq!(hint, Some(to)),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    // The leader itself moves it locally.
    c.manager(to)?
        .move_partition_leader(p, to, leader, T)
        .await?;
    assert_eq!(c.wait_leader(&p, T).await?, leader);
    c.shutdown().await;
    Ok(())
}

/// A leadership transfer to a follower that is far behind (openraft's target ignores a
/// transfer while its log lags the leader's last entry, and the leader refuses writes from the
/// moment it starts one) completes once the follower has caught up, and the partition takes
/// writes under the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_a_lagging_follower_happens_once_it_caught_up() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(3);
    c.create_partition(p, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    let to = c.up_nodes().into_iter().find(|n| *n != leader).unwrap_or(2);
    assert!(c.manager(leader)?.faults().cut(p, to));
    for i in 0..30u8 {
        c.append_committed(&p, batch(4, 200, i), T).await?;
    }
    assert!(c.manager(leader)?.faults().heal(p, to));
    // At once: the target is still many entries behind.
    c.replica(leader, &p)?
        .transfer_leadership(to, Duration::from_secs(10))
        .await?;
    assert_eq!(c.wait_leader(&p, T).await?, to);
    c.append_committed(&p, batch(1, 20, 99), T).await?;
    c.shutdown().await;
    Ok(())
}

/// A leadership transfer that cannot happen (the target hears nothing of the partition) fails
/// at its timeout, and the partition takes writes again afterwards: openraft's leader refuses
/// proposals from the moment it starts a transfer, until the next election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transfer_leaves_a_leader_that_takes_writes() -> Result<()> {
    let mut c = cluster().await?;
    let p = partition(4);
    c.create_partition(p, &[1, 2, 3]).await?;
    let leader = c.wait_leader(&p, T).await?;
    c.append_committed(&p, batch(1, 20, 1), T).await?;
    let to = c.up_nodes().into_iter().find(|n| *n != leader).unwrap_or(2);
    assert!(c.manager(leader)?.faults().cut(p, to));
    let failed = c
        .replica(leader, &p)?
        .transfer_leadership(to, Duration::from_secs(2))
        .await;
    assert!(
        matches!(failed, Err(ControlError::Timeout(_))),
        "{failed:?}"
    );
    // Whoever leads now (not the cut node: it cannot win a vote) takes writes.
    c.append_committed(&p, batch(1, 20, 2), T).await?;
    assert_ne!(c.wait_leader(&p, T).await?, to);
    c.shutdown().await;
    Ok(())
}
