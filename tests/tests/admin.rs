//! Topic administration and configs through the raw protocol.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use shoal_protocol::{RequestKind, ResponseKind};
use shoal_tests::{Broker, Client};

async fn describe(
    client: &mut Client,
    ty: i8,
    name: &str,
) -> kafka_protocol::messages::describe_configs_response::DescribeConfigsResult {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(ty)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configuration_keys(None),
        ]);
    let ResponseKind::DescribeConfigs(r) = client
        .send(
            ApiKey::DescribeConfigs,
            4,
            RequestKind::DescribeConfigs(request),
        )
        .await
        .unwrap()
    else {
        panic!("not DescribeConfigs")
    };
    r.results.into_iter().next().unwrap()
}

async fn alter(
    client: &mut Client,
    ty: i8,
    name: &str,
    key: &str,
    op: i8,
    value: Option<&str>,
) -> (i16, Option<String>) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(ty)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.to_string()))
                    .with_config_operation(op)
                    .with_value(value.map(|v| StrBytes::from_string(v.to_string()))),
            ]),
    ]);
    let ResponseKind::IncrementalAlterConfigs(r) = client
        .send(
            ApiKey::IncrementalAlterConfigs,
            1,
            RequestKind::IncrementalAlterConfigs(request),
        )
        .await
        .unwrap()
    else {
        panic!("not IncrementalAlterConfigs")
    };
    let r = &r.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn value_of<'a>(
    result: &'a kafka_protocol::messages::describe_configs_response::DescribeConfigsResult,
    name: &str,
) -> &'a kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|c| *c.name == *name)
        .unwrap_or_else(|| panic!("{name} not described"))
}

#[tokio::test]
async fn topic_configs_are_described_with_sources_and_synonyms_and_can_be_altered() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client
        .create_topic("cfg", 2, &[("retention.ms", "3600000")])
        .await
        .unwrap();
    let result = describe(&mut client, 2, "cfg").await;
    assert_eq!(result.error_code, 0);
    let retention = value_of(&result, "retention.ms");
    assert_eq!(
        retention.value.as_deref().map(|v| v.to_string()),
        Some("3600000".to_string())
    );
    assert_eq!(retention.config_source, 1, "TOPIC_CONFIG");
    assert_eq!(retention.synonyms[0].source, 1);
    assert_eq!(
        retention.synonyms[1].name.to_string(),
        "log.retention.hours"
    );
    assert_eq!(retention.config_type, 5, "LONG");
    assert!(retention.documentation.is_some());
    let segment = value_of(&result, "segment.bytes");
    assert_eq!(
        (
            segment.value.as_deref().map(|v| v.to_string()),
            segment.config_source
        ),
        (Some("1073741824".into()), 5)
    );

    assert_eq!(
        alter(&mut client, 2, "cfg", "retention.ms", 1, None)
            .await
            .0,
        0,
        "DELETE"
    );
    assert_eq!(
        alter(&mut client, 2, "cfg", "max.message.bytes", 0, Some("5000"))
            .await
            .0,
        0,
        "SET"
    );
    let result = describe(&mut client, 2, "cfg").await;
    assert_eq!(value_of(&result, "retention.ms").config_source, 5);
    assert_eq!(
        value_of(&result, "max.message.bytes")
            .value
            .as_deref()
            .map(|v| v.to_string()),
        Some("5000".into())
    );

    let (code, message) = alter(&mut client, 2, "cfg", "retention.ms", 2, Some("1")).await;
    assert_eq!(code, 40, "APPEND to a LONG is INVALID_CONFIG: {message:?}");
    assert_eq!(
        alter(&mut client, 2, "cfg", "no.such.config", 0, Some("1"))
            .await
            .0,
        40
    );
    assert_eq!(
        alter(&mut client, 2, "cfg", "retention.ms", 0, Some("-5"))
            .await
            .0,
        40
    );
    assert_eq!(
        alter(&mut client, 2, "missing", "retention.ms", 0, Some("5"))
            .await
            .0,
        3
    );
    assert_eq!(describe(&mut client, 2, "missing").await.error_code, 3);
}

#[tokio::test]
async fn broker_configs_are_described_and_dynamic_ones_flow_into_topics() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("inherit", 1, &[]).await.unwrap();
    let result = describe(&mut client, 4, "1").await;
    assert_eq!(result.error_code, 0);
    let dirs = value_of(&result, "log.dirs");
    assert!(dirs.read_only);
    assert_eq!(
        dirs.config_source, 4,
        "STATIC_BROKER_CONFIG (set by the harness)"
    );
    assert_eq!(
        alter(&mut client, 4, "1", "log.dirs", 0, Some("/elsewhere"))
            .await
            .0,
        42,
        "INVALID_REQUEST"
    );
    assert_eq!(
        alter(&mut client, 4, "", "log.retention.ms", 0, Some("123456"))
            .await
            .0,
        0
    );
    let topic = describe(&mut client, 2, "inherit").await;
    let retention = value_of(&topic, "retention.ms");
    assert_eq!(
        retention.value.as_deref().map(|v| v.to_string()),
        Some("123456".into())
    );
    assert_eq!(retention.config_source, 3, "DYNAMIC_DEFAULT_BROKER_CONFIG");
    let defaults = describe(&mut client, 4, "").await;
    assert_eq!(defaults.configs.len(), 1);
    assert_eq!(describe(&mut client, 4, "7").await.error_code, 42);
}

#[tokio::test]
async fn create_partitions_and_delete_by_id() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("grow", 1, &[]).await.unwrap();
    let grow = |count: i32| {
        RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(TopicName("grow".into()))
                        .with_count(count)
                        .with_assignments(None),
                ]),
        )
    };
    let ResponseKind::CreatePartitions(r) = client
        .send(ApiKey::CreatePartitions, 3, grow(4))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, 0);
    let ResponseKind::CreatePartitions(r) = client
        .send(ApiKey::CreatePartitions, 3, grow(2))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.results[0].error_code, 37, "INVALID_PARTITIONS");
    let metadata = client.metadata(Some(&["grow"]), false).await.unwrap();
    assert_eq!(metadata.topics[0].partitions.len(), 4);
    let id = metadata.topics[0].topic_id;

    let delete = |id: uuid::Uuid| {
        RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    DeleteTopicState::default()
                        .with_name(None)
                        .with_topic_id(id),
                ]),
        )
    };
    let ResponseKind::DeleteTopics(r) = client
        .send(ApiKey::DeleteTopics, 6, delete(id))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (
            r.responses[0].error_code,
            r.responses[0].name.as_deref().map(|n| n.to_string())
        ),
        (0, Some("grow".into()))
    );
    let ResponseKind::DeleteTopics(r) = client
        .send(ApiKey::DeleteTopics, 6, delete(id))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.responses[0].error_code, 100, "UNKNOWN_TOPIC_ID");
    assert_eq!(
        client
            .metadata(Some(&["grow"]), false)
            .await
            .unwrap()
            .topics[0]
            .error_code,
        3
    );
}

#[tokio::test]
async fn validate_only_creates_nothing_and_duplicates_are_invalid_requests() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let topic = |name: &str| {
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
    };
    let request = CreateTopicsRequest::default()
        .with_validate_only(true)
        .with_topics(vec![topic("checked"), topic("twice"), topic("twice")]);
    let ResponseKind::CreateTopics(r) = client
        .send(ApiKey::CreateTopics, 7, RequestKind::CreateTopics(request))
        .await
        .unwrap()
    else {
        panic!()
    };
    let codes: Vec<(String, i16)> = r
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![("checked".to_string(), 0), ("twice".to_string(), 42)]
    );
    assert_eq!(r.topics[0].num_partitions, 1);
    assert_eq!(
        client
            .metadata(Some(&["checked"]), false)
            .await
            .unwrap()
            .topics[0]
            .error_code,
        3
    );
}

#[tokio::test]
async fn metadata_by_topic_id_ignores_the_names_sent_alongside() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("by-id", 2, &[]).await.unwrap();
    let id = client
        .metadata(Some(&["by-id"]), false)
        .await
        .unwrap()
        .topics[0]
        .topic_id;
    // The Java client sends an empty name next to each id.
    let topic = |id: uuid::Uuid| {
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(Some(TopicName("".into())))
    };
    let unknown = uuid::Uuid::from_u128(12345);
    let request = MetadataRequest::default()
        .with_topics(Some(vec![topic(id), topic(unknown)]))
        .with_allow_auto_topic_creation(false);
    let ResponseKind::Metadata(r) = client
        .send(ApiKey::Metadata, 12, RequestKind::Metadata(request))
        .await
        .unwrap()
    else {
        panic!()
    };
    let mut found: Vec<(uuid::Uuid, i16, usize)> = r
        .topics
        .iter()
        .map(|t| (t.topic_id, t.error_code, t.partitions.len()))
        .collect();
    found.sort();
    let mut expected = vec![(id, 0, 2), (unknown, 100, 0)];
    expected.sort();
    assert_eq!(found, expected);
    assert!(r.topics.iter().all(|t| !t.topic_id.is_nil()));
}
