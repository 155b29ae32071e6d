//! Config resources named in DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.

use shoal_protocol::error_code::ResponseError;

use super::resource_type;
use crate::admin::ConfigTarget;
use crate::kafka_error::ApiError;
use crate::metadata::MetadataImage;
use crate::metadata::topic_rules;

/// A resolved resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resource {
    /// An existing topic.
    Topic(uuid::Uuid),
    /// This broker (`Some(id)`) or the cluster-wide broker defaults (`None`).
    Broker(Option<i32>),
}

impl Resource {
    /// The alteration target.
    pub(crate) fn target(&self) -> ConfigTarget {
        match self {
            Resource::Topic(id) => ConfigTarget::Topic(*id),
            Resource::Broker(node) => ConfigTarget::Broker(*node),
        }
    }
}

/// Which request names the resource (Kafka words broker-id errors differently in each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// DescribeConfigs (`ConfigHelper`).
    Describe,
    /// AlterConfigs and IncrementalAlterConfigs (`ConfigAdminManager`).
    Alter,
}

/// Resolves `(type, name)` with Kafka's errors.
pub(crate) fn resolve(
    image: &MetadataImage,
    node_id: i32,
    ty: i8,
    name: &str,
    purpose: Purpose,
) -> Result<Resource, ApiError> {
    let invalid = |m: String| Err(ApiError::new(ResponseError::InvalidRequest, m));
    match ty {
        resource_type::TOPIC => {
            topic_rules::validate_topic_name(name)
                .map_err(|m| ApiError::new(ResponseError::InvalidTopicException, m))?;
            image
                .topic_by_name(name)
                .map(|t| Resource::Topic(t.id))
                .ok_or_else(|| ApiError::bare(ResponseError::UnknownTopicOrPartition))
        }
        resource_type::BROKER if name.is_empty() => Ok(Resource::Broker(None)),
        resource_type::BROKER => match (name.parse::<i32>(), purpose) {
            (Ok(id), _) if id == node_id => Ok(Resource::Broker(Some(id))),
            (Ok(_), Purpose::Describe) => invalid(format!(
                "Unexpected broker id, expected {node_id} or empty string, but received {name}"
            )),
            (Ok(_), Purpose::Alter) => invalid(format!(
                "Unexpected broker id, expected {node_id}, but received {name}"
            )),
            (Err(_), Purpose::Describe) => {
                invalid(format!("Broker id must be an integer, but it is: {name}"))
            }
            (Err(_), Purpose::Alter) => {
                invalid(format!("Node id must be an integer, but it is: {name}"))
            }
        },
        resource_type::BROKER_LOGGER => Err(ApiError::new(
            ResponseError::InvalidRequest,
            "Broker loggers are not configurable through the Kafka protocol on Shoal; set RUST_LOG",
        )),
        other => Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("Unsupported resource type: {other}"),
        )),
    }
}
