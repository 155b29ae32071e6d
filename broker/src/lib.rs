//! The Shoal broker: a Kafka-compatible broker, on one node or as a member of a cluster.
//!
//! What it owns: the `shoal` binary's configuration ([`config`]), the TCP server
//! ([`server`] → [`connection`] → [`dispatch`] → [`handlers`], one module per Kafka API), the
//! cluster metadata behind the [`metadata::MetadataStore`] seam, and the hosted partitions behind
//! the [`partition::PartitionHandle`] seam.
//!
//! Data flow of a request: the server accepts a connection on a listener; the connection splits
//! frames and decodes them with `shoal-protocol` (version-checked against
//! [`dispatch::REGISTRY`]); [`dispatch`] hands each request to its handler with exactly what it
//! needs (the metadata image, the partition manager, the admin); the handler returns a reply now
//! or later; the connection writes replies in request order.
//!
//! Writes: Produce validates each batch ([`handlers::produce::prepare_batch`] and the
//! [`records`] walker), appends it through a [`partition::PartitionHandle`]
//! ([`partition::LocalPartition`] on the storage crate) and, for acks=-1, waits until the high
//! watermark (the durable point under the flush policy) covers it. Reads: Fetch reads whole
//! batches up to the high watermark and parks on high-watermark changes. Admin requests plan a
//! [`metadata::MetadataCommand`] ([`admin`]), apply it durably through the metadata store and let
//! the partition manager create or delete partition logs.
//!
//! Groups and producers: [`group`] is the group coordinator (classic groups and committed
//! offsets, stored as records in `__consumer_offsets` through the same
//! [`partition::PartitionHandle`] as client data; it serves the partitions this broker leads,
//! told by [`group::GroupCoordinator::elect`] and [`group::GroupCoordinator::resign`]).
//! [`producer_ids`] hands out producer ids from blocks allocated durably through the metadata
//! store; each partition's idempotence state (last batches per producer) lives in the storage
//! crate's log and is checked on the append path.
//!
//! [`kafka_error`] is the one place where internal errors become Kafka error codes.
//! [`api_coverage`] counts the requests [`dispatch`] serves per (API, version) and, for the
//! conformance suites, reports them with the registry on shutdown.
//!
//! Single node and cluster: with no `controller.quorum.voters` (or a quorum of this node alone)
//! the node is a single-node broker: [`metadata::LocalMetadataStore`] and
//! [`partition::LocalPartition`]s directly on storage, exactly as before. With other voters,
//! [`config::ClusterConfig`] puts the node in cluster mode ([`cluster`]): the same handlers see
//! the same seams, but metadata comes from [`cluster::metadata_store::ReplicatedMetadataStore`]
//! (the controller Raft group of `shoal-replication`, commands forwarded to its leader, every
//! broker applying them to its own image) and each hosted partition is a
//! [`cluster::raft_partition::RaftPartition`] (a Raft group whose log is the partition log; the
//! high watermark is the commit index, the leader epoch the Raft term). Background duties
//! ([`cluster::duties`]) report leaders and ISRs to the metadata, fence silent brokers, move
//! leadership back to preferred replicas and hand it away on SIGTERM; ElectLeaders moves it on
//! request ([`cluster::leader_election`]). With `testing.faults.enabled` (tests only),
//! [`cluster::test_faults`] serves endpoints on `metrics.listener` that cut one partition's
//! replication to one follower. Group coordinators follow
//! the metadata's leaders of `__consumer_offsets` partitions in both modes. [`cli`] also holds
//! `shoal dev-cluster`, a local multi-node cluster of `shoal` processes.
//!
//! Follower fetching (KIP-392): [`replica_selector`] decides, as plain functions, which replica a
//! consumer should read from; the Fetch handler asks it on partition leaders, with the client's
//! rack from the request or from [`client_rack`] (`client.rack.cidrs`), and serves consumers on
//! followers up to their high watermark. [`follower_fetching`] holds the node's selector and
//! [`metrics`] (served bytes and records per role and rack, redirects), exposed over [`http`] on
//! `metrics.listener`. [`rack_discovery`] resolves `broker.rack=auto` at startup; [`cli`] holds the
//! `shoal partitions` and `shoal healthcheck` commands.

pub mod admin;
pub mod api_coverage;
pub mod cli;
pub mod client_rack;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod follower_fetching;
pub mod group;
pub mod handlers;
pub mod http;
pub mod kafka_error;
pub mod metadata;
pub mod metrics;
pub mod node;
pub mod partition;
pub mod producer_ids;
pub mod rack_discovery;
pub mod records;
pub mod replica_selector;
pub mod server;
