//! OffsetFetch (key 9): a group's committed offsets (one group before v8, a batch from v8;
//! `null` topics ask for all of them). Answered once the offsets shown are committed.

use std::sync::Arc;

use futures::future::join_all;
use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use shoal_protocol::registry::ApiSupport;
use tokio::sync::oneshot;

use super::s;
use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::runtime::Command;
use crate::group::shard::{FetchedGroup, FetchedOffset};

/// v1-9 (v0 read ZooKeeper): v2 top-level error and all-topics, v5 leader epochs, v6 flexible,
/// v7 require_stable, v8 batched groups, v9 member epochs (KIP-848; ignored by classic groups).
/// v10 (topic ids) is not implemented.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::OffsetFetch, 1, 9);

type Requested = Option<Vec<(String, Vec<i32>)>>;

/// Where one group's answer comes from.
enum Pending {
    Ready(FetchedGroup),
    Waiting(
        String,
        Requested,
        oneshot::Receiver<Result<FetchedGroup, ResponseError>>,
    ),
}

fn failed(group_id: String, requested: &Requested, error: ResponseError) -> FetchedGroup {
    FetchedGroup {
        group_id,
        error: Some(error),
        // Kept so that versions before 2 can put the error on every partition.
        topics: requested
            .iter()
            .flatten()
            .map(|(t, ps)| {
                let partitions = ps
                    .iter()
                    .map(|p| FetchedOffset {
                        partition: *p,
                        offset: -1,
                        leader_epoch: -1,
                        metadata: String::new(),
                        error: None,
                    })
                    .collect();
                (t.clone(), partitions)
            })
            .collect(),
    }
}

async fn submit(groups: &Arc<GroupCoordinator>, group_id: String, requested: Requested) -> Pending {
    let shard = match groups.shard_for(&group_id) {
        Ok(shard) => shard,
        Err(e) => return Pending::Ready(failed(group_id, &requested, e)),
    };
    let topics = requested.clone();
    let id = group_id.clone();
    match GroupCoordinator::submit(&shard, |reply| Command::Fetch {
        group_id: id,
        topics,
        reply,
    })
    .await
    {
        Ok(rx) => Pending::Waiting(group_id, requested, rx),
        Err(e) => Pending::Ready(failed(group_id, &requested, e)),
    }
}

async fn finish(pending: Pending) -> FetchedGroup {
    match pending {
        Pending::Ready(g) => g,
        Pending::Waiting(group_id, requested, rx) => match rx.await {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => failed(group_id, &requested, e),
            Err(_) => failed(group_id, &requested, ResponseError::NotCoordinator),
        },
    }
}

fn single_group_response(g: FetchedGroup, version: i16) -> OffsetFetchResponse {
    let group_error = g.error;
    let topics = g
        .topics
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| {
                            // Before v2 there is no top-level error: it goes on every partition.
                            let (error, offset) = match group_error {
                                Some(e) if version < 2 => (Some(e), -1),
                                _ => (p.error, p.offset),
                            };
                            let mut r = OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition)
                                .with_committed_offset(offset)
                                .with_metadata(Some(s(p.metadata)))
                                .with_error_code(error.map_or(0, |e| e.code()));
                            if version >= 5 {
                                r.committed_leader_epoch = p.leader_epoch;
                            }
                            r
                        })
                        .collect(),
                )
        })
        .collect();
    let mut response = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        response.error_code = group_error.map_or(0, |e| e.code());
    }
    response
}

fn group_response(g: FetchedGroup) -> OffsetFetchResponseGroup {
    OffsetFetchResponseGroup::default()
        .with_group_id(GroupId(s(g.group_id)))
        .with_error_code(g.error.map_or(0, |e| e.code()))
        .with_topics(
            g.topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(s(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p.partition)
                                        .with_committed_offset(p.offset)
                                        .with_committed_leader_epoch(p.leader_epoch)
                                        .with_metadata(Some(s(p.metadata)))
                                        .with_error_code(p.error.map_or(0, |e| e.code()))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

/// Submits one fetch per group (in request order) and defers the answer.
pub async fn handle(
    groups: &Arc<GroupCoordinator>,
    request: OffsetFetchRequest,
    version: i16,
) -> Reply {
    if version >= 8 {
        let mut pending = Vec::with_capacity(request.groups.len());
        for g in request.groups {
            let requested = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            pending.push(submit(groups, g.group_id.to_string(), requested).await);
        }
        return Reply::Defer(Box::pin(async move {
            let fetched = join_all(pending.into_iter().map(finish)).await;
            ResponseKind::OffsetFetch(
                OffsetFetchResponse::default()
                    .with_groups(fetched.into_iter().map(group_response).collect()),
            )
        }));
    }
    let requested = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let pending = submit(groups, request.group_id.to_string(), requested).await;
    Reply::Defer(Box::pin(async move {
        ResponseKind::OffsetFetch(single_group_response(finish(pending).await, version))
    }))
}
