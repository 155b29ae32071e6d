//! OffsetCommit (key 8): a group (or a standalone consumer) commits offsets. Partitions of
//! unknown topics are answered `UNKNOWN_TOPIC_OR_PARTITION` here, as Kafka's `KafkaApis` does;
//! the rest go to the group's shard, and the answer waits until the commit is committed.

use std::sync::Arc;

use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, OffsetCommitRequest, OffsetCommitResponse, TopicName,
};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::runtime::Command;
use crate::group::shard::{CommitPartition, CommitRequest, CommitResults};
use crate::metadata::MetadataImage;

/// v2-9 (v0 stored offsets in ZooKeeper and v1 is gone since Kafka 4.0): v2-4 retention time,
/// v6 leader epochs, v7 static membership, v8 flexible, v9 `GROUP_ID_NOT_FOUND`. v10 (topic
/// ids) is not implemented.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::OffsetCommit, 2, 9);

/// Every partition of every topic, with its error.
type Answers = Vec<(String, Vec<(i32, Option<ResponseError>)>)>;

fn merge(into: &mut Answers, topic: String, partitions: Vec<(i32, Option<ResponseError>)>) {
    match into.iter_mut().find(|(t, _)| *t == topic) {
        Some((_, existing)) => existing.extend(partitions),
        None => into.push((topic, partitions)),
    }
}

fn response(answers: Answers) -> ResponseKind {
    ResponseKind::OffsetCommit(
        OffsetCommitResponse::default().with_topics(
            answers
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, e)| {
                                    OffsetCommitResponsePartition::default()
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

/// Submits the commit (in request order) and defers the answer until it is committed.
pub async fn handle(
    groups: &Arc<GroupCoordinator>,
    image: &MetadataImage,
    request: OffsetCommitRequest,
    version: i16,
) -> Reply {
    let mut answers: Answers = Vec::new();
    let mut valid: Vec<(String, Vec<CommitPartition>)> = Vec::new();
    for topic in request.topics {
        let name = topic.name.to_string();
        let known = image.topic_by_name(&name);
        let mut ok = Vec::new();
        let mut unknown = Vec::new();
        for p in topic.partitions {
            let exists = known.is_some_and(|t| {
                usize::try_from(p.partition_index).is_ok_and(|i| i < t.partitions.len())
            });
            if exists {
                ok.push(CommitPartition {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.map(|m| m.to_string()),
                });
            } else {
                unknown.push((
                    p.partition_index,
                    Some(ResponseError::UnknownTopicOrPartition),
                ));
            }
        }
        if !unknown.is_empty() {
            merge(&mut answers, name.clone(), unknown);
        }
        if !ok.is_empty() {
            match valid.iter_mut().find(|(t, _)| *t == name) {
                Some((_, existing)) => existing.extend(ok),
                None => valid.push((name, ok)),
            }
        }
    }
    if valid.is_empty() {
        return Reply::now(response(answers));
    }
    let commit = CommitRequest {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        retention_time_ms: if (2..=4).contains(&version) {
            request.retention_time_ms
        } else {
            -1
        },
        topics: valid,
        api_version: version,
    };
    let fail_all = |commit: &CommitRequest, e: ResponseError, mut answers: Answers| {
        for (topic, partitions) in &commit.topics {
            merge(
                &mut answers,
                topic.clone(),
                partitions.iter().map(|p| (p.partition, Some(e))).collect(),
            );
        }
        response(answers)
    };
    let shard = match groups.shard_for(&commit.group_id) {
        Ok(shard) => shard,
        Err(e) => return Reply::now(fail_all(&commit, e, answers)),
    };
    let submitted = commit.clone();
    let rx = match GroupCoordinator::submit(&shard, |reply| Command::Commit {
        request: submitted,
        reply,
    })
    .await
    {
        Ok(rx) => rx,
        Err(e) => return Reply::now(fail_all(&commit, e, answers)),
    };
    Reply::Defer(Box::pin(async move {
        let result: Result<CommitResults, ResponseError> =
            rx.await.unwrap_or(Err(ResponseError::NotCoordinator));
        match result {
            Ok(results) => {
                let mut answers = answers;
                for (topic, partitions) in results {
                    merge(&mut answers, topic, partitions);
                }
                response(answers)
            }
            Err(e) => fail_all(&commit, e, answers),
        }
    }))
}
