//! The controller group on the simulated network: commands committed once, applied in the same
//! order on every voter and observer; the log compacted into snapshots of the caller's state;
//! a node that fell behind the compacted log restores from the snapshot.

mod harness;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use harness::Cluster;
use shoal_replication::{
    Controller, ControllerSpec, ControllerStateMachine, NodeId, ProposeError, ReplicationConfig,
    RestoreError, Role,
};
use shoal_storage::LogConfig;

const T: Duration = Duration::from_secs(20);

type Log = Arc<Mutex<Vec<(i64, Vec<u8>)>>>;

/// The commands applied (offset, bytes) and the number of snapshot restores.
#[derive(Clone, Default)]
struct Applied(Log, Arc<AtomicUsize>);

impl Applied {
    fn commands(&self) -> Vec<Vec<u8>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }
}

impl ControllerStateMachine for Applied {
    fn apply(&mut self, offset: i64, command: &[u8]) -> Bytes {
        let mut v = self.0.lock().unwrap();
        v.push((offset, command.to_vec()));
        Bytes::from(format!("applied #{}", v.len()))
    }

    fn snapshot(&self) -> Bytes {
        let v = self.0.lock().unwrap();
        let mut out = Vec::new();
        for (offset, c) in v.iter() {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&(c.len() as u32).to_be_bytes());
            out.extend_from_slice(c);
        }
        Bytes::from(out)
    }

    fn restore(&mut self, snapshot: Bytes) -> Result<(), RestoreError> {
        let mut v = Vec::new();
        let mut s = &snapshot[..];
        while !s.is_empty() {
            if s.len() < 12 {
                return Err("truncated snapshot".into());
            }
            let offset = i64::from_be_bytes(s[..8].try_into()?);
            let len = u32::from_be_bytes(s[8..12].try_into()?) as usize;
            let c = s.get(12..12 + len).ok_or("truncated command")?.to_vec();
            v.push((offset, c));
            s = &s[12 + len..];
        }
        *self.0.lock().unwrap() = v;
        self.1.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Controllers {
    states: std::collections::BTreeMap<NodeId, Applied>,
}

async fn open(
    c: &Cluster,
    node: NodeId,
    voters: &BTreeSet<NodeId>,
    states: &mut Controllers,
) -> Result<Controller> {
    let applied = Applied::default();
    states.states.insert(node, applied.clone());
    let spec = ControllerSpec {
        dir: c
            .root
            .path()
            .join(format!("node-{node}"))
            .join("__cluster_metadata-0"),
        log_config: LogConfig::default(),
        voters: voters.clone(),
        bootstrap: voters.first() == Some(&node),
    };
    Ok(c.manager(node)?
        .open_controller(spec, Box::new(applied))
        .await?)
}

async fn leader(c: &Cluster) -> Result<Controller> {
    let deadline = Instant::now() + T;
    loop {
        for n in c.up_nodes() {
            if let Some(ctl) = c.manager(n)?.controller()
                && ctl.leadership().role == Role::Leader
            {
                return Ok(ctl);
            }
        }
        if Instant::now() > deadline {
            bail!("no controller leader");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn propose(c: &Cluster, command: &[u8]) -> Result<(i64, Bytes)> {
    let deadline = Instant::now() + T;
    loop {
        match leader(c).await?.propose(command).await {
            Ok(r) => return Ok(r),
            Err(ProposeError::NotLeader { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => bail!("propose: {e}"),
        }
    }
}

async fn wait_applied(c: &Cluster, node: NodeId, offset: i64) -> Result<()> {
    let ctl = c.manager(node)?.controller().context("controller open")?;
    let mut rx = ctl.watch_applied();
    tokio::time::timeout(T, rx.wait_for(|o| *o >= offset))
        .await
        .with_context(|| format!("node {node} applied only up to {}", ctl.applied_offset()))??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_and_observers_apply_the_same_commands_in_order() -> Result<()> {
    let mut c = Cluster::new(
        &[1, 2, 3, 4],
        11,
        ReplicationConfig::fast_for_tests(),
        LogConfig::default(),
    )
    .await?;
    let voters: BTreeSet<NodeId> = [1, 2, 3].into();
    let mut s = Controllers {
        states: Default::default(),
    };
    for n in [1, 2, 3, 4] {
        open(&c, n, &voters, &mut s).await?;
    }
    let l = leader(&c).await?;
    l.add_observer(4).await?;
    assert_eq!(l.replicas().learners, BTreeSet::from([4]));
    let mut last = 0;
    for i in 0..50 {
        let (offset, reply) = propose(&c, format!("cmd-{i}").as_bytes()).await?;
        assert!(offset >= last, "offsets grow");
        assert!(reply.starts_with(b"applied #"));
        last = offset;
    }
    for n in [1, 2, 3, 4] {
        wait_applied(&c, n, last + 1).await?;
    }
    let reference = s.states[&1].commands();
    assert_eq!(reference.len(), 50);
    for (i, cmd) in reference.iter().enumerate() {
        assert_eq!(cmd, format!("cmd-{i}").as_bytes());
    }
    for n in [2, 3, 4] {
        assert_eq!(s.states[&n].commands(), reference, "node {n}");
    }
    // The observer does not vote: stopping two voters stops progress even with it alive.
    assert_eq!(
        c.manager(4)?.controller().context("ctl")?.leadership().role,
        Role::Learner
    );
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_and_observers_forward_commands_to_the_leader() -> Result<()> {
    let mut c = Cluster::new(
        &[1, 2, 3, 4],
        13,
        ReplicationConfig::fast_for_tests(),
        LogConfig::default(),
    )
    .await?;
    let voters: BTreeSet<NodeId> = [1, 2, 3].into();
    let mut s = Controllers {
        states: Default::default(),
    };
    for n in [1, 2, 3, 4] {
        open(&c, n, &voters, &mut s).await?;
    }
    let l = leader(&c).await?;
    l.add_observer(4).await?;
    let leader_id = c
        .up_nodes()
        .into_iter()
        .find(|n| {
            c.manager(*n)
                .ok()
                .and_then(|m| m.controller())
                .is_some_and(|ctl| ctl.leadership().role == Role::Leader)
        })
        .context("leader id")?;
    let mut expected = Vec::new();
    for n in [1, 2, 3, 4] {
        let ctl = c.manager(n)?.controller().context("controller open")?;
        let command = format!("from-{n}");
        let (offset, reply) = ctl.propose_forwarded(command.as_bytes(), T).await?;
        assert!(reply.starts_with(b"applied #"), "node {n}: {reply:?}");
        wait_applied(&c, n, offset + 1).await?;
        expected.push(command.into_bytes());
    }
    let applied = s.states[&leader_id].commands();
    assert_eq!(
        applied, expected,
        "each forwarded command applied once, in order"
    );
    c.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_the_compacted_log_restores_the_snapshot() -> Result<()> {
    let config = ReplicationConfig {
        controller_snapshot_entries: 20,
        ..ReplicationConfig::fast_for_tests()
    };
    let mut c = Cluster::new(&[1, 2, 3], 12, config, LogConfig::default()).await?;
    let voters: BTreeSet<NodeId> = [1, 2, 3].into();
    let mut s = Controllers {
        states: Default::default(),
    };
    for n in [1, 2, 3] {
        open(&c, n, &voters, &mut s).await?;
    }
    propose(&c, b"first").await?;
    // Node 3 goes away; 120 more commands are compacted into snapshots meanwhile.
    let down = if leader(&c).await?.leadership().leader == Some(3) {
        2
    } else {
        3
    };
    c.stop(down).await?;
    let mut last = 0;
    for i in 0..120 {
        last = propose(&c, format!("cmd-{i}").as_bytes()).await?.0;
    }
    let l = leader(&c).await?;
    let leader_node = l.leadership().leader.context("leader id")?;
    // The leader's log no longer starts at the beginning.
    let deadline = Instant::now() + T;
    loop {
        let dir = c
            .root
            .path()
            .join(format!("node-{leader_node}"))
            .join("__cluster_metadata-0");
        let snapshot_written = std::fs::metadata(dir.join("raft-snapshot")).is_ok();
        if snapshot_written {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.restart(down).await?;
    open(&c, down, &voters, &mut s).await?;
    wait_applied(&c, down, last + 1).await?;
    let reference = s.states[&leader_node].commands();
    assert_eq!(reference.len(), 121);
    assert_eq!(s.states[&down].commands(), reference);
    // It got there by restoring the leader's snapshot, not by replaying the log.
    assert!(
        s.states[&down].1.load(Ordering::SeqCst) >= 1,
        "no snapshot restored"
    );
    // And it keeps following.
    let (o, _) = propose(&c, b"after").await?;
    wait_applied(&c, down, o + 1).await?;
    assert_eq!(
        s.states[&down].commands().last().map(Vec::as_slice),
        Some(&b"after"[..])
    );
    c.shutdown().await;
    Ok(())
}
