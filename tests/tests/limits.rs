//! Connection limits, idle timeout, fetch sessions and retention.

use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, TopicName};
use kafka_protocol::records::Compression;
use shoal_protocol::{RequestKind, ResponseKind};
use shoal_tests::records::{TestRecord, batch};
use shoal_tests::{Broker, BrokerOptions, Client};

#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_closed() {
    let broker = Broker::start(BrokerOptions::default().with("max.connections.per.ip", 2)).unwrap();
    let mut first = Client::connect(&broker.address()).await.unwrap();
    let mut second = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(first.api_versions(4).await.unwrap().error_code, 0);
    assert_eq!(second.api_versions(4).await.unwrap().error_code, 0);
    let mut third = Client::connect(&broker.address()).await.unwrap();
    third.expect_closed().await.unwrap();
    drop(first);
    // The freed slot is usable again (the broker notices the close asynchronously).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = Client::connect(&broker.address()).await.unwrap();
        if again.api_versions(4).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn idle_connections_are_closed_after_connections_max_idle_ms() {
    let broker =
        Broker::start(BrokerOptions::default().with("connections.max.idle.ms", 300)).unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(client.api_versions(4).await.unwrap().error_code, 0);
    client.expect_closed().await.unwrap();
}

#[tokio::test]
async fn incremental_fetch_sessions_are_refused() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("sessions", 1, &[]).await.unwrap();
    let fetch = |session_id: i32, epoch: i32| {
        RequestKind::Fetch(
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_session_id(session_id)
                .with_session_epoch(epoch)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName("sessions".into()))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]),
        )
    };
    let ResponseKind::Fetch(r) = client.send(ApiKey::Fetch, 12, fetch(0, 0)).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        (r.error_code, r.session_id, r.responses.len()),
        (0, 0, 1),
        "a full fetch, sessionless"
    );
    let ResponseKind::Fetch(r) = client.send(ApiKey::Fetch, 12, fetch(77, 3)).await.unwrap() else {
        panic!()
    };
    assert_eq!(r.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
    assert!(r.responses.is_empty());
}

#[tokio::test]
async fn retention_deletes_old_segments_and_moves_the_log_start() {
    let broker =
        Broker::start(BrokerOptions::default().with("log.retention.check.interval.ms", 100))
            .unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client
        .create_topic("short", 1, &[("retention.ms", "1"), ("segment.ms", "1")])
        .await
        .unwrap();
    for i in 0..5 {
        // Old timestamps (accepted: message.timestamp.before.max.ms is unlimited by default) make
        // every sealed segment expired at once.
        let r = client
            .produce(
                "short",
                0,
                batch(
                    &[TestRecord::new("k", &format!("v{i}"), 1000 + i)],
                    Compression::None,
                ),
                -1,
                9,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.error_code, 0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let earliest = client.list_offset("short", 0, -2).await.unwrap().offset;
        if earliest > 0 {
            let data = client.fetch("short", 0, 0, 0, 0).await.unwrap();
            assert_eq!(
                data.error_code, 1,
                "OFFSET_OUT_OF_RANGE below the log start"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never ran:\n{}",
            broker.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
