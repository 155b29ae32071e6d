//! OffsetDelete (key 47): removes committed offsets of topics a group does not subscribe to.

use std::sync::Arc;

use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, OffsetDeleteRequest, OffsetDeleteResponse, TopicName,
};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::runtime::Command;
use crate::metadata::MetadataImage;

/// v0 only.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::OffsetDelete, 0, 0);

type Answers = Vec<(String, Vec<(i32, Option<ResponseError>)>)>;

fn response(error: Option<ResponseError>, answers: Answers) -> ResponseKind {
    ResponseKind::OffsetDelete(
        OffsetDeleteResponse::default()
            .with_error_code(error.map_or(0, |e| e.code()))
            .with_topics(
                answers
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(TopicName(s(topic)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, e)| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(e.map_or(0, |e| e.code()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
    )
}

/// Checks topics against the metadata, deletes in the group's shard (in request order), defers
/// the answer until the tombstones are committed.
pub async fn handle(
    groups: &Arc<GroupCoordinator>,
    image: &MetadataImage,
    request: OffsetDeleteRequest,
) -> Reply {
    let group_id = request.group_id.to_string();
    if group_id.is_empty() {
        return Reply::now(response(Some(ResponseError::InvalidGroupId), vec![]));
    }
    let mut answers: Answers = Vec::new();
    let mut valid: Vec<(String, Vec<i32>)> = Vec::new();
    for topic in request.topics {
        let name = topic.name.to_string();
        let known = image.topic_by_name(&name);
        let mut ok = Vec::new();
        let mut unknown = Vec::new();
        for p in topic.partitions {
            let i = p.partition_index;
            if known.is_some_and(|t| usize::try_from(i).is_ok_and(|i| i < t.partitions.len())) {
                ok.push(i);
            } else {
                unknown.push((i, Some(ResponseError::UnknownTopicOrPartition)));
            }
        }
        if !unknown.is_empty() {
            answers.push((name.clone(), unknown));
        }
        if !ok.is_empty() {
            valid.push((name, ok));
        }
    }
    let shard = match groups.shard_for(&group_id) {
        Ok(shard) => shard,
        Err(e) => return Reply::now(response(Some(e), vec![])),
    };
    let rx = match GroupCoordinator::submit(&shard, |reply| Command::DeleteOffsets {
        group_id,
        topics: valid,
        reply,
    })
    .await
    {
        Ok(rx) => rx,
        Err(e) => return Reply::now(response(Some(e), vec![])),
    };
    Reply::Defer(Box::pin(async move {
        match rx.await.unwrap_or(Err(ResponseError::NotCoordinator)) {
            Ok(results) => {
                let mut answers = answers;
                for (topic, partitions) in results {
                    match answers.iter_mut().find(|(t, _)| *t == topic) {
                        Some((_, existing)) => existing.extend(partitions),
                        None => answers.push((topic, partitions)),
                    }
                }
                response(None, answers)
            }
            Err(e) => response(Some(e), vec![]),
        }
    }))
}
