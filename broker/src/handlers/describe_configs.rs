//! DescribeConfigs (key 32): topic and broker configs with sources, synonyms and documentation.

use shoal_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse,
};
use shoal_protocol::registry::ApiSupport;

use super::config_resource::{Purpose, Resource, resolve};
use super::s;
use crate::admin::TopicAdmin;
use crate::config::describe::{
    DescribedConfig, describe_broker, describe_broker_defaults, describe_topic,
};

/// v1+ (the Java 4.x floor); v3 adds types and documentation.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::DescribeConfigs, 1, 4);

/// Describes the requested resources.
pub fn handle(
    admin: &TopicAdmin,
    node_id: i32,
    request: &DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let image = admin.metadata().image();
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let described = match resolve(
                &image,
                node_id,
                resource.resource_type,
                &resource.resource_name,
                Purpose::Describe,
            ) {
                Ok(Resource::Topic(id)) => admin.with_view(&image, |view| {
                    describe_topic(
                        view,
                        &image
                            .topic_by_id(&id)
                            .map(|t| t.configs.clone())
                            .unwrap_or_default(),
                    )
                }),
                Ok(Resource::Broker(Some(_))) => admin.with_view(&image, describe_broker),
                Ok(Resource::Broker(None)) => admin.with_view(&image, describe_broker_defaults),
                Err(e) => {
                    return result
                        .with_error_code(e.code())
                        .with_error_message(e.message.map(s))
                        .with_configs(Vec::new());
                }
            };
            let wanted = resource
                .configuration_keys
                .as_ref()
                .filter(|keys| !keys.is_empty());
            let configs = described
                .into_iter()
                .filter(|c| wanted.is_none_or(|keys| keys.iter().any(|k| **k == *c.name)))
                .map(|c| entry(c, request, version))
                .collect();
            result
                .with_error_code(0)
                .with_error_message(None)
                .with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(
    config: DescribedConfig,
    request: &DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(s(config.name))
        .with_value(config.value.map(s))
        .with_read_only(config.read_only)
        .with_config_source(config.source as i8)
        .with_is_sensitive(config.sensitive);
    if request.include_synonyms {
        result.synonyms = config
            .synonyms
            .into_iter()
            .map(|syn| {
                DescribeConfigsSynonym::default()
                    .with_name(s(syn.name))
                    .with_value(Some(s(syn.value)))
                    .with_source(syn.source as i8)
            })
            .collect();
    }
    if version >= 3 {
        result.config_type = config.ty as i8;
        result.documentation = request.include_documentation.then(|| s(config.doc));
    }
    result
}
