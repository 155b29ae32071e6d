//! A seeded fault-injection run: three nodes on the simulated network, three partitions with
//! three replicas each, a writer per partition appending with acks=all, and a nemesis that
//! drops and delays messages, partitions the network, crashes nodes (losing everything not
//! fsynced) and restarts them on their on-disk logs, moves leadership and applies retention.
//! Checked all along: `log_start <= high watermark <= log end` on every replica. Checked at
//! the end, after healing: every replica holds the same entries with the same offsets, and
//! every acknowledged batch is present at its acknowledged offsets (unless retention released
//! it), byte for byte.
//!
//! The seed fixes the fault schedule; a failure prints it. Runs:
//! - default (`cargo test`): two seeds, a short schedule;
//! - `SHOAL_SIM_SEED=<n>`: that seed only (reproduce a failure);
//! - `SHOAL_SIM_SEEDS=<k> SHOAL_SIM_STEPS=<s>`: `k` seeds of `s` steps (long manual runs).

mod harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use harness::{Cluster, batch, partition};
use shoal_replication::{
    NodeId, PartitionId, ReadBound, ReplicaManager, ReplicationConfig, Role, SimFaults, SimRng,
};
use shoal_storage::{Clock, LogConfig, SystemClock};

const NODES: [NodeId; 3] = [1, 2, 3];
const T: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Acked {
    partition: PartitionId,
    base: i64,
    last: i64,
    batch: Bytes,
}

/// Prints the seed if the run panics (assertions inside the run).
struct SeedReporter(u64);

impl Drop for SeedReporter {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "fault simulation failed; reproduce with SHOAL_SIM_SEED={}",
                self.0
            );
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn seeded_faults_lose_no_acknowledged_write() {
    // RUST_LOG=shoal_replication=debug shows what the nodes did.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
    let steps = env_u64("SHOAL_SIM_STEPS").unwrap_or(12);
    let seeds: Vec<u64> = match (env_u64("SHOAL_SIM_SEED"), env_u64("SHOAL_SIM_SEEDS")) {
        (Some(seed), _) => vec![seed],
        (None, Some(k)) => {
            let base = SystemClock.now_ms() as u64;
            (0..k).map(|i| base.wrapping_add(i * 7919)).collect()
        }
        (None, None) => vec![0x5eed_0001, 0x5eed_0002],
    };
    for seed in seeds {
        let _reporter = SeedReporter(seed);
        eprintln!("fault simulation: seed {seed}, {steps} steps");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        if let Err(e) = rt.block_on(run(seed, steps)) {
            panic!(
                "fault simulation failed with seed {seed} (reproduce with SHOAL_SIM_SEED={seed}): {e:#}"
            );
        }
    }
}

fn live(c: &Cluster) -> BTreeMap<NodeId, Arc<ReplicaManager>> {
    c.live.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `log_start <= hw <= leo` on every live replica (read in that order: each only grows,
/// except the log end, which never drops below the high watermark).
fn check_bounds(c: &Cluster) -> Result<()> {
    for (n, m) in live(c) {
        for p in c.partitions.keys() {
            let Some(r) = m.partition(p) else { continue };
            let start = r.log().log_start_offset();
            let hw = r.high_watermark();
            let leo = r.log().log_end_offset();
            ensure!(
                start <= hw && hw <= leo,
                "node {n} {p}: log start {start}, high watermark {hw}, log end {leo}"
            );
        }
    }
    Ok(())
}

fn spawn_writer(
    live: Arc<std::sync::RwLock<BTreeMap<NodeId, Arc<ReplicaManager>>>>,
    p: PartitionId,
    acked: Arc<Mutex<Vec<Acked>>>,
    stop: Arc<AtomicBool>,
    tag: u8,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0usize;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let b = batch(1 + n % 3, 64, tag.wrapping_add(n as u8));
            let leader = {
                let managers = live.read().unwrap_or_else(|e| e.into_inner()).clone();
                managers
                    .values()
                    .filter_map(|m| m.partition(&p))
                    .find(|r| r.leadership().role == Role::Leader)
            };
            let Some(r) = leader else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            match tokio::time::timeout(Duration::from_secs(3), r.append_committed(b.clone())).await
            {
                Ok(Ok(a)) => acked.lock().unwrap_or_else(|e| e.into_inner()).push(Acked {
                    partition: p,
                    base: a.info.base_offset,
                    last: a.info.last_offset,
                    batch: b,
                }),
                // Not acknowledged: may or may not be in the log; nothing is promised.
                Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
}

async fn run(seed: u64, steps: u64) -> Result<()> {
    let mut rng = SimRng::new(seed);
    let log_config = LogConfig {
        segment_bytes: 16 * 1024,
        retention_bytes: 64 * 1024,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let mut c = Cluster::new(
        &NODES,
        seed,
        ReplicationConfig::fast_for_tests(),
        log_config,
    )
    .await?;
    let parts: Vec<PartitionId> = (0..3).map(partition).collect();
    for (i, p) in parts.iter().enumerate() {
        let mut replicas = NODES.to_vec();
        replicas.rotate_left(i);
        c.create_partition(*p, &replicas).await?;
    }
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            spawn_writer(
                Arc::clone(&c.live),
                *p,
                Arc::clone(&acked),
                Arc::clone(&stop),
                40 * i as u8,
            )
        })
        .collect();

    for step in 0..steps {
        let action = rng.range(0, 7);
        let node = NODES[rng.range(0, 2) as usize];
        let hold = Duration::from_millis(rng.range(100, 600));
        match action {
            0 => tokio::time::sleep(hold).await,
            1 => {
                eprintln!("step {step}: isolate node {node} for {hold:?}");
                let rest: std::collections::BTreeSet<NodeId> =
                    NODES.iter().copied().filter(|n| *n != node).collect();
                c.net.partition(&[[node].into(), rest]);
                tokio::time::sleep(hold).await;
                c.net.heal();
            }
            2 => {
                eprintln!("step {step}: crash node {node} (unsynced data lost), down {hold:?}");
                c.crash(node).await?;
                tokio::time::sleep(hold).await;
                c.restart(node).await?;
            }
            3 => {
                eprintln!("step {step}: restart node {node}");
                c.stop(node).await?;
                tokio::time::sleep(hold / 4).await;
                c.restart(node).await?;
            }
            4 => {
                let faults = SimFaults {
                    drop_per_mille: rng.range(0, 60) as u32,
                    min_delay_us: 0,
                    max_delay_us: rng.range(0, 5000),
                };
                eprintln!("step {step}: faults {faults:?}");
                c.net.set_faults(faults);
                tokio::time::sleep(hold).await;
            }
            5 => {
                let p = parts[rng.range(0, 2) as usize];
                eprintln!("step {step}: move leadership of {p} to node {node}");
                for (_, m) in live(&c) {
                    if let Some(r) = m.partition(&p)
                        && r.leadership().role == Role::Leader
                    {
                        // May fail under faults; that is part of the test.
                        let _ = r.transfer_leadership(node, Duration::from_secs(2)).await;
                    }
                }
            }
            6 => {
                eprintln!("step {step}: retention");
                let now = SystemClock.now_ms();
                for (_, m) in live(&c) {
                    for p in &parts {
                        if let Some(r) = m.partition(p) {
                            let _ = r.enforce_retention(now).await;
                        }
                    }
                }
                tokio::time::sleep(hold / 2).await;
            }
            _ => {
                let from = node;
                let to = NODES[(rng.range(1, 2) as usize
                    + NODES.iter().position(|n| *n == node).unwrap_or(0))
                    % 3];
                eprintln!("step {step}: cut link {from} -> {to} for {hold:?}");
                c.net.cut_link(from, to);
                tokio::time::sleep(hold).await;
                c.net.heal();
            }
        }
        check_bounds(&c)?;
    }

    // Heal everything and let the cluster settle.
    c.net.heal();
    c.net.set_faults(SimFaults::default());
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.context("writer task")?;
    }
    for n in NODES {
        if c.manager(n).is_err() {
            c.restart(n).await?;
        }
    }
    check_bounds(&c)?;
    let acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    eprintln!(
        "seed {seed}: {} acknowledged appends; network {:?}",
        acked.len(),
        c.net.stats()
    );
    ensure!(!acked.is_empty(), "no append was acknowledged at all");
    for p in &parts {
        // One more committed append: the leader's term then covers everything before it.
        let (_, last) = c.append_committed(p, batch(1, 8, 255), T).await?;
        c.wait_hw(p, last + 1, T).await?;
        verify_partition(&c, p, &acked).await?;
    }
    check_bounds(&c)?;
    c.shutdown().await;
    Ok(())
}

async fn verify_partition(c: &Cluster, p: &PartitionId, acked: &[Acked]) -> Result<()> {
    // The committed part of every log (entries below the high watermark) is identical where
    // the logs overlap (retention may have released different prefixes). Above it a replica
    // may keep a stale uncommitted tail until the leader overwrites that index.
    // High watermarks converge (a late election may still commit a blank entry).
    let deadline = Instant::now() + T;
    loop {
        let hws: Vec<i64> = NODES
            .iter()
            .map(|n| Ok(c.replica(*n, p)?.high_watermark()))
            .collect::<Result<_>>()?;
        if hws.iter().all(|h| *h == hws[0]) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{p}: high watermarks differ: {hws:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut logs = Vec::new();
    for n in NODES {
        let r = c.replica(n, p)?;
        let hw = r.high_watermark();
        let committed: Vec<shoal_storage::StoredEntry> = c
            .entries(n, p)?
            .into_iter()
            .filter(|e| e.meta.next_offset <= hw)
            .collect();
        logs.push((n, committed));
    }
    let first = logs
        .iter()
        .filter_map(|(_, l)| l.first().map(|e| e.meta.index))
        .max()
        .unwrap_or(0);
    let reference = &logs[0].1;
    for (n, l) in &logs {
        let mine: Vec<_> = l.iter().filter(|e| e.meta.index >= first).collect();
        let theirs: Vec<_> = reference.iter().filter(|e| e.meta.index >= first).collect();
        ensure!(mine == theirs, "{p}: committed entries differ on node {n}");
    }
    // Acknowledged offsets never overlap (an overwrite would).
    let mut mine: Vec<&Acked> = acked.iter().filter(|a| a.partition == *p).collect();
    mine.sort_by_key(|a| a.base);
    for w in mine.windows(2) {
        ensure!(
            w[0].last < w[1].base,
            "{p}: acknowledged ranges overlap: {:?} {:?}",
            (w[0].base, w[0].last),
            (w[1].base, w[1].last)
        );
    }
    // Every acknowledged batch is where it was acknowledged, on every replica.
    for n in NODES {
        let r = c.replica(n, p)?;
        let start = r.log().log_start_offset();
        for a in &mine {
            if a.last < start {
                continue; // released by retention on this replica
            }
            let out = r
                .read(a.base, a.batch.len(), ReadBound::HighWatermark, true)
                .with_context(|| format!("node {n} {p}: read acknowledged offset {}", a.base))?;
            ensure!(
                out.first_offset == Some(a.base),
                "node {n} {p}: acknowledged batch at {} missing (found {:?})",
                a.base,
                out.first_offset
            );
            // Compare all but the fields the log stamps (baseOffset, partitionLeaderEpoch).
            let got = &out.records[..a.batch.len().min(out.records.len())];
            ensure!(
                got.len() == a.batch.len()
                    && got[8..12] == a.batch[8..12]
                    && got[16..] == a.batch[16..],
                "node {n} {p}: bytes at acknowledged offset {} differ",
                a.base
            );
        }
    }
    Ok(())
}
