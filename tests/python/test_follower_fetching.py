"""librdkafka (confluent-kafka) follower fetching (KIP-392) on three nodes in three racks.

A consumer with ``client.rack`` reads every record, and librdkafka's own statistics say which
broker it fetched each partition from (``partitions[p].broker``) next to the partition's leader
(``partitions[p].leader``): the broker in its rack, a follower wherever the leader is elsewhere.
Without ``client.rack`` the leader serves. Same assertions on Shoal and on Apache Kafka.
"""

import json
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import RACKS

PARTITIONS = 3
PER_PARTITION = 100
TIMEOUT_S = 60


def _create_replicated(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    name = f"py-ff-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=3)])[name].result(timeout=30)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        t = admin.list_topics(topic=name, timeout=10).topics.get(name)
        if (
            t is not None
            and t.error is None
            and len(t.partitions) == PARTITIONS
            and all(p.leader >= 0 and len(p.isrs) == 3 for p in t.partitions.values())
        ):
            return name, {p.id: p.leader for p in t.partitions.values()}
        assert time.monotonic() < deadline, f"topic {name} not fully replicated after {TIMEOUT_S}s: {t}"
        time.sleep(0.2)


def _produce(bootstrap, topic):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failures = []
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(
                topic,
                value=f"p{p}-{i:03d}".encode(),
                partition=p,
                on_delivery=lambda err, _msg: err and failures.append(err),
            )
    assert producer.flush(30) == 0, "records still in flight after 30s"
    assert failures == []


def _consume_with_stats(bootstrap, topic, client_rack):
    """Reads every record, then returns them per partition and the latest statistics taken after."""
    stats = []
    conf = {
        "bootstrap.servers": bootstrap,
        # Only assign() is used; nothing is committed.
        "group.id": f"unused-{topic}",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
        "statistics.interval.ms": 200,
        "stats_cb": lambda s: stats.append(json.loads(s)),
    }
    if client_rack:
        conf["client.rack"] = client_rack
    consumer = Consumer(conf)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        got = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + TIMEOUT_S
        while sum(len(v) for v in got.values()) < PARTITIONS * PER_PARTITION:
            assert time.monotonic() < deadline, f"consumed {sum(len(v) for v in got.values())} records in {TIMEOUT_S}s"
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got[msg.partition()].append(msg.value().decode())
        # Statistics emitted from now on describe the steady state after the reads.
        stats.clear()
        deadline = time.monotonic() + 10
        while len(stats) < 2:
            assert time.monotonic() < deadline, "no librdkafka statistics within 10s"
            consumer.poll(0.2)
        partitions = stats[-1]["topics"][topic]["partitions"]
        return got, {p: (partitions[str(p)]["broker"], partitions[str(p)]["leader"]) for p in range(PARTITIONS)}
    finally:
        consumer.close()


def test_client_rack_consumers_fetch_from_the_broker_in_their_rack(three_rack_cluster):
    topic, leaders = _create_replicated(three_rack_cluster)
    _produce(three_rack_cluster, topic)
    expected = {p: [f"p{p}-{i:03d}" for i in range(PER_PARTITION)] for p in range(PARTITIONS)}
    followers_used = 0
    for node, rack in enumerate(RACKS, start=1):
        got, fetch = _consume_with_stats(three_rack_cluster, topic, rack)
        assert got == expected, f"records read by a consumer in {rack}"
        for p, (broker, leader) in fetch.items():
            assert leader == leaders[p], f"partition {p}: librdkafka's leader {leader}, metadata's {leaders[p]}"
            assert broker == node, (
                f"partition {p} (leader {leader}): a consumer in {rack} fetched from broker {broker}, "
                f"not node {node} in its rack"
            )
            followers_used += broker != leader
    # Leaders are spread, so most (partition, rack) pairs were served by a follower.
    assert followers_used >= PARTITIONS, f"only {followers_used} partition reads came from a follower"


def test_consumers_without_client_rack_fetch_from_the_leader(three_rack_cluster):
    topic, leaders = _create_replicated(three_rack_cluster)
    _produce(three_rack_cluster, topic)
    got, fetch = _consume_with_stats(three_rack_cluster, topic, None)
    assert got == {p: [f"p{p}-{i:03d}" for i in range(PER_PARTITION)] for p in range(PARTITIONS)}
    for p, (broker, leader) in fetch.items():
        assert (broker, leader) == (leaders[p], leaders[p]), f"partition {p}: fetched from {broker}, leader {leader}"
