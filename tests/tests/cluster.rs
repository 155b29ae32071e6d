//! Three `shoal` processes on loopback as one cluster, started from properties files: metadata
//! on every broker, RF=3 partitions, acks=all idempotent produce while the leader of each
//! partition in turn is killed (SIGKILL) and restarted, every acknowledged record read back
//! exactly once and in order, and every replica byte-identical up to the high watermark; and a
//! restarting broker that leaves the other leaders' partitions writable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::records::Compression;
use shoal_tests::Client;
use shoal_tests::client::PartitionFetch;
use shoal_tests::cluster::Cluster;
use shoal_tests::records::{decode, idempotent_batch};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;
const DEADLINE: Duration = Duration::from_secs(60);
const NOT_ENOUGH_REPLICAS: i16 = 19;
const FENCED_LEADER_EPOCH: i16 = 74;

fn props() -> Vec<(&'static str, &'static str)> {
    vec![
        ("default.replication.factor", "3"),
        ("min.insync.replicas", "2"),
        ("broker.session.timeout.ms", "3000"),
        ("broker.heartbeat.interval.ms", "500"),
        ("replica.lag.time.max.ms", "5000"),
        ("auto.leader.rebalance.enable", "false"),
        ("offsets.topic.replication.factor", "3"),
        ("group.initial.rebalance.delay.ms", "0"),
    ]
}

/// Per partition: (leader, ISR, replicas, offline replicas) from `address`'s metadata.
type Layout = BTreeMap<i32, (i32, Vec<i32>, Vec<i32>, Vec<i32>)>;

async fn layout(address: &str) -> anyhow::Result<Layout> {
    layout_of(address, TOPIC).await
}

/// `topic` in `address`'s metadata; fails on a topic error.
async fn topic_metadata(address: &str, topic: &str) -> anyhow::Result<MetadataResponseTopic> {
    let mut client = Client::connect(address).await?;
    let metadata = client.metadata(Some(&[topic]), false).await?;
    let topic = metadata.topics.into_iter().next().context("no topic")?;
    if topic.error_code != 0 {
        bail!("metadata error {}", topic.error_code);
    }
    Ok(topic)
}

async fn layout_of(address: &str, topic: &str) -> anyhow::Result<Layout> {
    let topic = topic_metadata(address, topic).await?;
    Ok(topic
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                (
                    p.leader_id.0,
                    p.isr_nodes.iter().map(|b| b.0).collect(),
                    p.replica_nodes.iter().map(|b| b.0).collect(),
                    p.offline_replicas.iter().map(|b| b.0).collect(),
                ),
            )
        })
        .collect())
}

/// Waits until `check` accepts the layout every running node reports.
async fn wait_layout(
    cluster: &Cluster,
    what: &str,
    check: impl Fn(&Layout) -> bool,
) -> anyhow::Result<Layout> {
    wait_layout_of(cluster, TOPIC, what, check).await
}

async fn wait_layout_of(
    cluster: &Cluster,
    topic: &str,
    what: &str,
    check: impl Fn(&Layout) -> bool,
) -> anyhow::Result<Layout> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut last = None;
        let mut all = true;
        for node in cluster.nodes.iter().filter(|n| n.is_running()) {
            match layout_of(&node.address(), topic).await {
                Ok(l) if check(&l) => last = Some(l),
                _ => all = false,
            }
        }
        if all && let Some(l) = last {
            return Ok(l);
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces one idempotent batch with acks=all, retrying on any broker until it is
/// acknowledged; returns its base offset.
async fn produce_acked(cluster: &Cluster, partition: i32, batch: &Bytes) -> anyhow::Result<i64> {
    let deadline = Instant::now() + DEADLINE;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        for node in cluster.nodes.iter().filter(|n| n.is_running()) {
            let leader = match layout(&node.address()).await {
                Ok(l) => l.get(&partition).map(|p| p.0),
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            let Some(leader) = leader.filter(|l| *l > 0) else {
                continue;
            };
            let target = cluster.node(leader);
            if !target.is_running() {
                continue;
            }
            let attempt = async {
                let mut client = Client::connect(&target.address()).await?;
                client
                    .produce(TOPIC, partition, batch.clone(), -1, 9)
                    .await?
                    .context("no produce response")
            };
            match tokio::time::timeout(Duration::from_secs(15), attempt).await {
                Ok(Ok(r)) if r.error_code == 0 => return Ok(r.base_offset),
                Ok(Ok(r)) => last_error = format!("error code {}", r.error_code),
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = "timed out".into(),
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("partition {partition}: batch not acknowledged within {DEADLINE:?}: {last_error}")
}

/// The raw log bytes of `partition` on node `address` from offset 0 up to its high watermark,
/// and the high watermark.
async fn log_bytes(address: &str, partition: i32) -> anyhow::Result<(Vec<u8>, i64)> {
    let mut client = Client::connect(address).await?;
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let data = client.fetch(TOPIC, partition, offset, 0, 0).await?;
        if data.error_code != 0 {
            bail!("fetch error {}", data.error_code);
        }
        let records = data.records.unwrap_or_default();
        if records.is_empty() {
            return Ok((out, data.high_watermark));
        }
        let decoded = decode(&records)?;
        let next = decoded.last().map(|r| r.offset + 1).unwrap_or(offset);
        out.extend_from_slice(&records);
        if next <= offset {
            bail!("fetch at {offset} made no progress");
        }
        offset = next;
        if offset >= data.high_watermark {
            return Ok((out, data.high_watermark));
        }
    }
}

fn values(bytes: &[u8]) -> anyhow::Result<Vec<String>> {
    Ok(decode(&Bytes::copy_from_slice(bytes))?
        .into_iter()
        .filter(|r| !r.control)
        .filter_map(|r| r.value.map(|v| String::from_utf8_lossy(&v).into_owned()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_the_loss_of_each_leader_in_turn() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&["a", "b", "c"], &props())?;
    let mut client = Client::connect(&cluster.node(1).address()).await?;
    assert_eq!(client.create_topic(TOPIC, PARTITIONS, &[]).await?, 0);
    // Every broker sees the same layout: three replicas in three racks, a leader per partition
    // (spread over the brokers), full ISRs.
    let initial = wait_layout(&cluster, "initial layout", |l| {
        l.len() == PARTITIONS as usize
            && l.values().all(|(leader, isr, replicas, offline)| {
                *leader > 0 && isr.len() == 3 && replicas.len() == 3 && offline.is_empty()
            })
    })
    .await
    .map_err(|e| e.context(cluster.output()))?;
    let leaders: std::collections::BTreeSet<i32> = initial.values().map(|p| p.0).collect();
    assert_eq!(leaders.len(), 3, "leaders balanced: {initial:?}");

    let (error, pid, epoch) = client.init_producer_id().await?;
    assert_eq!(error, 0);
    drop(client);
    let mut sequences = [0i32; PARTITIONS as usize];
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut send = async |cluster: &Cluster, partition: i32, count: usize| -> anyhow::Result<()> {
        for _ in 0..count {
            let seq = sequences[partition as usize];
            let values: Vec<String> = (0..3)
                .map(|i| format!("p{partition}-{}", seq + i))
                .collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let batch = idempotent_batch(pid, epoch, seq, &refs, Compression::None);
            produce_acked(cluster, partition, &batch).await?;
            sequences[partition as usize] += 3;
            expected.entry(partition).or_default().extend(values);
        }
        Ok(())
    };

    for partition in 0..PARTITIONS {
        send(&cluster, partition, 20).await?;
        let current = layout(&cluster.node(1).address()).await?;
        let leader = current[&partition].0;
        cluster.kill(leader)?;
        // The survivors elect a new leader; writes continue (two of three replicas are in sync).
        send(&cluster, partition, 20).await?;
        let fenced = wait_layout(&cluster, "killed broker reported offline", |l| {
            l.values().all(|(new_leader, isr, _, offline)| {
                *new_leader != leader && !isr.contains(&leader) && offline.contains(&leader)
            })
        })
        .await?;
        assert!(fenced[&partition].0 > 0);
        cluster.restart(leader)?;
        send(&cluster, partition, 20).await?;
        wait_layout(&cluster, "restarted broker back in sync", |l| {
            l.values()
                .all(|(_, isr, _, offline)| isr.len() == 3 && offline.is_empty())
        })
        .await?;
    }

    for partition in 0..PARTITIONS {
        let leader = layout(&cluster.node(1).address()).await?[&partition].0;
        let (leader_bytes, hw) = log_bytes(&cluster.node(leader).address(), partition).await?;
        let got = values(&leader_bytes)?;
        assert_eq!(
            got, expected[&partition],
            "partition {partition}: every acknowledged record once, in order"
        );
        // Followers catch up to the same high watermark and hold the same bytes.
        for node in &cluster.nodes {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let (bytes, follower_hw) = log_bytes(&node.address(), partition).await?;
                if follower_hw >= hw {
                    let (leader_bytes, _) =
                        log_bytes(&cluster.node(leader).address(), partition).await?;
                    let n = leader_bytes.len().min(bytes.len());
                    assert!(n > 0);
                    assert_eq!(
                        &bytes[..n],
                        &leader_bytes[..n],
                        "partition {partition}: node {} differs from leader {leader}",
                        node.id
                    );
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "node {} stuck at high watermark {follower_hw} < {hw}",
                        node.id
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // min.insync.replicas=3 with one broker down: acks=all is refused with
    // NOT_ENOUGH_REPLICAS once the ISR has shrunk.
    let mut client = Client::connect(&cluster.node(1).address()).await?;
    assert_eq!(
        client
            .create_topic("strict", 1, &[("min.insync.replicas", "3")])
            .await?,
        0
    );
    let strict = wait_layout_of(&cluster, "strict", "strict topic ready", |l| {
        l.values()
            .all(|(leader, isr, _, _)| *leader > 0 && isr.len() == 3)
    })
    .await?;
    let leader = strict[&0].0;
    let victim = (1..=3).find(|n| *n != leader).context("a follower")?;
    cluster.kill(victim)?;
    wait_layout_of(&cluster, "strict", "ISR shrunk", |l| l[&0].1.len() == 2).await?;
    let mut client = Client::connect(&cluster.node(leader).address()).await?;
    let batch = shoal_tests::records::batch(
        &[shoal_tests::records::TestRecord::new("k", "refused", 0)],
        Compression::None,
    );
    let r = client
        .produce("strict", 0, batch, -1, 9)
        .await?
        .context("produce response")?;
    assert_eq!(r.error_code, NOT_ENOUGH_REPLICAS);
    cluster.restart(victim)?;
    for id in 1..=3 {
        cluster.stop(id)?;
    }
    Ok(())
}

#[test]
fn data_directories_do_not_switch_between_single_node_and_cluster() -> anyhow::Result<()> {
    use shoal_tests::broker::run_to_exit;
    use shoal_tests::{Broker, BrokerOptions};

    // A single node's data refuses to join a cluster ...
    let mut single = Broker::start(BrokerOptions::default())?;
    single.stop()?;
    let logs = single.data_dir().join("logs");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let voters = format!("controller.quorum.voters=1@127.0.0.1:{port},2@127.0.0.1:1");
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}");
    let log_dirs = format!("log.dirs={}", logs.display());
    let args = [
        "--override",
        "process.roles=broker,controller",
        "--override",
        &voters,
        "--override",
        "controller.listener.names=CONTROLLER",
        "--override",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "--override",
        &listeners,
        "--override",
        &log_dirs,
    ];
    let (status, output) = run_to_exit(&args, &[])?;
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("single-node broker's metadata"), "{output}");

    // ... and a cluster node's data refuses to start as a single node.
    let mut cluster = Cluster::start(&["a", "b", "c"], &props())?;
    cluster.stop(3)?;
    let dirs = format!("log.dirs={}", cluster.data_dir(3).display());
    let (status, output) = run_to_exit(
        &[
            "--override",
            &dirs,
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "--override",
            "node.id=3",
        ],
        &[],
    )?;
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("cluster node's metadata"), "{output}");
    assert!(
        cluster.data_dir(3).join("__cluster_metadata-0").exists(),
        "nothing was removed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_leadership_away_and_it_returns_to_the_preferred_replica()
-> anyhow::Result<()> {
    let mut properties = props();
    properties.retain(|(k, _)| *k != "auto.leader.rebalance.enable");
    properties.push(("auto.leader.rebalance.enable", "true"));
    properties.push(("leader.imbalance.check.interval.seconds", "1"));
    // Long enough that only the controlled shutdown, not fencing, can move the leaders in time.
    properties.retain(|(k, _)| *k != "broker.session.timeout.ms");
    properties.push(("broker.session.timeout.ms", "60000"));
    let mut cluster = Cluster::start(&["a", "b", "c"], &properties)?;
    let mut client = Client::connect(&cluster.node(1).address()).await?;
    assert_eq!(client.create_topic(TOPIC, PARTITIONS, &[]).await?, 0);
    let initial = wait_layout(&cluster, "initial layout", |l| {
        l.len() == PARTITIONS as usize && l.values().all(|p| p.0 > 0 && p.1.len() == 3)
    })
    .await?;
    // Every partition's Raft group has reported its leader (epoch > 0) and the preferred
    // replicas lead.
    for partition in 0..PARTITIONS {
        let batch = shoal_tests::records::batch(
            &[shoal_tests::records::TestRecord::new("k", "v", 0)],
            Compression::None,
        );
        produce_acked(&cluster, partition, &batch).await?;
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut client = Client::connect(&cluster.node(1).address()).await?;
        let metadata = client.metadata(Some(&[TOPIC]), false).await?;
        let reported = metadata.topics[0].partitions.iter().all(|p| {
            p.leader_epoch > 0 && p.replica_nodes.first().map(|b| b.0) == Some(p.leader_id.0)
        });
        if reported {
            break;
        }
        if Instant::now() > deadline {
            bail!("leaders not reported: {:?}", metadata.topics[0].partitions);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (&partition, &(leader, ..)) = initial.iter().next().context("a partition")?;

    // SIGTERM: by the time the process has exited, the metadata names another leader (the
    // broker is not fenced yet: its session lasts a minute).
    cluster.stop(leader)?;
    let survivor = (1..=3).find(|n| *n != leader).context("a survivor")?;
    let now = layout(&cluster.node(survivor).address()).await?;
    assert_ne!(
        now[&partition].0, leader,
        "controlled shutdown moved the leader: {now:?}"
    );
    assert!(now[&partition].0 > 0);

    // Back, in sync, and leading its partitions again.
    cluster.restart(leader)?;
    wait_layout(&cluster, "preferred leaders restored", |l| {
        l.values()
            .all(|(leader, isr, replicas, _)| isr.len() == 3 && Some(leader) == replicas.first())
    })
    .await
    .map_err(|e| e.context(cluster.output()))?;
    for id in 1..=3 {
        cluster.stop(id)?;
    }
    Ok(())
}

/// A consumer Fetch v12 of partition 0 at offset 0 from `address`, carrying
/// `current_leader_epoch` as a consumer does (the epoch its metadata gave it); returns the
/// partition's error code.
async fn fetch_with_epoch(
    address: &str,
    topic: &str,
    current_leader_epoch: i32,
) -> anyhow::Result<i16> {
    let spec = PartitionFetch {
        current_leader_epoch,
        ..PartitionFetch::new(topic, 0, 0)
    };
    let mut client = Client::connect(address).await?;
    Ok(client.fetch_partition(12, &spec).await?.error_code)
}

/// Consumers that start right after CreateTopics fetch with the leader epoch the metadata gives
/// them and are never fenced, by the leader or by the followers, from creation until the
/// leader has reported its term: a new partition's Raft leader is at term 1 before the metadata
/// learns that term, so the metadata must not give out an epoch no leader had (librdkafka
/// answers FENCED_LEADER_EPOCH with a 500 ms fetch backoff, which once made every consumer of a
/// new topic start about a second late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_a_new_partition_are_not_fenced_by_the_metadata_epoch() -> anyhow::Result<()> {
    let cluster = Cluster::start(&["a", "b", "c"], &props())?;
    let topic = "fresh";
    let mut client = Client::connect(&cluster.node(1).address()).await?;
    assert_eq!(client.create_topic(topic, 1, &[]).await?, 0);
    // Replicas that served a fetch carrying the reported term.
    let mut served = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    while served.len() < 3 {
        if Instant::now() > deadline {
            bail!(
                "only nodes {served:?} served the new partition with its reported epoch within \
                 {DEADLINE:?}\n{}",
                cluster.output()
            );
        }
        let metadata = client.metadata(Some(&[topic]), false).await?;
        let partition = metadata.topics.first().and_then(|t| t.partitions.first());
        if let Some(partition) = partition.filter(|p| p.error_code == 0 && p.leader_id.0 > 0) {
            let epoch = partition.leader_epoch;
            for replica in partition.replica_nodes.iter().map(|b| b.0) {
                let address = cluster.node(replica).address();
                match fetch_with_epoch(&address, topic, epoch).await? {
                    0 if epoch > 0 => {
                        served.insert(replica);
                    }
                    FENCED_LEADER_EPOCH => bail!(
                        "node {replica} fenced a consumer using the metadata's leader epoch {epoch}"
                    ),
                    // Served before the leader reported, or not ready yet (no leader elected,
                    // replica not open, follower not yet at the leader's term).
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const PRODUCERS: usize = 6;
const VALUE_BYTES: usize = 4 * 1024;

/// Per partition: (leader, leader epoch) from `address`'s metadata.
async fn leaders_of(address: &str, topic: &str) -> anyhow::Result<BTreeMap<i32, (i32, i32)>> {
    let topic = topic_metadata(address, topic).await?;
    Ok(topic
        .partitions
        .iter()
        .map(|p| (p.partition_index, (p.leader_id.0, p.leader_epoch)))
        .collect())
}

/// What one partition's producer saw: acknowledged batches and error codes by count.
#[derive(Debug, Default)]
struct ProduceTally {
    acked: u64,
    errors: BTreeMap<i16, u64>,
}

/// As a Java producer does: one Produce request to broker `leader` for every partition the
/// metadata says it leads, one idempotent batch each, until `stop`; a refused partition's batch
/// is retried in the next request, 100 ms later. Errors are counted per partition once
/// `counting` is set.
async fn produce_to_broker_until(
    addresses: BTreeMap<i32, String>,
    leader: i32,
    topic: &'static str,
    producer: (i64, i16),
    counting: Arc<AtomicBool>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<BTreeMap<i32, ProduceTally>> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use shoal_protocol::{RequestKind, ResponseKind};

    let mut tallies: BTreeMap<i32, ProduceTally> = BTreeMap::new();
    let mut sequences: BTreeMap<i32, i32> = BTreeMap::new();
    let mut client: Option<Client> = None;
    let mut led: Vec<i32> = Vec::new();
    let mut refreshed = Instant::now();
    while !*stop.borrow() {
        // Metadata refresh: on errors, and twice a second to pick up partitions that moved
        // here.
        if refreshed.elapsed() > Duration::from_millis(500) {
            client = None;
        }
        if client.is_none() {
            refreshed = Instant::now();
            for address in addresses.values() {
                if let Ok(l) = leaders_of(address, topic).await {
                    led = l
                        .iter()
                        .filter(|(_, v)| v.0 == leader)
                        .map(|(p, _)| *p)
                        .collect();
                    break;
                }
            }
            client = Client::connect(&addresses[&leader]).await.ok();
            if client.is_none() || led.is_empty() {
                client = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let data: Vec<PartitionProduceData> = led
            .iter()
            .map(|p| {
                let seq = *sequences.entry(*p).or_default();
                let values: Vec<String> = (0..3)
                    .map(|i| format!("p{p}-{}-{}", seq + i, "x".repeat(VALUE_BYTES)))
                    .collect();
                let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                PartitionProduceData::default()
                    .with_index(*p)
                    .with_records(Some(idempotent_batch(
                        producer.0,
                        producer.1,
                        seq,
                        &refs,
                        Compression::None,
                    )))
            })
            .collect();
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str(topic)))
                    .with_partition_data(data),
            ]);
        let sent = tokio::time::timeout(
            Duration::from_secs(35),
            c.send(ApiKey::Produce, 12, RequestKind::Produce(request)),
        )
        .await;
        let Ok(Ok(ResponseKind::Produce(response))) = sent else {
            client = None;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut failed = false;
        for r in response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
        {
            let tally = tallies.entry(r.index).or_default();
            if r.error_code == 0 {
                tally.acked += 1;
                *sequences.entry(r.index).or_default() += 3;
            } else {
                failed = true;
                if counting.load(Ordering::SeqCst) {
                    *tally.errors.entry(r.error_code).or_default() += 1;
                }
            }
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(tallies)
}

/// A rolling restart's broker coming back must not disturb the partitions it does not lead:
/// node 1 is killed under load, its leaderships move to nodes 2 and 3, and while it restarts
/// and catches up, every partition whose leader and epoch stay the same keeps accepting
/// acks=all produce. Bound: zero `NOT_LEADER_OR_FOLLOWER` on those partitions, since their
/// leader keeps its quorum (itself and the other survivor) throughout and has no reason to
/// refuse; Apache Kafka answers at most one there, from a client's stale metadata, which these
/// producers do not have (they refresh it twice a second and after every error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarting_follower_does_not_interrupt_unchanged_leaders() -> anyhow::Result<()> {
    const TOPIC30: &str = "rolling";
    const PARTITIONS30: i32 = 30;
    // Kafka's defaults for fencing and the ISR (a broker is fenced 9 s after its last
    // heartbeat), as in a rolling restart.
    let mut properties = props();
    properties
        .retain(|(k, _)| !matches!(*k, "broker.session.timeout.ms" | "replica.lag.time.max.ms"));
    let mut cluster = Cluster::start(&["a", "b", "c"], &properties)?;
    let mut client = Client::connect(&cluster.node(2).address()).await?;
    // Refused with INVALID_REPLICATION_FACTOR until all three brokers have registered.
    let deadline = Instant::now() + DEADLINE;
    loop {
        match client.create_topic(TOPIC30, PARTITIONS30, &[]).await? {
            0 => break,
            code if Instant::now() > deadline => bail!("create topic: error {code}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    wait_layout_of(&cluster, TOPIC30, "initial layout", |l| {
        l.len() == PARTITIONS30 as usize && l.values().all(|p| p.0 > 0 && p.1.len() == 3)
    })
    .await
    .map_err(|e| e.context(cluster.output()))?;
    // Three producers per surviving broker, each sending one request for all the partitions
    // that broker leads: several requests in flight on every partition, as a Java producer
    // keeps (max.in.flight.requests.per.connection=5).
    let mut producer_ids = Vec::new();
    for _ in 0..PRODUCERS {
        let (error, pid, epoch) = client.init_producer_id().await?;
        assert_eq!(error, 0);
        producer_ids.push((pid, epoch));
    }
    drop(client);
    // Every partition has taken a write before the crash, as under a steady producer.
    let initial = layout_of(&cluster.node(2).address(), TOPIC30).await?;
    for (partition, (leader, ..)) in initial {
        let batch = shoal_tests::records::batch(
            &[shoal_tests::records::TestRecord::new("k", "warm-up", 0)],
            Compression::None,
        );
        let mut client = Client::connect(&cluster.node(leader).address()).await?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let r = client
                .produce(TOPIC30, partition, batch.clone(), -1, 12)
                .await?
                .context("produce response")?;
            if r.error_code == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "warm-up write to partition {partition}: error {}",
                    r.error_code
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let counting = Arc::new(AtomicBool::new(false));
    let survivors: BTreeMap<i32, String> =
        (2..=3).map(|id| (id, cluster.node(id).address())).collect();
    let mut producers = tokio::task::JoinSet::new();
    for (i, producer) in producer_ids.iter().enumerate() {
        let leader = 2 + (i % 2) as i32;
        producers.spawn(produce_to_broker_until(
            survivors.clone(),
            leader,
            TOPIC30,
            *producer,
            Arc::clone(&counting),
            stop_rx.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.kill(1)?;
    wait_layout_of(&cluster, TOPIC30, "leaders moved off node 1", |l| {
        l.values().all(|(leader, isr, _, offline)| {
            *leader > 1 && !isr.contains(&1) && offline.contains(&1)
        })
    })
    .await
    .map_err(|e| e.context(cluster.output()))?;
    // Let the producers find the new leaders before the restart.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = leaders_of(&cluster.node(2).address(), TOPIC30).await?;
    // Leaders seen while the producers run, to tell unchanged partitions from moved ones.
    let watch_address = cluster.node(2).address();
    let mut watch_stop = stop_rx.clone();
    let watcher = tokio::spawn(async move {
        let mut seen: BTreeMap<i32, std::collections::BTreeSet<(i32, i32)>> = BTreeMap::new();
        while !*watch_stop.borrow() {
            if let Ok(now) = leaders_of(&watch_address, TOPIC30).await {
                for (p, l) in now {
                    seen.entry(p).or_default().insert(l);
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), watch_stop.changed()).await;
        }
        seen
    });
    counting.store(true, Ordering::SeqCst);
    cluster.restart(1)?;
    wait_layout_of(&cluster, TOPIC30, "node 1 back in sync", |l| {
        l.values()
            .all(|(_, isr, _, offline)| isr.len() == 3 && offline.is_empty())
    })
    .await
    .map_err(|e| e.context(cluster.output()))?;
    // Keep producing a while after the ISR is full again (openraft's lease is 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop_tx.send(true)?;
    let mut tallies = BTreeMap::new();
    while let Some(r) = producers.join_next().await {
        for (partition, tally) in r?? {
            let sum: &mut ProduceTally = tallies.entry(partition).or_default();
            sum.acked += tally.acked;
            for (code, n) in tally.errors {
                *sum.errors.entry(code).or_default() += n;
            }
        }
    }
    let seen = watcher.await?;
    let after = leaders_of(&cluster.node(2).address(), TOPIC30).await?;
    // Partitions whose leader and epoch never changed while the producers ran.
    let unchanged: Vec<i32> = (0..PARTITIONS30)
        .filter(|p| {
            before.get(p) == after.get(p)
                && seen
                    .get(p)
                    .is_some_and(|s| s.len() == 1 && s.contains(&before[p]))
        })
        .collect();
    let refused: BTreeMap<i32, u64> = unchanged
        .iter()
        .filter_map(|p| {
            let n = tallies
                .get(p)?
                .errors
                .get(&NOT_LEADER_OR_FOLLOWER)
                .copied()?;
            Some((*p, n))
        })
        .collect();
    let total: u64 = refused.values().sum();
    eprintln!(
        "leaders before {before:?}\nafter {after:?}\nunchanged {unchanged:?}\n\
         NOT_LEADER_OR_FOLLOWER per unchanged partition {refused:?} (total {total})\n\
         tallies {tallies:?}"
    );
    assert!(
        unchanged.len() >= PARTITIONS30 as usize / 2,
        "most leaders stay put (no rebalance): {unchanged:?}"
    );
    for p in 0..PARTITIONS30 {
        assert!(
            tallies.get(&p).is_some_and(|t| t.acked > 0),
            "partition {p} took writes: {:?}",
            tallies.get(&p)
        );
    }
    assert_eq!(
        total, 0,
        "leaders that never changed refused writes: {refused:?}"
    );
    for id in 1..=3 {
        cluster.stop(id)?;
    }
    Ok(())
}
