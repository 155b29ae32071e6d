//! JoinGroup (key 11): a member joins (or rejoins) a classic group; the answer may wait for the
//! rest of the group (the rebalance), so it leaves as a deferred reply.

use std::sync::Arc;

use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use shoal_protocol::kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::classic::Protocol;
use crate::group::runtime::Command;
use crate::group::shard::{JoinRequest, JoinResponse, RequestContext};

/// v0-9: v1 rebalance timeout, v4 `MEMBER_ID_REQUIRED`, v5 static membership, v6 flexible, v7
/// protocol type in the answer, v8 reason, v9 skip-assignment.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::JoinGroup, 0, 9);

/// Kafka's `JoinGroupResponse` for `version` (empty protocol name before v7, null from v7).
pub fn response(r: JoinResponse, version: i16) -> JoinGroupResponse {
    let protocol_name = match (version >= 7, r.protocol_name) {
        (false, p) => Some(s(p.unwrap_or_default())),
        (true, Some(p)) if !p.is_empty() => Some(s(p)),
        (true, _) => None,
    };
    let members = r
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default()
                .with_member_id(s(m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.group_instance_id = m.group_instance_id.map(s);
            }
            member
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(r.error.map_or(0, |e| e.code()))
        .with_generation_id(r.generation_id)
        .with_protocol_name(protocol_name)
        .with_leader(s(r.leader))
        .with_member_id(s(r.member_id))
        .with_members(members);
    if version >= 7 {
        response.protocol_type = r.protocol_type.map(s);
    }
    if version >= 9 {
        response.skip_assignment = r.skip_assignment;
    }
    response
}

/// Submits the join to the group's shard (in request order) and defers the answer.
pub async fn handle(
    groups: &Arc<GroupCoordinator>,
    ctx: RequestContext,
    request: JoinGroupRequest,
    version: i16,
) -> Reply {
    let fail = |e: ResponseError| {
        Reply::now(ResponseKind::JoinGroup(response(
            JoinResponse::error("", e),
            version,
        )))
    };
    let join = JoinRequest {
        group_id: request.group_id.to_string(),
        session_timeout_ms: request.session_timeout_ms,
        // Version 0 has no rebalance timeout: the session timeout serves (Kafka's
        // `maybeOverrideRebalanceTimeout`).
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        reason: request.reason.map(|r| r.to_string()),
    };
    let shard = match groups.shard_for(&join.group_id) {
        Ok(shard) => shard,
        Err(e) => return fail(e),
    };
    let rx = match GroupCoordinator::submit(&shard, |reply| Command::Join {
        ctx,
        request: join,
        reply,
    })
    .await
    {
        Ok(rx) => rx,
        Err(e) => return fail(e),
    };
    Reply::Defer(Box::pin(async move {
        let answer = rx
            .await
            .unwrap_or_else(|_| JoinResponse::error("", ResponseError::NotCoordinator));
        ResponseKind::JoinGroup(response(answer, version))
    }))
}
