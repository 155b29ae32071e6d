//! Three nodes in one process, talking real TCP on loopback (free ports): many partitions
//! share one connection per node pair; offsets, bytes and high watermarks agree; leadership
//! moves; a stopped node catches up after it comes back on a new port.

mod harness;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use harness::{batch, partition};
use shoal_replication::{
    NodeId, PartitionId, PartitionSpec, ReplicaManager, ReplicationConfig, Role, TcpTransport,
    TcpTransportConfig,
};
use shoal_storage::{LogConfig, RealFs, SystemClock};

const T: Duration = Duration::from_secs(20);

struct TcpNode {
    transport: Arc<TcpTransport>,
    manager: Arc<ReplicaManager>,
}

async fn start_node(id: NodeId) -> Result<TcpNode> {
    let local: SocketAddr = "127.0.0.1:0".parse()?;
    let transport = TcpTransport::bind(id, local, TcpTransportConfig::default()).await?;
    let manager = ReplicaManager::new(
        id,
        ReplicationConfig::fast_for_tests(),
        transport.clone(),
        RealFs::shared(),
        Arc::new(SystemClock),
    )?;
    Ok(TcpNode { transport, manager })
}

fn connect_all(nodes: &[(NodeId, &TcpNode)]) {
    for (a, na) in nodes {
        for (b, nb) in nodes {
            if a != b {
                na.transport.set_peer(*b, nb.transport.local_addr());
            }
        }
    }
}

fn spec(
    root: &std::path::Path,
    node: NodeId,
    p: PartitionId,
    replicas: &BTreeSet<NodeId>,
    bootstrap: NodeId,
) -> PartitionSpec {
    PartitionSpec {
        id: p,
        dir: root
            .join(format!("node-{node}"))
            .join(format!("p-{}", p.partition)),
        log_config: LogConfig::default(),
        replicas: replicas.clone(),
        bootstrap: node == bootstrap,
        observer: None,
    }
}

async fn leader_of(nodes: &[(NodeId, &TcpNode)], p: &PartitionId) -> Result<NodeId> {
    let deadline = Instant::now() + T;
    loop {
        let leaders: Vec<NodeId> = nodes
            .iter()
            .filter(|(_, n)| {
                n.manager
                    .partition(p)
                    .is_some_and(|r| r.leadership().role == Role::Leader)
            })
            .map(|(id, _)| *id)
            .collect();
        if leaders.len() == 1 {
            return Ok(leaders[0]);
        }
        if Instant::now() > deadline {
            bail!("no single leader for {p}: {leaders:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn append_retrying(
    nodes: &[(NodeId, &TcpNode)],
    p: &PartitionId,
    records: usize,
    tag: u8,
) -> Result<(i64, i64)> {
    let deadline = Instant::now() + T;
    loop {
        let leader = leader_of(nodes, p).await?;
        let node = nodes
            .iter()
            .find(|(id, _)| *id == leader)
            .context("leader node")?
            .1;
        let r = node.manager.partition(p).context("replica")?;
        match r.append_committed(batch(records, 100, tag)).await {
            Ok(a) => return Ok((a.info.base_offset, a.info.last_offset)),
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => bail!("append to {p}: {e}"),
        }
    }
}

async fn wait_identical(nodes: &[(NodeId, &TcpNode)], p: &PartitionId, hw: i64) -> Result<()> {
    for (id, n) in nodes {
        let r = n.manager.partition(p).context("replica")?;
        let mut rx = r.watch_high_watermark();
        tokio::time::timeout(T, rx.wait_for(|h| *h >= hw))
            .await
            .with_context(|| format!("node {id} hw"))??;
    }
    let logs: Vec<Vec<shoal_storage::StoredEntry>> = nodes
        .iter()
        .map(|(_, n)| {
            let r = n.manager.partition(p).context("replica")?;
            let log = r.log();
            Ok(log.read_entries(log.first_index(), log.next_index(), usize::MAX)?)
        })
        .collect::<Result<_>>()?;
    for l in &logs[1..] {
        assert_eq!(l.len(), logs[0].len());
        for (a, b) in l.iter().zip(&logs[0]) {
            assert_eq!(a.meta, b.meta);
            assert_eq!(a.bytes, b.bytes);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_many_partitions_over_tcp() -> Result<()> {
    let root = tempfile::tempdir()?;
    let (n1, n2, mut n3) = (
        start_node(1).await?,
        start_node(2).await?,
        start_node(3).await?,
    );
    connect_all(&[(1, &n1), (2, &n2), (3, &n3)]);
    let replicas: BTreeSet<NodeId> = [1, 2, 3].into();
    let parts: Vec<PartitionId> = (0..8).map(partition).collect();
    for (i, p) in parts.iter().enumerate() {
        // Leaders spread over the nodes: the bootstrapping replica leads first.
        let bootstrap = 1 + (i as u64 % 3);
        for (id, n) in [(1, &n1), (2, &n2), (3, &n3)] {
            n.manager
                .open_partition(spec(root.path(), id, *p, &replicas, bootstrap))
                .await?;
        }
    }
    let mut ends = Vec::new();
    {
        let nodes = [(1, &n1), (2, &n2), (3, &n3)];
        for p in &parts {
            let mut last = -1;
            for k in 0..10u8 {
                let (b, l) = append_retrying(&nodes, p, 1 + k as usize % 4, k).await?;
                if last >= 0 {
                    assert_eq!(b, last + 1, "offsets are contiguous within a term");
                }
                last = l;
            }
            ends.push(last + 1);
            wait_identical(&nodes, p, last + 1).await?;
        }
        // Every node pair shares one connection, whatever the number of partitions.
        let leaders: BTreeSet<NodeId> = {
            let mut s = BTreeSet::new();
            for p in &parts {
                s.insert(leader_of(&nodes, p).await?);
            }
            s
        };
        assert_eq!(leaders.len(), 3, "leaders spread over the nodes");
        for (id, n) in &nodes {
            let peers: Vec<NodeId> = [1, 2, 3].into_iter().filter(|p| p != id).collect();
            assert_eq!(n.transport.connected_peers(), peers, "node {id}");
        }
        // Leadership moves over TCP too.
        let p = parts[0];
        let old = leader_of(&nodes, &p).await?;
        let to = if old == 3 { 1 } else { 3 };
        let node = nodes.iter().find(|(id, _)| *id == old).context("node")?.1;
        node.manager
            .partition(&p)
            .context("replica")?
            .transfer_leadership(to, T)
            .await?;
        assert_eq!(leader_of(&nodes, &p).await?, to);
    }
    // Node 3 stops; the others keep committing; it returns on a new port and catches up.
    n3.manager.shutdown().await;
    n3.transport.shutdown();
    {
        let nodes = [(1, &n1), (2, &n2)];
        for p in &parts {
            let (_, l) = append_retrying(&nodes, p, 3, 99).await?;
            ends.push(l + 1);
        }
    }
    n3 = start_node(3).await?;
    connect_all(&[(1, &n1), (2, &n2), (3, &n3)]);
    for (i, p) in parts.iter().enumerate() {
        let bootstrap = 1 + (i as u64 % 3);
        n3.manager
            .open_partition(spec(root.path(), 3, *p, &replicas, bootstrap))
            .await?;
    }
    let nodes = [(1, &n1), (2, &n2), (3, &n3)];
    for (i, p) in parts.iter().enumerate() {
        let hw = ends[parts.len() + i];
        wait_identical(&nodes, p, hw).await?;
    }
    for n in [&n1, &n2, &n3] {
        n.manager.shutdown().await;
        n.transport.shutdown();
    }
    Ok(())
}
