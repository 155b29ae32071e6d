//! The Shoal broker.
pub mod admin;
pub mod clock;
pub mod config;
pub mod connection;
pub mod kafka_error;
pub mod metadata;
pub mod partition;
pub mod records;
pub mod server;
