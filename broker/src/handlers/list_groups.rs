//! ListGroups (key 16): the groups this broker coordinates, optionally filtered by state
//! (v4+) and type (v5+).

use std::sync::Arc;

use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::runtime::Command;

/// v0-5: v3 flexible, v4 states filter, v5 types filter.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::ListGroups, 0, 5);

fn error(e: ResponseError) -> ResponseKind {
    ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(e.code()))
}

/// Asks every loaded shard (in request order) and defers the combined answer.
pub async fn handle(
    groups: &Arc<GroupCoordinator>,
    request: ListGroupsRequest,
    version: i16,
) -> Reply {
    let states: Vec<String> = if version >= 4 {
        request
            .states_filter
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        vec![]
    };
    let types: Vec<String> = if version >= 5 {
        request.types_filter.iter().map(|s| s.to_string()).collect()
    } else {
        vec![]
    };
    let shards = match groups.all_shards() {
        Ok(shards) => shards,
        Err(e) => return Reply::now(error(e)),
    };
    let mut waiting = Vec::with_capacity(shards.len());
    for shard in shards {
        let (st, ty) = (states.clone(), types.clone());
        // A shard that went away meanwhile holds no groups here any more (Kafka skips
        // partitions that are not coordinated here).
        if let Ok(rx) = GroupCoordinator::submit(&shard, |reply| Command::List {
            states: st,
            types: ty,
            reply,
        })
        .await
        {
            waiting.push(rx);
        }
    }
    Reply::Defer(Box::pin(async move {
        let mut listed = Vec::new();
        for rx in waiting {
            match rx.await {
                Ok(Ok(groups)) => listed.extend(groups),
                Ok(Err(ResponseError::NotCoordinator)) | Err(_) => {}
                Ok(Err(e)) => return error(e),
            }
        }
        let groups = listed
            .into_iter()
            .map(|g| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(s(g.group_id)))
                    .with_protocol_type(s(g.protocol_type));
                if version >= 4 {
                    listed.group_state = s(g.state);
                }
                if version >= 5 {
                    listed.group_type = s(g.group_type);
                }
                listed
            })
            .collect();
        ResponseKind::ListGroups(ListGroupsResponse::default().with_groups(groups))
    }))
}
