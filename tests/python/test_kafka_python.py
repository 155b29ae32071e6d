"""kafka-python produces and consumes with every codec; every field is checked."""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import CODECS, varied_records

COUNT = 150


def consume_all(bootstrap, topic, count, partition=0):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
        request_timeout_ms=30000,
    )
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(records)
        assert len(got) == count, f"received {len(got)} of {count} records"
        assert consumer.end_offsets([tp])[tp] == count
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_round_trip(bootstrap, new_topic, codec):
    topic = new_topic()
    records = varied_records(COUNT)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        acks="all",
        linger_ms=10,
        batch_size=8192,
        max_in_flight_requests_per_connection=1,
        enable_idempotence=True,
    )
    try:
        futures = [
            producer.send(topic, key=r["key"], value=r["value"], headers=r["headers"], timestamp_ms=r["timestamp"], partition=0)
            for r in records
        ]
        producer.flush(timeout=30)
        for i, f in enumerate(futures):
            md = f.get(timeout=30)
            assert (md.partition, md.offset) == (0, i)
    finally:
        producer.close(timeout=10)

    got = consume_all(bootstrap, topic, COUNT)
    for i, (sent, rec) in enumerate(zip(records, got)):
        assert rec.offset == i
        assert rec.key == sent["key"], f"key of offset {i}"
        assert rec.value == sent["value"], f"value of offset {i}"
        assert rec.timestamp == sent["timestamp"], f"timestamp of offset {i}"
        assert rec.timestamp_type == 0, "CreateTime"
        assert [(k, v) for k, v in rec.headers] == sent["headers"], f"headers of offset {i}"


@pytest.mark.parametrize("acks", [0, 1])
def test_kafka_python_acks(bootstrap, new_topic, acks):
    topic = new_topic()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=acks, linger_ms=5, enable_idempotence=False)
    try:
        for i in range(30):
            producer.send(topic, value=f"v{i}".encode(), partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    got = consume_all(bootstrap, topic, 30)
    assert [r.value for r in got] == [f"v{i}".encode() for i in range(30)]
