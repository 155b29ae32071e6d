//! Follower fetching (KIP-392) while replication of one partition to one follower is cut, on
//! three `shoal` processes in three racks with RF=3 and the rack-aware selector.
//!
//! The cut is Shoal's test fault hook (`testing.faults.enabled=true`, `POST
//! /faults/replication/cut` on the leader's `metrics.listener`, see `docs/testing-faults.md`):
//! the leader stops exchanging that partition's Raft messages with the follower while every
//! other message between the two nodes still flows, as a Kafka follower whose fetcher is stuck.
//! These scenarios are Shoal-only: Apache Kafka has no way to stall one partition's fetcher to
//! one follower from outside (killing or partitioning the broker stops all its partitions and
//! its controller session too), so they cannot run against the reference broker as the Java
//! `FollowerFetchingTest` scenarios do.
//!
//! - A follower cut off from its leader is no longer chosen as preferred read replica once it
//!   has left the ISR: a consumer in its rack is served by the leader; after the heal it catches
//!   up, rejoins the ISR and the consumer is sent back to it. The leader keeps its leadership
//!   (same epoch) through the cut and the heal.
//! - While cut, with producers writing, consumer fetches sent straight to that follower never
//!   return a record at or above the high watermark it reports, that high watermark stays within
//!   what it holds, and what it serves is exactly the committed records at those offsets; after
//!   the heal it serves everything.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::records::Compression;
use shoal_tests::client::PartitionFetch;
use shoal_tests::cluster::{Cluster, Node};
use shoal_tests::http::metrics_authority;
use shoal_tests::records::{TestRecord, batch, decode};
use shoal_tests::{Broker, BrokerOptions, Client};

const RACKS: [&str; 3] = ["r1", "r2", "r3"];
const DEADLINE: Duration = Duration::from_secs(60);
/// `replica.lag.time.max.ms` of these clusters: a cut follower leaves the ISR after this long.
const LAG_MS: u64 = 2000;
/// Longer than the default maximum election timeout of a partition group (5 s): a cut
/// follower's election timer has fired at least once before the heal.
const CAMPAIGN_WINDOW: Duration = Duration::from_secs(6);

fn props() -> Vec<(&'static str, String)> {
    vec![
        ("default.replication.factor", "3".into()),
        ("min.insync.replicas", "2".into()),
        ("replica.lag.time.max.ms", LAG_MS.to_string()),
        ("auto.leader.rebalance.enable", "false".into()),
        ("follower.fetching.enabled", "true".into()),
        ("testing.faults.enabled", "true".into()),
        ("metrics.listener", "http://127.0.0.1:0/metrics".into()),
        ("auto.create.topics.enable", "false".into()),
    ]
}

fn start_cluster() -> anyhow::Result<Cluster> {
    let props = props();
    let pairs: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Cluster::start(&RACKS, &pairs)
}

fn rack(node: i32) -> &'static str {
    RACKS[(node - 1) as usize]
}

/// `POST path` to a node's metrics listener: status code and body.
async fn post(node: &Node, path: &str) -> anyhow::Result<(u16, String)> {
    post_at(&metrics_authority(&node.output())?, path).await
}

/// `POST path` to `authority` (host:port): status code and body.
async fn post_at(authority: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let r = shoal_tests::http::request(authority, "POST", path).await?;
    Ok((r.status, r.body))
}

async fn fault(node: &Node, action: &str, topic: &str, follower: i32) -> anyhow::Result<String> {
    let (status, body) = post(
        node,
        &format!("/faults/replication/{action}?topic={topic}&partition=0&follower={follower}"),
    )
    .await?;
    ensure!(status == 200, "{action} answered {status}: {body}");
    Ok(body)
}

/// Partition 0 of `topic` as `node` reports it: (leader, leader epoch, ISR).
async fn partition_state(node: &Node, topic: &str) -> anyhow::Result<(i32, i32, Vec<i32>)> {
    let mut client = Client::connect(&node.address()).await?;
    let metadata = client.metadata(Some(&[topic]), false).await?;
    let t = metadata.topics.first().context("no topic")?;
    ensure!(t.error_code == 0, "metadata error {}", t.error_code);
    let p = t.partitions.first().context("no partition")?;
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort_unstable();
    Ok((p.leader_id.0, p.leader_epoch, isr))
}

/// Waits until every node reports a state of partition 0 that `check` accepts.
async fn wait_state(
    cluster: &Cluster,
    topic: &str,
    what: &str,
    check: impl Fn(&(i32, i32, Vec<i32>)) -> bool,
) -> anyhow::Result<(i32, i32, Vec<i32>)> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut agreed = None;
        let mut all = true;
        for node in &cluster.nodes {
            match partition_state(node, topic).await {
                Ok(s) if check(&s) => agreed = Some(s),
                _ => all = false,
            }
        }
        if all && let Some(s) = agreed {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A consumer's Fetch v12 of partition 0 of `topic` at `offset`, with `rack` as `rack_id`.
async fn fetch(
    node: &Node,
    topic: &str,
    offset: i64,
    rack: &str,
    max_wait_ms: i32,
) -> anyhow::Result<PartitionData> {
    let mut client = Client::connect(&node.address()).await?;
    let spec = PartitionFetch {
        rack,
        max_wait_ms,
        ..PartitionFetch::new(topic, 0, offset)
    };
    client.fetch_partition(12, &spec).await
}

/// Produces `values` as one batch to partition 0 with acks=all on `leader`; returns the base
/// offset. A new leader refuses writes until a quorum acknowledged it (NOT_LEADER_OR_FOLLOWER,
/// nothing appended): that answer is retried.
async fn produce(leader: &Node, topic: &str, values: &[String]) -> anyhow::Result<i64> {
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let records: Vec<TestRecord> = values
        .iter()
        .map(|v| TestRecord::new("k", v, 1_700_000_000_000))
        .collect();
    let records = batch(&records, Compression::None);
    let mut client = Client::connect(&leader.address()).await?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = client
            .produce(topic, 0, records.clone(), -1, 9)
            .await?
            .context("no produce response")?;
        if r.error_code == NOT_LEADER_OR_FOLLOWER && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        ensure!(r.error_code == 0, "produce error {}", r.error_code);
        return Ok(r.base_offset);
    }
}

/// [`produce`], remembering each acknowledged value by offset in `acked`.
async fn write(
    leader: &Node,
    topic: &str,
    values: Vec<String>,
    acked: &mut BTreeMap<i64, String>,
) -> anyhow::Result<()> {
    let base = produce(leader, topic, &values).await?;
    for (i, v) in values.into_iter().enumerate() {
        acked.insert(base + i as i64, v);
    }
    Ok(())
}

/// Every data record (offset → value) `node` serves from `offset` 0 with `rack`, read until
/// the high watermark it reports; checks on the way that no answer holds a record at or above
/// the high watermark of that answer. Returns the records and the last high watermark.
async fn read_all(
    node: &Node,
    topic: &str,
    rack: &str,
) -> anyhow::Result<(BTreeMap<i64, String>, i64)> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let data = fetch(node, topic, offset, rack, 0).await?;
        ensure!(data.error_code == 0, "fetch error {}", data.error_code);
        ensure!(
            data.preferred_read_replica == BrokerId(-1),
            "node {} redirected the read to {:?}",
            node.id,
            data.preferred_read_replica
        );
        let hw = data.high_watermark;
        let records = decode(&data.records.unwrap_or_default())?;
        if let Some(above) = records.iter().find(|r| r.offset >= hw) {
            bail!(
                "node {} served offset {} at or above its high watermark {hw}",
                node.id,
                above.offset
            );
        }
        let Some(last) = records.last().map(|r| r.offset) else {
            return Ok((out, hw));
        };
        for r in records.into_iter().filter(|r| !r.control) {
            let value = r.value.map(|v| String::from_utf8_lossy(&v).into_owned());
            out.insert(r.offset, value.unwrap_or_default());
        }
        offset = last + 1;
        if offset >= hw {
            return Ok((out, hw));
        }
    }
}

struct Setup {
    topic: String,
    leader: i32,
    epoch: i32,
    follower: i32,
}

async fn set_up(cluster: &Cluster, topic: &str) -> anyhow::Result<Setup> {
    let mut client = Client::connect(&cluster.node(1).address()).await?;
    ensure!(
        client.create_topic(topic, 1, &[]).await? == 0,
        "create {topic}"
    );
    // The image names the first replica with epoch 0 at creation; the Raft leader then reports
    // its term.
    let (leader, epoch, _) = wait_state(cluster, topic, "a leader and a full ISR", |s| {
        s.0 > 0 && s.1 > 0 && s.2.len() == 3
    })
    .await?;
    let follower = (1..=3).find(|n| *n != leader).context("a follower")?;
    Ok(Setup {
        topic: topic.to_string(),
        leader,
        epoch,
        follower,
    })
}

/// Writes one batch per round on the leader until the metadata on every node satisfies
/// `check`; returns how many values were written (named `{prefix}{n}`).
async fn write_until(
    cluster: &Cluster,
    s: &Setup,
    prefix: &str,
    what: &str,
    check: impl Fn(&(i32, i32, Vec<i32>)) -> bool,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + DEADLINE;
    let mut written = 0;
    loop {
        produce(
            cluster.node(s.leader),
            &s.topic,
            &[format!("{prefix}{written}")],
        )
        .await?;
        written += 1;
        let mut all = true;
        for node in &cluster.nodes {
            if !partition_state(node, &s.topic)
                .await
                .is_ok_and(|st| check(&st))
            {
                all = false;
            }
        }
        if all {
            return Ok(written);
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The replica the leader prefers for a consumer in `rack` at `offset` (-1: itself), once it
/// is `expected`, within the deadline.
async fn wait_preferred(
    cluster: &Cluster,
    s: &Setup,
    rack: &str,
    expected: i32,
) -> anyhow::Result<PartitionData> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let data = fetch(cluster.node(s.leader), &s.topic, 0, rack, 0).await?;
        if data.error_code == 0 && data.preferred_read_replica == BrokerId(expected) {
            return Ok(data);
        }
        if Instant::now() > deadline {
            bail!(
                "preferred read replica for rack {rack} is {:?}, not {expected}",
                data.preferred_read_replica
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_is_not_preferred_until_it_is_back_in_sync() -> anyhow::Result<()> {
    let cluster = start_cluster()?;
    let run = async {
        let s = set_up(&cluster, "cut-preferred").await?;
        let (leader, follower) = (cluster.node(s.leader), cluster.node(s.follower));
        let rack = rack(s.follower);
        for i in 0..10 {
            produce(leader, &s.topic, &[format!("before{i}")]).await?;
        }
        wait_preferred(&cluster, &s, rack, s.follower).await?;

        // Only the leader cuts; the follower refuses, naming the leader.
        let (status, body) = post(
            follower,
            &format!(
                "/faults/replication/cut?topic={}&partition=0&follower={}",
                s.topic, s.leader
            ),
        )
        .await?;
        ensure!(status == 409, "cut on a follower: {status} {body}");
        let started = Instant::now();
        fault(leader, "cut", &s.topic, s.follower).await?;

        // Writes go on (acks=all with the leader and the other follower); the cut follower
        // leaves the ISR after replica.lag.time.max.ms.
        write_until(
            &cluster,
            &s,
            "during",
            "the cut follower out of the ISR",
            |st| st.0 == s.leader && !st.2.contains(&s.follower) && st.2.len() == 2,
        )
        .await?;
        // A consumer in the follower's rack is now served by the leader itself.
        let data = wait_preferred(&cluster, &s, rack, -1).await?;
        let served = decode(&data.records.unwrap_or_default())?;
        ensure!(!served.is_empty(), "the leader serves the records itself");
        // Let the follower's election timer fire before healing: it may campaign, but it must
        // not depose the leader.
        while started.elapsed() < CAMPAIGN_WINDOW {
            produce(leader, &s.topic, &["still-cut".to_string()]).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (l, epoch, isr) = partition_state(leader, &s.topic).await?;
        ensure!(
            (l, epoch) == (s.leader, s.epoch),
            "leadership changed during the cut: leader {l} epoch {epoch}"
        );
        ensure!(!isr.contains(&s.follower), "ISR {isr:?}");

        fault(leader, "heal", &s.topic, s.follower).await?;
        write_until(
            &cluster,
            &s,
            "after",
            "the follower back in the ISR",
            |st| st.2.len() == 3,
        )
        .await?;
        wait_preferred(&cluster, &s, rack, s.follower).await?;
        // Caught up: the follower serves everything the leader does.
        let (from_leader, leader_hw) = read_all(leader, &s.topic, "").await?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (from_follower, hw) = read_all(follower, &s.topic, rack).await?;
            if hw >= leader_hw {
                let upto: BTreeMap<i64, String> = from_follower
                    .into_iter()
                    .filter(|(o, _)| *o < leader_hw)
                    .collect();
                ensure!(
                    upto == from_leader,
                    "the follower serves the leader's records"
                );
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "follower high watermark {hw} < {leader_hw}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (l, epoch, _) = partition_state(leader, &s.topic).await?;
        ensure!(
            (l, epoch) == (s.leader, s.epoch),
            "the heal deposed the leader: leader {l} epoch {epoch} (was {} epoch {})",
            s.leader,
            s.epoch
        );
        anyhow::Ok(())
    };
    run.await.map_err(|e| e.context(cluster.output()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_never_serves_above_its_high_watermark() -> anyhow::Result<()> {
    let cluster = start_cluster()?;
    let run = async {
        let s = set_up(&cluster, "cut-hw").await?;
        let (leader, follower) = (cluster.node(s.leader), cluster.node(s.follower));
        let rack = rack(s.follower);
        let mut acked: BTreeMap<i64, String> = BTreeMap::new();
        for i in 0..5 {
            let values: Vec<String> = (0..4).map(|j| format!("before{i}-{j}")).collect();
            write(leader, &s.topic, values, &mut acked).await?;
        }
        // The follower has seen all of it committed.
        let end_before = acked.keys().last().map_or(0, |o| o + 1);
        let deadline = Instant::now() + DEADLINE;
        while read_all(follower, &s.topic, rack).await?.1 < end_before {
            ensure!(Instant::now() < deadline, "follower not caught up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        fault(leader, "cut", &s.topic, s.follower).await?;
        let mut frozen_hw = None;
        let started = Instant::now();
        let mut round = 0;
        while started.elapsed() < CAMPAIGN_WINDOW {
            let values: Vec<String> = (0..3).map(|j| format!("during{round}-{j}")).collect();
            write(leader, &s.topic, values, &mut acked).await?;
            round += 1;
            // Everything the follower serves is below the high watermark it reports (checked
            // by read_all), is committed, and is exactly what was written at those offsets.
            let (served, hw) = read_all(follower, &s.topic, rack).await?;
            ensure!(
                hw >= end_before,
                "the follower's high watermark went back: {hw}"
            );
            let committed: BTreeMap<i64, String> = acked
                .iter()
                .filter(|(o, _)| **o < hw)
                .map(|(o, v)| (*o, v.clone()))
                .collect();
            ensure!(
                served == committed,
                "the follower serves exactly the committed records below {hw}"
            );
            // Nothing reaches the follower: its high watermark stays where the cut found it,
            // and a fetch at it waits and returns nothing.
            match frozen_hw {
                None => frozen_hw = Some(hw),
                Some(f) => ensure!(
                    hw == f,
                    "the cut follower's high watermark moved {f} -> {hw}"
                ),
            }
            let at_hw = fetch(follower, &s.topic, hw, rack, 200).await?;
            ensure!(
                at_hw.error_code == 0,
                "fetch at the high watermark: {}",
                at_hw.error_code
            );
            ensure!(
                at_hw.records.as_ref().is_none_or(Bytes::is_empty),
                "records at or above the high watermark {hw}"
            );
            ensure!(at_hw.high_watermark == hw);
            // The high watermark stays within what the follower holds: the record just below it
            // is there.
            let below = fetch(follower, &s.topic, hw - 1, rack, 0).await?;
            let below = decode(&below.records.unwrap_or_default())?;
            ensure!(
                below.iter().any(|r| r.offset == hw - 1),
                "the follower does not hold offset {} below its high watermark",
                hw - 1
            );
        }
        let written_end = acked.keys().last().map_or(0, |o| o + 1);
        ensure!(
            frozen_hw.is_some_and(|hw| hw < written_end),
            "writes went on past the follower's high watermark"
        );

        fault(leader, "heal", &s.topic, s.follower).await?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (served, hw) = read_all(follower, &s.topic, rack).await?;
            if hw >= written_end {
                let mut everything = served;
                everything.retain(|o, _| *o < written_end);
                ensure!(
                    everything == acked,
                    "after the heal the follower serves every record"
                );
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "follower stuck at {hw} < {written_end}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (l, epoch, _) = partition_state(leader, &s.topic).await?;
        ensure!(
            (l, epoch) == (s.leader, s.epoch),
            "leadership changed: leader {l} epoch {epoch}"
        );
        anyhow::Ok(())
    };
    run.await.map_err(|e| e.context(cluster.output()))
}

#[tokio::test]
async fn the_fault_endpoints_exist_only_when_enabled() -> anyhow::Result<()> {
    let cut = "/faults/replication/cut?topic=t&partition=0&follower=2";
    let metrics = |o: BrokerOptions| o.with("metrics.listener", "http://127.0.0.1:0/metrics");
    let plain = Broker::start(metrics(BrokerOptions::default()))?;
    let (status, _) = post_at(&metrics_authority(&plain.output())?, cut).await?;
    assert_eq!(status, 404, "off by default");

    let enabled = Broker::start(metrics(
        BrokerOptions::default().with("testing.faults.enabled", "true"),
    ))?;
    // The warning and the readiness line come from different tasks: wait for it.
    assert!(
        enabled.wait_for_output("never enable this in production"),
        "{}",
        enabled.output()
    );
    let authority = metrics_authority(&enabled.output())?;
    let (status, body) = post_at(&authority, cut).await?;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not a cluster"), "{body}");
    let (status, body) = post_at(&authority, "/faults/replication/cut?topic=t&partition=0").await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("missing follower"), "{body}");
    Ok(())
}
