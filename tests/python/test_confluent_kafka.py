"""confluent-kafka (librdkafka) produces and consumes with every codec; every field is checked."""

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from conftest import CODECS, varied_records

COUNT = 150


def consume_all(bootstrap, topic, count, partition=0):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # librdkafka needs a group id to create a consumer; only assign() is used, nothing
            # is committed, so no group coordination happens.
            "group.id": f"unused-{topic}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": 200,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
        assert len(got) == count, f"received {len(got)} of {count} records"
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        assert (low, high) == (0, count)
        return got
    finally:
        consumer.close()


def produce(bootstrap, topic, records, **config):
    # Idempotent by default (as the Java client is); acks other than all need it off.
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True}
    conf.update(config)
    producer = Producer(conf)
    reports = {}

    def on_delivery(err, msg, index):
        reports[index] = (err, msg.partition(), msg.offset())

    for i, r in enumerate(records):
        producer.produce(
            topic,
            key=r["key"],
            value=r["value"],
            headers=r["headers"] or None,
            timestamp=r["timestamp"],
            partition=0,
            on_delivery=lambda err, msg, i=i: on_delivery(err, msg, i),
        )
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} records not delivered"
    return reports


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_round_trip(bootstrap, new_topic, codec):
    topic = new_topic()
    records = varied_records(COUNT)
    reports = produce(
        bootstrap, topic, records, **{"compression.type": codec, "acks": "all", "max.in.flight.requests.per.connection": 1}
    )
    for i in range(COUNT):
        err, partition, offset = reports[i]
        assert err is None, f"record {i}: {err}"
        assert (partition, offset) == (0, i)

    got = consume_all(bootstrap, topic, COUNT)
    for i, (sent, msg) in enumerate(zip(records, got)):
        assert msg.offset() == i
        assert msg.key() == sent["key"], f"key of offset {i}"
        assert msg.value() == sent["value"], f"value of offset {i}"
        ts_type, ts = msg.timestamp()
        assert ts == sent["timestamp"], f"timestamp of offset {i}"
        assert ts_type == 1, "TIMESTAMP_CREATE_TIME"
        assert (msg.headers() or []) == sent["headers"], f"headers of offset {i}"


@pytest.mark.parametrize("acks", ["0", "1"])
def test_confluent_kafka_acks(bootstrap, new_topic, acks):
    topic = new_topic()
    records = [{"key": None, "value": f"v{i}".encode(), "headers": [], "timestamp": 0} for i in range(30)]
    reports = produce(bootstrap, topic, records, acks=acks, **{"enable.idempotence": False})
    assert all(err is None for err, _, _ in reports.values())
    got = consume_all(bootstrap, topic, 30)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(30)]


def test_confluent_kafka_oversized_record_is_rejected(bootstrap, new_topic):
    topic = new_topic(config={"max.message.bytes": "20000"})
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 1_000_000, "enable.idempotence": False})
    errors = []
    producer.produce(topic, value=b"x" * 30_000, partition=0, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(30)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].name() == "MSG_SIZE_TOO_LARGE", errors[0]
