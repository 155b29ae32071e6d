//! CreateTopics (key 19): partitions and replication factor (or -1 for the defaults), manual
//! replica assignments, configs, validate-only. In a cluster the answer waits until the new
//! partitions' leaders have reported their epochs ([`TopicAdmin::wait_for_reported_leaders`]).

use std::collections::HashMap;
use std::time::Duration;

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName,
};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::admin::{MAX_LEADER_REPORT_WAIT, NewTopic, TopicAdmin};
use crate::config::describe::describe_topic;
use crate::kafka_error::ApiError;

/// v2+ (the Java 4.x floor); v7 returns topic ids.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::CreateTopics, 2, 7);

/// Creates the requested topics.
pub async fn handle(
    admin: &TopicAdmin,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for topic in &request.topics {
        *counts.entry(topic.name.to_string()).or_default() += 1;
    }
    let specs: Vec<NewTopic> = request
        .topics
        .iter()
        .filter(|t| counts[t.name.as_str()] == 1)
        .map(|t| NewTopic {
            name: t.name.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let results = admin.create_topics(&specs, request.validate_only).await;
    if !request.validate_only {
        // KRaft answers once the topic is committed, and from then on its metadata holds the
        // leader epochs the leaders use; Shoal's Raft leaders report theirs a moment later, so
        // the answer waits for that (within the request's timeout, if it has one), also when
        // the client asked not to wait (librdkafka's default): otherwise its consumers would
        // start with an epoch the leaders fence.
        let created: Vec<_> = results.iter().flatten().map(|c| c.id).collect();
        let timeout = match u64::try_from(request.timeout_ms) {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => MAX_LEADER_REPORT_WAIT,
        };
        admin.wait_for_reported_leaders(&created, timeout).await;
    }
    let image = admin.metadata().image();

    let mut topics: Vec<CreatableTopicResult> = specs
        .iter()
        .zip(results)
        .map(|(spec, result)| match result {
            Ok(created) => {
                let mut topic = CreatableTopicResult::default()
                    .with_name(TopicName(s(spec.name.clone())))
                    .with_error_code(0)
                    .with_error_message(None);
                if version >= 7 {
                    topic.topic_id = created.id;
                }
                if version >= 5 {
                    topic.num_partitions = created.num_partitions;
                    topic.replication_factor = created.replication_factor;
                    let configs =
                        admin.with_view(&image, |view| describe_topic(view, &created.configs));
                    topic.configs = Some(
                        configs
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(s(c.name))
                                    .with_value(c.value.map(s))
                                    .with_read_only(c.read_only)
                                    .with_config_source(c.source as i8)
                                    .with_is_sensitive(c.sensitive)
                            })
                            .collect(),
                    );
                } else {
                    topic.configs = Some(Vec::new());
                }
                topic
            }
            Err(e) => error_result(&spec.name, &e),
        })
        .collect();
    let mut duplicates: Vec<&String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(name, _)| name)
        .collect();
    duplicates.sort();
    for name in duplicates {
        topics.push(error_result(
            name,
            &ApiError::new(ResponseError::InvalidRequest, "Duplicate topic name."),
        ));
    }
    CreateTopicsResponse::default().with_topics(topics)
}

fn error_result(name: &str, error: &ApiError) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(TopicName(s(name)))
        .with_error_code(error.code())
        .with_error_message(error.message.clone().map(s))
        .with_configs(Some(Vec::new()))
}
