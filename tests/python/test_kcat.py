"""kcat (librdkafka's command-line client) produces and consumes with every codec, and in a group."""

import json
import shutil
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import CODECS

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
COUNT = 200


def kcat(*args, stdin=None):
    if KCAT is None:
        pytest.fail("kcat is not installed (apt-get install kcat); the suite does not skip it")
    proc = subprocess.run(
        [KCAT, *args], input=stdin, capture_output=True, timeout=90, check=False
    )
    assert proc.returncode == 0, f"kcat {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_round_trip(bootstrap, new_topic, codec):
    topic = new_topic()
    lines = []
    for i in range(COUNT):
        key = f"k{i % 17}"
        value = f"value {i} " + "abc" * (i % 50)
        lines.append(f"{key}\t{value}")
    kcat(
        "-b", bootstrap, "-P", "-t", topic, "-p", "0", "-z", codec, "-K", "\t",
        "-H", "origin=kcat", "-X", "acks=all", "-X", "enable.idempotence=true",
        stdin=("\n".join(lines) + "\n").encode(),
    )
    out = kcat("-b", bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J")
    messages = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert len(messages) == COUNT
    for i, m in enumerate(messages):
        key, value = lines[i].split("\t", 1)
        assert m["offset"] == i
        assert m["partition"] == 0
        assert m["key"] == key
        assert m["payload"] == value
        assert m["headers"] == ["origin", "kcat"]
        assert m["tstype"] == "create"


def test_kcat_metadata_lists_the_topic(bootstrap, new_topic):
    topic = new_topic(partitions=3)
    md = json.loads(kcat("-b", bootstrap, "-L", "-J", "-t", topic))
    assert len(md["brokers"]) == 1
    [t] = [t for t in md["topics"] if t["topic"] == topic]
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    broker_id = md["brokers"][0]["id"]
    assert all(p["leader"] == broker_id for p in t["partitions"])


def test_kcat_null_values_and_empty_keys(bootstrap, new_topic):
    topic = new_topic()
    # -Z turns empty keys and values into NULLs.
    kcat("-b", bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":", "-Z", stdin=b"a:1\n:2\nb:\n")
    out = kcat("-b", bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J")
    msgs = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert [(m["key"], m["payload"]) for m in msgs] == [("a", "1"), (None, "2"), ("b", None)]


def test_kcat_group_consumer_commits_and_resumes(bootstrap, new_topic):
    topic = new_topic(partitions=2)
    group = f"py-kcat-{uuid.uuid4().hex[:8]}"
    lines = [f"{i}" for i in range(20)]
    kcat(
        "-b", bootstrap, "-P", "-t", topic, "-p", "0", "-X", "enable.idempotence=true",
        stdin=("\n".join(lines[:10]) + "\n").encode(),
    )
    kcat(
        "-b", bootstrap, "-P", "-t", topic, "-p", "1", "-X", "enable.idempotence=true",
        stdin=("\n".join(lines[10:]) + "\n").encode(),
    )

    def consume(count):
        # The balanced consumer (-G) starts from the group's committed offsets (-o would override them).
        out = kcat(
            "-b", bootstrap, "-G", group, "-c", str(count), "-J", "-X", "auto.offset.reset=earliest",
            "-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100", topic,
        )
        return [json.loads(line) for line in out.decode().splitlines() if line.strip()]

    first = consume(20)
    assert sorted(int(m["payload"]) for m in first) == list(range(20))
    # kcat commits the stored offsets on close; a member of the group sees them.
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        committed = probe.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert {tp.partition: tp.offset for tp in committed} == {0: 10, 1: 10}
    finally:
        probe.close()

    kcat("-b", bootstrap, "-P", "-t", topic, "-p", "1", stdin=b"20\n21\n")
    second = consume(2)
    assert [(m["partition"], m["offset"], m["payload"]) for m in second] == [(1, 10, "20"), (1, 11, "21")]
