//! Test harness for the `shoal` binary: start a real broker process on a free port, wait for its
//! readiness line, talk to it with a raw Kafka protocol client, stop or restart it.
//!
//! - [`Broker`] owns one `shoal` process and its data directory. The process listens on a free
//!   port from [`ports`] and announces the bound address on stdout; the harness waits for that
//!   line with a deadline. Dropping a `Broker` kills the process and removes the data,
//!   also when a test fails.
//! - [`Client`] speaks the Kafka protocol over TCP with `kafka-protocol` message types, one
//!   request at a time or raw bytes for malformed-input tests.
//! - [`cluster::Cluster`] runs several `shoal` processes as one cluster (properties files,
//!   controller and client listeners on free ports), with SIGKILL, SIGTERM and restarts.
//! - [`http`] talks to the broker's `metrics.listener` (metrics, test fault endpoints).
//! - [`ports`] hands out listener ports below the kernel's ephemeral range, so that a node
//!   restarted on its port does not find it taken by some client's outgoing connection.
//! - [`records`] builds record batches with kafka-protocol's encoder (an implementation
//!   independent of the broker's storage code) in every codec.

pub mod broker;
pub mod client;
pub mod cluster;
pub mod http;
pub mod ports;
pub mod records;

pub use broker::{Broker, BrokerOptions};
pub use client::Client;
