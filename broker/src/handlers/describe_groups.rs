//! DescribeGroups (key 15): state, protocol and members of classic groups. A group this broker
//! does not know is described as Dead without an error, as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;

use shoal_protocol::ResponseKind;
use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
};
use shoal_protocol::registry::ApiSupport;

use super::{AUTHORIZED_OPERATIONS_OMITTED, group_authorized_operations, s};
use crate::connection::Reply;
use crate::group::GroupCoordinator;
use crate::group::runtime::Command;
use crate::group::shard::DescribedGroup as Described;

/// v0-6: v3 authorized operations, v4 group instance ids, v5 flexible, v6 error messages and
/// `GROUP_ID_NOT_FOUND` for unknown groups (KIP-1043).
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::DescribeGroups, 0, 6);

fn error_group(group_id: String, e: ResponseError) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(GroupId(s(group_id)))
        .with_error_code(e.code())
}

fn described(g: Described, version: i16, with_operations: bool) -> DescribedGroup {
    let members = g
        .members
        .into_iter()
        .map(|m| {
            let mut member = DescribedGroupMember::default()
                .with_member_id(s(m.member_id))
                .with_client_id(s(m.client_id))
                .with_client_host(s(m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment);
            if version >= 4 {
                member.group_instance_id = m.group_instance_id.map(s);
            }
            member
        })
        .collect();
    let mut group = DescribedGroup::default()
        .with_error_code(g.error.map_or(0, |e| e.code()))
        .with_error_message(if version >= 6 {
            g.error_message.map(s)
        } else {
            None
        })
        .with_group_id(GroupId(s(g.group_id)))
        .with_group_state(s(g.state))
        .with_protocol_type(s(g.protocol_type))
        .with_protocol_data(s(g.protocol_data))
        .with_members(members);
    group.authorized_operations = if with_operations && g.error.is_none() {
        group_authorized_operations()
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    group
}

/// Groups the ids by partition, asks each shard (in request order), defers the answer.
pub async fn handle(
    groups: &Arc<GroupCoordinator>,
    request: DescribeGroupsRequest,
    version: i16,
) -> Reply {
    let with_operations = version >= 3 && request.include_authorized_operations;
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for id in &request.groups {
        by_partition
            .entry(groups.partition_of(id))
            .or_default()
            .push(id.to_string());
    }
    let mut waiting = Vec::new();
    let mut ready = Vec::new();
    for (_, ids) in by_partition {
        let shard = match groups.shard_for(&ids[0]) {
            Ok(shard) => shard,
            Err(e) => {
                ready.extend(ids.into_iter().map(|id| error_group(id, e)));
                continue;
            }
        };
        let submitted = ids.clone();
        match GroupCoordinator::submit(&shard, |reply| Command::Describe {
            group_ids: submitted,
            api_version: version,
            reply,
        })
        .await
        {
            Ok(rx) => waiting.push((ids, rx)),
            Err(e) => ready.extend(ids.into_iter().map(|id| error_group(id, e))),
        }
    }
    Reply::Defer(Box::pin(async move {
        let mut out = ready;
        for (ids, rx) in waiting {
            match rx.await {
                Ok(Ok(described_groups)) => out.extend(
                    described_groups
                        .into_iter()
                        .map(|g| described(g, version, with_operations)),
                ),
                Ok(Err(e)) => out.extend(ids.into_iter().map(|id| error_group(id, e))),
                Err(_) => out.extend(
                    ids.into_iter()
                        .map(|id| error_group(id, ResponseError::NotCoordinator)),
                ),
            }
        }
        ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(out))
    }))
}
