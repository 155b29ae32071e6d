//! Malformed and hostile input gets Kafka's answer, and the broker keeps serving everyone else.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader};
use kafka_protocol::records::Compression;
use shoal_protocol::RequestKind;
use shoal_protocol::request::encode_request;
use shoal_tests::records::{TestRecord, batch};
use shoal_tests::{Broker, BrokerOptions, Client};

/// A fresh connection still gets answers.
async fn assert_serving(broker: &Broker) {
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let versions = client.api_versions(4).await.unwrap();
    assert_eq!(versions.error_code, 0);
    let metadata = client.metadata(None, false).await.unwrap();
    assert_eq!(metadata.brokers.len(), 1);
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn garbage_bytes_close_the_connection() {
    let broker = Broker::start_default().unwrap();
    // An HTTP request: its first four bytes read as a 1.1 GB frame size.
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client
        .send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    client.expect_closed().await.unwrap();
    // A well-sized frame full of noise.
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let noise: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    client.send_raw(&frame(&noise)).await.unwrap();
    client.expect_closed().await.unwrap();
    assert_serving(&broker).await;
}

#[tokio::test]
async fn a_frame_over_the_limit_is_refused_before_its_body_arrives() {
    let broker =
        Broker::start(BrokerOptions::default().with("socket.request.max.bytes", 1024)).unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.send_raw(&1025i32.to_be_bytes()).await.unwrap();
    client.expect_closed().await.unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.send_raw(&(-5i32).to_be_bytes()).await.unwrap();
    client.expect_closed().await.unwrap();
    // A request under the limit is served as usual.
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(12)
        .with_correlation_id(1);
    let good = encode_request(&header, &RequestKind::Metadata(MetadataRequest::default())).unwrap();
    client.send_raw(&good).await.unwrap();
    assert!(client.read_frame().await.unwrap().is_some());
    assert_serving(&broker).await;
}

#[tokio::test]
async fn a_truncated_frame_or_header_closes_only_that_connection() {
    let broker = Broker::start_default().unwrap();
    // The frame promises 100 bytes; the client sends 10 and goes away.
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let mut partial = 100i32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[0u8; 10]);
    client.send_raw(&partial).await.unwrap();
    drop(client);
    // A complete frame too short for a request header.
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.send_raw(&frame(&[0, 3, 0])).await.unwrap();
    client.expect_closed().await.unwrap();
    // A header whose client id length runs past the frame.
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Metadata as i16);
    body.put_i16(4);
    body.put_i32(9);
    body.put_i16(500);
    body.put_slice(b"short");
    client.send_raw(&frame(&body)).await.unwrap();
    client.expect_closed().await.unwrap();
    assert_serving(&broker).await;
}

#[tokio::test]
async fn unknown_api_keys_close_the_connection() {
    let broker = Broker::start_default().unwrap();
    for key in [999i16, -1, ApiKey::JoinGroup as i16] {
        let mut client = Client::connect(&broker.address()).await.unwrap();
        let mut body = BytesMut::new();
        body.put_i16(key);
        body.put_i16(0);
        body.put_i32(7);
        body.put_i16(-1);
        client.send_raw(&frame(&body)).await.unwrap();
        client.expect_closed().await.unwrap();
    }
    assert_serving(&broker).await;
}

#[tokio::test]
async fn unsupported_versions_get_the_api_versions_fallback_or_a_closed_connection() {
    let broker = Broker::start_default().unwrap();
    // ApiVersions at a future version: v0 body with UNSUPPORTED_VERSION and the usable range.
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::ApiVersions as i16);
    body.put_i16(9);
    body.put_i32(42);
    body.put_i16(-1);
    body.put_u8(0); // empty tagged fields of header v2
    body.put_slice(b"\x05hello\x02x\x00");
    client.send_raw(&frame(&body)).await.unwrap();
    let response = client.read_frame().await.unwrap().unwrap();
    let (header, response) =
        shoal_protocol::response::decode_response(response, ApiKey::ApiVersions, 0).unwrap();
    assert_eq!(header.correlation_id, 42);
    let shoal_protocol::ResponseKind::ApiVersions(response) = response else {
        panic!("not ApiVersions")
    };
    assert_eq!(response.error_code, 35);
    assert_eq!(response.api_keys.len(), 1);
    assert_eq!(
        (
            response.api_keys[0].api_key,
            response.api_keys[0].max_version
        ),
        (18, 4)
    );
    // The client retries at the version offered and carries on on the same connection.
    assert_eq!(client.api_versions(4).await.unwrap().error_code, 0);

    for (key, version) in [
        (ApiKey::Metadata, 0i16),
        (ApiKey::Metadata, 13),
        (ApiKey::Produce, 2),
        (ApiKey::Fetch, 18),
    ] {
        let mut client = Client::connect(&broker.address()).await.unwrap();
        let mut body = BytesMut::new();
        body.put_i16(key as i16);
        body.put_i16(version);
        body.put_i32(1);
        body.put_i16(-1);
        body.put_slice(&[0; 16]);
        client.send_raw(&frame(&body)).await.unwrap();
        client
            .expect_closed()
            .await
            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
    }
    assert_serving(&broker).await;
}

#[tokio::test]
async fn a_batch_with_a_bad_crc_is_corrupt_message() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("crc", 1, &[]).await.unwrap();
    let good = batch(&[TestRecord::new("k", "v", 1)], Compression::None);
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let response = client
        .produce("crc", 0, Bytes::from(bad), 1, 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.error_code, 2, "CORRUPT_MESSAGE");
    assert_eq!(response.base_offset, -1);
    // Nothing was stored: the next good batch gets offset 0.
    let response = client
        .produce("crc", 0, good, -1, 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((response.error_code, response.base_offset), (0, 0));
    assert_serving(&broker).await;
}

#[tokio::test]
async fn a_batch_over_message_max_bytes_is_message_too_large() {
    let broker = Broker::start(BrokerOptions::default().with("message.max.bytes", 2000)).unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    client.create_topic("big", 1, &[]).await.unwrap();
    let value = "x".repeat(3000);
    let response = client
        .produce(
            "big",
            0,
            batch(&[TestRecord::new("k", &value, 1)], Compression::None),
            1,
            9,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.error_code, 10, "MESSAGE_TOO_LARGE");
    // The topic-level max.message.bytes overrides the broker's.
    client
        .create_topic("bigger", 1, &[("max.message.bytes", "10000")])
        .await
        .unwrap();
    let response = client
        .produce(
            "bigger",
            0,
            batch(&[TestRecord::new("k", &value, 1)], Compression::None),
            1,
            9,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    // acks=0: no response is possible, so the broker closes the connection.
    let mut acks0 = Client::connect(&broker.address()).await.unwrap();
    acks0
        .produce(
            "big",
            0,
            batch(&[TestRecord::new("k", &value, 1)], Compression::None),
            0,
            9,
        )
        .await
        .unwrap();
    acks0.expect_closed().await.unwrap();
    assert_serving(&broker).await;
}

#[tokio::test]
async fn invalid_topic_names_are_invalid_topic_exception() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    for name in ["bad name", "a/b", "..", &"x".repeat(250)] {
        assert_eq!(
            client.create_topic(name, 1, &[]).await.unwrap(),
            17,
            "{name}"
        );
    }
    let metadata = client.metadata(Some(&["bad name"]), true).await.unwrap();
    assert_eq!(metadata.topics[0].error_code, 17);
    assert_eq!(client.create_topic("a.b", 1, &[]).await.unwrap(), 0);
    assert_eq!(
        client.create_topic("a_b", 1, &[]).await.unwrap(),
        17,
        "collides with a.b"
    );
    assert_eq!(
        client.create_topic("a.b", 1, &[]).await.unwrap(),
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    assert_serving(&broker).await;
}
