//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND, SUBTRACT on topic and broker configs.

use std::collections::HashSet;

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use shoal_protocol::registry::ApiSupport;

use super::config_resource::{Purpose, resolve};
use super::s;
use crate::admin::{AlterOp, ConfigChange, TopicAdmin};
use crate::kafka_error::ApiError;

/// All versions the schemas define.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::IncrementalAlterConfigs, 0, 1);

/// Applies the requested operations.
pub async fn handle(
    admin: &TopicAdmin,
    node_id: i32,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<(i8, String)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.to_string()))
        .filter(|key| !seen.insert(key.clone()))
        .collect();
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let key = (resource.resource_type, resource.resource_name.to_string());
        let result = if duplicates.contains(&key) {
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Each resource must appear at most once.",
            ))
        } else {
            apply(admin, node_id, &resource, request.validate_only).await
        };
        let (code, message) = match result {
            Ok(()) => (0, None),
            Err(e) => (e.code(), e.message.map(s)),
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn apply(
    admin: &TopicAdmin,
    node_id: i32,
    resource: &shoal_protocol::kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), ApiError> {
    let target = resolve(
        &admin.metadata().image(),
        node_id,
        resource.resource_type,
        &resource.resource_name,
        Purpose::Alter,
    )?;
    let mut ops = Vec::with_capacity(resource.configs.len());
    for config in &resource.configs {
        let op = AlterOp::from_wire(config.config_operation).ok_or_else(|| {
            ApiError::new(
                ResponseError::InvalidRequest,
                format!("Unknown config operation {}", config.config_operation),
            )
        })?;
        ops.push((
            config.name.to_string(),
            op,
            config.value.as_ref().map(|v| v.to_string()),
        ));
    }
    admin
        .alter_configs(
            target.target(),
            ConfigChange::Incremental(ops),
            validate_only,
        )
        .await
}
