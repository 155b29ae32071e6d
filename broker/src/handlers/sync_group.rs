//! SyncGroup (key 14): the leader hands in the assignment, every member gets its own; followers
//! wait for the leader's, so the answer leaves as a deferred reply.

use std::sync::Arc;

use bytes::Bytes;
use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::runtime::Command;
use crate::group::shard::{SyncRequest, SyncResponse};

/// v0-5: v3 static membership, v4 flexible, v5 protocol type and name (KIP-559).
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::SyncGroup, 0, 5);

fn response(r: SyncResponse, version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default()
        .with_error_code(r.error.map_or(0, |e| e.code()))
        .with_assignment(r.assignment);
    if version >= 5 {
        response.protocol_type = r.protocol_type.map(s);
        response.protocol_name = r.protocol_name.map(s);
    }
    response
}

/// Submits the sync to the group's shard (in request order) and defers the answer.
pub async fn handle(
    groups: &Arc<GroupCoordinator>,
    request: SyncGroupRequest,
    version: i16,
) -> Reply {
    let fail = |e: ResponseError| {
        Reply::now(ResponseKind::SyncGroup(response(
            SyncResponse::error(e),
            version,
        )))
    };
    // From v5 both fields are mandatory (Kafka's `areMandatoryProtocolTypeAndNamePresent`).
    if version >= 5 && (request.protocol_type.is_none() || request.protocol_name.is_none()) {
        return fail(ResponseError::InconsistentGroupProtocol);
    }
    let sync = SyncRequest {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        protocol_type: request.protocol_type.map(|p| p.to_string()),
        protocol_name: request.protocol_name.map(|p| p.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let shard = match groups.shard_for(&sync.group_id) {
        Ok(shard) => shard,
        Err(e) => return fail(e),
    };
    let rx = match GroupCoordinator::submit(&shard, |reply| Command::Sync {
        request: sync,
        reply,
    })
    .await
    {
        Ok(rx) => rx,
        Err(e) => return fail(e),
    };
    Reply::Defer(Box::pin(async move {
        let answer = rx.await.unwrap_or(SyncResponse {
            error: Some(ResponseError::NotCoordinator),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        });
        ResponseKind::SyncGroup(response(answer, version))
    }))
}
