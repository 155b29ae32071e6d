//! Subcommands of the `shoal` binary other than running a broker.

pub mod dev_cluster;
pub mod healthcheck;
pub mod partitions;
