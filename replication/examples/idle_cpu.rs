//! Idle cost of many Raft groups: three nodes in one process on real TCP (loopback), each
//! hosting one replica of every partition, leaders spread over the nodes. After every
//! partition has a leader and one committed append, the cluster idles and the example
//! reports the process's CPU use (all three nodes together), inter-broker traffic and memory.
//!
//! ```text
//! cargo run --release -p shoal-replication --example idle_cpu -- \
//!     [--partitions=1000] [--idle-secs=20] [--heartbeat-ms=500]
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use shoal_replication::{
    NodeId, PartitionId, PartitionSpec, ReplicaManager, ReplicationConfig, Role, TcpTransport,
    TcpTransportConfig,
};
use shoal_storage::{BatchBuilder, LogConfig, RealFs, SystemClock};

fn arg(name: &str, default: u64) -> u64 {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds of this process, from `/proc/self/stat`.
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based) of the whole line, 12 and 13 here.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(100);
    Ok(ticks as f64 / hz as f64)
}

fn rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let partitions = arg("partitions", 1000) as i32;
    let idle_secs = arg("idle-secs", 20);
    let heartbeat_ms = arg("heartbeat-ms", 500);
    let config = ReplicationConfig {
        heartbeat_interval_ms: heartbeat_ms,
        election_timeout_min_ms: heartbeat_ms * 5,
        election_timeout_max_ms: heartbeat_ms * 10,
        ..ReplicationConfig::default()
    };
    config.validate()?;
    let root = tempfile::tempdir()?;
    let ids: [NodeId; 3] = [1, 2, 3];
    let mut transports = Vec::new();
    let mut managers = Vec::new();
    for id in ids {
        let local: SocketAddr = "127.0.0.1:0".parse()?;
        let t = TcpTransport::bind(id, local, TcpTransportConfig::default()).await?;
        let m = ReplicaManager::new(
            id,
            config.clone(),
            t.clone(),
            RealFs::shared(),
            Arc::new(SystemClock),
        )?;
        transports.push(t);
        managers.push(m);
    }
    for (i, t) in transports.iter().enumerate() {
        for (j, u) in transports.iter().enumerate() {
            if i != j {
                t.set_peer(ids[j], u.local_addr());
            }
        }
    }
    let replicas: BTreeSet<NodeId> = ids.into();
    let started = Instant::now();
    let parts: Vec<PartitionId> = (0..partitions)
        .map(|p| PartitionId {
            topic_id: uuid::Uuid::from_u128(0x1d1e),
            partition: p,
        })
        .collect();
    for p in &parts {
        let bootstrap = ids[(p.partition as usize) % 3];
        for (k, m) in managers.iter().enumerate() {
            m.open_partition(PartitionSpec {
                id: *p,
                dir: root
                    .path()
                    .join(format!("n{}", ids[k]))
                    .join(format!("p{}", p.partition)),
                log_config: LogConfig::default(),
                replicas: replicas.clone(),
                bootstrap: ids[k] == bootstrap,
                observer: None,
            })
            .await?;
        }
    }
    eprintln!(
        "opened {} replicas in {:?}",
        3 * partitions,
        started.elapsed()
    );
    // One committed append per partition: every group elected and replicating.
    let mut b = BatchBuilder::new(0);
    b.add_value(b"hello");
    let batch = b.build();
    let deadline = Instant::now() + Duration::from_secs(300);
    for p in &parts {
        loop {
            let leader = managers
                .iter()
                .filter_map(|m| m.partition(p))
                .find(|r| r.leadership().role == Role::Leader);
            if let Some(r) = leader
                && r.append_committed(batch.clone()).await.is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("partition {p} did not commit");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "every partition committed an append after {:?}",
        started.elapsed()
    );
    // Let replication of the last appends and the commit notifications settle.
    tokio::time::sleep(Duration::from_millis(config.election_timeout_max_ms)).await;

    let frames0: u64 = transports.iter().map(|t| t.stats().frames_sent).sum();
    let writes0: u64 = transports.iter().map(|t| t.stats().writes).sum();
    let bytes0: u64 = transports.iter().map(|t| t.stats().bytes_sent).sum();
    let cpu0 = cpu_seconds()?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu0;
    let frames: u64 = transports
        .iter()
        .map(|t| t.stats().frames_sent)
        .sum::<u64>()
        - frames0;
    let writes: u64 = transports.iter().map(|t| t.stats().writes).sum::<u64>() - writes0;
    let bytes: u64 = transports.iter().map(|t| t.stats().bytes_sent).sum::<u64>() - bytes0;
    let leaders: Vec<usize> = managers
        .iter()
        .map(|m| {
            parts
                .iter()
                .filter(|p| {
                    m.partition(p)
                        .is_some_and(|r| r.leadership().role == Role::Leader)
                })
                .count()
        })
        .collect();
    println!(
        "partitions: {partitions} (replication factor 3, 3 nodes in one process, TCP loopback)"
    );
    println!(
        "heartbeat: {heartbeat_ms} ms, election timeout: {}-{} ms",
        config.election_timeout_min_ms, config.election_timeout_max_ms
    );
    println!("leaders per node: {leaders:?}");
    println!(
        "idle for {wall:.1} s: {:.3} cores for the whole cluster, {:.3} per node",
        cpu / wall,
        cpu / wall / 3.0
    );
    println!(
        "inter-broker frames: {:.0}/s ({:.0} B/s), {:.1} frames per writev",
        frames as f64 / wall,
        bytes as f64 / wall,
        frames as f64 / writes.max(1) as f64
    );
    println!(
        "resident memory: {:.0} MiB ({:.1} KiB per replica)",
        rss_mib()?,
        rss_mib()? * 1024.0 / (3.0 * partitions as f64)
    );
    for m in &managers {
        m.shutdown().await;
    }
    for t in &transports {
        t.shutdown();
    }
    Ok(())
}
