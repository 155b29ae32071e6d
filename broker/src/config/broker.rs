//! The broker's static configuration: properties file, then `KAFKA_*` environment variables, then
//! `--override` flags, each replacing the one before; validated into [`BrokerConfig`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::catalog::{self, BrokerDef, Usage};
use super::listener::{Endpoint, parse_endpoints, parse_protocol_map};

/// Where a property value came from (for error messages and DescribeConfigs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A properties file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line `--override`.
    Flag,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag => write!(f, "--override"),
        }
    }
}

/// Property values before validation, with their origins.
#[derive(Debug, Clone, Default)]
pub struct ConfigInput {
    entries: BTreeMap<String, (String, Origin)>,
}

impl ConfigInput {
    /// Adds (or replaces) a value; later sources are added later.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>, origin: Origin) {
        self.entries.insert(name.into(), (value.into(), origin));
    }

    /// Adds every entry of a parsed properties file.
    pub fn add_file(&mut self, path: PathBuf, properties: BTreeMap<String, String>) {
        for (name, value) in properties {
            self.set(name, value, Origin::File(path.clone()));
        }
    }

    /// Adds the properties named by `KAFKA_*` variables (see [`super::env`]).
    pub fn add_env(&mut self, properties: BTreeMap<String, (String, String)>) {
        for (name, (value, var)) in properties {
            self.set(name, value, Origin::Env(var));
        }
    }
}

/// Invalid configuration: every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", problems.join("\n  - "))]
pub struct ConfigError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

/// When appended data is fsynced (and so becomes committed: visible to consumers and
/// acknowledged to acks=all producers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// One fdatasync covers every append since the previous one, as soon as possible.
    GroupCommit,
    /// Fsync every `interval_ms`.
    Interval {
        /// Milliseconds between flushes.
        interval_ms: u64,
    },
    /// Never fsync before committing (Kafka's default behaviour): committed on append.
    Never,
}

/// A listener clients connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientListener {
    /// Listener name.
    pub name: String,
    /// Address to bind (`0.0.0.0` for an empty host).
    pub bind_host: String,
    /// Port to bind; 0 binds an ephemeral port.
    pub bind_port: u16,
    /// Host announced in Metadata and DescribeCluster.
    pub advertised_host: String,
    /// Port announced; `None` announces the bound port.
    pub advertised_port: Option<u16>,
}

/// The validated static configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Listeners clients use (`listeners` minus `controller.listener.names`).
    pub listeners: Vec<ClientListener>,
    /// `log.dirs` (or `log.dir`).
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `fetch.max.bytes`: cap on a fetch response.
    pub fetch_max_bytes: i32,
    /// `max.connections`.
    pub max_connections: usize,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: usize,
    /// `connections.max.idle.ms`.
    pub connections_max_idle_ms: u64,
    /// `queued.max.requests`, per connection.
    pub queued_max_requests: usize,
    /// `log.flush.policy` with `log.flush.interval.ms`.
    pub flush: FlushMode,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// The log cleaner (`log.cleaner.*`).
    pub cleaner: CleanerSettings,
    /// Follower fetching: selector, client racks by address, rack discovery.
    pub rack_awareness: super::RackAwarenessConfig,
    /// `metrics.listener`.
    pub metrics_listener: Option<crate::http::HttpUrl>,
    /// `testing.faults.enabled`: the test fault endpoints on `metrics.listener` (off by
    /// default; see `docs/testing-faults.md`).
    pub testing_faults_enabled: bool,
    /// The group coordinator's settings (`group.*`, `offsets.*`, `offset.metadata.max.bytes`).
    pub groups: crate::group::GroupConfig,
    /// `producer.id.expiration.ms`.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval_ms: u64,
    /// Cluster mode (`controller.quorum.voters` naming other nodes); `None`: a single node.
    pub cluster: Option<super::cluster::ClusterConfig>,
    /// Every property set explicitly, in canonical form.
    pub statics: StaticConfig,
}

/// The log cleaner's broker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerSettings {
    /// `log.cleaner.enable`.
    pub enabled: bool,
    /// `log.cleaner.threads`: partitions cleaned concurrently; 0 disables the cleaner.
    pub threads: usize,
    /// `log.cleaner.backoff.ms`: pause between passes.
    pub backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: key-map memory, split between the threads.
    pub dedupe_buffer_bytes: usize,
}

impl BrokerConfig {
    /// The configuration with the rack `broker.rack=auto` found, which DescribeConfigs then
    /// reports as the value of `broker.rack`.
    pub fn with_discovered_rack(mut self, rack: String, source: super::RackSource) -> BrokerConfig {
        self.statics.values.insert("broker.rack", rack.clone());
        self.rack = Some(rack);
        self.rack_awareness.discovered_from = Some(source);
        self
    }
}

/// Explicitly set properties (canonical values), for topic defaults and DescribeConfigs.
#[derive(Debug, Clone, Default)]
pub struct StaticConfig {
    values: BTreeMap<&'static str, String>,
}

impl StaticConfig {
    /// The explicitly set value of `name`.
    pub fn explicit(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The explicit value, else the default (`None` for Kafka's null).
    pub fn value(&self, name: &str) -> Option<String> {
        self.explicit(name)
            .map(str::to_string)
            .or_else(|| catalog::broker_def(name).and_then(|d| d.default.map(str::to_string)))
    }

    pub(crate) fn number<T: std::str::FromStr + Default>(&self, name: &str) -> T {
        // Values were canonicalised against their type before they got here, and defaults are
        // checked by a unit test, so a parse failure cannot happen; default keeps this total.
        self.value(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.value(name).as_deref() == Some("true")
    }
}

/// What `load` produced: the configuration and warnings to log.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: BrokerConfig,
    /// One sentence per property that is accepted but has no effect.
    pub warnings: Vec<String>,
}

/// Validates `input` into a [`BrokerConfig`]. `hostname` is advertised for listeners with an
/// empty host (Kafka advertises the canonical host name there).
pub fn load(input: &ConfigInput, hostname: &str) -> Result<Loaded, ConfigError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut statics = StaticConfig::default();
    for (name, (value, origin)) in &input.entries {
        let Some(def) = catalog::broker_def(name) else {
            problems.push(format!("unknown property '{name}' (from {origin})"));
            continue;
        };
        match catalog::canonicalize(def.ty, def.bound, value) {
            Ok(canonical) => {
                if let Usage::Ignored(reason) = def.usage {
                    warnings.push(format!("{name} is accepted but has no effect: {reason}"));
                }
                statics.values.insert(def.name, canonical);
            }
            Err(reason) => problems.push(format!("{name}={value} (from {origin}): {reason}")),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }

    let node_id: i32 = statics.number("node.id");
    let broker_id: i32 = statics.number("broker.id");
    if broker_id != -1 && broker_id != node_id {
        problems.push(format!(
            "broker.id={broker_id} must equal node.id={node_id}"
        ));
    }
    only(
        &statics,
        "compression.type",
        &["producer"],
        "Shoal stores batches as produced",
        &mut problems,
    );

    let cluster = super::cluster::load(&statics, node_id, &mut problems, &mut warnings);
    let listeners = client_listeners(&statics, hostname, cluster.is_some(), &mut warnings)
        .unwrap_or_else(|p| {
            problems.extend(p);
            Vec::new()
        });

    let log_dirs: Vec<PathBuf> = statics
        .value("log.dirs")
        .or_else(|| statics.value("log.dir"))
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    if log_dirs.is_empty() {
        problems.push("log.dirs names no directory".to_string());
    }
    for (i, dir) in log_dirs.iter().enumerate() {
        if log_dirs[..i].contains(dir) {
            problems.push(format!("log.dirs lists {} twice", dir.display()));
        }
    }

    let flush = match statics.value("log.flush.policy").as_deref() {
        Some("never") => FlushMode::Never,
        Some("interval") => FlushMode::Interval {
            interval_ms: statics
                .explicit("log.flush.interval.ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
        },
        _ => {
            if statics.explicit("log.flush.interval.ms").is_some() {
                warnings.push(
                    "log.flush.interval.ms has no effect unless log.flush.policy=interval".into(),
                );
            }
            FlushMode::GroupCommit
        }
    };

    let rack_awareness = super::rack_awareness::load(&statics, &mut problems, &mut warnings);
    let metrics_listener = super::rack_awareness::metrics_listener(&statics, &mut problems);
    let testing_faults_enabled = statics.flag("testing.faults.enabled");
    if testing_faults_enabled && metrics_listener.is_none() {
        problems.push(
            "testing.faults.enabled=true needs metrics.listener (the fault endpoints are served there)"
                .to_string(),
        );
    }
    let to_usize = |v: i64| usize::try_from(v).unwrap_or(usize::MAX);
    let groups = crate::group::GroupConfig {
        initial_rebalance_delay_ms: statics
            .number::<i64>("group.initial.rebalance.delay.ms")
            .max(0),
        min_session_timeout_ms: statics.number("group.min.session.timeout.ms"),
        max_session_timeout_ms: statics.number("group.max.session.timeout.ms"),
        max_size: to_usize(statics.number("group.max.size")),
        offsets_retention_ms: statics
            .number::<i64>("offsets.retention.minutes")
            .saturating_mul(60_000),
        offsets_retention_check_interval_ms: statics.number("offsets.retention.check.interval.ms"),
        offset_metadata_max_bytes: to_usize(statics.number("offset.metadata.max.bytes")),
        offsets_topic_partitions: statics.number("offsets.topic.num.partitions"),
        offsets_topic_replication_factor: statics.number("offsets.topic.replication.factor"),
        offsets_topic_segment_bytes: statics.number("offsets.topic.segment.bytes"),
        commit_timeout_ms: statics.number("offsets.commit.timeout.ms"),
        load_buffer_bytes: to_usize(statics.number("offsets.load.buffer.size")),
        ..crate::group::GroupConfig::default()
    };
    if let Err(problem) = groups.validate() {
        problems.push(problem);
    }

    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    let config = BrokerConfig {
        node_id,
        rack: statics
            .value("broker.rack")
            .filter(|r| !r.is_empty() && rack_awareness.auto_rack.is_none()),
        listeners,
        log_dirs,
        num_partitions: statics.number("num.partitions"),
        default_replication_factor: statics.number("default.replication.factor"),
        auto_create_topics: statics.flag("auto.create.topics.enable"),
        delete_topic_enable: statics.flag("delete.topic.enable"),
        socket_request_max_bytes: to_usize(statics.number("socket.request.max.bytes")),
        fetch_max_bytes: statics.number("fetch.max.bytes"),
        max_connections: to_usize(statics.number("max.connections")),
        max_connections_per_ip: to_usize(statics.number("max.connections.per.ip")),
        connections_max_idle_ms: statics.number("connections.max.idle.ms"),
        queued_max_requests: to_usize(statics.number("queued.max.requests")),
        flush,
        retention_check_interval_ms: statics.number("log.retention.check.interval.ms"),
        cleaner: CleanerSettings {
            enabled: statics.flag("log.cleaner.enable"),
            threads: to_usize(statics.number::<i64>("log.cleaner.threads")),
            backoff_ms: statics.number("log.cleaner.backoff.ms"),
            dedupe_buffer_bytes: to_usize(statics.number::<i64>("log.cleaner.dedupe.buffer.size")),
        },
        rack_awareness,
        metrics_listener,
        testing_faults_enabled,
        groups,
        producer_id_expiration_ms: statics.number("producer.id.expiration.ms"),
        producer_id_expiration_check_interval_ms: statics
            .number("producer.id.expiration.check.interval.ms"),
        cluster,
        statics,
    };
    Ok(Loaded { config, warnings })
}

fn only(
    statics: &StaticConfig,
    name: &str,
    allowed: &[&str],
    reason: &str,
    problems: &mut Vec<String>,
) {
    if let Some(value) = statics.explicit(name)
        && !allowed.contains(&value)
    {
        problems.push(format!(
            "{name}={value} is not supported ({reason}); allowed: {}",
            allowed.join(", ")
        ));
    }
}

/// `controller.listener.names`, upper-cased.
pub(crate) fn controller_listener_names(statics: &StaticConfig) -> Vec<String> {
    statics
        .value("controller.listener.names")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn client_listeners(
    statics: &StaticConfig,
    hostname: &str,
    cluster_mode: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<ClientListener>, Vec<String>> {
    let mut problems = Vec::new();
    let listeners = parse_endpoints(&statics.value("listeners").unwrap_or_default())
        .map_err(|e| vec![format!("listeners: {e}")])?;
    let protocols = parse_protocol_map(
        &statics
            .value("listener.security.protocol.map")
            .unwrap_or_default(),
    )
    .map_err(|e| vec![format!("listener.security.protocol.map: {e}")])?;
    let controller_names = controller_listener_names(statics);
    let advertised = match statics.value("advertised.listeners") {
        Some(v) => parse_endpoints(&v).map_err(|e| vec![format!("advertised.listeners: {e}")])?,
        None => Vec::new(),
    };

    let mut out = Vec::new();
    for listener in &listeners {
        if controller_names.contains(&listener.name) {
            if cluster_mode {
                continue;
            }
            warnings.push(format!(
                "controller listener {listener} is not opened: a Shoal node is its own controller"
            ));
            continue;
        }
        match protocols.get(&listener.name).map(String::as_str) {
            Some("PLAINTEXT") => {}
            Some(other) => problems.push(format!(
                "listener {} uses security protocol {other}; Shoal supports PLAINTEXT only",
                listener.name
            )),
            None => problems.push(format!(
                "no security protocol for listener {} in listener.security.protocol.map",
                listener.name
            )),
        }
        let advertised_endpoint: &Endpoint = advertised
            .iter()
            .find(|a| a.name == listener.name)
            .unwrap_or(listener);
        let advertised_host = if advertised_endpoint.host.is_empty() {
            hostname.to_string()
        } else {
            advertised_endpoint.host.clone()
        };
        if advertised_host == "0.0.0.0" || advertised_host == "::" {
            problems.push(format!(
                "listener {} would advertise the non-routable address {advertised_host}; set advertised.listeners",
                listener.name
            ));
        }
        out.push(ClientListener {
            name: listener.name.clone(),
            bind_host: if listener.host.is_empty() {
                "0.0.0.0".to_string()
            } else {
                listener.host.clone()
            },
            bind_port: listener.port,
            advertised_host,
            advertised_port: (advertised_endpoint.port != 0).then_some(advertised_endpoint.port),
        });
    }
    for a in &advertised {
        if !listeners.iter().any(|l| l.name == a.name) || controller_names.contains(&a.name) {
            problems.push(format!(
                "advertised listener {} has no matching client listener in listeners",
                a.name
            ));
        }
    }
    for (i, l) in out.iter().enumerate() {
        if l.bind_port != 0
            && out[..i]
                .iter()
                .any(|o| o.bind_port == l.bind_port && o.bind_host == l.bind_host)
        {
            problems.push(format!(
                "listeners {} and another share {}:{}",
                l.name, l.bind_host, l.bind_port
            ));
        }
    }
    if out.is_empty() && problems.is_empty() {
        problems.push("listeners defines no client listener".to_string());
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Every property definition, for DescribeConfigs.
pub fn definitions() -> &'static [BrokerDef] {
    catalog::BROKER_DEFS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(pairs: &[(&str, &str)]) -> ConfigInput {
        let mut input = ConfigInput::default();
        for (k, v) in pairs {
            input.set(*k, *v, Origin::Flag);
        }
        input
    }

    #[test]
    fn defaults_make_a_single_local_node() {
        let loaded = load(&ConfigInput::default(), "host").unwrap();
        let c = loaded.config;
        assert_eq!(c.node_id, 1);
        assert_eq!(c.log_dirs, vec![PathBuf::from("./shoal-data")]);
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].bind_host, "localhost");
        assert_eq!(c.listeners[0].bind_port, 9092);
        assert_eq!(c.listeners[0].advertised_port, Some(9092));
        assert!(c.auto_create_topics);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.flush, FlushMode::GroupCommit);
        assert_eq!(c.groups, crate::group::GroupConfig::default());
        assert_eq!(c.producer_id_expiration_ms, 86_400_000);
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn the_apache_image_default_file_is_accepted_with_warnings() {
        let loaded = load(
            &input(&[
                ("advertised.listeners", "PLAINTEXT://localhost:29092,PLAINTEXT_HOST://localhost:9092"),
                ("controller.listener.names", "CONTROLLER"),
                ("controller.quorum.voters", "1@localhost:29093"),
                ("group.initial.rebalance.delay.ms", "0"),
                ("inter.broker.listener.name", "PLAINTEXT"),
                ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT"),
                ("listeners", "PLAINTEXT://localhost:29092,CONTROLLER://localhost:29093,PLAINTEXT_HOST://0.0.0.0:9092"),
                ("log.dirs", "/tmp/kraft-combined-logs"),
                ("node.id", "1"),
                ("offsets.topic.replication.factor", "1"),
                ("process.roles", "broker,controller"),
                ("transaction.state.log.min.isr", "1"),
                ("transaction.state.log.replication.factor", "1"),
            ]),
            "host",
        )
        .unwrap();
        let names: Vec<_> = loaded
            .config
            .listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, vec!["PLAINTEXT", "PLAINTEXT_HOST"]);
        assert_eq!(loaded.config.listeners[1].advertised_host, "localhost");
        assert!(loaded.config.cluster.is_none());
        assert!(loaded.warnings.iter().any(|w| w.contains("process.roles")));
        assert!(loaded.warnings.iter().any(|w| w.contains("CONTROLLER")));
    }

    #[test]
    fn unknown_and_invalid_settings_are_all_reported() {
        let err = load(
            &input(&[
                ("no.such.thing", "1"),
                ("num.partitions", "0"),
                ("log.segment.bytes", "x"),
            ]),
            "host",
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        assert!(err.to_string().contains("no.such.thing"));
    }

    #[test]
    fn listener_rules() {
        let bad = |pairs: &[(&str, &str)]| load(&input(pairs), "host").is_err();
        assert!(bad(&[("listeners", "SSL://localhost:9093")]));
        assert!(bad(&[("listeners", "PLAINTEXT://0.0.0.0:9092")]));
        assert!(bad(&[("listeners", "EXTERNAL://localhost:9092")]));
        assert!(bad(&[("advertised.listeners", "OTHER://h:1")]));
        assert!(bad(&[("broker.id", "2")]));
        assert!(bad(&[("compression.type", "gzip")]));
        let ok = load(&input(&[("listeners", "PLAINTEXT://127.0.0.1:0")]), "host").unwrap();
        assert_eq!(ok.config.listeners[0].advertised_port, None);
        let any_host = load(&input(&[("listeners", "PLAINTEXT://:0")]), "myhost").unwrap();
        assert_eq!(any_host.config.listeners[0].bind_host, "0.0.0.0");
        assert_eq!(any_host.config.listeners[0].advertised_host, "myhost");
    }

    fn cluster_node(id: &str, extra: &[(&'static str, &'static str)]) -> ConfigInput {
        let mut pairs = vec![
            ("node.id", id),
            ("process.roles", "broker,controller"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:19093,2@127.0.0.1:19094,3@127.0.0.1:19095",
            ),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ),
        ];
        let listeners = match id {
            "1" => "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
            _ => "PLAINTEXT://127.0.0.1:19096,CONTROLLER://127.0.0.1:19094",
        };
        pairs.push(("listeners", listeners));
        pairs.extend_from_slice(extra);
        input(&pairs)
    }

    #[test]
    fn cluster_mode_from_kraft_settings() {
        let loaded = load(
            &cluster_node("1", &[("replica.lag.time.max.ms", "5000")]),
            "h",
        )
        .unwrap();
        let cluster = loaded.config.cluster.expect("cluster mode");
        assert_eq!(cluster.voters.len(), 3);
        assert_eq!(cluster.controller_listener.port, 19093);
        assert_eq!(cluster.replica_lag_time_max_ms, 5000);
        assert!(cluster.auto_leader_rebalance && cluster.controlled_shutdown);
        assert_eq!(cluster.leader_imbalance_check_interval_ms, 300_000);
        // The controller listener is not a client listener, and no warning says it is unused.
        assert_eq!(loaded.config.listeners.len(), 1);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        // No voters, or only this node: a single node.
        assert!(
            load(&ConfigInput::default(), "h")
                .unwrap()
                .config
                .cluster
                .is_none()
        );
    }

    #[test]
    fn cluster_mode_errors_are_clear() {
        let err = |extra: &[(&'static str, &'static str)], id: &str| {
            load(&cluster_node(id, extra), "h").unwrap_err().to_string()
        };
        assert!(err(&[("node.id", "7")], "1").contains("not in controller.quorum.voters"));
        assert!(err(&[("process.roles", "broker")], "1").contains("process.roles=broker"));
        assert!(
            err(&[("listeners", "PLAINTEXT://127.0.0.1:19092")], "1")
                .contains("CONTROLLER://host:port")
        );
        // Node 2's voter entry says 19094; listening elsewhere is an error.
        assert!(
            err(
                &[(
                    "listeners",
                    "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2"
                )],
                "2"
            )
            .contains("different ports")
        );
        assert!(err(&[("controller.quorum.voters", "1@h")], "1").contains("id@host:port"));
        assert!(err(&[("cluster.id", "a b")], "1").contains("cluster.id"));
        assert!(err(&[("broker.heartbeat.interval.ms", "9000")], "1").contains("smaller than"));
    }

    #[test]
    fn flush_policy() {
        let c = load(
            &input(&[
                ("log.flush.policy", "interval"),
                ("log.flush.interval.ms", "50"),
            ]),
            "h",
        )
        .unwrap();
        assert_eq!(c.config.flush, FlushMode::Interval { interval_ms: 50 });
        let c = load(&input(&[("log.flush.policy", "never")]), "h").unwrap();
        assert_eq!(c.config.flush, FlushMode::Never);
    }
}
