//! Configuration: Kafka's property names from a properties file, `KAFKA_*` environment variables
//! and `--override` flags (in increasing precedence), validated at startup; topic configs and their
//! synonyms for CreateTopics, AlterConfigs and DescribeConfigs.

pub mod broker;
pub mod catalog;
pub mod cluster;
pub mod describe;
pub mod env;
pub mod listener;
pub mod properties;
pub mod rack_awareness;
pub mod topic;

pub use broker::{
    BrokerConfig, CleanerSettings, ClientListener, ConfigError, ConfigInput, FlushMode, Loaded,
    Origin, StaticConfig,
};
pub use cluster::ClusterConfig;
pub use rack_awareness::{RackAutoConfig, RackAwarenessConfig, RackSource};
pub use topic::{ConfigSource, ConfigView, DynamicBrokerConfigs, TimestampType, TopicLogConfig};
