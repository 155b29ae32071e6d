//! DeleteTopics (key 20): by name, or by topic id from v6.

use std::collections::HashMap;

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use shoal_protocol::registry::ApiSupport;
use uuid::Uuid;

use super::s;
use crate::admin::TopicAdmin;
use crate::kafka_error::ApiError;

/// v1+ (the Java 4.x floor); v6 names topics by id or name.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::DeleteTopics, 1, 6);

enum Target {
    Name(String),
    Id(Uuid),
    Invalid(&'static str),
}

/// Deletes the requested topics.
pub async fn handle(
    admin: &TopicAdmin,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<Target> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match (&t.name, t.topic_id.is_nil()) {
                (Some(name), true) => Target::Name(name.to_string()),
                (None, false) => Target::Id(t.topic_id),
                (None, true) => Target::Invalid("Neither topic name nor id were specified."),
                (Some(_), false) => {
                    Target::Invalid("You may not specify both topic name and topic id.")
                }
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| Target::Name(n.to_string()))
            .collect()
    };
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ids: HashMap<Uuid, usize> = HashMap::new();
    for target in &targets {
        match target {
            Target::Name(n) => *names.entry(n.clone()).or_default() += 1,
            Target::Id(id) => *ids.entry(*id).or_default() += 1,
            Target::Invalid(_) => {}
        }
    }

    let mut responses = Vec::with_capacity(targets.len());
    for target in targets {
        let (name, id, result) = match target {
            Target::Invalid(message) => (
                None,
                Uuid::nil(),
                Err(ApiError::new(ResponseError::InvalidRequest, message)),
            ),
            Target::Name(name) if names[&name] > 1 => (
                Some(name),
                Uuid::nil(),
                Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    "Duplicate topic name.",
                )),
            ),
            Target::Id(id) if ids[&id] > 1 => (
                None,
                id,
                Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    "Duplicate topic id.",
                )),
            ),
            Target::Name(name) => match admin.metadata().image().topic_by_name(&name).map(|t| t.id)
            {
                Some(id) => (Some(name), id, admin.delete_topic(id).await),
                None => (
                    Some(name),
                    Uuid::nil(),
                    Err(ApiError::bare(ResponseError::UnknownTopicOrPartition)),
                ),
            },
            Target::Id(id) => match admin
                .metadata()
                .image()
                .topic_by_id(&id)
                .map(|t| t.name.clone())
            {
                Some(name) => (Some(name), id, admin.delete_topic(id).await),
                None => (None, id, Err(ApiError::bare(ResponseError::UnknownTopicId))),
            },
        };
        let mut response = DeletableTopicResult::default()
            .with_name(name.map(|n| TopicName(s(n))))
            .with_error_code(result.as_ref().err().map_or(0, ApiError::code));
        if version >= 5 {
            response.error_message = result.err().and_then(|e| e.message).map(s);
        }
        if version >= 6 {
            response.topic_id = id;
        }
        responses.push(response);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
