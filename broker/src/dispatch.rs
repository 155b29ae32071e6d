//! API key → handler. The registry that ApiVersions advertises is built here from the versions
//! each handler declares, so the two cannot disagree.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use shoal_protocol::registry::{ApiRegistry, ApiSupport};
use shoal_protocol::request::Request;
use shoal_protocol::{RequestKind, ResponseKind};

use crate::connection::{ConnectionInfo, Reply, RequestHandler};
use crate::group::shard::RequestContext;
use crate::handlers::{
    alter_configs, api_versions, create_partitions, create_topics, delete_groups, delete_topics,
    describe_cluster, describe_configs, describe_groups, describe_log_dirs,
    describe_topic_partitions, elect_leaders, fetch, find_coordinator, heartbeat,
    incremental_alter_configs, init_producer_id, join_group, leave_group, list_groups,
    list_offsets, metadata, offset_commit, offset_delete, offset_fetch, offset_for_leader_epoch,
    produce, sync_group,
};
use crate::node::Node;

/// Every implemented API, in key order.
pub static APIS: [ApiSupport; 28] = [
    produce::SUPPORT,
    fetch::SUPPORT,
    list_offsets::SUPPORT,
    metadata::SUPPORT,
    offset_commit::SUPPORT,
    offset_fetch::SUPPORT,
    find_coordinator::SUPPORT,
    join_group::SUPPORT,
    heartbeat::SUPPORT,
    leave_group::SUPPORT,
    sync_group::SUPPORT,
    describe_groups::SUPPORT,
    list_groups::SUPPORT,
    api_versions::SUPPORT,
    create_topics::SUPPORT,
    delete_topics::SUPPORT,
    init_producer_id::SUPPORT,
    offset_for_leader_epoch::SUPPORT,
    describe_configs::SUPPORT,
    alter_configs::SUPPORT,
    describe_log_dirs::SUPPORT,
    create_partitions::SUPPORT,
    delete_groups::SUPPORT,
    elect_leaders::SUPPORT,
    incremental_alter_configs::SUPPORT,
    offset_delete::SUPPORT,
    describe_cluster::SUPPORT,
    describe_topic_partitions::SUPPORT,
];

/// The registry ApiVersions advertises and requests are checked against.
pub static REGISTRY: ApiRegistry = ApiRegistry::new(&APIS);

impl RequestHandler for Node {
    fn registry(&self) -> &ApiRegistry {
        &REGISTRY
    }

    fn handle<'a>(
        &'a self,
        connection: &'a ConnectionInfo,
        request: Request,
    ) -> BoxFuture<'a, Reply> {
        Box::pin(dispatch(self, connection, request))
    }
}

async fn dispatch(node: &Node, connection: &ConnectionInfo, request: Request) -> Reply {
    let version = request.api_version;
    let api_key = request.api_key;
    let node_id = node.config.node_id;
    crate::api_coverage::API_COVERAGE.record(api_key, version);
    let client = || RequestContext {
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        // Kafka's `InetAddress.toString()` of the client address.
        client_host: format!("/{}", connection.peer.ip()),
        api_version: version,
    };
    match request.body {
        RequestKind::ApiVersions(req) => Reply::now(ResponseKind::ApiVersions(
            api_versions::handle(&REGISTRY, &req, version),
        )),
        RequestKind::Metadata(req) => {
            let ctx = metadata::MetadataContext {
                listener: &connection.listener,
                auto_create_topics: node.config.auto_create_topics,
                node_id,
            };
            Reply::now(ResponseKind::Metadata(
                metadata::handle(&node.admin, ctx, req, version).await,
            ))
        }
        RequestKind::DescribeCluster(req) => {
            let image = node.metadata.image();
            Reply::now(ResponseKind::DescribeCluster(describe_cluster::handle(
                &image,
                &connection.listener,
                node_id,
                &req,
                version,
            )))
        }
        RequestKind::CreateTopics(req) => Reply::now(ResponseKind::CreateTopics(
            create_topics::handle(&node.admin, req, version).await,
        )),
        RequestKind::DeleteTopics(req) => Reply::now(ResponseKind::DeleteTopics(
            delete_topics::handle(&node.admin, req, version).await,
        )),
        RequestKind::CreatePartitions(req) => Reply::now(ResponseKind::CreatePartitions(
            create_partitions::handle(&node.admin, req, version).await,
        )),
        RequestKind::DescribeConfigs(req) => Reply::now(ResponseKind::DescribeConfigs(
            describe_configs::handle(&node.admin, node_id, &req, version),
        )),
        RequestKind::AlterConfigs(req) => Reply::now(ResponseKind::AlterConfigs(
            alter_configs::handle(&node.admin, node_id, req, version).await,
        )),
        RequestKind::IncrementalAlterConfigs(req) => {
            Reply::now(ResponseKind::IncrementalAlterConfigs(
                incremental_alter_configs::handle(&node.admin, node_id, req, version).await,
            ))
        }
        RequestKind::Produce(req) => {
            let image = node.metadata.image();
            let ctx = produce::ProduceContext {
                partitions: &node.partitions,
                image: &image,
                configs: node.admin.config_view(&image),
                now_ms: node.clock.now_ms(),
            };
            produce::handle(ctx, req, version).await
        }
        RequestKind::Fetch(req) => {
            let ctx = fetch::FetchContext {
                partitions: node.partitions.clone(),
                image: node.metadata.image(),
                shutdown: node.shutdown.clone(),
                max_bytes: node.config.fetch_max_bytes,
                follower_fetching: Arc::clone(&node.follower_fetching),
                listener: Arc::clone(&connection.listener),
                peer: connection.peer.ip(),
                clock: Arc::clone(&node.clock),
            };
            fetch::handle(ctx, req, version)
        }
        RequestKind::ListOffsets(req) => {
            let image = node.metadata.image();
            Reply::now(ResponseKind::ListOffsets(
                list_offsets::handle(&node.partitions, &image, req, version).await,
            ))
        }
        RequestKind::OffsetForLeaderEpoch(req) => {
            let image = node.metadata.image();
            Reply::now(ResponseKind::OffsetForLeaderEpoch(
                offset_for_leader_epoch::handle(&node.partitions, &image, &req, version),
            ))
        }
        RequestKind::FindCoordinator(req) => Reply::now(ResponseKind::FindCoordinator(
            find_coordinator::handle(&node.groups, &connection.listener, &req, version),
        )),
        RequestKind::JoinGroup(req) => {
            join_group::handle(&node.groups, client(), req, version).await
        }
        RequestKind::SyncGroup(req) => sync_group::handle(&node.groups, req, version).await,
        RequestKind::Heartbeat(req) => heartbeat::handle(&node.groups, req).await,
        RequestKind::LeaveGroup(req) => leave_group::handle(&node.groups, req, version).await,
        RequestKind::OffsetCommit(req) => {
            let image = node.metadata.image();
            offset_commit::handle(&node.groups, &image, req, version).await
        }
        RequestKind::OffsetFetch(req) => offset_fetch::handle(&node.groups, req, version).await,
        RequestKind::ListGroups(req) => list_groups::handle(&node.groups, req, version).await,
        RequestKind::DescribeGroups(req) => {
            describe_groups::handle(&node.groups, req, version).await
        }
        RequestKind::DeleteGroups(req) => delete_groups::handle(&node.groups, req).await,
        RequestKind::OffsetDelete(req) => {
            let image = node.metadata.image();
            offset_delete::handle(&node.groups, &image, req).await
        }
        RequestKind::InitProducerId(req) => Reply::now(ResponseKind::InitProducerId(
            init_producer_id::handle(&node.producer_ids, &req, version).await,
        )),
        RequestKind::DescribeLogDirs(req) => {
            let partitions = node.partitions.clone();
            let log_dirs = node.config.log_dirs.clone();
            let response = tokio::task::spawn_blocking(move || {
                let logs = describe_log_dirs::hosted_logs(&partitions);
                describe_log_dirs::handle(
                    &log_dirs,
                    &logs,
                    describe_log_dirs::disk_space,
                    &req,
                    version,
                )
            })
            .await;
            match response {
                Ok(response) => Reply::now(ResponseKind::DescribeLogDirs(response)),
                Err(e) => Reply::Close(format!("DescribeLogDirs task failed: {e}")),
            }
        }
        RequestKind::DescribeTopicPartitions(req) => {
            let image = node.metadata.image();
            Reply::now(ResponseKind::DescribeTopicPartitions(
                describe_topic_partitions::handle(&image, &connection.listener, &req),
            ))
        }
        RequestKind::ElectLeaders(req) => {
            let image = node.metadata.image();
            let response = match &node.cluster {
                Some(cluster) => {
                    let elector = crate::cluster::leader_election::ClusterElector {
                        metadata: node.metadata.clone(),
                        cluster: cluster.clone(),
                        timeout: Duration::from_millis(
                            u64::try_from(req.timeout_ms)
                                .unwrap_or(0)
                                .clamp(1_000, 120_000),
                        ),
                    };
                    elect_leaders::handle(&image, &elector, &req, version).await
                }
                None => {
                    let elector = elect_leaders::ImageElector { image: &image };
                    elect_leaders::handle(&image, &elector, &req, version).await
                }
            };
            Reply::now(ResponseKind::ElectLeaders(response))
        }
        // The registry check in the protocol layer lets only the APIs above through.
        _ => Reply::Close(format!("no handler for {api_key:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_consistent_with_the_schemas() {
        REGISTRY.validate().unwrap();
    }
}
