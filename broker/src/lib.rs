//! The Shoal broker.
pub mod config;
pub mod metadata;
