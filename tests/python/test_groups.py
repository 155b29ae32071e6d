"""Consumer groups and the idempotent producer from the Python clients (kcat -G: test_kcat.py).

kafka-python (its own protocol implementation) and confluent-kafka (librdkafka) join
classic groups, split partitions between members, commit offsets, and a later member of the
group resumes from exactly what was committed. Producers are idempotent (InitProducerId,
sequence numbers).
"""

import multiprocessing
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CkTopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

TIMEOUT_S = 60


def group_name(hint):
    return f"py-{hint}-{uuid.uuid4().hex[:8]}"


def produce_idempotent(bootstrap, topic, partitions, per_partition, start=0):
    """librdkafka's idempotent producer: one record per (partition, index), value 'p:i'."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    errors = []
    for p in range(partitions):
        for i in range(start, start + per_partition):
            producer.produce(topic, value=f"{p}:{i}".encode(), partition=p, on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0
    assert errors == []


def expected_values(partitions, start, end):
    return sorted(f"{p}:{i}" for p in range(partitions) for i in range(start, end))


# ---------------------------------------------------------------------------------------------
# kafka-python


def kp_consumer(bootstrap, group, **extra):
    conf = dict(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
        heartbeat_interval_ms=500,
        session_timeout_ms=10000,
        request_timeout_ms=30000,
    )
    conf.update(extra)
    return KafkaConsumer(**conf)


def kp_subscribe(consumer, topic):
    """Subscribes and loads the topic's metadata before the first poll joins the group.

    kafka-python 3.0.12 strands a group leader whose rejoin was caused only by a metadata change:
    it records the new metadata as assigned when it computes the assignment, so if a short poll
    times out while its SyncGroup is in flight, later polls no longer see a reason to rejoin and
    never collect the answer; the member stops heartbeating and is expelled. The first join
    otherwise races the client's first metadata answer for the subscribed topic, which is what
    leads to that metadata-only rejoin (the broker is not involved; the same happens with Kafka).
    """
    consumer.subscribe([topic])
    deadline = time.monotonic() + TIMEOUT_S
    while not consumer.partitions_for_topic(topic):
        assert time.monotonic() < deadline, f"no metadata for {topic}"
        time.sleep(0.05)


def kp_drain(consumers, count, timeout_s=TIMEOUT_S):
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        for c in consumers:
            for records in c.poll(timeout_ms=100).values():
                got.extend(records)
    return got


def test_kafka_python_group_consumes_commits_and_the_next_member_resumes(bootstrap, new_topic):
    topic = new_topic(partitions=3)
    group = group_name("kp")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    try:
        for p in range(3):
            for i in range(10):
                producer.send(topic, value=f"{p}:{i}".encode(), partition=p)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)

    first = kp_consumer(bootstrap, group)
    try:
        kp_subscribe(first, topic)
        got = kp_drain([first], 30)
        assert sorted(r.value.decode() for r in got) == expected_values(3, 0, 10)
        first.commit()
        for p in range(3):
            assert first.committed(KpTopicPartition(topic, p)) == 10
    finally:
        first.close(autocommit=False)

    produce_idempotent(bootstrap, topic, 3, 2, start=10)
    second = kp_consumer(bootstrap, group)
    try:
        kp_subscribe(second, topic)
        got = kp_drain([second], 6)
        assert sorted(r.value.decode() for r in got) == expected_values(3, 10, 12)
        # Nothing more: the committed offsets were resumed from, not the beginning.
        assert kp_drain([second], 1, timeout_s=3) == []
        second.commit()
    finally:
        second.close(autocommit=False)


def _kp_split_member(bootstrap, group, topic, name, assignments, stop, errors):
    """One member of test_kafka_python_members_split_the_partitions, in its own process."""
    consumer = kp_consumer(bootstrap, group)
    try:
        kp_subscribe(consumer, topic)
        while not stop.is_set():
            consumer.poll(timeout_ms=100)
            assignments[name] = sorted(tp.partition for tp in consumer.assignment())
    except Exception as e:  # reported by the test
        errors.append(f"{name}: {e!r}")
    finally:
        consumer.close(autocommit=False)


def test_kafka_python_members_split_the_partitions(bootstrap, new_topic):
    topic = new_topic(partitions=4)
    group = group_name("kp-split")
    # Each member polls in its own process, as applications do: a member that is not polled
    # cannot rejoin when the other one's arrival starts a rebalance.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        assignments, errors, stop = manager.dict(), manager.list(), manager.Event()
        members = [
            ctx.Process(target=_kp_split_member, args=(bootstrap, group, topic, n, assignments, stop, errors), daemon=True)
            for n in ("a", "b")
        ]
        for m in members:
            m.start()
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline and not errors:
                a, b = set(assignments.get("a", [])), set(assignments.get("b", []))
                if len(a) == 2 and len(b) == 2:
                    break
                time.sleep(0.05)
        finally:
            stop.set()
            for m in members:
                m.join(timeout=30)
                if m.is_alive():
                    m.kill()
        errors, got = list(errors), dict(assignments)
    assert errors == []
    a, b = set(got.get("a", [])), set(got.get("b", []))
    assert len(a) == 2 and len(b) == 2, got
    assert a | b == {0, 1, 2, 3}


# ---------------------------------------------------------------------------------------------
# confluent-kafka (librdkafka)


def ck_consumer(bootstrap, group, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 200,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
    }
    conf.update(extra)
    return Consumer(conf)


def ck_drain(consumers, count, timeout_s=TIMEOUT_S):
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        for c in consumers:
            msg = c.poll(0.1)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
    return got


def ck_committed(consumer, topic, partitions):
    return {tp.partition: tp.offset for tp in consumer.committed([CkTopicPartition(topic, p) for p in range(partitions)], timeout=10)}


def test_confluent_kafka_group_consumes_commits_and_the_next_member_resumes(bootstrap, new_topic):
    topic = new_topic(partitions=3)
    group = group_name("ck")
    produce_idempotent(bootstrap, topic, 3, 10)

    first = ck_consumer(bootstrap, group)
    try:
        first.subscribe([topic])
        got = ck_drain([first], 30)
        assert sorted(m.value().decode() for m in got) == expected_values(3, 0, 10)
        first.commit(asynchronous=False)
        assert ck_committed(first, topic, 3) == {0: 10, 1: 10, 2: 10}
    finally:
        first.close()

    produce_idempotent(bootstrap, topic, 3, 2, start=10)
    second = ck_consumer(bootstrap, group)
    try:
        second.subscribe([topic])
        got = ck_drain([second], 6)
        assert sorted(m.value().decode() for m in got) == expected_values(3, 10, 12)
        assert ck_drain([second], 1, timeout_s=3) == []
        # Explicit offsets with metadata.
        second.commit(offsets=[CkTopicPartition(topic, 0, 11, metadata="ck-meta")], asynchronous=False)
        [tp] = second.committed([CkTopicPartition(topic, 0)], timeout=10)
        assert (tp.offset, tp.metadata) == (11, "ck-meta")
    finally:
        second.close()


def test_confluent_kafka_cooperative_sticky_members_split_and_rebalance(bootstrap, new_topic):
    topic = new_topic(partitions=4)
    group = group_name("ck-coop")
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    a = ck_consumer(bootstrap, group, **extra)
    b = None
    try:
        a.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        while len(a.assignment()) != 4 and time.monotonic() < deadline:
            a.poll(0.1)
        assert len(a.assignment()) == 4
        b = ck_consumer(bootstrap, group, **extra)
        b.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            a.poll(0.1)
            b.poll(0.1)
            if len(a.assignment()) == 2 and len(b.assignment()) == 2:
                break
        assert len(a.assignment()) == 2 and len(b.assignment()) == 2, (a.assignment(), b.assignment())
        assert {tp.partition for tp in a.assignment() + b.assignment()} == {0, 1, 2, 3}
        # b leaves: a takes everything back.
        b.close()
        b = None
        deadline = time.monotonic() + TIMEOUT_S
        while len(a.assignment()) != 4 and time.monotonic() < deadline:
            a.poll(0.1)
        assert len(a.assignment()) == 4
    finally:
        a.close()
        if b is not None:
            b.close()
