//! The idempotent producer on the wire: producer ids that are never reused, retries answered
//! with the original offsets (also after a restart and a crash), and Kafka's errors for
//! out-of-order sequences and fenced epochs.

use kafka_protocol::records::Compression;
use shoal_tests::records::{decode, idempotent_batch};
use shoal_tests::{Broker, Client};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

async fn send(client: &mut Client, topic: &str, batch: bytes::Bytes) -> (i16, i64) {
    let r = client
        .produce(topic, 0, batch, -1, 9)
        .await
        .unwrap()
        .unwrap();
    (r.error_code, r.base_offset)
}

async fn values(client: &mut Client, topic: &str) -> Vec<String> {
    let data = client.fetch(topic, 0, 0, 100, 1).await.unwrap();
    decode(data.records.as_ref().unwrap())
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn retries_are_acknowledged_once_and_sequences_are_enforced() {
    let broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(client.create_topic("idem", 1, &[]).await.unwrap(), 0);
    let (error, pid, epoch) = client.init_producer_id().await.unwrap();
    assert_eq!((error, epoch), (0, 0));
    let (_, other, _) = client.init_producer_id().await.unwrap();
    assert_ne!(pid, other, "every InitProducerId gets a new id");

    let first = idempotent_batch(pid, 0, 0, &["a", "b"], Compression::None);
    let second = idempotent_batch(pid, 0, 2, &["c"], Compression::Gzip);
    assert_eq!(send(&mut client, "idem", first.clone()).await, (0, 0));
    assert_eq!(send(&mut client, "idem", second.clone()).await, (0, 2));
    // Retries of both, in any order: acknowledged with their original offsets, not written.
    assert_eq!(send(&mut client, "idem", second.clone()).await, (0, 2));
    assert_eq!(send(&mut client, "idem", first.clone()).await, (0, 0));
    assert_eq!(values(&mut client, "idem").await, vec!["a", "b", "c"]);

    // A gap in the sequence.
    let gap = idempotent_batch(pid, 0, 5, &["x"], Compression::None);
    assert_eq!(
        send(&mut client, "idem", gap).await.0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    // The client bumps its own epoch (KIP-360) and restarts at sequence 0 ...
    let bumped = idempotent_batch(pid, 1, 0, &["d"], Compression::None);
    assert_eq!(send(&mut client, "idem", bumped).await, (0, 3));
    // ... which fences the old epoch.
    let zombie = idempotent_batch(pid, 0, 3, &["z"], Compression::None);
    assert_eq!(
        send(&mut client, "idem", zombie).await.0,
        INVALID_PRODUCER_EPOCH
    );
    // A producer the partition has never seen may start anywhere (no UNKNOWN_PRODUCER_ID).
    let fresh = idempotent_batch(other, 0, 17, &["e"], Compression::None);
    assert_eq!(send(&mut client, "idem", fresh).await, (0, 4));
    assert_eq!(
        values(&mut client, "idem").await,
        vec!["a", "b", "c", "d", "e"]
    );
}

#[tokio::test]
async fn duplicates_are_recognised_after_a_restart_and_after_a_crash() {
    let mut broker = Broker::start_default().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(client.create_topic("idem", 1, &[]).await.unwrap(), 0);
    let (_, pid, _) = client.init_producer_id().await.unwrap();
    let batches: Vec<_> = (0..5)
        .map(|i| idempotent_batch(pid, 0, i * 2, &["p", "q"], Compression::None))
        .collect();
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(
            send(&mut client, "idem", b.clone()).await,
            (0, i as i64 * 2)
        );
    }
    drop(client);

    broker.restart().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(
            send(&mut client, "idem", b.clone()).await,
            (0, i as i64 * 2),
            "retry of batch {i} after a restart"
        );
    }
    let (_, after_restart, _) = client.init_producer_id().await.unwrap();
    assert!(
        after_restart > pid,
        "producer ids are never reused: {after_restart} after {pid}"
    );
    let next = idempotent_batch(pid, 0, 10, &["r"], Compression::None);
    assert_eq!(send(&mut client, "idem", next.clone()).await, (0, 10));
    drop(client);

    broker.kill().unwrap();
    broker.restart().unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(
        send(&mut client, "idem", next).await,
        (0, 10),
        "retry after a crash"
    );
    assert_eq!(values(&mut client, "idem").await.len(), 11);
    let (_, after_crash, _) = client.init_producer_id().await.unwrap();
    assert!(after_crash > after_restart);
}
