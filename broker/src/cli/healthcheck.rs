//! `shoal healthcheck`: is this node's broker serving clients as part of its cluster?
//!
//! Built for container health checks (Docker's `HEALTHCHECK`), it runs beside the live server
//! with the server's own configuration (file, `KAFKA_*` environment, overrides) and so needs no
//! address of its own: [`target`] picks the listener (`--listener`, else
//! `inter.broker.listener.name`, else the first client listener) and the address to reach it
//! from the same machine. [`check`] then asks that listener for ApiVersions (the broker accepts
//! connections and its request loop runs) and Metadata, whose broker list must contain this
//! node's `node.id`: Metadata lists the registered, unfenced brokers of a cluster, so a node that
//! answers but is not (or no longer) part of the cluster is unhealthy.
//!
//! Nothing here touches `log.dirs`: no storage opened, no lock taken, no directory created.
//! Configuration problems are [`TargetError`]s (exit status 2), failed checks [`Unhealthy`]
//! (exit status 1); every message is one line, which Docker keeps in the container's health log.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, MetadataResponse,
};
use shoal_protocol::{RequestKind, ResponseKind};
use tokio::net::TcpStream;

use super::partitions::{PartitionsError, exchange};
use crate::config::BrokerConfig;

/// Default bound on the whole check, in milliseconds (below Docker's usual 4-5 s check timeout).
pub const DEFAULT_TIMEOUT_MS: u64 = 3000;

/// The client id of the check's requests, so broker logs can tell them apart.
const CLIENT_ID: &str = "shoal-healthcheck";

/// Metadata versions the check speaks: from v1 an empty topic list asks for no topics (v0 would
/// list them all), and v12 is the newest kafka-protocol encodes for every broker we meet.
const METADATA_VERSIONS: (i16, i16) = (1, 12);

/// What to check: a listener of this node and the address that reaches it from this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The listener's name.
    pub listener: String,
    /// Host to connect to (a loopback address for wildcard listeners).
    pub host: String,
    /// The listener's port.
    pub port: u16,
    /// This node's `node.id`, which the cluster's Metadata must list.
    pub node_id: i32,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "node {} on {} [{}]:{}",
                self.node_id, self.listener, self.host, self.port
            )
        } else {
            write!(
                f,
                "node {} on {} {}:{}",
                self.node_id, self.listener, self.host, self.port
            )
        }
    }
}

/// The configuration names no listener the check can reach (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `--listener` names no client listener.
    #[error("--listener {name}: no such client listener (client listeners: {known})")]
    UnknownListener {
        /// The name asked for.
        name: String,
        /// The client listeners of the configuration.
        known: String,
    },
    /// `inter.broker.listener.name` names no client listener.
    #[error(
        "inter.broker.listener.name={name} names no client listener (client listeners: {known})"
    )]
    UnknownInterBrokerListener {
        /// The configured name.
        name: String,
        /// The client listeners of the configuration.
        known: String,
    },
    /// The configuration has no client listener at all.
    #[error("the configuration defines no client listener")]
    NoListener,
    /// The chosen listener binds an ephemeral port, which only the running server knows.
    #[error(
        "listener {0} is on port 0 (an ephemeral port): its port cannot be known; give it a fixed port or choose another with --listener"
    )]
    EphemeralPort(String),
}

/// Why the node is not healthy (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    /// The listener's host name does not resolve.
    #[error("{0}: cannot resolve {1}: {2}")]
    Resolve(Target, String, std::io::Error),
    /// No address of the listener accepted a connection.
    #[error("{0}: cannot connect: {1}")]
    Connect(Target, std::io::Error),
    /// Sending or receiving failed, or the answer is not Kafka's.
    #[error("{0}: {1}")]
    Exchange(Target, PartitionsError),
    /// ApiVersions answered with an error code.
    #[error("{0}: ApiVersions answered with error code {1}")]
    ApiVersions(Target, i16),
    /// The broker offers no Metadata version the check speaks.
    #[error("{0}: the broker offers Metadata v{1}-v{2}; the check needs one of v{min}-v{max}", min = METADATA_VERSIONS.0, max = METADATA_VERSIONS.1)]
    MetadataVersions(Target, i16, i16),
    /// The cluster's Metadata does not list this node.
    #[error("{0}: not among the cluster's brokers in Metadata (brokers: {1})")]
    NotInCluster(Target, String),
    /// No verdict within the time allowed.
    #[error("{0}: no answer within {1} ms")]
    Timeout(Target, u64),
}

/// The listener to check and how to reach it: `listener` (from `--listener`), else
/// `inter.broker.listener.name`, else the first client listener. Controller listeners are never
/// client listeners, so they are never chosen.
pub fn target(config: &BrokerConfig, listener: Option<&str>) -> Result<Target, TargetError> {
    let known = || {
        config
            .listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Kafka normalises listener names to upper case, and so does the listener parser.
    let find = |name: &str| {
        let name = name.trim().to_ascii_uppercase();
        config.listeners.iter().find(|l| l.name == name)
    };
    let inter_broker = config
        .statics
        .explicit("inter.broker.listener.name")
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let chosen = match (listener, inter_broker) {
        (Some(name), _) => find(name).ok_or_else(|| TargetError::UnknownListener {
            name: name.to_string(),
            known: known(),
        })?,
        (None, Some(name)) => {
            find(name).ok_or_else(|| TargetError::UnknownInterBrokerListener {
                name: name.to_string(),
                known: known(),
            })?
        }
        (None, None) => config.listeners.first().ok_or(TargetError::NoListener)?,
    };
    if chosen.bind_port == 0 {
        return Err(TargetError::EphemeralPort(chosen.name.clone()));
    }
    Ok(Target {
        listener: chosen.name.clone(),
        host: connect_host(&chosen.bind_host).to_string(),
        port: chosen.bind_port,
        node_id: config.node_id,
    })
}

/// The host that reaches a listener bound to `bind_host` from this machine: the loopback address
/// of the same family for the wildcard addresses, else the listener's own host.
pub fn connect_host(bind_host: &str) -> &str {
    match bind_host {
        "" | "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        host => host,
    }
}

/// Runs the check against `target`, giving up after `timeout`.
pub async fn check(target: &Target, timeout: Duration) -> Result<(), Unhealthy> {
    match tokio::time::timeout(timeout, exchanges(target)).await {
        Ok(result) => result,
        Err(_) => Err(Unhealthy::Timeout(
            target.clone(),
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        )),
    }
}

async fn exchanges(target: &Target) -> Result<(), Unhealthy> {
    let mut stream = connect(target).await?;
    let failed = |e| Unhealthy::Exchange(target.clone(), e);
    let versions = match exchange(
        &mut stream,
        ApiKey::ApiVersions,
        0,
        1,
        CLIENT_ID,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    )
    .await
    .map_err(failed)?
    {
        ResponseKind::ApiVersions(r) => r,
        _ => return Err(failed(unexpected("ApiVersions"))),
    };
    if versions.error_code != 0 {
        return Err(Unhealthy::ApiVersions(target.clone(), versions.error_code));
    }
    let (min, max) = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Metadata as i16)
        .map(|k| (k.min_version, k.max_version))
        .unwrap_or((-1, -1));
    let version = max.min(METADATA_VERSIONS.1);
    if version < min.max(METADATA_VERSIONS.0) {
        return Err(Unhealthy::MetadataVersions(target.clone(), min, max));
    }
    let mut request = MetadataRequest::default().with_topics(Some(Vec::new()));
    if version >= 4 {
        request.allow_auto_topic_creation = false;
    }
    let metadata = match exchange(
        &mut stream,
        ApiKey::Metadata,
        version,
        2,
        CLIENT_ID,
        RequestKind::Metadata(request),
    )
    .await
    .map_err(failed)?
    {
        ResponseKind::Metadata(r) => r,
        _ => return Err(failed(unexpected("Metadata"))),
    };
    if lists_node(&metadata, target.node_id) {
        Ok(())
    } else {
        let mut ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
        ids.sort_unstable();
        let ids = if ids.is_empty() {
            "none".to_string()
        } else {
            ids.iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(Unhealthy::NotInCluster(target.clone(), ids))
    }
}

fn unexpected(api: &str) -> PartitionsError {
    PartitionsError::Protocol(format!("unexpected {api} answer"))
}

/// Whether the Metadata answer lists `node_id` among the cluster's brokers.
pub fn lists_node(metadata: &MetadataResponse, node_id: i32) -> bool {
    metadata.brokers.iter().any(|b| b.node_id.0 == node_id)
}

/// Connects to the first address of the target's host that accepts.
async fn connect(target: &Target) -> Result<TcpStream, Unhealthy> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| Unhealthy::Resolve(target.clone(), target.host.clone(), e))?
        .collect();
    let mut last =
        std::io::Error::new(std::io::ErrorKind::NotFound, "the host name has no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Two small requests: no reason to wait for Nagle.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    if last.kind() == std::io::ErrorKind::NotFound {
        return Err(Unhealthy::Resolve(
            target.clone(),
            target.host.clone(),
            last,
        ));
    }
    Err(Unhealthy::Connect(target.clone(), last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigInput, Origin};
    use shoal_protocol::kafka_protocol::messages::BrokerId;
    use shoal_protocol::kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use tokio::io::AsyncReadExt;

    fn config(pairs: &[(&str, &str)]) -> BrokerConfig {
        let mut input = ConfigInput::default();
        for (k, v) in pairs {
            input.set(*k, *v, Origin::Flag);
        }
        crate::config::broker::load(&input, "myhost")
            .expect("valid test configuration")
            .config
    }

    const CLUSTER: &[(&str, &str)] = &[
        ("node.id", "2"),
        ("process.roles", "broker,controller"),
        ("controller.listener.names", "CONTROLLER"),
        (
            "listeners",
            "CONTROLLER://:9093,PLAINTEXT_HOST://:9094,PLAINTEXT://:9092",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
        ),
        (
            "advertised.listeners",
            "PLAINTEXT://shoal-2:9092,PLAINTEXT_HOST://127.0.0.1:19093",
        ),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> BrokerConfig {
        let mut pairs = CLUSTER.to_vec();
        pairs.extend_from_slice(extra);
        config(&pairs)
    }

    #[test]
    fn the_flag_beats_the_inter_broker_listener_which_beats_the_first() {
        let c = with(&[("inter.broker.listener.name", "PLAINTEXT")]);
        let t = target(&c, None).unwrap();
        assert_eq!(
            t,
            Target {
                listener: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
                node_id: 2,
            }
        );
        let t = target(&c, Some("plaintext_host")).unwrap();
        assert_eq!((t.listener.as_str(), t.port), ("PLAINTEXT_HOST", 9094));
        // Without inter.broker.listener.name: the first client listener, skipping the
        // controller listener listed before it.
        let t = target(&with(&[]), None).unwrap();
        assert_eq!((t.listener.as_str(), t.port), ("PLAINTEXT_HOST", 9094));
    }

    #[test]
    fn controller_and_unknown_listeners_are_refused() {
        let c = with(&[]);
        let err = target(&c, Some("CONTROLLER")).unwrap_err();
        assert_eq!(
            err,
            TargetError::UnknownListener {
                name: "CONTROLLER".into(),
                known: "PLAINTEXT_HOST, PLAINTEXT".into(),
            }
        );
        assert!(matches!(
            target(&c, Some("NOPE")),
            Err(TargetError::UnknownListener { .. })
        ));
        let err = target(&with(&[("inter.broker.listener.name", "CONTROLLER")]), None);
        assert!(
            matches!(err, Err(TargetError::UnknownInterBrokerListener { ref name, .. }) if name == "CONTROLLER"),
            "{err:?}"
        );
        // The flag still works where inter.broker.listener.name is unusable.
        let t = target(
            &with(&[("inter.broker.listener.name", "GONE")]),
            Some("PLAINTEXT"),
        )
        .unwrap();
        assert_eq!(t.port, 9092);
    }

    #[test]
    fn addresses_wildcards_reach_loopback_and_named_hosts_are_kept() {
        let t = |listeners: &str| {
            target(
                &config(&[
                    ("listeners", listeners),
                    ("advertised.listeners", "PLAINTEXT://adv:1"),
                ]),
                None,
            )
        };
        assert_eq!(t("PLAINTEXT://:9092").unwrap().host, "127.0.0.1");
        assert_eq!(t("PLAINTEXT://0.0.0.0:9092").unwrap().host, "127.0.0.1");
        assert_eq!(t("PLAINTEXT://[::]:9092").unwrap().host, "::1");
        assert_eq!(t("PLAINTEXT://[::1]:9092").unwrap().host, "::1");
        assert_eq!(t("PLAINTEXT://10.1.2.3:9092").unwrap().host, "10.1.2.3");
        assert_eq!(t("PLAINTEXT://shoal-1:7000").unwrap().host, "shoal-1");
        assert_eq!(
            t("PLAINTEXT://:0").unwrap_err(),
            TargetError::EphemeralPort("PLAINTEXT".into())
        );
        // The default configuration: localhost:9092.
        let t = target(&config(&[]), None).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.node_id), ("localhost", 9092, 1));
        assert_eq!(
            Target {
                listener: "A".into(),
                host: "::1".into(),
                port: 1,
                node_id: 3
            }
            .to_string(),
            "node 3 on A [::1]:1"
        );
    }

    #[test]
    fn the_node_must_be_among_the_brokers() {
        let metadata = MetadataResponse::default().with_brokers(vec![
            MetadataResponseBroker::default().with_node_id(BrokerId(1)),
            MetadataResponseBroker::default().with_node_id(BrokerId(3)),
        ]);
        assert!(lists_node(&metadata, 3));
        assert!(!lists_node(&metadata, 2));
        assert!(!lists_node(&MetadataResponse::default(), 1));
    }

    fn local_target(port: u16) -> Target {
        Target {
            listener: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port,
            node_id: 1,
        }
    }

    #[tokio::test]
    async fn a_listener_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            // Reads the request and never answers.
            let mut sink = Vec::new();
            let _ = conn.read_to_end(&mut sink).await;
        });
        let err = check(&local_target(port), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Unhealthy::Timeout(_, 300)),
            "{err}: expected a timeout"
        );
        assert_eq!(
            err.to_string(),
            format!("node 1 on PLAINTEXT 127.0.0.1:{port}: no answer within 300 ms")
        );
        server.abort();
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = check(&local_target(port), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, Unhealthy::Connect(..)), "{err}");
    }

    #[tokio::test]
    async fn a_foreign_answer_is_unhealthy() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4];
            conn.read_exact(&mut request).await.unwrap();
            conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                .await
                .unwrap();
        });
        let err = check(&local_target(port), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, Unhealthy::Exchange(..)), "{err}");
        server.await.unwrap();
    }
}
