//! `shoal`: a Kafka-compatible broker.
//!
//! With no arguments it runs a single node on localhost:9092 with data in ./shoal-data. Kafka's
//! property names come from `--config server.properties`, then `KAFKA_*` environment variables
//! (the apache/kafka image's mapping), then `--override key=value` flags, each replacing the one
//! before. Invalid or unknown settings stop it with a message and exit status 2.
//!
//! `shoal partitions --bootstrap-server host:port` prints, per partition, where consumers in
//! each rack would read from (KIP-392), from any Kafka-compatible cluster's Metadata.
//!
//! `shoal healthcheck [--config FILE] [--override KEY=VALUE]...` loads the server's configuration
//! the same way and checks that the node's listener answers and the cluster lists the node: exit
//! status 0 healthy, 1 unhealthy, 2 bad arguments or configuration (for container health checks).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use shoal_broker::cli::{dev_cluster, healthcheck, partitions};
use shoal_broker::clock::{Clock, SystemClock};
use shoal_broker::config::{self, BrokerConfig, ConfigInput, Origin};
use shoal_broker::connection::ConnectionLimits;
use shoal_broker::metadata::BrokerEndpoint;
use shoal_broker::metrics;
use shoal_broker::node::Node;
use shoal_broker::rack_discovery;
use shoal_broker::server::{self, BoundListener, ServerLimits};
use shoal_broker::{api_coverage, dispatch};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long shutdown waits for connections to send their queued responses.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cluster node spends handing its leaderships away on SIGTERM.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about = "A Kafka-compatible message broker",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// A Kafka server.properties file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Sets one property, overriding the file and the environment (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Shows each partition's leader, replicas with their racks and ISR, and the replica a
    /// consumer in each rack is sent to by leaders running the rack-aware replica selector
    /// (follower fetching). Computed from Metadata with the broker's own selection rules,
    /// assuming in-sync replicas are caught up; offline replicas are never chosen.
    Partitions {
        /// A broker to ask (host:port), Kafka or Shoal.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap_server: String,
        /// Only this topic (default: every topic).
        #[arg(long)]
        topic: Option<String>,
        /// How long to wait for the broker.
        #[arg(long, value_name = "MS", default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Checks this node with the server's own configuration (file, then KAFKA_* environment,
    /// then overrides): its listener answers ApiVersions, and the cluster's Metadata lists its
    /// node.id. Exit status 0 healthy, 1 unhealthy, 2 bad arguments or configuration; the reason
    /// on one stderr line. Opens no storage, so it runs beside the live server.
    Healthcheck {
        /// The server's properties file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Sets one property, as for the server (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// The listener to check (default: inter.broker.listener.name, else the first client
        /// listener). Wildcard hosts are reached on the loopback address.
        #[arg(long, value_name = "NAME")]
        listener: Option<String>,
        /// Bound on the whole check, from start to exit status.
        #[arg(long, value_name = "MS", default_value_t = healthcheck::DEFAULT_TIMEOUT_MS,
              value_parser = clap::value_parser!(u64).range(1..))]
        timeout_ms: u64,
    },
    /// Runs a local multi-node cluster on loopback (one `shoal` process per broker, racks
    /// assigned round-robin) and prints its bootstrap servers; Ctrl-C stops it.
    DevCluster {
        /// Number of brokers (each also a controller voter).
        #[arg(long, default_value_t = 3)]
        brokers: usize,
        /// Comma-separated racks, assigned to brokers in turn.
        #[arg(long, value_delimiter = ',', default_value = "a,b,c")]
        racks: Vec<String>,
        /// Client port of broker 1; broker i listens on port + i - 1.
        #[arg(long, default_value_t = 9092)]
        port: u16,
        /// Controller port of broker 1; broker i uses controller-port + i - 1.
        #[arg(long, default_value_t = 9192)]
        controller_port: u16,
        /// Data directory (one sub-directory per broker).
        #[arg(long, value_name = "DIR", default_value = "./shoal-dev-cluster")]
        data_dir: PathBuf,
        /// Start from empty data directories.
        #[arg(long)]
        clean: bool,
        /// Sets a property on every broker (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        properties: Vec<String>,
    },
}

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match &cli.command {
        Some(Command::Partitions {
            bootstrap_server,
            topic,
            timeout_ms,
        }) => return show_partitions(bootstrap_server, topic.as_deref(), *timeout_ms),
        Some(Command::Healthcheck {
            config,
            overrides,
            listener,
            timeout_ms,
        }) => {
            let deadline = started + Duration::from_millis(*timeout_ms);
            return run_healthcheck(config.as_deref(), overrides, listener.as_deref(), deadline);
        }
        Some(Command::DevCluster {
            brokers,
            racks,
            port,
            controller_port,
            data_dir,
            clean,
            properties,
        }) => {
            let options = dev_cluster::DevClusterOptions {
                brokers: *brokers,
                racks: racks.clone(),
                port: *port,
                controller_port: *controller_port,
                data_dir: data_dir.clone(),
                clean: *clean,
                overrides: properties.clone(),
            };
            return run_dev_cluster(&options);
        }
        None => {}
    }
    tracing_subscriber::fmt()
        .with_writer(|| LossyStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // openraft reports every election and membership step at info.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .init();

    let loaded = match load_config(cli.config.as_deref(), &cli.overrides) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("shoal: {e:#}");
            return ExitCode::from(2);
        }
    };
    for warning in &loaded.warnings {
        warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("shoal: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(loaded.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("shoal: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_dev_cluster(options: &dev_cluster::DevClusterOptions) -> ExitCode {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("shoal: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let options = options.clone();
    let cluster = std::thread::spawn(move || dev_cluster::run(&options, stop_rx));
    let signalled = runtime.block_on(async {
        let mut done = tokio::task::spawn_blocking(move || cluster.join());
        tokio::select! {
            result = wait_for_signal() => {
                let _ = stop_tx.send(());
                (result, done.await)
            }
            joined = &mut done => (Ok(()), joined),
        }
    });
    match signalled {
        (Err(e), _) => {
            eprintln!("shoal: {e:#}");
            ExitCode::from(1)
        }
        (Ok(()), Ok(Ok(Ok(())))) => ExitCode::SUCCESS,
        (Ok(()), Ok(Ok(Err(e)))) => {
            eprintln!("shoal dev-cluster: {e}");
            ExitCode::from(1)
        }
        (Ok(()), _) => {
            eprintln!("shoal dev-cluster: the supervisor thread failed");
            ExitCode::from(1)
        }
    }
}

fn show_partitions(bootstrap: &str, topic: Option<&str>, timeout_ms: u64) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("shoal: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let timeout = Duration::from_millis(timeout_ms.max(1));
    match runtime.block_on(partitions::fetch_metadata(bootstrap, topic, timeout)) {
        Ok((metadata, _version)) => {
            if let Some(t) = topic
                && metadata.topics.iter().all(|m| m.error_code != 0)
            {
                eprintln!("shoal: topic {t} does not exist");
                return ExitCode::from(1);
            }
            print!("{}", partitions::render(&metadata));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shoal: {e}");
            ExitCode::from(1)
        }
    }
}

/// Clap's usage errors; the health check's on one line (Docker keeps the last lines of every
/// check), the others as clap prints them.
fn usage_error(e: clap::Error) -> ExitCode {
    let healthcheck = std::env::args().nth(1).as_deref() == Some("healthcheck");
    if !healthcheck || !e.use_stderr() {
        e.exit();
    }
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("bad arguments");
    eprintln!(
        "shoal healthcheck: {}",
        line.strip_prefix("error: ").unwrap_or(line)
    );
    ExitCode::from(2)
}

/// `shoal healthcheck`: exit status 0 healthy, 1 unhealthy, 2 bad arguments or configuration,
/// within `deadline` in every case. Prints nothing when healthy, one line on stderr otherwise.
fn run_healthcheck(
    config_file: Option<&Path>,
    overrides: &[String],
    listener: Option<&str>,
    deadline: Instant,
) -> ExitCode {
    let fail = |code: u8, why: &dyn std::fmt::Display| {
        eprintln!("shoal healthcheck: {why}");
        ExitCode::from(code)
    };
    // Warnings about ignored properties are the server's to log, not every check's.
    let loaded = match load_config(config_file, overrides) {
        Ok(loaded) => loaded,
        Err(e) => {
            return fail(2, &one_line(&format!("{e:#}")));
        }
    };
    let target = match healthcheck::target(&loaded.config, listener) {
        Ok(target) => target,
        Err(e) => return fail(2, &e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let result = runtime.block_on(healthcheck::check(&target, remaining));
    // A name lookup still running on a blocking thread must not hold the exit past the deadline.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e),
    }
}

/// `invalid configuration:\n  - a\n  - b` as `invalid configuration: a; b`.
fn one_line(text: &str) -> String {
    let mut lines = text
        .lines()
        .map(str::trim)
        .map(|l| l.strip_prefix("- ").unwrap_or(l))
        .filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_string();
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        first
    } else {
        format!("{first} {}", rest.join("; "))
    }
}

fn load_config(config_file: Option<&Path>, overrides: &[String]) -> anyhow::Result<config::Loaded> {
    let mut input = ConfigInput::default();
    if let Some(path) = config_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let properties = config::properties::parse_properties(&text)
            .with_context(|| format!("in {}", path.display()))?;
        input.add_file(path.to_path_buf(), properties);
    }
    input.add_env(config::env::properties_from_env(std::env::vars()));
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("--override {item}: expected KEY=VALUE"))?;
        input.set(key.trim(), value, Origin::Flag);
    }
    Ok(config::broker::load(&input, &hostname())?)
}

/// Standard error for log lines, dropping what cannot be written. When the reader of the broker's
/// output goes away (a supervisor that closed its pipe), tracing-subscriber would report every
/// failed write with `eprintln!`, which panics on the broken pipe: the broker would crash on its
/// next log line, typically in the middle of a graceful shutdown.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// The host name advertised for listeners without a host (Kafka uses the canonical host name).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

async fn run(mut config: BrokerConfig) -> anyhow::Result<()> {
    if let Some(auto) = config.rack_awareness.auto_rack.clone() {
        let found = rack_discovery::discover(&auto, |name| std::env::var(name).ok()).await?;
        info!(
            "broker.rack={} (discovered from {})",
            found.rack, found.detail
        );
        config = config.with_discovered_rack(found.rack, found.source);
    } else if let Some(rack) = &config.rack {
        info!("broker.rack={rack} (static)");
    }
    let config = Arc::new(config);
    let shutdown = CancellationToken::new();
    let mut bound = Vec::new();
    let mut endpoints = Vec::new();
    let mut announced = Vec::new();
    for listener in &config.listeners {
        let address = format!("{}:{}", bracket(&listener.bind_host), listener.bind_port);
        let socket = TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address} (listener {})", listener.name))?;
        let local: SocketAddr = socket.local_addr().context("listener address")?;
        endpoints.push(BrokerEndpoint {
            listener: listener.name.clone(),
            host: listener.advertised_host.clone(),
            port: listener.advertised_port.unwrap_or(local.port()),
        });
        announced.push(format!("{}://{local}", listener.name));
        bound.push(BoundListener {
            name: listener.name.as_str().into(),
            listener: socket,
        });
    }

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let node = Node::open(config.clone(), endpoints.clone(), clock, shutdown.clone())
        .await
        .context("cannot start the node")?;
    let limits = ServerLimits {
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
        connection: ConnectionLimits {
            max_frame_bytes: config.socket_request_max_bytes,
            max_queued_requests: config.queued_max_requests,
            idle_timeout: Duration::from_millis(config.connections_max_idle_ms),
        },
    };
    let metrics_task = match &config.metrics_listener {
        Some(url) => {
            let actions = config.testing_faults_enabled.then(|| {
                warn!(
                    "testing.faults.enabled=true: test fault endpoints are served on metrics.listener; never enable this in production"
                );
                Arc::new(shoal_broker::cluster::test_faults::FaultActions::new(
                    config.node_id,
                    node.metadata.clone(),
                    node.cluster.clone(),
                )) as Arc<dyn shoal_broker::http::server::Actions>
            });
            let (local, task) = metrics::endpoint::start(
                url,
                node.follower_fetching.metrics.clone(),
                node.metadata.clone(),
                actions,
                shutdown.clone(),
            )
            .await
            .with_context(|| format!("cannot listen on metrics.listener={url}"))?;
            let address = format!("http://{local}{}", url.path);
            info!("metrics on {address}");
            // Printed before the readiness line, which test harnesses wait for.
            println!("shoal metrics: {address}");
            Some(task)
        }
        None => None,
    };
    let server = tokio::spawn(server::run(bound, node.clone(), limits, shutdown.clone()));

    let advertised: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{}://{}:{}", e.listener, bracket(&e.host), e.port))
        .collect();
    info!("advertising {}", advertised.join(", "));
    // The readiness line test harnesses wait for (stdout is line-buffered).
    println!(
        "shoal ready: node {} listening on {} (advertised {})",
        config.node_id,
        announced.join(", "),
        advertised.join(", ")
    );

    wait_for_signal().await?;
    node.prepare_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT).await;
    info!("shutting down: closing connections");
    shutdown.cancel();
    if tokio::time::timeout(DRAIN_TIMEOUT, server).await.is_err() {
        warn!("connections did not drain within {DRAIN_TIMEOUT:?}; closing anyway");
    }
    if let Some(task) = metrics_task
        && tokio::time::timeout(DRAIN_TIMEOUT, task).await.is_err()
    {
        warn!("metrics connections did not drain within {DRAIN_TIMEOUT:?}");
    }
    node.close().await;
    if let Some(path) = std::env::var_os(api_coverage::COVERAGE_FILE_ENV) {
        let path = std::path::PathBuf::from(path);
        if let Err(e) = api_coverage::API_COVERAGE.append_report(&path, &dispatch::REGISTRY) {
            warn!("cannot write the API coverage to {}: {e}", path.display());
        }
    }
    info!("shutdown complete");
    Ok(())
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    tokio::select! {
        _ = terminate.recv() => info!("received SIGTERM"),
        _ = interrupt.recv() => info!("received SIGINT"),
    }
    Ok(())
}
