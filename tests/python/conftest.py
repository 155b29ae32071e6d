"""Shared fixtures for the Python client suites (kafka-python, confluent-kafka, kcat).

The suites talk to one broker for the whole session:

* ``--bootstrap HOST:PORT`` (or env ``SHOAL_TEST_BOOTSTRAP``): a broker someone else started;
* otherwise ``--broker shoal|kafka`` (or env ``SHOAL_TEST_BROKER``, default ``shoal``): the
  session starts one with the Java launcher of tests/java (``BrokerMain``), the same code the
  Java suites use, and stops it at the end. Build that first with
  ``mvn -f tests/java -DskipTests package``.

Topics are created explicitly (auto-creation is off on a launched broker), each test on its own.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

REPO = pathlib.Path(__file__).resolve().parents[2]
JAVA_DIR = REPO / "tests" / "java"
START_TIMEOUT_S = 150

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def pytest_addoption(parser):
    parser.addoption("--bootstrap", default=os.environ.get("SHOAL_TEST_BOOTSTRAP"))
    parser.addoption("--broker", default=os.environ.get("SHOAL_TEST_BROKER", "shoal"))


def _launch(kind, extra_args=()):
    classes = JAVA_DIR / "conformance" / "target" / "classes"
    cp_file = JAVA_DIR / "conformance" / "target" / "runtime.classpath"
    kafka_cp = JAVA_DIR / "reference-kafka" / "target" / "kafka.classpath"
    if not classes.is_dir() or not cp_file.is_file():
        raise pytest.UsageError(
            f"the broker launcher is not built ({cp_file} missing): run mvn -f tests/java -DskipTests package"
        )
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="python-suite-"))
    bootstrap_file = workdir / "bootstrap"
    cmd = [
        "java",
        f"-Dshoal.bin={os.environ.get('SHOAL_BIN', REPO / 'target' / 'debug' / 'shoal')}",
        f"-Dkafka.classpath.file={kafka_cp}",
        "-cp",
        f"{classes}:{cp_file.read_text().strip()}",
        "shoal.conformance.broker.BrokerMain",
        "--broker",
        kind,
        "--bootstrap-file",
        str(bootstrap_file),
        "--prop",
        "auto.create.topics.enable=false",
        "--prop",
        "message.max.bytes=2097152",
        # Groups form at once instead of after Kafka's 3s default delay.
        "--prop",
        "group.initial.rebalance.delay.ms=0",
        *extra_args,
    ]
    log = open(workdir / "launcher.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not bootstrap_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
                why = f"not ready within {START_TIMEOUT_S}s"
            else:
                why = f"did not start (launcher exit {proc.returncode})"
            log.close()
            output = (workdir / "launcher.log").read_text(errors="replace")[-4000:]
            shutil.rmtree(workdir, ignore_errors=True)
            raise pytest.UsageError(f"{kind} broker {why}:\n{output}")
        time.sleep(0.1)
    return proc, log, bootstrap_file.read_text().strip(), workdir


def _stop(proc, log, workdir):
    # SIGTERM lets the launcher stop the brokers and delete their directories.
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def bootstrap(request):
    given = request.config.getoption("--bootstrap")
    if given:
        yield given
        return
    proc, log, servers, workdir = _launch(request.config.getoption("--broker"))
    try:
        yield servers
    finally:
        _stop(proc, log, workdir)


# Node ids of the three-rack cluster are 1, 2, 3; node n is in RACKS[n - 1].
RACKS = ["rack-a", "rack-b", "rack-c"]


@pytest.fixture(scope="module")
def three_rack_cluster(request):
    """Three nodes in three racks with the rack-aware replica selector (KIP-392), started for
    the module by the same launcher; its bootstrap servers. A broker given with --bootstrap is a
    single broker and cannot stand in for it, so the tests that need it are skipped, saying so."""
    if request.config.getoption("--bootstrap"):
        pytest.skip("needs a launched three-node cluster, not a broker given with --bootstrap")
    proc, log, servers, workdir = _launch(
        request.config.getoption("--broker"),
        [
            "--nodes",
            "3",
            "--racks",
            ",".join(RACKS),
            "--prop",
            "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector",
        ],
    )
    try:
        yield servers
    finally:
        _stop(proc, log, workdir)


@pytest.fixture(scope="session")
def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


@pytest.fixture
def new_topic(admin, request):
    """Creates a fresh topic (name derived from the test) and waits until it has leaders."""

    def create(partitions=1, config=None):
        safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in request.node.name)[:120]
        name = f"py-{safe}-{uuid.uuid4().hex[:8]}"
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
        futures[name].result(timeout=30)
        deadline = time.monotonic() + 30
        while True:
            md = admin.list_topics(topic=name, timeout=10)
            t = md.topics.get(name)
            if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()
            ):
                return name
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {name} has no leaders after 30s: {t}")
            time.sleep(0.1)

    return create


BASE_TS = 1_600_000_000_000


def varied_records(n):
    """Deterministic records: some null keys or values, 0-2 headers, explicit timestamps."""
    out = []
    for i in range(n):
        key = None if i % 5 == 0 else f"key-{i}".encode()
        # kafka-python refuses a record with neither key nor value, so nulls never coincide.
        value = None if (i % 7 == 3 and key is not None) else (f"value {i} ".encode() * (1 + i % 40)) + bytes(range(i % 256))
        headers = []
        if i % 3 >= 1:
            headers.append(("h-index", str(i).encode()))
        if i % 3 == 2:
            headers.append(("h-bin", bytes([0, 255, i % 256])))
        out.append({"key": key, "value": value, "headers": headers, "timestamp": BASE_TS + i * 1000})
    return out
