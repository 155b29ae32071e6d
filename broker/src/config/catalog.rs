//! The configuration catalog: every broker property and topic config Shoal knows, with Kafka's
//! names, types, defaults and bounds.
//!
//! One table per resource type drives parsing and validation (startup, CreateTopics,
//! AlterConfigs) and DescribeConfigs (values, sources, synonyms, documentation), so that what is
//! accepted and what is described cannot disagree. Defaults are Kafka 4.x's unless the entry's
//! documentation says otherwise.

/// The value type, numbered as DescribeConfigs v3+ reports it (`config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` or `false`.
    Boolean = 1,
    /// Free text.
    String = 2,
    /// 32-bit integer.
    Int = 3,
    /// 16-bit integer.
    Short = 4,
    /// 64-bit integer.
    Long = 5,
    /// Floating point.
    Double = 6,
    /// Comma-separated list.
    List = 7,
    /// A secret; never described.
    Password = 9,
}

/// Allowed values beyond the type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// Any value of the type.
    Any,
    /// A number at least this large.
    AtLeast(i64),
    /// A number in this inclusive range.
    Between(i64, i64),
    /// A floating-point number in this inclusive range.
    BetweenF(f64, f64),
    /// One of these strings (for lists: every element).
    OneOf(&'static [&'static str]),
}

/// Whether Shoal acts on a broker property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// The property is read and applied.
    Applied,
    /// Accepted so that Kafka configuration files work unchanged, with a warning at startup saying
    /// why it has no effect.
    Ignored(&'static str),
}

/// One broker property.
#[derive(Debug, Clone, Copy)]
pub struct BrokerDef {
    /// Kafka's name.
    pub name: &'static str,
    /// Value type.
    pub ty: ConfigType,
    /// Default value in canonical form; `None` is Kafka's null.
    pub default: Option<&'static str>,
    /// Allowed values.
    pub bound: Bound,
    /// Whether AlterConfigs may change it at runtime (cluster-wide or per broker).
    pub dynamic: bool,
    /// Whether Shoal applies it.
    pub usage: Usage,
    /// One line of documentation (DescribeConfigs v3+).
    pub doc: &'static str,
}

/// Conversion from a broker synonym's unit to the topic config's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynonymUnit {
    /// Same unit.
    Same,
    /// Minutes → milliseconds.
    MinutesToMs,
    /// Hours → milliseconds.
    HoursToMs,
}

/// How Shoal treats a topic config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicSupport {
    /// Stored and applied.
    Applied,
    /// Stored and described, but without effect on a Shoal node (the reason is logged when set).
    NoEffect(&'static str),
    /// Only these values are accepted; others are `INVALID_CONFIG` with the reason.
    Only(&'static [&'static str], &'static str),
}

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicDef {
    /// Kafka's name.
    pub name: &'static str,
    /// Value type.
    pub ty: ConfigType,
    /// Broker properties that supply the default, in precedence order.
    pub synonyms: &'static [(&'static str, SynonymUnit)],
    /// Default when no synonym has a value (Kafka's `LogConfig` default).
    pub default: &'static str,
    /// Allowed values.
    pub bound: Bound,
    /// How Shoal treats it.
    pub support: TopicSupport,
    /// One line of documentation.
    pub doc: &'static str,
}

const INT_MAX: &str = "2147483647";
const LONG_MAX: &str = "9223372036854775807";
const SINGLE_NODE: &str =
    "a Shoal node is always broker and controller of its own single-node cluster";
const NO_THREAD_POOLS: &str = "Shoal runs on an async runtime and has no such thread pool";
const NO_TRANSACTIONS: &str = "transactions are not supported";
const NO_SHARE_GROUPS: &str = "share groups are not supported";

use Bound::*;
use ConfigType::*;
use Usage::*;

/// Every broker property Shoal accepts. Anything else is an error at startup.
#[rustfmt::skip]
pub static BROKER_DEFS: &[BrokerDef] = &[
    BrokerDef { name: "node.id", ty: Int, default: Some("1"), bound: AtLeast(0), dynamic: false, usage: Applied, doc: "The node id of this server. Shoal defaults to 1 for a single node." },
    BrokerDef { name: "broker.id", ty: Int, default: Some("-1"), bound: AtLeast(-1), dynamic: false, usage: Applied, doc: "Legacy name of node.id; if set it must equal node.id." },
    BrokerDef { name: "broker.rack", ty: String, default: None, bound: Any, dynamic: false, usage: Applied, doc: "Rack (availability zone) of the broker, reported in Metadata and DescribeCluster and used by follower fetching. Shoal: 'auto' discovers it at startup from broker.rack.auto.sources." },
    BrokerDef { name: "broker.rack.auto.sources", ty: List, default: Some("env,aws,gcp,azure"), bound: OneOf(&["env", "aws", "gcp", "azure"]), dynamic: false, usage: Applied, doc: "Shoal: where broker.rack=auto looks, in order of preference: env (broker.rack.auto.env.name), aws (IMDSv2 availability-zone id), gcp (metadata zone), azure (IMDS location-zone). Startup fails if none answers." },
    BrokerDef { name: "broker.rack.auto.env.name", ty: String, default: Some("SHOAL_RACK"), bound: Any, dynamic: false, usage: Applied, doc: "Shoal: environment variable holding the rack for broker.rack=auto (for Kubernetes, filled with the node's topology.kubernetes.io/zone)." },
    BrokerDef { name: "broker.rack.auto.timeout.ms", ty: Long, default: Some("1000"), bound: Between(1, 60_000), dynamic: false, usage: Applied, doc: "Shoal: deadline of each cloud metadata request made by broker.rack=auto (the clouds are asked concurrently)." },
    BrokerDef { name: "broker.rack.auto.aws.endpoint", ty: String, default: Some("http://169.254.169.254"), bound: Any, dynamic: false, usage: Applied, doc: "Shoal: AWS instance metadata service (IMDSv2) for broker.rack=auto." },
    BrokerDef { name: "broker.rack.auto.gcp.endpoint", ty: String, default: Some("http://169.254.169.254"), bound: Any, dynamic: false, usage: Applied, doc: "Shoal: GCP metadata server for broker.rack=auto." },
    BrokerDef { name: "broker.rack.auto.azure.endpoint", ty: String, default: Some("http://169.254.169.254"), bound: Any, dynamic: false, usage: Applied, doc: "Shoal: Azure instance metadata service for broker.rack=auto." },
    BrokerDef { name: "replica.selector.class", ty: String, default: None, bound: Any, dynamic: false, usage: Applied, doc: "Replica selector of partition leaders (KIP-392): org.apache.kafka.common.replica.RackAwareReplicaSelector sends consumers that set client.rack to an in-sync replica in their rack; unset or LeaderReplicaSelector: the leader serves." },
    BrokerDef { name: "follower.fetching.enabled", ty: Boolean, default: Some("false"), bound: Any, dynamic: false, usage: Applied, doc: "Shoal: true is the same as replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector." },
    BrokerDef { name: "client.rack.cidrs", ty: List, default: None, bound: Any, dynamic: false, usage: Applied, doc: "Shoal: CIDR=rack entries (IPv4 or IPv6, longest prefix wins); a Fetch v11+ without a rack_id is given the rack of the client's address." },
    BrokerDef { name: "metrics.listener", ty: String, default: None, bound: Any, dynamic: false, usage: Applied, doc: "Shoal: http://host:port/path of the Prometheus endpoint (path defaults to /metrics; port 0 binds a free port, printed at startup). Unset: no endpoint." },
    BrokerDef { name: "testing.faults.enabled", ty: Boolean, default: Some("false"), bound: Any, dynamic: false, usage: Applied, doc: "Shoal, for tests only: serves fault endpoints on metrics.listener (POST /faults/replication/cut and /heal) that cut one partition's replication to one follower. Never enable in production." },
    BrokerDef { name: "listeners", ty: List, default: Some("PLAINTEXT://localhost:9092"), bound: Any, dynamic: false, usage: Applied, doc: "Listener names, hosts and ports to bind (port 0 binds an ephemeral port). Shoal defaults to PLAINTEXT://localhost:9092." },
    BrokerDef { name: "advertised.listeners", ty: List, default: None, bound: Any, dynamic: false, usage: Applied, doc: "Addresses clients are told to use, per listener name; defaults to the listeners (with the bound port when the listener port is 0)." },
    BrokerDef { name: "listener.security.protocol.map", ty: String, default: Some( "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT", ), bound: Any, dynamic: false, usage: Applied, doc: "Security protocol of each listener name. Shoal supports PLAINTEXT only." },
    BrokerDef { name: "controller.listener.names", ty: List, default: None, bound: Any, dynamic: false, usage: Applied, doc: "Listeners reserved for the controller protocol. In a Shoal cluster the first one carries all traffic between nodes (controller and partition replication); a single node does not open it." },
    BrokerDef { name: "inter.broker.listener.name", ty: String, default: None, bound: Any, dynamic: false, usage: Ignored(SINGLE_NODE), doc: "Listener used between brokers." },
    BrokerDef { name: "process.roles", ty: List, default: None, bound: OneOf(&["broker", "controller"]), dynamic: false, usage: Applied, doc: "KRaft roles of this process. In a Shoal cluster every node is broker,controller." },
    BrokerDef { name: "controller.quorum.voters", ty: List, default: None, bound: Any, dynamic: false, usage: Applied, doc: "Static controller quorum, id@host:port of each node's controller listener. Shoal: naming other nodes than this one makes the node a member of a cluster; unset (or this node alone) runs a single-node broker." },
    BrokerDef { name: "cluster.id", ty: String, default: None, bound: Any, dynamic: false, usage: Applied, doc: "Shoal: pins the cluster id of a new cluster (otherwise the first node to start picks a random one); a node whose log directories or quorum hold another id refuses to start." },
    BrokerDef { name: "replica.lag.time.max.ms", ty: Long, default: Some("30000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "A follower that has not caught up with the leader's log end for this long leaves the ISR." },
    BrokerDef { name: "auto.leader.rebalance.enable", ty: Boolean, default: Some("true"), bound: Any, dynamic: false, usage: Applied, doc: "Move partition leadership back to the preferred (first) replica when it is in sync." },
    BrokerDef { name: "leader.imbalance.check.interval.seconds", ty: Long, default: Some("300"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "How often the preferred-leader rebalance runs." },
    BrokerDef { name: "controlled.shutdown.enable", ty: Boolean, default: Some("true"), bound: Any, dynamic: false, usage: Applied, doc: "On SIGTERM, hand this broker's leaderships to other in-sync replicas before stopping." },
    BrokerDef { name: "broker.session.timeout.ms", ty: Int, default: Some("9000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "A broker that sent no heartbeat for this long is fenced (reported as offline, leads nothing)." },
    BrokerDef { name: "broker.heartbeat.interval.ms", ty: Int, default: Some("2000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "How often a broker sends a heartbeat to the controller." },
    BrokerDef { name: "controller.quorum.bootstrap.servers", ty: List, default: None, bound: Any, dynamic: false, usage: Ignored(SINGLE_NODE), doc: "Controller quorum bootstrap servers." },
    BrokerDef { name: "log.dirs", ty: List, default: None, bound: Any, dynamic: false, usage: Applied, doc: "Directories holding partition logs and the metadata log; log.dir is used if unset." },
    BrokerDef { name: "log.dir", ty: String, default: Some("./shoal-data"), bound: Any, dynamic: false, usage: Applied, doc: "The data directory when log.dirs is unset. Shoal defaults to ./shoal-data." },
    BrokerDef { name: "num.partitions", ty: Int, default: Some("1"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Default number of partitions for new topics." },
    BrokerDef { name: "default.replication.factor", ty: Short, default: Some("1"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Default replication factor for new topics." },
    BrokerDef { name: "auto.create.topics.enable", ty: Boolean, default: Some("true"), bound: Any, dynamic: false, usage: Applied, doc: "Create unknown topics requested through Metadata." },
    BrokerDef { name: "delete.topic.enable", ty: Boolean, default: Some("true"), bound: Any, dynamic: false, usage: Applied, doc: "Allow DeleteTopics." },
    BrokerDef { name: "log.segment.bytes", ty: Int, default: Some("1073741824"), bound: AtLeast(1_048_576), dynamic: true, usage: Applied, doc: "Maximum size of a log segment file." },
    BrokerDef { name: "log.roll.ms", ty: Long, default: None, bound: AtLeast(1), dynamic: true, usage: Applied, doc: "Maximum age of the active segment before it is rolled; log.roll.hours if unset." },
    BrokerDef { name: "log.roll.hours", ty: Int, default: Some("168"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Maximum age of the active segment in hours." },
    BrokerDef { name: "log.retention.ms", ty: Long, default: None, bound: AtLeast(-1), dynamic: true, usage: Applied, doc: "Time to keep a segment before deleting it; -1 keeps it forever; log.retention.minutes/hours if unset." },
    BrokerDef { name: "log.retention.minutes", ty: Int, default: None, bound: AtLeast(-1), dynamic: false, usage: Applied, doc: "Retention in minutes." },
    BrokerDef { name: "log.retention.hours", ty: Int, default: Some("168"), bound: AtLeast(-1), dynamic: false, usage: Applied, doc: "Retention in hours." },
    BrokerDef { name: "log.retention.bytes", ty: Long, default: Some("-1"), bound: Any, dynamic: true, usage: Applied, doc: "Maximum size of a partition log before old segments are deleted; -1 is unlimited." },
    BrokerDef { name: "log.retention.check.interval.ms", ty: Long, default: Some("300000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "How often retention runs." },
    BrokerDef { name: "log.cleanup.policy", ty: List, default: Some("delete"), bound: OneOf(&["compact", "delete"]), dynamic: true, usage: Applied, doc: "Default cleanup policy: delete, compact or both." },
    BrokerDef { name: "message.max.bytes", ty: Int, default: Some("1048588"), bound: AtLeast(0), dynamic: true, usage: Applied, doc: "Largest record batch a topic accepts (topic max.message.bytes)." },
    BrokerDef { name: "log.message.timestamp.type", ty: String, default: Some("CreateTime"), bound: OneOf(&["CreateTime", "LogAppendTime"]), dynamic: true, usage: Applied, doc: "Default timestamp type of new topics." },
    BrokerDef { name: "log.message.timestamp.before.max.ms", ty: Long, default: Some(LONG_MAX), bound: AtLeast(0), dynamic: true, usage: Applied, doc: "How far in the past a CreateTime timestamp may lie." },
    BrokerDef { name: "log.message.timestamp.after.max.ms", ty: Long, default: Some("3600000"), bound: AtLeast(0), dynamic: true, usage: Applied, doc: "How far in the future a CreateTime timestamp may lie." },
    BrokerDef { name: "min.insync.replicas", ty: Int, default: Some("1"), bound: AtLeast(1), dynamic: true, usage: Applied, doc: "Replicas that must acknowledge an acks=all write." },
    BrokerDef { name: "compression.type", ty: String, default: Some("producer"), bound: OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), dynamic: true, usage: Applied, doc: "Final compression of topics. Shoal stores batches as produced: producer only." },
    BrokerDef { name: "fetch.max.bytes", ty: Int, default: Some("57671680"), bound: AtLeast(1024), dynamic: false, usage: Applied, doc: "Largest fetch response, whatever the request asks for." },
    BrokerDef { name: "socket.request.max.bytes", ty: Int, default: Some("104857600"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Largest request frame accepted; larger frames close the connection." },
    BrokerDef { name: "max.connections", ty: Int, default: Some("10000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Maximum open client connections. Shoal defaults to 10000 (Kafka: unlimited)." },
    BrokerDef { name: "max.connections.per.ip", ty: Int, default: Some(INT_MAX), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Maximum open connections from one address." },
    BrokerDef { name: "connections.max.idle.ms", ty: Long, default: Some("600000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Close connections idle for this long." },
    BrokerDef { name: "queued.max.requests", ty: Int, default: Some("500"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Requests one connection may have read but not yet answered; reading pauses at the limit (Kafka: across the network threads)." },
    BrokerDef { name: "log.flush.policy", ty: String, default: Some("group_commit"), bound: OneOf(&["group_commit", "interval", "never"]), dynamic: false, usage: Applied, doc: "Shoal: when appended data is fsynced and becomes visible to acks=all and consumers. group_commit: one fdatasync covers all appends since the last; interval: every log.flush.interval.ms; never: on roll and shutdown only, like Kafka's default." },
    BrokerDef { name: "log.flush.interval.ms", ty: Long, default: None, bound: AtLeast(0), dynamic: false, usage: Applied, doc: "Flush interval for log.flush.policy=interval (default 1000 then)." },
    BrokerDef { name: "log.flush.interval.messages", ty: Long, default: Some(LONG_MAX), bound: AtLeast(1), dynamic: false, usage: Ignored("use log.flush.policy"), doc: "Messages between forced flushes." },
    BrokerDef { name: "log.flush.scheduler.interval.ms", ty: Long, default: Some(LONG_MAX), bound: Any, dynamic: false, usage: Ignored("use log.flush.policy"), doc: "How often the flusher checks logs." },
    BrokerDef { name: "log.flush.offset.checkpoint.interval.ms", ty: Int, default: Some("60000"), bound: AtLeast(0), dynamic: false, usage: Ignored("Shoal recovers offsets from the log itself"), doc: "Recovery point checkpoint interval." },
    BrokerDef { name: "log.index.interval.bytes", ty: Int, default: Some("4096"), bound: AtLeast(0), dynamic: true, usage: Ignored("the storage engine chooses its own index interval"), doc: "Interval of offset index entries." },
    BrokerDef { name: "log.index.size.max.bytes", ty: Int, default: Some("10485760"), bound: AtLeast(4), dynamic: true, usage: Ignored("the storage engine sizes its own indexes"), doc: "Maximum index file size." },
    BrokerDef { name: "log.segment.delete.delay.ms", ty: Long, default: Some("60000"), bound: AtLeast(0), dynamic: true, usage: Ignored("segments are deleted once no reader holds them"), doc: "Delay before a deleted segment's files are removed." },
    BrokerDef { name: "log.roll.jitter.ms", ty: Long, default: None, bound: AtLeast(0), dynamic: true, usage: Ignored("segments roll without jitter"), doc: "Jitter subtracted from the roll time." },
    BrokerDef { name: "log.roll.jitter.hours", ty: Int, default: Some("0"), bound: AtLeast(0), dynamic: false, usage: Ignored("segments roll without jitter"), doc: "Jitter in hours." },
    BrokerDef { name: "log.preallocate", ty: Boolean, default: Some("false"), bound: Any, dynamic: true, usage: Ignored("segments are not preallocated"), doc: "Preallocate segment files." },
    BrokerDef { name: "unclean.leader.election.enable", ty: Boolean, default: Some("false"), bound: Any, dynamic: true, usage: Ignored(SINGLE_NODE), doc: "Allow out-of-sync replicas to become leader." },
    BrokerDef { name: "log.cleaner.enable", ty: Boolean, default: Some("true"), bound: Any, dynamic: false, usage: Applied, doc: "Run the log cleaner (compaction of cleanup.policy=compact topics)." },
    BrokerDef { name: "log.cleaner.threads", ty: Int, default: Some("1"), bound: AtLeast(0), dynamic: false, usage: Applied, doc: "Partitions cleaned at the same time (blocking-pool tasks); 0 disables the cleaner." },
    BrokerDef { name: "log.cleaner.backoff.ms", ty: Long, default: Some("15000"), bound: AtLeast(0), dynamic: false, usage: Applied, doc: "Pause between cleaner passes when no partition needed cleaning." },
    BrokerDef { name: "log.cleaner.dedupe.buffer.size", ty: Long, default: Some("134217728"), bound: AtLeast(1_048_576), dynamic: false, usage: Applied, doc: "Memory for the key map of one cleaning pass, shared by the cleaner threads." },
    BrokerDef { name: "log.cleaner.io.buffer.size", ty: Int, default: Some("524288"), bound: AtLeast(0), dynamic: true, usage: Ignored("the cleaner reads segments through their mappings"), doc: "Cleaner IO buffer size." },
    BrokerDef { name: "log.cleaner.delete.retention.ms", ty: Long, default: Some("86400000"), bound: AtLeast(0), dynamic: true, usage: Applied, doc: "Default delete.retention.ms." },
    BrokerDef { name: "log.cleaner.min.compaction.lag.ms", ty: Long, default: Some("0"), bound: AtLeast(0), dynamic: true, usage: Applied, doc: "Default min.compaction.lag.ms." },
    BrokerDef { name: "log.cleaner.max.compaction.lag.ms", ty: Long, default: Some(LONG_MAX), bound: AtLeast(1), dynamic: true, usage: Applied, doc: "Default max.compaction.lag.ms." },
    BrokerDef { name: "log.cleaner.min.cleanable.ratio", ty: Double, default: Some("0.5"), bound: BetweenF(0.0, 1.0), dynamic: true, usage: Applied, doc: "Default min.cleanable.dirty.ratio." },
    BrokerDef { name: "num.network.threads", ty: Int, default: Some("3"), bound: AtLeast(1), dynamic: false, usage: Ignored(NO_THREAD_POOLS), doc: "Network threads." },
    BrokerDef { name: "num.io.threads", ty: Int, default: Some("8"), bound: AtLeast(1), dynamic: false, usage: Ignored(NO_THREAD_POOLS), doc: "Request handler threads." },
    BrokerDef { name: "num.recovery.threads.per.data.dir", ty: Int, default: Some("2"), bound: AtLeast(1), dynamic: false, usage: Ignored(NO_THREAD_POOLS), doc: "Log recovery threads per data directory." },
    BrokerDef { name: "num.replica.fetchers", ty: Int, default: Some("1"), bound: AtLeast(1), dynamic: false, usage: Ignored(SINGLE_NODE), doc: "Replica fetcher threads." },
    BrokerDef { name: "socket.send.buffer.bytes", ty: Int, default: Some("102400"), bound: Any, dynamic: false, usage: Ignored("the operating system sizes socket buffers"), doc: "SO_SNDBUF." },
    BrokerDef { name: "socket.receive.buffer.bytes", ty: Int, default: Some("102400"), bound: Any, dynamic: false, usage: Ignored("the operating system sizes socket buffers"), doc: "SO_RCVBUF." },
    BrokerDef { name: "offsets.topic.replication.factor", ty: Short, default: Some("3"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Replication factor of __consumer_offsets when it is created. Shoal clamps it to the number of live brokers (Kafka refuses to create the topic until enough brokers are up)." },
    BrokerDef { name: "offsets.topic.num.partitions", ty: Int, default: Some("50"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Partitions of __consumer_offsets when it is created; an existing topic keeps its count." },
    BrokerDef { name: "offsets.topic.segment.bytes", ty: Int, default: Some("104857600"), bound: AtLeast(1_048_576), dynamic: false, usage: Applied, doc: "segment.bytes of __consumer_offsets." },
    BrokerDef { name: "offsets.retention.minutes", ty: Int, default: Some("10080"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Committed offsets of a group that has been empty this long (or of a standalone consumer not committed for this long) are deleted." },
    BrokerDef { name: "offsets.retention.check.interval.ms", ty: Long, default: Some("600000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "How often expired offsets and empty groups are removed." },
    BrokerDef { name: "offsets.commit.timeout.ms", ty: Int, default: Some("5000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "How long a coordinator write (offset commit, group state) may wait to be committed before the request fails." },
    BrokerDef { name: "offsets.load.buffer.size", ty: Int, default: Some("5242880"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Bytes read at a time when loading a __consumer_offsets partition." },
    BrokerDef { name: "offset.metadata.max.bytes", ty: Int, default: Some("4096"), bound: Any, dynamic: false, usage: Applied, doc: "Largest metadata string of a committed offset." },
    BrokerDef { name: "group.initial.rebalance.delay.ms", ty: Int, default: Some("3000"), bound: Any, dynamic: false, usage: Applied, doc: "How long the first rebalance of an empty group waits for more members to join." },
    BrokerDef { name: "group.min.session.timeout.ms", ty: Int, default: Some("6000"), bound: Any, dynamic: false, usage: Applied, doc: "Smallest session timeout a classic group member may ask for." },
    BrokerDef { name: "group.max.session.timeout.ms", ty: Int, default: Some("1800000"), bound: Any, dynamic: false, usage: Applied, doc: "Largest session timeout a classic group member may ask for." },
    BrokerDef { name: "group.max.size", ty: Int, default: Some(INT_MAX), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "Most members a classic group may have." },
    BrokerDef { name: "producer.id.expiration.ms", ty: Int, default: Some("86400000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "A partition forgets an idempotent producer whose last batch is this old." },
    BrokerDef { name: "producer.id.expiration.check.interval.ms", ty: Int, default: Some("600000"), bound: AtLeast(1), dynamic: false, usage: Applied, doc: "How often idle producers are forgotten." },
    BrokerDef { name: "transaction.state.log.replication.factor", ty: Short, default: Some("3"), bound: AtLeast(1), dynamic: false, usage: Ignored(NO_TRANSACTIONS), doc: "Replication factor of __transaction_state." },
    BrokerDef { name: "transaction.state.log.min.isr", ty: Int, default: Some("2"), bound: AtLeast(1), dynamic: false, usage: Ignored(NO_TRANSACTIONS), doc: "min.insync.replicas of __transaction_state." },
    BrokerDef { name: "share.coordinator.state.topic.replication.factor", ty: Short, default: Some("3"), bound: AtLeast(1), dynamic: false, usage: Ignored(NO_SHARE_GROUPS), doc: "Replication factor of __share_group_state." },
    BrokerDef { name: "share.coordinator.state.topic.min.isr", ty: Short, default: Some("2"), bound: AtLeast(1), dynamic: false, usage: Ignored(NO_SHARE_GROUPS), doc: "min.insync.replicas of __share_group_state." },
];

const RETENTION_MS: &[(&str, SynonymUnit)] = &[
    ("log.retention.ms", SynonymUnit::Same),
    ("log.retention.minutes", SynonymUnit::MinutesToMs),
    ("log.retention.hours", SynonymUnit::HoursToMs),
];
const SEGMENT_MS: &[(&str, SynonymUnit)] = &[
    ("log.roll.ms", SynonymUnit::Same),
    ("log.roll.hours", SynonymUnit::HoursToMs),
];
const SEGMENT_JITTER_MS: &[(&str, SynonymUnit)] = &[
    ("log.roll.jitter.ms", SynonymUnit::Same),
    ("log.roll.jitter.hours", SynonymUnit::HoursToMs),
];

macro_rules! syn {
    ($name:literal) => {
        &[($name, SynonymUnit::Same)]
    };
}

/// Every topic config Shoal accepts. Other names are `INVALID_CONFIG` ("Unknown topic config
/// name"), as in Kafka.
#[rustfmt::skip]
pub static TOPIC_DEFS: &[TopicDef] = &[
    TopicDef { name: "cleanup.policy", ty: List, synonyms: syn!("log.cleanup.policy"), default: "delete", bound: OneOf(&["compact", "delete"]), support: TopicSupport::Applied, doc: "delete, compact or both (compact,delete): what happens to old segments." },
    TopicDef { name: "compression.type", ty: String, synonyms: syn!("compression.type"), default: "producer", bound: OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), support: TopicSupport::Only( &["producer"], "Shoal stores batches as produced and does not recompress", ), doc: "Final compression of the topic." },
    TopicDef { name: "max.message.bytes", ty: Int, synonyms: syn!("message.max.bytes"), default: "1048588", bound: AtLeast(0), support: TopicSupport::Applied, doc: "Largest record batch the topic accepts." },
    TopicDef { name: "message.timestamp.type", ty: String, synonyms: syn!("log.message.timestamp.type"), default: "CreateTime", bound: OneOf(&["CreateTime", "LogAppendTime"]), support: TopicSupport::Applied, doc: "CreateTime keeps producer timestamps; LogAppendTime stamps the broker's clock." },
    TopicDef { name: "message.timestamp.before.max.ms", ty: Long, synonyms: syn!("log.message.timestamp.before.max.ms"), default: LONG_MAX, bound: AtLeast(0), support: TopicSupport::Applied, doc: "How far in the past a CreateTime timestamp may lie." },
    TopicDef { name: "message.timestamp.after.max.ms", ty: Long, synonyms: syn!("log.message.timestamp.after.max.ms"), default: "3600000", bound: AtLeast(0), support: TopicSupport::Applied, doc: "How far in the future a CreateTime timestamp may lie." },
    TopicDef { name: "min.insync.replicas", ty: Int, synonyms: syn!("min.insync.replicas"), default: "1", bound: AtLeast(1), support: TopicSupport::Applied, doc: "Replicas that must acknowledge an acks=all write." },
    TopicDef { name: "retention.bytes", ty: Long, synonyms: syn!("log.retention.bytes"), default: "-1", bound: Any, support: TopicSupport::Applied, doc: "Maximum partition size before old segments are deleted; -1 is unlimited." },
    TopicDef { name: "retention.ms", ty: Long, synonyms: RETENTION_MS, default: "604800000", bound: AtLeast(-1), support: TopicSupport::Applied, doc: "Time to keep a segment; -1 keeps it forever." },
    TopicDef { name: "segment.bytes", ty: Int, synonyms: syn!("log.segment.bytes"), default: "1073741824", bound: AtLeast(1_048_576), support: TopicSupport::Applied, doc: "Maximum segment file size." },
    TopicDef { name: "segment.ms", ty: Long, synonyms: SEGMENT_MS, default: "604800000", bound: AtLeast(1), support: TopicSupport::Applied, doc: "Maximum age of the active segment." },
    TopicDef { name: "segment.jitter.ms", ty: Long, synonyms: SEGMENT_JITTER_MS, default: "0", bound: AtLeast(0), support: TopicSupport::NoEffect("segments roll without jitter"), doc: "Jitter subtracted from segment.ms." },
    TopicDef { name: "segment.index.bytes", ty: Int, synonyms: syn!("log.index.size.max.bytes"), default: "10485760", bound: AtLeast(4), support: TopicSupport::NoEffect("the storage engine sizes its own indexes"), doc: "Maximum index file size." },
    TopicDef { name: "index.interval.bytes", ty: Int, synonyms: syn!("log.index.interval.bytes"), default: "4096", bound: AtLeast(0), support: TopicSupport::NoEffect("the storage engine chooses its own index interval"), doc: "Interval of offset index entries." },
    TopicDef { name: "file.delete.delay.ms", ty: Long, synonyms: syn!("log.segment.delete.delay.ms"), default: "60000", bound: AtLeast(0), support: TopicSupport::NoEffect("segments are deleted once no reader holds them"), doc: "Delay before a deleted segment's files are removed." },
    TopicDef { name: "preallocate", ty: Boolean, synonyms: syn!("log.preallocate"), default: "false", bound: Any, support: TopicSupport::NoEffect("segments are not preallocated"), doc: "Preallocate segment files." },
    TopicDef { name: "unclean.leader.election.enable", ty: Boolean, synonyms: syn!("unclean.leader.election.enable"), default: "false", bound: Any, support: TopicSupport::NoEffect(SINGLE_NODE), doc: "Allow out-of-sync replicas to become leader." },
    TopicDef { name: "delete.retention.ms", ty: Long, synonyms: syn!("log.cleaner.delete.retention.ms"), default: "86400000", bound: AtLeast(0), support: TopicSupport::Applied, doc: "How long a tombstone stays readable once its segment has been cleaned." },
    TopicDef { name: "min.compaction.lag.ms", ty: Long, synonyms: syn!("log.cleaner.min.compaction.lag.ms"), default: "0", bound: AtLeast(0), support: TopicSupport::Applied, doc: "Minimum time a record stays uncompacted." },
    TopicDef { name: "max.compaction.lag.ms", ty: Long, synonyms: syn!("log.cleaner.max.compaction.lag.ms"), default: LONG_MAX, bound: AtLeast(1), support: TopicSupport::Applied, doc: "Maximum time a record stays ineligible for compaction; the active segment also rolls by then." },
    TopicDef { name: "min.cleanable.dirty.ratio", ty: Double, synonyms: syn!("log.cleaner.min.cleanable.ratio"), default: "0.5", bound: BetweenF(0.0, 1.0), support: TopicSupport::Applied, doc: "Clean when the uncleaned part is at least this fraction of the cleanable log." },
    TopicDef { name: "leader.replication.throttled.replicas", ty: List, synonyms: &[], default: "", bound: Any, support: TopicSupport::NoEffect(SINGLE_NODE), doc: "Replicas throttled on the leader side." },
    TopicDef { name: "follower.replication.throttled.replicas", ty: List, synonyms: &[], default: "", bound: Any, support: TopicSupport::NoEffect(SINGLE_NODE), doc: "Replicas throttled on the follower side." },
    TopicDef { name: "remote.storage.enable", ty: Boolean, synonyms: &[], default: "false", bound: Any, support: TopicSupport::Only(&["false"], "tiered storage is not supported"), doc: "Tiered storage." },
];

/// The broker property called `name`.
pub fn broker_def(name: &str) -> Option<&'static BrokerDef> {
    BROKER_DEFS.iter().find(|d| d.name == name)
}

/// The topic config called `name`.
pub fn topic_def(name: &str) -> Option<&'static TopicDef> {
    TOPIC_DEFS.iter().find(|d| d.name == name)
}

/// Parses `value` as `ty` within `bound` and returns it in canonical form (trimmed numbers,
/// lowercase booleans, lists without blanks), which is how DescribeConfigs reports it.
pub fn canonicalize(
    ty: ConfigType,
    bound: Bound,
    value: &str,
) -> Result<std::string::String, std::string::String> {
    let trimmed = value.trim();
    let number = |n: i64| -> Result<std::string::String, std::string::String> {
        match bound {
            AtLeast(min) if n < min => Err(format!("Value must be at least {min}")),
            Between(min, max) if n < min || n > max => {
                Err(format!("Value must be in the range [{min}, {max}]"))
            }
            _ => Ok(n.to_string()),
        }
    };
    match ty {
        Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Ok("true".into()),
            "false" => Ok("false".into()),
            _ => Err("Expected value to be either true or false".into()),
        },
        Short => number(i64::from(
            trimmed
                .parse::<i16>()
                .map_err(|_| "Not a number of type SHORT".to_string())?,
        )),
        Int => number(i64::from(
            trimmed
                .parse::<i32>()
                .map_err(|_| "Not a number of type INT".to_string())?,
        )),
        Long => number(
            trimmed
                .parse::<i64>()
                .map_err(|_| "Not a number of type LONG".to_string())?,
        ),
        Double => {
            let d: f64 = trimmed
                .parse()
                .map_err(|_| "Not a number of type DOUBLE".to_string())?;
            match bound {
                BetweenF(min, max) if !(min..=max).contains(&d) => {
                    Err(format!("Value must be in the range [{min}, {max}]"))
                }
                _ => Ok(d.to_string()),
            }
        }
        String | Password => match bound {
            OneOf(allowed) if !allowed.contains(&trimmed) => {
                Err(format!("String must be one of: {}", allowed.join(", ")))
            }
            _ => Ok(trimmed.to_string()),
        },
        List => {
            let items: Vec<&str> = trimmed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if let OneOf(allowed) = bound
                && let Some(bad) = items.iter().find(|i| !allowed.contains(i))
            {
                return Err(format!(
                    "Invalid value {bad}; valid values are: {}",
                    allowed.join(", ")
                ));
            }
            Ok(items.join(","))
        }
    }
}

/// Converts a broker synonym's value to the topic config's unit.
pub fn convert_synonym(unit: SynonymUnit, value: &str) -> std::string::String {
    let scale = match unit {
        SynonymUnit::Same => return value.to_string(),
        SynonymUnit::MinutesToMs => 60_000,
        SynonymUnit::HoursToMs => 3_600_000,
    };
    match value.parse::<i64>() {
        // -1 (forever) stays -1 whatever the unit.
        Ok(n) if n < 0 => n.to_string(),
        Ok(n) => n.saturating_mul(scale).to_string(),
        Err(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_unique_names_and_valid_defaults() {
        for (i, def) in BROKER_DEFS.iter().enumerate() {
            assert!(
                BROKER_DEFS[..i].iter().all(|d| d.name != def.name),
                "{}",
                def.name
            );
            if let Some(default) = def.default {
                assert_eq!(
                    canonicalize(def.ty, def.bound, default).as_deref(),
                    Ok(default),
                    "{}",
                    def.name
                );
            }
        }
        for (i, def) in TOPIC_DEFS.iter().enumerate() {
            assert!(
                TOPIC_DEFS[..i].iter().all(|d| d.name != def.name),
                "{}",
                def.name
            );
            assert_eq!(
                canonicalize(def.ty, def.bound, def.default).as_deref(),
                Ok(def.default),
                "{}",
                def.name
            );
            for (synonym, _) in def.synonyms {
                assert!(
                    broker_def(synonym).is_some(),
                    "{} synonym {synonym}",
                    def.name
                );
            }
        }
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonicalize(Int, AtLeast(1), " 5 "), Ok("5".into()));
        assert!(canonicalize(Int, AtLeast(1), "0").is_err());
        assert!(canonicalize(Int, Any, "99999999999").is_err());
        assert_eq!(canonicalize(Boolean, Any, "TRUE"), Ok("true".into()));
        assert_eq!(
            canonicalize(List, OneOf(&["a", "b"]), " a , b ,"),
            Ok("a,b".into())
        );
        assert!(canonicalize(List, OneOf(&["a"]), "c").is_err());
        assert!(canonicalize(String, OneOf(&["CreateTime"]), "createtime").is_err());
    }

    #[test]
    fn synonym_units() {
        assert_eq!(convert_synonym(SynonymUnit::HoursToMs, "168"), "604800000");
        assert_eq!(convert_synonym(SynonymUnit::MinutesToMs, "-1"), "-1");
        assert_eq!(convert_synonym(SynonymUnit::Same, "7"), "7");
    }
}
