//! Cluster metadata: topics (names, ids, partitions, replicas, leaders, epochs, configs), brokers
//! and dynamic broker configs, as an immutable [`MetadataImage`] behind the [`MetadataStore`]
//! seam.

pub mod image;
pub mod log;
pub mod meta_properties;
pub mod placement;
pub mod store;
pub mod topic_rules;

pub use image::{
    ApplyError, BrokerEndpoint, BrokerRegistration, ImageSnapshot, MetadataCommand, MetadataImage,
    PartitionState, TopicImage,
};
pub use store::{LocalMetadataStore, MetadataError, MetadataStore};
