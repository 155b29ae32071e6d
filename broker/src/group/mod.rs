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

pub mod classic;
pub mod config;
pub mod coordinator;
pub mod records;
pub mod runtime;
pub mod shard;
pub mod timer;

pub use config::GroupConfig;
pub use coordinator::{GROUP_METADATA_TOPIC, GroupCoordinator, partition_for};
