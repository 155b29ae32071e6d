//! DeleteGroups (key 42): removes empty groups with their committed offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, GroupId,
};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::runtime::Command;

/// v0-2: v2 flexible.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::DeleteGroups, 0, 2);

fn result(group_id: String, error: Option<ResponseError>) -> DeletableGroupResult {
    DeletableGroupResult::default()
        .with_group_id(GroupId(s(group_id)))
        .with_error_code(error.map_or(0, |e| e.code()))
}

/// Groups the ids by partition, deletes in each shard (in request order), defers the answer.
pub async fn handle(groups: &Arc<GroupCoordinator>, request: DeleteGroupsRequest) -> Reply {
    let mut seen = std::collections::BTreeSet::new();
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for id in &request.groups_names {
        let id = id.to_string();
        if seen.insert(id.clone()) {
            by_partition
                .entry(groups.partition_of(&id))
                .or_default()
                .push(id);
        }
    }
    let mut ready = Vec::new();
    let mut waiting = Vec::new();
    for (_, ids) in by_partition {
        let shard = match groups.shard_for(&ids[0]) {
            Ok(shard) => shard,
            Err(e) => {
                ready.extend(ids.into_iter().map(|id| result(id, Some(e))));
                continue;
            }
        };
        let submitted = ids.clone();
        match GroupCoordinator::submit(&shard, |reply| Command::DeleteGroups {
            group_ids: submitted,
            reply,
        })
        .await
        {
            Ok(rx) => waiting.push((ids, rx)),
            Err(e) => ready.extend(ids.into_iter().map(|id| result(id, Some(e)))),
        }
    }
    Reply::Defer(Box::pin(async move {
        let mut results = ready;
        for (ids, rx) in waiting {
            match rx.await {
                Ok(answers) => results.extend(answers.into_iter().map(|(id, e)| result(id, e))),
                Err(_) => results.extend(
                    ids.into_iter()
                        .map(|id| result(id, Some(ResponseError::NotCoordinator))),
                ),
            }
        }
        ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
    }))
}
