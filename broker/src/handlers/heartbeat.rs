//! Heartbeat (key 12): keeps a member's session alive and tells it when to rejoin.

use std::sync::Arc;

use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};
use shoal_protocol::registry::ApiSupport;

use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::runtime::Command;

/// v0-4: v3 static membership, v4 flexible.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::Heartbeat, 0, 4);

fn response(result: Result<(), ResponseError>) -> ResponseKind {
    ResponseKind::Heartbeat(
        HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code())),
    )
}

/// Submits the heartbeat (in request order) and defers the answer until the shard's earlier
/// writes are committed.
pub async fn handle(groups: &Arc<GroupCoordinator>, request: HeartbeatRequest) -> Reply {
    let group_id = request.group_id.to_string();
    if group_id.is_empty() {
        return Reply::now(response(Err(ResponseError::InvalidGroupId)));
    }
    let shard = match groups.shard_for(&group_id) {
        Ok(shard) => shard,
        // Kafka answers heartbeats blindly while the group's partition is loading.
        Err(ResponseError::CoordinatorLoadInProgress) => return Reply::now(response(Ok(()))),
        Err(e) => return Reply::now(response(Err(e))),
    };
    let rx = match GroupCoordinator::submit(&shard, |reply| Command::Heartbeat {
        group_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        generation_id: request.generation_id,
        reply,
    })
    .await
    {
        Ok(rx) => rx,
        Err(e) => return Reply::now(response(Err(e))),
    };
    Reply::Defer(Box::pin(async move {
        response(rx.await.unwrap_or(Err(ResponseError::NotCoordinator)))
    }))
}
