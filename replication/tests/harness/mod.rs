//! A cluster of replica managers in one process on the simulated network, each node with its
//! own fault-injecting file system (so a crash can drop what was not fsynced).

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use shoal_replication::{
    NodeId, PartitionId, PartitionReplica, PartitionSpec, ReplicaManager, ReplicationConfig, Role,
    SimNetwork,
};
use shoal_storage::fault_fs::{CrashMode, FaultFs, FaultKind, FaultOp, FaultRule};
use shoal_storage::{BatchBuilder, LogConfig, StoredEntry, SystemClock};

/// One uncompressed batch of `records` records of `value_len` bytes.
pub fn batch(records: usize, value_len: usize, tag: u8) -> Bytes {
    let mut b = BatchBuilder::new(1_700_000_000_000);
    for i in 0..records {
        let mut v = vec![tag; value_len];
        if let Some(first) = v.first_mut() {
            *first = i as u8;
        }
        b.add_value(&v);
    }
    b.build()
}

pub fn partition(n: i32) -> PartitionId {
    PartitionId {
        topic_id: uuid::Uuid::from_u128(0xfeed_0000 + n as u128),
        partition: n,
    }
}

pub struct Node {
    pub id: NodeId,
    pub fs: FaultFs,
    pub manager: Option<Arc<ReplicaManager>>,
}

pub struct Cluster {
    pub net: Arc<SimNetwork>,
    pub nodes: BTreeMap<NodeId, Node>,
    pub root: tempfile::TempDir,
    pub config: ReplicationConfig,
    pub log_config: LogConfig,
    /// Partition replica sets, for reopening after restarts.
    pub partitions: BTreeMap<PartitionId, BTreeSet<NodeId>>,
    /// The managers of the nodes that are up, shared with tasks that run beside the test.
    pub live: Arc<RwLock<BTreeMap<NodeId, Arc<ReplicaManager>>>>,
}

impl Cluster {
    pub async fn new(
        ids: &[NodeId],
        seed: u64,
        config: ReplicationConfig,
        log_config: LogConfig,
    ) -> Result<Cluster> {
        let net = SimNetwork::new(seed);
        let root = tempfile::tempdir()?;
        let mut nodes = BTreeMap::new();
        for id in ids {
            nodes.insert(
                *id,
                Node {
                    id: *id,
                    fs: FaultFs::new(),
                    manager: None,
                },
            );
        }
        let mut c = Cluster {
            net,
            nodes,
            root,
            config,
            log_config,
            partitions: BTreeMap::new(),
            live: Arc::new(RwLock::new(BTreeMap::new())),
        };
        for id in ids {
            c.start(*id)?;
        }
        Ok(c)
    }

    pub fn dir(&self, node: NodeId, p: &PartitionId) -> PathBuf {
        self.root
            .path()
            .join(format!("node-{node}"))
            .join(format!("{}-{}", p.topic_id, p.partition))
    }

    fn start(&mut self, id: NodeId) -> Result<()> {
        let node = self.nodes.get_mut(&id).context("no such node")?;
        let manager = ReplicaManager::new(
            id,
            self.config.clone(),
            self.net.transport(id),
            Arc::new(node.fs.clone()),
            Arc::new(SystemClock),
        )?;
        node.manager = Some(Arc::clone(&manager));
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, manager);
        Ok(())
    }

    fn mark_down(&self, id: NodeId) {
        self.live
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    pub fn manager(&self, id: NodeId) -> Result<Arc<ReplicaManager>> {
        self.nodes
            .get(&id)
            .and_then(|n| n.manager.clone())
            .with_context(|| format!("node {id} is down"))
    }

    pub fn up_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.manager.is_some())
            .map(|n| n.id)
            .collect()
    }

    fn spec(&self, node: NodeId, p: PartitionId, replicas: &BTreeSet<NodeId>) -> PartitionSpec {
        PartitionSpec {
            id: p,
            dir: self.dir(node, &p),
            log_config: self.log_config.clone(),
            replicas: replicas.clone(),
            bootstrap: replicas.first() == Some(&node),
            observer: None,
        }
    }

    /// Opens the partition on each of its replicas (the first bootstraps the group).
    pub async fn create_partition(&mut self, p: PartitionId, replicas: &[NodeId]) -> Result<()> {
        let set: BTreeSet<NodeId> = replicas.iter().copied().collect();
        for n in replicas {
            self.manager(*n)?
                .open_partition(self.spec(*n, p, &set))
                .await?;
        }
        self.partitions.insert(p, set);
        Ok(())
    }

    pub fn replica(&self, node: NodeId, p: &PartitionId) -> Result<PartitionReplica> {
        self.manager(node)?
            .partition(p)
            .with_context(|| format!("node {node} does not host {p}"))
    }

    /// Waits until one live replica leads `p` and every live replica agrees.
    pub async fn wait_leader(&self, p: &PartitionId, timeout: Duration) -> Result<NodeId> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut leaders = BTreeSet::new();
            let mut views = BTreeSet::new();
            for n in self.up_nodes() {
                if let Ok(r) = self.replica(n, p) {
                    let l = r.leadership();
                    if l.role == Role::Leader {
                        leaders.insert(n);
                    }
                    views.insert(l.leader);
                }
            }
            if leaders.len() == 1 && views.len() == 1 {
                return leaders.first().copied().context("leader");
            }
            if Instant::now() > deadline {
                bail!(
                    "no agreed leader for {p} after {timeout:?}: leaders {leaders:?}, views {views:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Appends with acks=all on whichever node leads, retrying not-leader answers.
    pub async fn append_committed(
        &self,
        p: &PartitionId,
        batches: Bytes,
        timeout: Duration,
    ) -> Result<(i64, i64)> {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self.wait_leader(p, timeout).await?;
            match self
                .replica(leader, p)?
                .append_committed(batches.clone())
                .await
            {
                Ok(a) => return Ok((a.info.base_offset, a.info.last_offset)),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => bail!("append failed: {e}"),
            }
        }
    }

    /// Waits until every live replica's high watermark reached `hw`.
    pub async fn wait_hw(&self, p: &PartitionId, hw: i64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for n in self.up_nodes() {
            let mut rx = self.replica(n, p)?.watch_high_watermark();
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::timeout(left, rx.wait_for(|h| *h >= hw))
                .await
                .with_context(|| format!("node {n} high watermark below {hw}"))??;
        }
        Ok(())
    }

    /// Every entry of every live replica of `p`, with stored bytes.
    pub fn entries(&self, node: NodeId, p: &PartitionId) -> Result<Vec<StoredEntry>> {
        let r = self.replica(node, p)?;
        let log = r.log();
        let (first, next) = (log.first_index(), log.next_index());
        Ok(log.read_entries(first, next, usize::MAX)?)
    }

    /// Crashes a node (power loss): from this moment every file operation fails, the node's
    /// groups stop, and the file system keeps only what was fsynced before.
    pub async fn crash(&mut self, id: NodeId) -> Result<()> {
        let node = self.nodes.get_mut(&id).context("no such node")?;
        let manager = node.manager.take().context("already down")?;
        for op in [
            FaultOp::Write,
            FaultOp::SetLen,
            FaultOp::SyncData,
            FaultOp::SyncDir,
            FaultOp::Create,
            FaultOp::Rename,
            FaultOp::Remove,
        ] {
            node.fs.inject(FaultRule::always(op, FaultKind::Eio));
        }
        let fs = node.fs.clone();
        self.mark_down(id);
        manager.shutdown().await;
        drop(manager);
        fs.crash(CrashMode::DropUnsynced)?;
        fs.clear_faults();
        Ok(())
    }

    /// Stops a node cleanly.
    pub async fn stop(&mut self, id: NodeId) -> Result<()> {
        let node = self.nodes.get_mut(&id).context("no such node")?;
        let manager = node.manager.take().context("already down")?;
        self.mark_down(id);
        manager.shutdown().await;
        Ok(())
    }

    /// Starts a stopped node and reopens its partitions.
    pub async fn restart(&mut self, id: NodeId) -> Result<()> {
        self.start(id)?;
        let parts: Vec<(PartitionId, BTreeSet<NodeId>)> = self
            .partitions
            .iter()
            .filter(|(_, r)| r.contains(&id))
            .map(|(p, r)| (*p, r.clone()))
            .collect();
        for (p, replicas) in parts {
            // A task of the stopped instance may still hold the log (and its directory lock)
            // for a moment.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let spec = self.spec(id, p, &replicas);
                match self.manager(id)?.open_partition(spec).await {
                    Ok(_) => break,
                    Err(shoal_replication::ReplicationError::Storage(
                        shoal_storage::Error::Locked { .. },
                    )) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        let ids: Vec<NodeId> = self.up_nodes();
        for id in ids {
            if let Some(m) = self.nodes.get_mut(&id).and_then(|n| n.manager.take()) {
                self.mark_down(id);
                m.shutdown().await;
            }
        }
    }
}
