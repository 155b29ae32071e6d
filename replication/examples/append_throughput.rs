//! Throughput and latency of acks=all appends: three nodes in one process on real TCP
//! (loopback), logs on the local disk, group commit with fdatasync (or page-cache acks with
//! `--flush=never`). Each writer appends one batch at a time and waits for its commit.
//!
//! ```text
//! cargo run --release -p shoal-replication --example append_throughput -- \
//!     [--partitions=1] [--writers=64] [--records=1] [--value-bytes=100] [--secs=10] \
//!     [--flush=group_commit|never]
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use shoal_replication::{
    NodeId, PartitionId, PartitionReplica, PartitionSpec, ReplicaManager, ReplicationConfig, Role,
    TcpTransport, TcpTransportConfig,
};
use shoal_storage::{BatchBuilder, FlushPolicy, LogConfig, RealFs, SystemClock};

fn arg(name: &str, default: &str) -> String {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
        .unwrap_or_else(|| default.to_string())
}

fn num(name: &str, default: u64) -> u64 {
    arg(name, &default.to_string()).parse().unwrap_or(default)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn leader(managers: &[Arc<ReplicaManager>], p: &PartitionId) -> Result<PartitionReplica> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = managers
            .iter()
            .filter_map(|m| m.partition(p))
            .find(|r| r.leadership().role == Role::Leader)
        {
            return Ok(r);
        }
        if Instant::now() > deadline {
            bail!("no leader for {p}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let partitions = num("partitions", 1) as i32;
    let writers = num("writers", 64);
    let records = num("records", 1) as usize;
    let value_bytes = num("value-bytes", 100) as usize;
    let secs = num("secs", 10);
    let flush = match arg("flush", "group_commit").as_str() {
        "never" => FlushPolicy::Never,
        _ => FlushPolicy::GroupCommit,
    };
    let config = ReplicationConfig::default();
    let root = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))?;
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
    let parts: Vec<PartitionId> = (0..partitions)
        .map(|p| PartitionId {
            topic_id: uuid::Uuid::from_u128(0xbe7c),
            partition: p,
        })
        .collect();
    let log_config = LogConfig {
        flush_policy: flush,
        ..LogConfig::default()
    };
    for p in &parts {
        for (k, m) in managers.iter().enumerate() {
            m.open_partition(PartitionSpec {
                id: *p,
                dir: root
                    .path()
                    .join(format!("n{}", ids[k]))
                    .join(format!("p{}", p.partition)),
                log_config: log_config.clone(),
                replicas: replicas.clone(),
                bootstrap: ids[k] == ids[p.partition as usize % 3],
                observer: None,
            })
            .await?;
        }
    }
    let mut b = BatchBuilder::new(1_700_000_000_000);
    for _ in 0..records {
        b.add_value(&vec![b'x'; value_bytes]);
    }
    let batch = b.build();
    // Warm up: every leader accepts writes (its lease is established).
    for p in &parts {
        loop {
            if leader(&managers, p)
                .await?
                .append_committed(batch.clone())
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for p in &parts {
        let r = leader(&managers, p).await?;
        for _ in 0..writers {
            let r = r.clone();
            let batch = batch.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                let mut failed = 0u64;
                let mut first_error = None;
                while Instant::now() < end {
                    let t = Instant::now();
                    match r.append_committed(batch.clone()).await {
                        Ok(_) => lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                        Err(e) => {
                            failed += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (lat, failed, first_error)
            }));
        }
    }
    let mut all = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for t in tasks {
        let (lat, f, e) = t.await?;
        all.extend(lat);
        failed += f;
        first_error = first_error.or(e);
    }
    let wall = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let n = all.len() as f64;
    println!(
        "flush={flush:?} partitions={partitions} writers/partition={writers} batch={} records x {value_bytes} B ({} B)",
        records,
        batch.len()
    );
    println!(
        "  {:.0} appends/s, {:.0} records/s, {:.1} MB/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; {failed} failed",
        n / wall,
        n * records as f64 / wall,
        n * batch.len() as f64 / wall / 1e6,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        percentile(&all, 1.0),
    );
    if let Some(e) = first_error {
        println!("  first failure: {e}");
    }
    let frames: u64 = transports.iter().map(|t| t.stats().frames_sent).sum();
    let writes: u64 = transports.iter().map(|t| t.stats().writes).sum();
    println!(
        "  inter-broker: {:.1} frames per writev",
        frames as f64 / writes.max(1) as f64
    );
    for m in &managers {
        m.shutdown().await;
    }
    for t in &transports {
        t.shutdown();
    }
    Ok(())
}
