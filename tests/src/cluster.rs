//! Multi-node clusters of `shoal` processes on loopback, each started from its own properties
//! file (`process.roles=broker,controller`, `controller.quorum.voters`, a `CONTROLLER`
//! listener and a client listener on free ports, one rack per node).
//!
//! Every node waits for a quorum before it prints its readiness line, so all processes are
//! spawned first and then awaited. Nodes can be stopped (SIGTERM), killed (SIGKILL) and
//! restarted on the same ports with the same data. Dropping the cluster kills every process
//! and removes the data, also when a test fails.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::broker::{SHUTDOWN_DEADLINE, STARTUP_DEADLINE, shoal_binary};

/// One node of a [`Cluster`].
#[derive(Debug)]
pub struct Node {
    /// `node.id`.
    pub id: i32,
    /// Client listener port.
    pub port: u16,
    /// Controller listener port.
    pub controller_port: u16,
    config: PathBuf,
    child: Option<Child>,
    output: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// The client address.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything the process printed (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.join("\n")).unwrap_or_default()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(shoal_binary()?);
        cmd.arg("--config").arg(&self.config);
        for (key, _) in std::env::vars() {
            if key.starts_with("KAFKA") {
                cmd.env_remove(key);
            }
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("SHOAL_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
        );
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning shoal")?;
        self.output
            .lock()
            .map(|mut o| o.push(format!("--- node {} started ---", self.id)))
            .ok();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = self.output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut o) = output.lock() {
                        o.push(line);
                    }
                }
            });
        }
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self, since_lines: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            let ready = self
                .output
                .lock()
                .map(|o| {
                    o[since_lines.min(o.len())..]
                        .iter()
                        .any(|l| l.starts_with("shoal ready:"))
                })
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "node {} exited before it was ready ({status}):\n{}",
                    self.id,
                    self.output()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} not ready within {STARTUP_DEADLINE:?}:\n{}",
                    self.id,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> usize {
        self.output.lock().map(|o| o.len()).unwrap_or(0)
    }
}

/// A cluster of `shoal` processes.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, ids 1..=n.
    pub nodes: Vec<Node>,
    root: tempfile::TempDir,
}

impl Cluster {
    /// Starts `racks.len()` nodes, node `i + 1` in rack `racks[i]`, with `extra` properties on
    /// every node, and waits until all are ready.
    pub fn start(racks: &[&str], extra: &[(&str, &str)]) -> anyhow::Result<Cluster> {
        let root = tempfile::Builder::new()
            .prefix("shoal-cluster-")
            .tempdir()
            .context("creating the cluster directory")?;
        let ports: Vec<(u16, u16)> = racks
            .iter()
            .map(|_| Ok((crate::ports::free_port()?, crate::ports::free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let voters: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let mut nodes = Vec::new();
        for (i, rack) in racks.iter().enumerate() {
            let id = i as i32 + 1;
            let (port, controller_port) = ports[i];
            let mut text = format!(
                "node.id={id}\nprocess.roles=broker,controller\ncontroller.quorum.voters={}\n\
                 controller.listener.names=CONTROLLER\n\
                 listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 log.dirs={}\nbroker.rack={rack}\n",
                voters.join(","),
                root.path().join(format!("node-{id}")).display()
            );
            for (k, v) in extra {
                text.push_str(&format!("{k}={v}\n"));
            }
            let config = root.path().join(format!("node-{id}.properties"));
            std::fs::write(&config, text).context("writing a properties file")?;
            nodes.push(Node {
                id,
                port,
                controller_port,
                config,
                child: None,
                output: Arc::new(Mutex::new(Vec::new())),
            });
        }
        let mut cluster = Cluster { nodes, root };
        for node in &mut cluster.nodes {
            node.spawn()?;
        }
        for node in &mut cluster.nodes {
            node.wait_ready(0)?;
        }
        Ok(cluster)
    }

    /// The data directory of node `id`.
    pub fn data_dir(&self, id: i32) -> PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    /// Node `id`.
    pub fn node(&self, id: i32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Bootstrap servers of every running node.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(Node::address)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills node `id` with SIGKILL (a crash).
    pub fn kill(&mut self, id: i32) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        let mut child = node.child.take().context("node is not running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Stops node `id` with SIGTERM and waits for it to exit.
    pub fn stop(&mut self, id: i32) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        let mut child = node.child.take().context("node is not running")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM failed: {status}");
        }
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {id} did not exit within {SHUTDOWN_DEADLINE:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts node `id` again (same ports, same data) and waits until it is ready.
    pub fn restart(&mut self, id: i32) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        if node.is_running() {
            bail!("node {id} is running");
        }
        let since = node.lines();
        node.spawn()?;
        node.wait_ready(since)
    }

    /// Everything every node printed, for failure messages.
    pub fn output(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("=== node {} ===\n{}", n.id, n.output()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("--- cluster output ---\n{}\n--- end ---", self.output());
        }
    }
}
