//! `shoal dev-cluster`: a local multi-node, multi-rack cluster in one command, without Docker.
//!
//! Starts `--brokers` `shoal` processes (this binary) on loopback, node `i` (1-based) with client
//! port `port + i - 1`, controller port `controller_port + i - 1`, rack `racks[(i - 1) % n]`
//! and data in `data_dir/node-i`, each from a generated properties file. Prints the bootstrap
//! servers once every node is ready; Ctrl-C (or SIGTERM) stops every node with SIGTERM (a
//! controlled shutdown) and waits for them. Data stays for the next run unless `--clean`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How to lay out the cluster.
#[derive(Debug, Clone)]
pub struct DevClusterOptions {
    /// Number of nodes (1..=9).
    pub brokers: usize,
    /// Racks, assigned round-robin.
    pub racks: Vec<String>,
    /// First client port.
    pub port: u16,
    /// First controller port.
    pub controller_port: u16,
    /// Data directory of the cluster.
    pub data_dir: PathBuf,
    /// Remove the data directory before starting.
    pub clean: bool,
    /// Extra properties for every node.
    pub overrides: Vec<String>,
}

/// Why the cluster could not run.
#[derive(Debug, thiserror::Error)]
pub enum DevClusterError {
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// Files or processes failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A node did not come up.
    #[error("node {node} failed to start: {reason}")]
    Node {
        /// The node id.
        node: usize,
        /// Why.
        reason: String,
    },
}

const READY_DEADLINE: Duration = Duration::from_secs(90);
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// The properties file of node `id` (1-based).
pub fn node_properties(options: &DevClusterOptions, id: usize) -> String {
    let voters: Vec<String> = (1..=options.brokers)
        .map(|n| format!("{n}@127.0.0.1:{}", options.controller_port as usize + n - 1))
        .collect();
    let rack = &options.racks[(id - 1) % options.racks.len()];
    let mut text = format!(
        "node.id={id}\n\
         process.roles=broker,controller\n\
         controller.quorum.voters={}\n\
         controller.listener.names=CONTROLLER\n\
         listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
         log.dirs={}\n\
         broker.rack={rack}\n\
         default.replication.factor={}\n\
         offsets.topic.replication.factor={}\n\
         min.insync.replicas={}\n\
         group.initial.rebalance.delay.ms=0\n",
        voters.join(","),
        options.port as usize + id - 1,
        options.controller_port as usize + id - 1,
        options.data_dir.join(format!("node-{id}")).display(),
        options.brokers.min(3),
        options.brokers.min(3),
        if options.brokers >= 3 { 2 } else { 1 },
    );
    for o in &options.overrides {
        text.push_str(o);
        text.push('\n');
    }
    text
}

impl DevClusterOptions {
    fn validate(&self) -> Result<(), DevClusterError> {
        let bad = |m: String| Err(DevClusterError::Options(m));
        if !(1..=9).contains(&self.brokers) {
            return bad(format!(
                "--brokers {} must be between 1 and 9",
                self.brokers
            ));
        }
        if self.racks.is_empty() || self.racks.iter().any(|r| r.trim().is_empty()) {
            return bad("--racks needs at least one non-empty rack name".into());
        }
        let last = |p: u16| p as usize + self.brokers - 1;
        if self.port == 0
            || self.controller_port == 0
            || last(self.port) > 65535
            || last(self.controller_port) > 65535
        {
            return bad("--port and --controller-port need room for one port per broker".into());
        }
        let (a, b) = (self.port as usize, self.controller_port as usize);
        if a < b + self.brokers && b < a + self.brokers {
            return bad("client and controller port ranges overlap".into());
        }
        for o in &self.overrides {
            if !o.contains('=') {
                return bad(format!("--override {o}: expected KEY=VALUE"));
            }
        }
        Ok(())
    }
}

struct Running {
    id: usize,
    child: Child,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevClusterError {
    let what = what.into();
    move |source| DevClusterError::Io { what, source }
}

fn spawn(
    binary: &Path,
    config: &Path,
    id: usize,
    ready: mpsc::Sender<usize>,
) -> Result<Child, DevClusterError> {
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(io(format!("starting node {id}")))?;
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("shoal ready:") {
                    let _ = ready.send(id);
                }
                println!("[node {id}] {line}");
            }
        });
    }
    Ok(child)
}

fn terminate(nodes: &mut [Running]) {
    for node in nodes.iter() {
        // SIGTERM: each node hands its leaderships away before it stops.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(node.child.id().to_string())
            .status();
    }
    let deadline = Instant::now() + STOP_DEADLINE;
    for node in nodes.iter_mut() {
        loop {
            match node.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!(
                        "shoal dev-cluster: node {} did not stop; killing it",
                        node.id
                    );
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Runs the cluster until `stop` resolves (Ctrl-C), then stops every node.
pub fn run(options: &DevClusterOptions, stop: mpsc::Receiver<()>) -> Result<(), DevClusterError> {
    options.validate()?;
    if options.clean && options.data_dir.exists() {
        std::fs::remove_dir_all(&options.data_dir)
            .map_err(io(format!("removing {}", options.data_dir.display())))?;
    }
    std::fs::create_dir_all(&options.data_dir)
        .map_err(io(format!("creating {}", options.data_dir.display())))?;
    let binary = std::env::current_exe().map_err(io("locating the shoal binary"))?;
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut nodes = Vec::new();
    for id in 1..=options.brokers {
        let config = options.data_dir.join(format!("node-{id}.properties"));
        std::fs::write(&config, node_properties(options, id))
            .map_err(io(format!("writing {}", config.display())))?;
        match spawn(&binary, &config, id, ready_tx.clone()) {
            Ok(child) => nodes.push(Running { id, child }),
            Err(e) => {
                terminate(&mut nodes);
                return Err(e);
            }
        }
    }
    let deadline = Instant::now() + READY_DEADLINE;
    let mut ready = 0;
    while ready < options.brokers {
        if stop.try_recv().is_ok() {
            terminate(&mut nodes);
            return Ok(());
        }
        match ready_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(_) => ready += 1,
            Err(_) => {
                let exited = nodes
                    .iter_mut()
                    .find_map(|n| n.child.try_wait().ok().flatten().map(|s| (n.id, s)));
                let failure = match exited {
                    Some((id, status)) => Some((id, format!("exited with {status}"))),
                    None if Instant::now() > deadline => Some((
                        0,
                        format!("not every node was ready within {READY_DEADLINE:?}"),
                    )),
                    None => None,
                };
                if let Some((node, reason)) = failure {
                    terminate(&mut nodes);
                    return Err(DevClusterError::Node { node, reason });
                }
            }
        }
    }
    let bootstrap: Vec<String> = (0..options.brokers)
        .map(|i| format!("127.0.0.1:{}", options.port as usize + i))
        .collect();
    println!(
        "shoal dev-cluster: {} brokers in racks {} (data in {})",
        options.brokers,
        options.racks.join(","),
        options.data_dir.display()
    );
    println!("bootstrap.servers={}", bootstrap.join(","));
    println!("Press Ctrl-C to stop the cluster.");
    loop {
        if stop.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        if let Some((id, status)) = nodes
            .iter_mut()
            .find_map(|n| n.child.try_wait().ok().flatten().map(|s| (n.id, s)))
        {
            eprintln!("shoal dev-cluster: node {id} exited ({status}); stopping the others");
            nodes.retain(|n| n.id != id);
            terminate(&mut nodes);
            return Err(DevClusterError::Node {
                node: id,
                reason: format!("exited with {status}"),
            });
        }
    }
    println!("shoal dev-cluster: stopping");
    terminate(&mut nodes);
    println!("shoal dev-cluster: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> DevClusterOptions {
        DevClusterOptions {
            brokers: 3,
            racks: vec!["a".into(), "b".into(), "c".into()],
            port: 9092,
            controller_port: 9192,
            data_dir: PathBuf::from("/tmp/x"),
            clean: false,
            overrides: vec![],
        }
    }

    #[test]
    fn properties_form_one_cluster() {
        let text = node_properties(&options(), 2);
        assert!(text.contains("node.id=2\n"));
        assert!(text.contains(
            "controller.quorum.voters=1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194\n"
        ));
        assert!(
            text.contains("listeners=PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:9193\n")
        );
        assert!(text.contains("broker.rack=b\n"));
        assert!(text.contains("log.dirs=/tmp/x/node-2\n"));
    }

    #[test]
    fn bad_options_are_refused() {
        let mut o = options();
        o.brokers = 0;
        assert!(o.validate().is_err());
        let mut o = options();
        o.controller_port = 9093;
        assert!(o.validate().is_err());
        let mut o = options();
        o.racks = vec![];
        assert!(o.validate().is_err());
        assert!(options().validate().is_ok());
    }
}
