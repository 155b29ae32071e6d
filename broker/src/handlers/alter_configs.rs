//! AlterConfigs (key 33): replace a topic's overrides or the dynamic broker configs.

use std::collections::{BTreeMap, HashSet};

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use shoal_protocol::kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use shoal_protocol::registry::ApiSupport;

use super::config_resource::{Purpose, resolve};
use super::s;
use crate::admin::{ConfigChange, TopicAdmin};
use crate::kafka_error::ApiError;

/// All versions the schemas define.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::AlterConfigs, 0, 2);

/// Applies the requested replacements.
pub async fn handle(
    admin: &TopicAdmin,
    node_id: i32,
    request: AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
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
            match resolve(
                &admin.metadata().image(),
                node_id,
                resource.resource_type,
                &resource.resource_name,
                Purpose::Alter,
            ) {
                Ok(target) => {
                    let configs: BTreeMap<String, String> = resource
                        .configs
                        .iter()
                        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                        .collect();
                    admin
                        .alter_configs(
                            target.target(),
                            ConfigChange::Replace(configs),
                            request.validate_only,
                        )
                        .await
                }
                Err(e) => Err(e),
            }
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
    AlterConfigsResponse::default().with_responses(responses)
}
