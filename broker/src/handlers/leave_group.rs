//! LeaveGroup (key 13): members leave a classic group (one per request before v3, a batch
//! from v3, including administrative removal of static members by instance id).

use std::sync::Arc;

use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use shoal_protocol::kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::runtime::Command;
use crate::group::shard::{LeavingMember, LeftMember};

/// v0-5: v3 batched members and instance ids, v4 flexible, v5 reasons.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::LeaveGroup, 0, 5);

/// Kafka's `LeaveGroupResponse(data, version)`: before v3 only one error, the top-level one or
/// else the member's.
fn response(result: Result<Vec<LeftMember>, ResponseError>, version: i16) -> ResponseKind {
    let response = match result {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(members) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .map(|m| {
                    MemberResponse::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(s))
                        .with_error_code(m.error.map_or(0, |e| e.code()))
                })
                .collect(),
        ),
        Ok(members) => LeaveGroupResponse::default().with_error_code(
            members
                .first()
                .and_then(|m| m.error)
                .map_or(0, |e| e.code()),
        ),
    };
    ResponseKind::LeaveGroup(response)
}

/// Submits the leave (in request order) and defers the answer until it is committed.
pub async fn handle(
    groups: &Arc<GroupCoordinator>,
    request: LeaveGroupRequest,
    version: i16,
) -> Reply {
    let group_id = request.group_id.to_string();
    let members: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .into_iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                reason: m.reason.map(|r| r.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
            reason: None,
        }]
    };
    if group_id.is_empty() {
        return Reply::now(response(Err(ResponseError::InvalidGroupId), version));
    }
    let shard = match groups.shard_for(&group_id) {
        Ok(shard) => shard,
        Err(e) => return Reply::now(response(Err(e), version)),
    };
    let rx = match GroupCoordinator::submit(&shard, |reply| Command::Leave {
        group_id,
        members,
        reply,
    })
    .await
    {
        Ok(rx) => rx,
        Err(e) => return Reply::now(response(Err(e), version)),
    };
    Reply::Defer(Box::pin(async move {
        response(
            rx.await.unwrap_or(Err(ResponseError::NotCoordinator)),
            version,
        )
    }))
}
