//! Every API at every advertised version: the request decodes, the response encodes at that
//! version (strict encoding) and arrives in order on one connection.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{alter_configs_request, *};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use shoal_protocol::{RequestKind, ResponseKind};
use shoal_tests::records::{TestRecord, batch};
use shoal_tests::{Broker, BrokerOptions, Client};
use uuid::Uuid;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

const ADVERTISED: &[(i16, i16, i16)] = &[
    (0, 3, 12),
    (1, 4, 17),
    (2, 1, 9),
    (3, 1, 12),
    (8, 2, 9),
    (9, 1, 9),
    (10, 0, 6),
    (11, 0, 9),
    (12, 0, 4),
    (13, 0, 5),
    (14, 0, 5),
    (15, 0, 6),
    (16, 0, 5),
    (18, 0, 4),
    (19, 2, 7),
    (20, 1, 6),
    (22, 0, 5),
    (23, 2, 4),
    (32, 1, 4),
    (33, 0, 2),
    (35, 1, 4),
    (37, 0, 3),
    (42, 0, 2),
    (43, 0, 2),
    (44, 0, 1),
    (47, 0, 0),
    (60, 0, 1),
    (75, 0, 0),
];

/// Kafka's error codes the group requests below are answered with (they ask about groups that
/// do not exist, or join without a member id).
const UNKNOWN_MEMBER_ID: i16 = 25;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_ID_NOT_FOUND: i16 = 69;
/// ElectLeaders on one node: the only replica already leads.
const ELECTION_NOT_NEEDED: i16 = 84;

fn group(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[tokio::test]
async fn api_versions_advertises_exactly_the_implemented_ranges() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    for version in 0..=4 {
        let response = client.api_versions(version).await.unwrap();
        assert_eq!(response.error_code, 0);
        let mut keys: Vec<(i16, i16, i16)> = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        keys.sort();
        assert_eq!(keys, ADVERTISED, "ApiVersions v{version}");
    }
}

fn request(key: ApiKey, version: i16, topic_id: Uuid, tag: &str) -> RequestKind {
    match key {
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(name("v"))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch(
                                    &[TestRecord::new("k", "v", 1)],
                                    Compression::None,
                                ))),
                        ]),
                ]),
        ),
        ApiKey::Fetch => {
            let mut topic = FetchTopic::default().with_partitions(vec![
                FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
            ]);
            if version >= 13 {
                topic.topic_id = topic_id;
            } else {
                topic.topic = name("v");
            }
            let mut r = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![topic]);
            if version >= 7 {
                r.session_epoch = -1;
            }
            if version < 15 {
                r.replica_id = BrokerId(-1);
            }
            RequestKind::Fetch(r)
        }
        ApiKey::ListOffsets => RequestKind::ListOffsets(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(name("v"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ]),
                ]),
        ),
        ApiKey::Metadata => {
            let mut r = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("v"))),
            ]));
            if version >= 8 {
                r.include_topic_authorized_operations = true;
            }
            if (8..=10).contains(&version) {
                r.include_cluster_authorized_operations = true;
            }
            RequestKind::Metadata(r)
        }
        ApiKey::ApiVersions => RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("shoal-tests"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
        ),
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(name(tag))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]),
        ),
        ApiKey::DeleteTopics => {
            let mut r = DeleteTopicsRequest::default().with_timeout_ms(5000);
            if version >= 6 {
                r.topics = vec![DeleteTopicState::default().with_name(Some(name(tag)))];
            } else {
                r.topic_names = vec![name(tag)];
            }
            RequestKind::DeleteTopics(r)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let mut r = OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(name("v"))
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(0)
                            .with_leader_epoch(0),
                    ]),
            ]);
            if version >= 3 {
                r.replica_id = BrokerId(-1);
            }
            RequestKind::OffsetForLeaderEpoch(r)
        }
        ApiKey::DescribeConfigs => {
            let mut r = DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("v")),
                    DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(StrBytes::from_static_str("1")),
                ]);
            if version >= 3 {
                r.include_documentation = true;
            }
            RequestKind::DescribeConfigs(r)
        }
        ApiKey::AlterConfigs => {
            RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("v"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("86400000")))]),
        ]))
        }
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(name(tag))
                        .with_count(2)
                        .with_assignments(None),
                ]),
        ),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("v"))
                    .with_configs(vec![
                        incremental::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("segment.ms"))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_static_str("3600000"))),
                    ]),
            ]),
        ),
        ApiKey::DescribeCluster => {
            let mut r =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            if version >= 1 {
                r.endpoint_type = 1;
            }
            RequestKind::DescribeCluster(r)
        }
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            if version >= 4 {
                r.coordinator_keys = vec![str(tag)];
            } else {
                r.key = str(tag);
            }
            RequestKind::FindCoordinator(r)
        }
        ApiKey::JoinGroup => {
            let mut r = JoinGroupRequest::default()
                .with_group_id(group(tag))
                .with_session_timeout_ms(10_000)
                .with_protocol_type(str("consumer"))
                .with_protocols(vec![
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(str("range"))
                        .with_metadata(bytes::Bytes::from_static(b"\0\0\0\0\0\0\xff\xff\xff\xff")),
                ]);
            if version >= 1 {
                r.rebalance_timeout_ms = 10_000;
            }
            RequestKind::JoinGroup(r)
        }
        ApiKey::SyncGroup => {
            let mut r = SyncGroupRequest::default()
                .with_group_id(group(tag))
                .with_generation_id(1)
                .with_member_id(str("m"));
            if version >= 5 {
                r.protocol_type = Some(str("consumer"));
                r.protocol_name = Some(str("range"));
            }
            RequestKind::SyncGroup(r)
        }
        ApiKey::Heartbeat => RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(group(tag))
                .with_generation_id(1)
                .with_member_id(str("m")),
        ),
        ApiKey::LeaveGroup => {
            let mut r = LeaveGroupRequest::default().with_group_id(group(tag));
            if version >= 3 {
                r.members =
                    vec![leave_group_request::MemberIdentity::default().with_member_id(str("m"))];
            } else {
                r.member_id = str("m");
            }
            RequestKind::LeaveGroup(r)
        }
        ApiKey::OffsetCommit => {
            let mut partition = offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(7)
                .with_committed_metadata(Some(str("meta")));
            if version >= 6 {
                partition.committed_leader_epoch = 0;
            }
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(group(tag))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(name("v"))
                            .with_partitions(vec![partition]),
                    ]),
            )
        }
        ApiKey::OffsetFetch => {
            let mut r = OffsetFetchRequest::default();
            if version >= 8 {
                r.groups = vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(group(tag))
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(name("v"))
                                .with_partition_indexes(vec![0]),
                        ])),
                ];
            } else {
                r.group_id = group(tag);
                r.topics = Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(name("v"))
                        .with_partition_indexes(vec![0]),
                ]);
            }
            RequestKind::OffsetFetch(r)
        }
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => {
            let mut r = DescribeGroupsRequest::default().with_groups(vec![group(tag)]);
            if version >= 3 {
                r.include_authorized_operations = true;
            }
            RequestKind::DescribeGroups(r)
        }
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![group(tag)]),
        ),
        ApiKey::OffsetDelete => {
            RequestKind::OffsetDelete(OffsetDeleteRequest::default().with_group_id(group(tag)))
        }
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        ApiKey::DescribeLogDirs => {
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None))
        }
        ApiKey::ElectLeaders => {
            let mut r = ElectLeadersRequest::default()
                .with_timeout_ms(5000)
                .with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(name("v"))
                        .with_partitions(vec![0]),
                ]));
            if version >= 1 {
                r.election_type = 0;
            }
            RequestKind::ElectLeaders(r)
        }
        ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(
            DescribeTopicPartitionsRequest::default().with_topics(vec![
                describe_topic_partitions_request::TopicRequest::default().with_name(name("v")),
            ]),
        ),
        other => panic!("no request for {other:?}"),
    }
}

/// The errors the request of [`request`] is answered with, where not every code is 0.
fn expected_errors(api: ApiKey, version: i16) -> Option<Vec<i16>> {
    match api {
        ApiKey::JoinGroup if version >= 4 => Some(vec![MEMBER_ID_REQUIRED]),
        ApiKey::SyncGroup | ApiKey::Heartbeat | ApiKey::LeaveGroup => Some(vec![UNKNOWN_MEMBER_ID]),
        ApiKey::DeleteGroups | ApiKey::OffsetDelete => Some(vec![GROUP_ID_NOT_FOUND]),
        ApiKey::DescribeGroups if version >= 6 => Some(vec![GROUP_ID_NOT_FOUND]),
        ApiKey::ElectLeaders => Some(vec![ELECTION_NOT_NEEDED]),
        _ => None,
    }
}

/// The response's error codes, flattened (top level and per topic/partition).
fn errors(response: &ResponseKind) -> Vec<i16> {
    match response {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::Fetch(r) => std::iter::once(r.error_code)
            .chain(
                r.responses
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            )
            .collect(),
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::Metadata(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::ApiVersions(r) => vec![r.error_code],
        ResponseKind::CreateTopics(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::DeleteTopics(r) => r.responses.iter().map(|t| t.error_code).collect(),
        ResponseKind::OffsetForLeaderEpoch(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::DescribeConfigs(r) => r.results.iter().map(|t| t.error_code).collect(),
        ResponseKind::AlterConfigs(r) => r.responses.iter().map(|t| t.error_code).collect(),
        ResponseKind::CreatePartitions(r) => r.results.iter().map(|t| t.error_code).collect(),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().map(|t| t.error_code).collect()
        }
        ResponseKind::DescribeCluster(r) => vec![r.error_code],
        ResponseKind::FindCoordinator(r) => std::iter::once(r.error_code)
            .chain(r.coordinators.iter().map(|c| c.error_code))
            .collect(),
        ResponseKind::JoinGroup(r) => vec![r.error_code],
        ResponseKind::SyncGroup(r) => vec![r.error_code],
        ResponseKind::Heartbeat(r) => vec![r.error_code],
        ResponseKind::LeaveGroup(r) => std::iter::once(r.error_code)
            .filter(|c| *c != 0 || r.members.is_empty())
            .chain(r.members.iter().map(|m| m.error_code))
            .collect(),
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::OffsetFetch(r) => std::iter::once(r.error_code)
            .chain(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            )
            .chain(r.groups.iter().map(|g| g.error_code))
            .collect(),
        ResponseKind::ListGroups(r) => vec![r.error_code],
        ResponseKind::DescribeGroups(r) => r.groups.iter().map(|g| g.error_code).collect(),
        ResponseKind::DeleteGroups(r) => r.results.iter().map(|g| g.error_code).collect(),
        ResponseKind::OffsetDelete(r) => vec![r.error_code],
        ResponseKind::InitProducerId(r) => vec![r.error_code],
        ResponseKind::DescribeLogDirs(r) => std::iter::once(r.error_code)
            .chain(r.results.iter().map(|d| d.error_code))
            .collect(),
        ResponseKind::ElectLeaders(r) => std::iter::once(r.error_code)
            .filter(|c| *c != 0)
            .chain(
                r.replica_election_results
                    .iter()
                    .flat_map(|t| t.partition_result.iter().map(|p| p.error_code)),
            )
            .collect(),
        ResponseKind::DescribeTopicPartitions(r) => r.topics.iter().map(|t| t.error_code).collect(),
        other => panic!("unexpected response {other:?}"),
    }
}

#[tokio::test]
async fn every_api_answers_at_every_advertised_version() {
    let broker =
        Broker::start(BrokerOptions::default().with("group.initial.rebalance.delay.ms", 0))
            .unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(client.create_topic("v", 1, &[]).await.unwrap(), 0);
    let topic_id = client.metadata(Some(&["v"]), false).await.unwrap().topics[0].topic_id;
    // The group APIs need the coordinator topic, created and loaded on first use.
    client.find_coordinator("warm-up").await.unwrap();
    for &(key, min, max) in ADVERTISED {
        let api = ApiKey::try_from(key).unwrap();
        for version in min..=max {
            let tag = format!("t-{key}-{version}");
            if matches!(
                api,
                ApiKey::JoinGroup
                    | ApiKey::SyncGroup
                    | ApiKey::Heartbeat
                    | ApiKey::LeaveGroup
                    | ApiKey::OffsetCommit
                    | ApiKey::OffsetFetch
                    | ApiKey::DescribeGroups
                    | ApiKey::DeleteGroups
                    | ApiKey::OffsetDelete
            ) {
                client.find_coordinator(&tag).await.unwrap();
            }
            // Topics that CreatePartitions and DeleteTopics work on.
            if matches!(api, ApiKey::CreatePartitions | ApiKey::DeleteTopics) {
                assert_eq!(client.create_topic(&tag, 1, &[]).await.unwrap(), 0);
            }
            let response = client
                .send(api, version, request(api, version, topic_id, &tag))
                .await
                .unwrap_or_else(|e| panic!("{api:?} v{version}: {e:#}"));
            match expected_errors(api, version) {
                Some(expected) => assert_eq!(
                    errors(&response),
                    expected,
                    "{api:?} v{version}: {response:?}"
                ),
                None => assert!(
                    errors(&response).iter().all(|c| *c == 0),
                    "{api:?} v{version}: {response:?}"
                ),
            }
        }
    }
}
