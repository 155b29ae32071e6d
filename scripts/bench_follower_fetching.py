"""Follower-fetching benchmark on a three-node loopback Shoal cluster (racks rack-a/b/c).

1. End-to-end latency at low throughput (follower fetching on): one idempotent acks=all
   producer writes timestamped records at a fixed rate to an RF=3 partition; two consumers read
   them at the same time, one in the leader's rack (leader-served) and one in a follower's rack
   (follower-served). Latency = receive time - send time, both on this host's clock. Measured
   records follow a warm-up that lasts until both consumers receive records (plus --settle-s),
   so the percentiles are steady state; each consumer's first-record latency (its start-up
   cost) is reported apart.
2. Cross-rack bytes for the same workload with follower fetching on and off: three consumers, one
   per rack, each read a whole RF=3 topic; bytes served to consumers and cross-rack bytes are
   taken from the brokers' Prometheus endpoints (shoal_consumer_fetch_bytes_total,
   shoal_consumer_fetch_cross_rack_bytes_total), before and after.

Run through scripts/bench-follower-fetching, which provides the Python client and the binary.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

RACKS = ["rack-a", "rack-b", "rack-c"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Three shoal processes; stopped (SIGTERM, then SIGKILL) and their directories removed on exit."""

    def __init__(self, binary, follower_fetching):
        self.dir = tempfile.mkdtemp(prefix="shoal-bench-ff-")
        self.procs = []
        ports = [(free_port(), free_port(), free_port()) for _ in RACKS]
        voters = ",".join(f"{i + 1}@127.0.0.1:{p[1]}" for i, p in enumerate(ports))
        self.metrics = [f"http://127.0.0.1:{p[2]}/metrics" for p in ports]
        self.bootstrap = ",".join(f"127.0.0.1:{p[0]}" for p in ports)
        try:
            for i, (client, controller, metrics) in enumerate(ports):
                node_dir = os.path.join(self.dir, f"node-{i + 1}")
                os.makedirs(node_dir)
                props = {
                    "node.id": i + 1,
                    "process.roles": "broker,controller",
                    "controller.quorum.voters": voters,
                    "controller.listener.names": "CONTROLLER",
                    "listeners": f"PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}",
                    "advertised.listeners": f"PLAINTEXT://127.0.0.1:{client}",
                    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "log.dirs": os.path.join(node_dir, "data"),
                    "broker.rack": RACKS[i],
                    "offsets.topic.replication.factor": 3,
                    "auto.create.topics.enable": "false",
                    "follower.fetching.enabled": str(follower_fetching).lower(),
                    "metrics.listener": f"http://127.0.0.1:{metrics}/metrics",
                }
                path = os.path.join(node_dir, "server.properties")
                with open(path, "w") as f:
                    f.writelines(f"{k}={v}\n" for k, v in props.items())
                log = open(os.path.join(node_dir, "shoal.log"), "wb")
                self.procs.append(subprocess.Popen([binary, "--config", path], stdout=log, stderr=subprocess.STDOUT))
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            deadline = time.monotonic() + 120
            while True:
                try:
                    if len(admin.list_topics(timeout=5).brokers) == 3:
                        break
                except Exception:  # noqa: BLE001 - not up yet
                    pass
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                    raise RuntimeError(f"cluster did not start; logs in {self.dir}")
                time.sleep(0.5)
        except BaseException:
            self.close(keep_logs=True)
            raise

    def close(self, keep_logs=False):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if not keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)

    def scrape(self, name):
        """Sum of one counter over every broker and series."""
        total = 0.0
        for url in self.metrics:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            for line in text.splitlines():
                if re.match(rf"{name}(\{{|\s)", line):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def create_topic(self, partitions):
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        name = f"bench-ff-{os.getpid()}-{time.monotonic_ns()}"
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=3)])[name].result(timeout=30)
        deadline = time.monotonic() + 60
        while True:
            t = admin.list_topics(topic=name, timeout=10).topics.get(name)
            if t and t.error is None and all(p.leader >= 0 and len(p.isrs) == 3 for p in t.partitions.values()):
                return name, {p.id: p.leader for p in t.partitions.values()}
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not fully replicated")
            time.sleep(0.2)


FETCH_WAIT_MS = 500


def consumer(bootstrap, rack, topic, partitions):
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "fetch.wait.max.ms": FETCH_WAIT_MS,
            "group.id": f"bench-{topic}-{rack}",
            "enable.auto.commit": False,
            "client.rack": rack,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    return c


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def latency(cluster, rate, count, settle_s):
    """Steady-state end-to-end latency. Warm-up records (value prefixed "w") flow until both
    consumers have received one and `settle_s` more seconds have passed, so start-up costs
    (the idempotent producer's id, metadata, the preferred-replica redirect, the group
    coordinator's topic) stay out of the percentiles; each consumer's first-record latency is
    reported apart as its start-up cost."""
    topic, leaders = cluster.create_topic(1)
    leader = leaders[0]
    follower = leader % 3 + 1
    readers = {"leader-served": RACKS[leader - 1], "follower-served": RACKS[follower - 1]}
    results = {k: [] for k in readers}
    first = {}
    live = {k: threading.Event() for k in readers}
    stop = threading.Event()

    def read(label, rack):
        c = consumer(cluster.bootstrap, rack, topic, 1)
        try:
            while len(results[label]) < count and not stop.is_set():
                msg = c.poll(0.1)
                if msg is None or msg.error():
                    continue
                now = time.time_ns()
                value = msg.value().decode()
                sent = int(value.lstrip("w"))
                if label not in first:
                    first[label] = (now - sent) / 1e6
                    live[label].set()
                if not value.startswith("w"):
                    results[label].append((now - sent) / 1e6)
        finally:
            c.close()

    threads = [threading.Thread(target=read, args=item) for item in readers.items()]
    for t in threads:
        t.start()
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 0})
    interval = 1.0 / rate
    next_at = time.monotonic()
    deadline = next_at + 60
    settled_at = None
    warmup = 0
    while True:
        now = time.monotonic()
        if settled_at is None and all(e.is_set() for e in live.values()):
            settled_at = now + settle_s
        if settled_at is not None and now >= settled_at:
            break
        if now > deadline:
            stop.set()
            raise RuntimeError(f"consumers not live within 60 s: {sorted(k for k, e in live.items() if e.is_set())}")
        producer.produce(topic, value=f"w{time.time_ns()}".encode(), partition=0)
        producer.poll(0)
        warmup += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    for _ in range(count):
        producer.produce(topic, value=str(time.time_ns()).encode(), partition=0)
        producer.poll(0)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    producer.flush(30)
    for t in threads:
        t.join(timeout=60)
    stop.set()
    out = {"warmup_records": warmup}
    for label, values in results.items():
        if len(values) != count:
            raise RuntimeError(f"{label}: received {len(values)} of {count}")
        values.sort()
        out[label] = {q: round(percentile(values, v), 2) for q, v in (("p50_ms", 0.50), ("p90_ms", 0.90), ("p99_ms", 0.99), ("max_ms", 1.0))}
        out[label]["first_record_ms"] = round(first[label], 2)
    return out


def cross_rack(cluster, partitions, per_partition, size):
    topic, _ = cluster.create_topic(partitions)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    value = b"x" * size
    for p in range(partitions):
        for _ in range(per_partition):
            producer.produce(topic, value=value, partition=p)
            producer.poll(0)
    producer.flush(60)
    before = (cluster.scrape("shoal_consumer_fetch_bytes_total"), cluster.scrape("shoal_consumer_fetch_cross_rack_bytes_total"))
    total = partitions * per_partition
    for rack in RACKS:
        c = consumer(cluster.bootstrap, rack, topic, partitions)
        try:
            seen = 0
            deadline = time.monotonic() + 120
            while seen < total:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"consumer in {rack} read {seen} of {total}")
                msg = c.poll(0.2)
                if msg is not None and not msg.error():
                    seen += 1
        finally:
            c.close()
    after = (cluster.scrape("shoal_consumer_fetch_bytes_total"), cluster.scrape("shoal_consumer_fetch_cross_rack_bytes_total"))
    served, crossed = after[0] - before[0], after[1] - before[1]
    return {"served_bytes": int(served), "cross_rack_bytes": int(crossed), "cross_rack_share": round(crossed / served, 3) if served else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shoal-bin", required=True)
    ap.add_argument("--rate", type=int, default=100, help="records per second for the latency run")
    ap.add_argument("--count", type=int, default=1000, help="records measured in the latency run")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--per-partition", type=int, default=2000)
    ap.add_argument("--size", type=int, default=1000, help="record value bytes in the cross-rack run")
    ap.add_argument("--fetch-wait-ms", type=int, default=500, help="consumers' fetch.wait.max.ms (librdkafka default 500)")
    ap.add_argument("--latency-only", action="store_true", help="skip the cross-rack runs")
    ap.add_argument("--settle-s", type=float, default=1.0, help="warm-up seconds after both consumers received a record")
    args = ap.parse_args()
    global FETCH_WAIT_MS
    FETCH_WAIT_MS = args.fetch_wait_ms
    report = {"binary": args.shoal_bin, "latency_rate_per_s": args.rate, "latency_records": args.count}
    for enabled in (True, False):
        cluster = Cluster(args.shoal_bin, enabled)
        try:
            if enabled:
                report["latency"] = latency(cluster, args.rate, args.count, args.settle_s)
                if args.latency_only:
                    break
            key = "cross_rack_follower_fetching_on" if enabled else "cross_rack_follower_fetching_off"
            report[key] = cross_rack(cluster, args.partitions, args.per_partition, args.size)
        finally:
            cluster.close()
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
