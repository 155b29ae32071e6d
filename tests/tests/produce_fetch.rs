//! Produce and fetch through the real broker with a raw protocol client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::records::Compression;
use shoal_tests::records::{TestRecord, batch, decode};
use shoal_tests::{Broker, BrokerOptions, Client};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn records(prefix: &str, n: usize, ts: i64) -> Vec<TestRecord> {
    (0..n)
        .map(|i| {
            let mut r = TestRecord::new(
                &format!("{prefix}-key-{i}"),
                &format!("{prefix}-value-{i}"),
                ts + i as i64,
            );
            r.headers = vec![
                ("h".into(), Some(Bytes::from(format!("{i}")))),
                ("null".into(), None),
            ];
            if i % 7 == 3 {
                r.value = None;
            }
            r
        })
        .collect()
}

#[tokio::test]
async fn every_codec_round_trips_with_offsets_keys_values_headers_and_timestamps() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(client.create_topic("codecs", 1, &[]).await.unwrap(), 0);
    let ts = now_ms();
    let mut expected = Vec::new();
    for (i, codec) in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let sent = records(&format!("{codec:?}"), 50, ts);
        let response = client
            .produce("codecs", 0, batch(&sent, codec), -1, 9)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            response.error_code, 0,
            "{codec:?}: {:?}",
            response.error_message
        );
        assert_eq!(response.base_offset, i as i64 * 50);
        assert_eq!(response.log_append_time_ms, -1);
        expected.extend(sent);
    }

    let mut offset = 0;
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let data = client.fetch("codecs", 0, offset, 1000, 1).await.unwrap();
        assert_eq!(data.error_code, 0);
        assert_eq!(data.high_watermark, 250);
        let batch_records = decode(data.records.as_ref().unwrap()).unwrap();
        assert!(
            !batch_records.is_empty(),
            "fetch at {offset} returned nothing"
        );
        offset = batch_records.last().unwrap().offset + 1;
        got.extend(batch_records);
    }
    assert_eq!(got.len(), expected.len());
    for (i, (record, sent)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(record.offset, i as i64);
        assert_eq!(record.key, sent.key);
        assert_eq!(record.value, sent.value);
        assert_eq!(record.timestamp, sent.timestamp);
        let headers: Vec<(String, Option<Bytes>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(headers, sent.headers);
    }
}

#[tokio::test]
async fn acks_zero_one_and_all() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("acks", 1, &[]).await.unwrap();
    let b = || batch(&[TestRecord::new("k", "v", now_ms())], Compression::None);
    assert!(
        client
            .produce("acks", 0, b(), 0, 9)
            .await
            .unwrap()
            .is_none()
    );
    let one = client.produce("acks", 0, b(), 1, 9).await.unwrap().unwrap();
    assert_eq!(
        (one.error_code, one.base_offset),
        (0, 1),
        "acks=0 record got offset 0 first"
    );
    let all = client
        .produce("acks", 0, b(), -1, 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((all.error_code, all.base_offset), (0, 2));
    // acks=-1 answers only once committed: the high watermark already covers it.
    let data = client.fetch("acks", 0, 0, 0, 0).await.unwrap();
    assert_eq!(data.high_watermark, 3);
    let bad = client.produce("acks", 0, b(), 2, 9).await.unwrap().unwrap();
    assert_eq!(bad.error_code, 21, "INVALID_REQUIRED_ACKS");
}

#[tokio::test]
async fn log_append_time_topics_stamp_the_broker_clock() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client
        .create_topic("lat", 1, &[("message.timestamp.type", "LogAppendTime")])
        .await
        .unwrap();
    let before = now_ms();
    let response = client
        .produce(
            "lat",
            0,
            batch(&[TestRecord::new("k", "v", 12345)], Compression::Gzip),
            -1,
            9,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.error_code, 0);
    assert!(
        response.log_append_time_ms >= before,
        "{}",
        response.log_append_time_ms
    );
    let data = client.fetch("lat", 0, 0, 0, 0).await.unwrap();
    let bytes = data.records.unwrap();
    let record = &decode(&bytes).unwrap()[0];
    // Clients read a LogAppendTime batch's maxTimestamp as every record's timestamp.
    assert_eq!(
        record.timestamp_type,
        kafka_protocol::records::TimestampType::LogAppend
    );
    let max_timestamp = i64::from_be_bytes(bytes[35..43].try_into().unwrap());
    assert_eq!(max_timestamp, response.log_append_time_ms);
}

#[tokio::test]
async fn long_poll_fetch_is_woken_by_a_produce() {
    let broker = Broker::start_default().unwrap();
    let mut admin = Client::connect(&broker.address()).await.unwrap();
    admin.create_topic("poll", 1, &[]).await.unwrap();
    let address = broker.address();
    let waiter = tokio::spawn(async move {
        let mut consumer = Client::connect(&address).await.unwrap();
        let started = std::time::Instant::now();
        let data = consumer.fetch("poll", 0, 0, 20_000, 1).await.unwrap();
        (data, started.elapsed())
    });
    // Let the fetch park, then produce; the fetch must answer long before its 20 s wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin
        .produce(
            "poll",
            0,
            batch(&[TestRecord::new("k", "v", now_ms())], Compression::None),
            1,
            9,
        )
        .await
        .unwrap();
    let (data, waited) = waiter.await.unwrap();
    assert_eq!(decode(data.records.as_ref().unwrap()).unwrap().len(), 1);
    assert!(waited < Duration::from_secs(10), "fetch waited {waited:?}");
}

#[tokio::test]
async fn empty_fetch_waits_max_wait_and_out_of_range_is_reported() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("empty", 1, &[]).await.unwrap();
    let started = std::time::Instant::now();
    let data = client.fetch("empty", 0, 0, 300, 1).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!((data.error_code, data.high_watermark), (0, 0));
    assert!(data.records.unwrap().is_empty());
    let data = client.fetch("empty", 0, 5, 0, 1).await.unwrap();
    assert_eq!(data.error_code, 1, "OFFSET_OUT_OF_RANGE");
    assert_eq!(data.high_watermark, -1);
    let data = client.fetch("missing", 0, 0, 0, 1).await.unwrap();
    assert_eq!(data.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

#[tokio::test]
async fn list_offsets_earliest_latest_by_timestamp_and_max() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("times", 1, &[]).await.unwrap();
    let base = now_ms() - 10_000;
    // Three batches (one compressed) with timestamps base+0..2, base+10..12, base+5..7; the
    // maximum (base+12) is the last record of the second batch.
    for (start, codec) in [
        (0, Compression::None),
        (10, Compression::Zstd),
        (5, Compression::Lz4),
    ] {
        let recs: Vec<TestRecord> = (0..3)
            .map(|i| TestRecord::new("k", "v", base + start + i))
            .collect();
        let r = client
            .produce("times", 0, batch(&recs, codec), -1, 9)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.error_code, 0);
    }
    let earliest = client.list_offset("times", 0, -2).await.unwrap();
    assert_eq!(
        (earliest.error_code, earliest.offset, earliest.timestamp),
        (0, 0, -1)
    );
    let latest = client.list_offset("times", 0, -1).await.unwrap();
    assert_eq!((latest.offset, latest.leader_epoch), (9, 0));
    let at = client.list_offset("times", 0, base + 11).await.unwrap();
    assert_eq!(
        (at.offset, at.timestamp),
        (4, base + 11),
        "exact record inside a compressed batch"
    );
    let at = client.list_offset("times", 0, base + 3).await.unwrap();
    assert_eq!(
        (at.offset, at.timestamp),
        (3, base + 10),
        "first record at or after the time"
    );
    let none = client.list_offset("times", 0, base + 100).await.unwrap();
    assert_eq!((none.error_code, none.offset, none.timestamp), (0, -1, -1));
    let max = client.list_offset("times", 0, -3).await.unwrap();
    assert_eq!((max.offset, max.timestamp), (5, base + 12));
    let unknown = client.list_offset("times", 7, -1).await.unwrap();
    assert_eq!(unknown.error_code, 3);
}

#[tokio::test]
async fn auto_creation_uses_num_partitions_from_the_environment() {
    let broker = Broker::start(BrokerOptions::default().env("KAFKA_NUM_PARTITIONS", 3)).unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let metadata = client.metadata(Some(&["auto"]), true).await.unwrap();
    let topic = &metadata.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.partitions.len(), 3);
    assert_eq!(metadata.controller_id.0, 1);
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(
        metadata.brokers[0].port as u16,
        broker
            .address()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    );
    let metadata = client
        .metadata(Some(&["not-created"]), false)
        .await
        .unwrap();
    assert_eq!(metadata.topics[0].error_code, 3);
}
