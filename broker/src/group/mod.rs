//! The group coordinator for classic consumer groups, and committed offsets.
//!
//! Groups live in the internal `__consumer_offsets` topic: a group's state and its committed
//! offsets are records ([`records`], Kafka's exact formats) in the partition
//! `abs(java_hash(group id)) % partitions`, and the broker that leads that partition is the
//! group's coordinator. Per partition:
//! - [`shard::GroupShard`]: the groups and offsets of one partition and the classic state machine
//!   ([`classic::ClassicGroup`]), pure and synchronous, timers on an injected clock
//!   ([`timer`]).
//! - [`runtime`]: a task per loaded partition that owns its shard, replays the partition when it
//!   is loaded, appends the shard's records through the partition's
//!   [`crate::partition::PartitionHandle`] (coordinator origin), answers requests once their
//!   records are committed, and runs the timers.
//! - [`coordinator::GroupCoordinator`]: routes requests to partitions, creates the topic, and is
//!   told when this broker starts or stops leading a partition ([`coordinator::GroupCoordinator::elect`],
//!   [`coordinator::GroupCoordinator::resign`]); on a single node every partition is elected at
//!   startup and when the topic is created.
//!
//! Under replication the same binding holds: whoever learns of leadership changes of
//! `__consumer_offsets` partitions calls `elect` (the new leader loads the partition after its
//! committed end, so it sees every record the previous leader acknowledged) and `resign` (pending
//! requests get NOT_COORDINATOR and clients look the coordinator up again). The coordinator
//! reaches its partitions only through `PartitionHandle`; a request is answered only once its
//! records are committed (the high watermark covers them), Kafka's acks=all.
//!
//! The topic has no compaction yet, so it is created with infinite retention instead of
//! `cleanup.policy=compact`: it grows with every commit and loading replays all of it. Deleted
//! groups and offsets are written as tombstones, which loading applies, and which compaction
//! will use. Transactional offsets (TxnOffsetCommit) and the KIP-848 consumer protocol are not
//! implemented.

pub mod classic;
pub mod config;
pub mod coordinator;
pub mod records;
pub mod runtime;
pub mod shard;
pub mod timer;

pub use config::GroupConfig;
pub use coordinator::{GROUP_METADATA_TOPIC, GroupCoordinator, partition_for};
