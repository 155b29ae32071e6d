//! The Shoal broker.
pub mod config;
