//! Data survives restarts: graceful (SIGTERM flushes every log) and crashes (SIGKILL after an
//! acks=all produce, which the default flush policy made durable before answering).

use kafka_protocol::records::Compression;
use shoal_tests::records::{TestRecord, batch, decode};
use shoal_tests::{Broker, Client};

async fn produce_numbered(client: &mut Client, topic: &str, from: usize, count: usize, acks: i16) {
    for i in from..from + count {
        let codec = [Compression::None, Compression::Gzip, Compression::Zstd][i % 3];
        let r = client
            .produce(
                topic,
                0,
                batch(
                    &[TestRecord::new(
                        &format!("k{i}"),
                        &format!("v{i}"),
                        i as i64,
                    )],
                    codec,
                ),
                acks,
                9,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.error_code, r.base_offset), (0, i as i64));
    }
}

async fn read_all(client: &mut Client, topic: &str, expected: usize) -> Vec<String> {
    let mut values = Vec::new();
    let mut offset = 0;
    while values.len() < expected {
        let data = client.fetch(topic, 0, offset, 2000, 1).await.unwrap();
        assert_eq!(data.error_code, 0);
        let records = decode(data.records.as_ref().unwrap()).unwrap();
        assert!(
            !records.is_empty(),
            "no data at offset {offset}; high watermark {}",
            data.high_watermark
        );
        for r in records {
            assert_eq!(r.offset, offset);
            offset += 1;
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    values
}

#[tokio::test]
async fn graceful_restart_keeps_topics_configs_and_records() {
    let mut broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client
        .create_topic("kept", 1, &[("retention.ms", "86400000")])
        .await
        .unwrap();
    produce_numbered(&mut client, "kept", 0, 30, 1).await;
    drop(client);
    let status = broker.stop().unwrap();
    assert!(status.success(), "exit status {status}");
    broker.restart().unwrap();

    let mut client = Client::connect(&broker.address()).await.unwrap();
    let values = read_all(&mut client, "kept", 30).await;
    assert_eq!(values, (0..30).map(|i| format!("v{i}")).collect::<Vec<_>>());
    let metadata = client.metadata(Some(&["kept"]), false).await.unwrap();
    assert_eq!(metadata.topics[0].error_code, 0);
    // The log continues where it stopped.
    produce_numbered(&mut client, "kept", 30, 5, -1).await;
    assert_eq!(read_all(&mut client, "kept", 35).await.len(), 35);
}

#[tokio::test]
async fn acknowledged_writes_survive_a_crash() {
    let mut broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("crash", 1, &[]).await.unwrap();
    produce_numbered(&mut client, "crash", 0, 40, -1).await;
    drop(client);
    broker.kill().unwrap();
    broker.restart().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let values = read_all(&mut client, "crash", 40).await;
    assert_eq!(values.len(), 40);
    assert_eq!(client.list_offset("crash", 0, -1).await.unwrap().offset, 40);
}

#[tokio::test]
async fn deleted_topics_stay_deleted_and_names_can_be_reused() {
    let mut broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("reused", 1, &[]).await.unwrap();
    produce_numbered(&mut client, "reused", 0, 3, -1).await;
    let request = kafka_protocol::messages::DeleteTopicsRequest::default()
        .with_topic_names(vec![kafka_protocol::messages::TopicName("reused".into())])
        .with_timeout_ms(5000);
    let response = client
        .send(
            kafka_protocol::messages::ApiKey::DeleteTopics,
            5,
            shoal_protocol::RequestKind::DeleteTopics(request),
        )
        .await
        .unwrap();
    let shoal_protocol::ResponseKind::DeleteTopics(response) = response else {
        panic!("not DeleteTopics")
    };
    assert_eq!(response.responses[0].error_code, 0);
    client.create_topic("reused", 1, &[]).await.unwrap();
    drop(client);
    broker.restart().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    // The new topic starts empty: none of the old topic's records came back.
    assert_eq!(client.list_offset("reused", 0, -1).await.unwrap().offset, 0);
    assert!(
        !broker.data_dir().join("logs").read_dir().unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-delete")
        })
    );
}
