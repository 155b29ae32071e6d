//! CreatePartitions (key 37): grow topics, optionally with manual assignments.

use std::collections::HashMap;

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse,
};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::admin::TopicAdmin;
use crate::kafka_error::ApiError;

/// All versions the schemas define.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::CreatePartitions, 0, 3);

/// Grows the requested topics.
pub async fn handle(
    admin: &TopicAdmin,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for topic in &request.topics {
        *counts.entry(topic.name.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(request.topics.len());
    let mut reported_duplicates = Vec::new();
    for topic in &request.topics {
        let name = topic.name.to_string();
        let result = if counts[&name] > 1 {
            if reported_duplicates.contains(&name) {
                continue;
            }
            reported_duplicates.push(name.clone());
            Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Duplicate topic name.",
            ))
        } else {
            let assignments: Option<Vec<Vec<i32>>> = topic.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            admin
                .create_partitions(
                    &name,
                    topic.count,
                    assignments.as_deref(),
                    request.validate_only,
                )
                .await
        };
        let (code, message) = match result {
            Ok(()) => (0, None),
            Err(e) => (e.code(), e.message.map(s)),
        };
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(topic.name.clone())
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}
