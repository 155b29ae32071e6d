package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.BrokerNode;
import shoal.conformance.broker.ClusterSpec;
import shoal.conformance.broker.Deadline;
import shoal.conformance.broker.DirectoryCleanup;
import shoal.conformance.broker.FreePorts;

/**
 * Kafka Connect's distributed worker ({@code connect-runtime}, in a JVM of its own so that it can
 * be killed) on three nodes in three racks: its compacted config, offset and status topics (RF 3,
 * created by the worker with the configs it asks for, validated by the worker as compact), a
 * FileStreamSource and a FileStreamSink connector created through the REST API, and a writer
 * appending lines to the source file all along while the worker is killed (SIGKILL) and
 * restarted, then while the leader of the data topic is killed and restarted.
 *
 * <p>Connect is at least once: after a fault, a source task resumes from its last committed
 * offset (the file position in the offsets topic) and a sink task from its group's last committed
 * offset, so what was done after those commits may be done again. The scenario reads both commits
 * at each fault and checks that every line arrived, and that every duplicate lies in such a
 * window; outside them, each line is in the topic and in the sink file exactly once, and the
 * lines' first occurrences are in order. Untagged: it runs on Shoal and on Apache Kafka.
 */
class ConnectTest {
  static final ClusterSpec THREE_RACKS =
      ClusterSpec.nodes(3)
          .withRacks("rack-a", "rack-b", "rack-c")
          .with("auto.create.topics.enable", "false")
          .with("replica.selector.class", "org.apache.kafka.common.replica.RackAwareReplicaSelector");

  @RegisterExtension static final BrokerExtension CLUSTER = BrokerExtension.dedicated(THREE_RACKS);

  /** Worker start (JVM, joining the group, reading its topics) plus a rebalance, on a busy CI machine. */
  private static final Duration WORKER_TIMEOUT = Duration.ofSeconds(90);

  /** Long enough for a killed broker to be fenced, and to come back into the ISR. */
  private static final Duration FAILOVER_TIMEOUT = Duration.ofSeconds(90);

  /** Fixed-width lines, so that a source offset (a byte position) names a line: position / width. */
  private static final int LINE_WIDTH = "line-000000\n".length();

  private static final String SOURCE = "file-source";
  private static final String SINK = "file-sink";

  private Path dir;
  private ConnectWorker worker;
  private String topic;

  /** A scenario that failed with a node stopped must not leave the next one a smaller cluster. */
  @BeforeEach
  void setUp() throws IOException {
    CLUSTER.broker().start();
    dir = Files.createTempDirectory("connect-test-");
  }

  @AfterEach
  void tearDown() {
    if (worker != null) {
      worker.close();
      worker.saveOutput(Path.of("target", "ConnectTest-worker.log"));
    }
    if (dir != null) {
      DirectoryCleanup.deleteTree(dir);
    }
  }

  @Test
  void file_source_to_file_sink_survives_a_worker_restart_and_a_broker_restart() throws Exception {
    String run = Clients.topicName("connect");
    topic = run + "-lines";
    Clients.get(CLUSTER.admin().createTopics(List.of(new NewTopic(topic, 1, (short) 3))).all());
    awaitFullyReplicated(topic);
    Path sourceFile = dir.resolve("source.txt");
    Path sinkFile = dir.resolve("sink.txt");
    Files.createFile(sourceFile);

    worker = new ConnectWorker(CLUSTER.bootstrap(), run, dir);
    worker.start();
    assertWorkerTopics(run);

    worker.putConnector(
        SOURCE,
        Map.of(
            "connector.class", "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max", "1",
            "file", sourceFile.toString(),
            "topic", topic));
    worker.putConnector(
        SINK,
        Map.of(
            "connector.class", "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max", "1",
            "file", sinkFile.toString(),
            "topics", topic));

    List<Window> windows = new ArrayList<>();
    try (LineWriter writer = new LineWriter(sourceFile)) {
      writer.awaitLines(100);
      awaitSinkHas(sinkFile, writer.written(), WORKER_TIMEOUT, "the first lines");

      // (a) The worker is killed in the middle of the stream, after its first source offset
      // commit (so that it resumes from a committed position, not from the start), and started
      // again.
      Deadline.awaitWithin(WORKER_TIMEOUT, "a source offset committed", () -> committedSourceLine(run, sourceFile) > 0);
      writer.awaitLines(writer.written() + 50);
      step("killing the worker");
      worker.kill();
      int writtenAtKill = writer.written();
      long endAtKill = endOffset(topic);
      windows.add(
          new Window(
              "worker kill", committedSourceLine(run, sourceFile), writtenAtKill, committedSinkOffset(topic), endAtKill));
      step("restarting the worker");
      worker.start();
      writer.awaitLines(writer.written() + 50);
      awaitSinkHas(sinkFile, writer.written(), WORKER_TIMEOUT, "the lines after the worker restart");
      // The restarted worker commits past the first window before the next fault, so that the
      // two windows do not overlap.
      Deadline.awaitWithin(
          WORKER_TIMEOUT,
          "source and sink commits past the worker restart",
          () -> committedSourceLine(run, sourceFile) >= writtenAtKill && committedSinkOffset(topic) >= endAtKill);

      // (b) The leader of the data topic is killed while lines keep coming, then restarted.
      int leader = leaderOf(topic);
      int sourceLineBefore = committedSourceLine(run, sourceFile);
      long sinkOffsetBefore = committedSinkOffset(topic);
      BrokerNode node = CLUSTER.broker().node(leader);
      step("killing broker " + leader);
      node.kill();
      writer.awaitLines(writer.written() + 300);
      step("restarting broker " + leader);
      node.start();
      Deadline.awaitWithin(FAILOVER_TIMEOUT, "broker " + leader + " back in the ISR of " + topic, () -> isr(topic).contains(leader));
      writer.awaitLines(writer.written() + 50);
      windows.add(new Window("broker kill", sourceLineBefore, writer.written(), sinkOffsetBefore, endOffset(topic)));
    }

    // The writer has stopped: everything it wrote must arrive.
    int total = lineCount(sourceFile);
    awaitSinkHas(sinkFile, total, WORKER_TIMEOUT, "every line");
    worker.awaitSinkCommitted(() -> committedSinkOffset(topic) >= endOffset(topic));

    List<String> topicLines = new ArrayList<>();
    List<Long> topicOffsets = new ArrayList<>();
    readTopic(topic, topicLines, topicOffsets);
    List<String> sinkLines = Files.readAllLines(sinkFile, StandardCharsets.UTF_8);
    assertAtLeastOnceWithinWindows(total, topicLines, topicOffsets, sinkLines, windows);
  }

  /**
   * The worker's check of its topics runs against the broker's DescribeConfigs answer: an
   * offsets topic that exists with {@code cleanup.policy=delete} stops the worker at startup,
   * naming the setting, instead of letting it keep offsets in a topic that deletes them.
   */
  @Test
  void a_worker_refuses_an_offsets_topic_that_is_not_compacted() {
    String run = Clients.topicName("connect-delete");
    Clients.get(
        CLUSTER.admin()
            .createTopics(List.of(new NewTopic(run + "-offsets", 1, (short) 3).configs(Map.of("cleanup.policy", "delete"))))
            .all());
    worker = new ConnectWorker(CLUSTER.bootstrap(), run, dir);
    worker.launch();
    // The worker's herder gives up at once with a ConfigException; its JVM then takes tens of
    // seconds in its shutdown hook, which the scenario does not wait for.
    worker.awaitOutput("is required to have 'cleanup.policy=compact'", WORKER_TIMEOUT);
    String output = String.join("\n", worker.output());
    assertTrue(
        output.contains("'cleanup.policy=compact'") && output.contains("'" + run + "-offsets'"),
        "the worker's reason names the topic and cleanup.policy=compact:\n" + worker.outputTail(40));
  }

  /**
   * Checks Connect's contract on what the topic and the sink file hold: every line; a line twice in
   * the topic only if it lies between a source commit and the end of the file at a fault (re-read
   * by the restarted source task); a line more often in the sink file than in the topic only for
   * topic records between a sink commit and the log end at a fault (re-delivered to the sink task);
   * first occurrences in order.
   */
  static void assertAtLeastOnceWithinWindows(
      int total, List<String> topicLines, List<Long> topicOffsets, List<String> sinkLines, List<Window> windows) {
    Map<String, Integer> inTopic = counts(topicLines);
    Map<String, Integer> inSink = counts(sinkLines);
    List<String> missingFromTopic = new ArrayList<>();
    List<String> missingFromSink = new ArrayList<>();
    for (int i = 0; i < total; i++) {
      String line = line(i);
      if (!inTopic.containsKey(line)) {
        missingFromTopic.add(line);
      }
      if (!inSink.containsKey(line)) {
        missingFromSink.add(line);
      }
    }
    assertEquals(List.of(), missingFromTopic, "lines missing from the topic");
    assertEquals(List.of(), missingFromSink, "lines missing from the sink file");
    assertEquals(Set.of(), unexpected(inTopic.keySet(), total), "topic records that are not lines of the file");
    assertEquals(Set.of(), unexpected(inSink.keySet(), total), "sink lines that are not lines of the file");

    List<String> badTopicDuplicates = new ArrayList<>();
    for (var e : inTopic.entrySet()) {
      int index = index(e.getKey());
      long windowsCovering = windows.stream().filter(w -> index >= w.sourceCommittedLine && index < w.sourceEndLine).count();
      if (e.getValue() > 1 + windowsCovering) {
        badTopicDuplicates.add(e.getKey() + " x" + e.getValue());
      }
    }
    assertEquals(List.of(), badTopicDuplicates, "lines repeated in the topic outside the windows " + windows);

    // Re-deliveries to the sink allowed per line: its topic records inside a sink window.
    Map<String, Integer> redeliverable = new HashMap<>();
    for (int i = 0; i < topicLines.size(); i++) {
      long offset = topicOffsets.get(i);
      long covering = windows.stream().filter(w -> offset >= w.sinkCommittedOffset && offset < w.sinkEndOffset).count();
      redeliverable.merge(topicLines.get(i), (int) covering, Integer::sum);
    }
    List<String> badSinkDuplicates = new ArrayList<>();
    for (var e : inSink.entrySet()) {
      int allowed = inTopic.getOrDefault(e.getKey(), 0) + redeliverable.getOrDefault(e.getKey(), 0);
      if (e.getValue() > allowed) {
        badSinkDuplicates.add(e.getKey() + " x" + e.getValue() + " (allowed " + allowed + ")");
      }
    }
    assertEquals(List.of(), badSinkDuplicates, "lines repeated in the sink file outside the windows " + windows);

    assertEquals(firstOccurrences(topicLines), firstOccurrences(topicLines).stream().sorted().toList(), "topic order");
    assertEquals(firstOccurrences(sinkLines), firstOccurrences(sinkLines).stream().sorted().toList(), "sink order");
    System.out.printf(
        "ConnectTest: %d lines; topic %d records, sink %d lines; windows %s%n",
        total, topicLines.size(), sinkLines.size(), windows);
  }

  /**
   * What may be repeated because of one fault: source lines [sourceCommittedLine, sourceEndLine)
   * (after the source task's last offset commit, up to the end of the file then), and topic
   * records [sinkCommittedOffset, sinkEndOffset) (after the sink group's last commit, up to the
   * log end then).
   */
  record Window(String fault, int sourceCommittedLine, int sourceEndLine, long sinkCommittedOffset, long sinkEndOffset) {}

  private static void step(String what) {
    System.out.println(java.time.LocalTime.now() + " ConnectTest: " + what);
  }

  static String line(int i) {
    return String.format("line-%06d", i);
  }

  private static int index(String line) {
    return Integer.parseInt(line.substring("line-".length()));
  }

  private static Map<String, Integer> counts(List<String> lines) {
    Map<String, Integer> m = new TreeMap<>();
    lines.forEach(l -> m.merge(l, 1, Integer::sum));
    return m;
  }

  private static Set<String> unexpected(Set<String> seen, int total) {
    return seen.stream()
        .filter(l -> !l.matches("line-\\d{6}") || index(l) >= total)
        .collect(Collectors.toSet());
  }

  private static List<String> firstOccurrences(List<String> lines) {
    return new ArrayList<>(new java.util.LinkedHashSet<>(lines));
  }

  private static int lineCount(Path file) throws IOException {
    return (int) (Files.size(file) / LINE_WIDTH);
  }

  /** The worker created its three topics compacted and RF 3, as it asks (and it validated them). */
  private static void assertWorkerTopics(String run) {
    Map<String, Integer> partitions = Map.of(run + "-configs", 1, run + "-offsets", 25, run + "-status", 5);
    for (var e : partitions.entrySet()) {
      TopicDescription d = Clients.awaitDescribed(CLUSTER.admin(), e.getKey(), e.getValue());
      for (TopicPartitionInfo p : d.partitions()) {
        assertEquals(3, p.replicas().size(), "replicas of " + e.getKey() + "-" + p.partition());
      }
      ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, e.getKey());
      Config c = Clients.get(CLUSTER.admin().describeConfigs(List.of(r)).all()).get(r);
      assertEquals("compact", c.get("cleanup.policy").value(), "cleanup.policy of " + e.getKey());
    }
  }

  private static void awaitFullyReplicated(String topic) {
    Deadline.awaitWithin(Clients.OP_TIMEOUT, topic + " fully replicated", () -> isr(topic).size() == 3);
  }

  private static Set<Integer> isr(String topic) {
    TopicPartitionInfo p = Clients.awaitDescribed(CLUSTER.admin(), topic, 1).partitions().get(0);
    return p.isr().stream().map(Node::id).collect(Collectors.toSet());
  }

  private static int leaderOf(String topic) {
    return Clients.awaitDescribed(CLUSTER.admin(), topic, 1).partitions().get(0).leader().id();
  }

  private static long endOffset(String topic) {
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(CLUSTER.broker(), Map.of())) {
      return c.endOffsets(List.of(tp)).get(tp);
    }
  }

  /** The sink connector's group ({@code connect-<name>}) committed offset, 0 if none yet. */
  private static long committedSinkOffset(String topic) {
    TopicPartition tp = new TopicPartition(topic, 0);
    Map<TopicPartition, OffsetAndMetadata> offsets =
        Clients.get(
            CLUSTER.admin()
                .listConsumerGroupOffsets(Map.of("connect-" + SINK, new ListConsumerGroupOffsetsSpec()))
                .partitionsToOffsetAndMetadata("connect-" + SINK));
    OffsetAndMetadata o = offsets.get(tp);
    return o == null ? 0 : o.offset();
  }

  private static final Pattern POSITION = Pattern.compile("\"position\"\\s*:\\s*(\\d+)");

  /**
   * The line the source task resumes from: its last committed position in the offsets topic,
   * whose key names the connector and the file, divided by the line width (0 if none yet).
   */
  private static int committedSourceLine(String run, Path sourceFile) {
    String offsetsTopic = run + "-offsets";
    String keyPart = "\"" + SOURCE + "\"";
    String filePart = sourceFile.toString();
    long position = 0;
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(CLUSTER.broker(), Map.of())) {
      List<TopicPartition> tps =
          c.partitionsFor(offsetsTopic).stream().map(p -> new TopicPartition(offsetsTopic, p.partition())).toList();
      c.assign(tps);
      c.seekToBeginning(tps);
      Map<TopicPartition, Long> end = c.endOffsets(tps);
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
        if (deadline.expired()) {
          fail("could not read " + offsetsTopic + " to its end within " + Clients.OP_TIMEOUT);
        }
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          String key = r.key() == null ? "" : new String(r.key(), StandardCharsets.UTF_8);
          if (key.contains(keyPart) && key.contains(filePart)) {
            // One partition holds every record of a key, in order: the last one read is the latest.
            Matcher m = POSITION.matcher(r.value() == null ? "" : new String(r.value(), StandardCharsets.UTF_8));
            position = m.find() ? Long.parseLong(m.group(1)) : 0;
          }
        }
      }
    }
    assertEquals(0, position % LINE_WIDTH, "committed source position " + position + " at a line boundary");
    return (int) (position / LINE_WIDTH);
  }

  private static void readTopic(String topic, List<String> lines, List<Long> offsets) {
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(CLUSTER.broker(), Map.of())) {
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      long end = c.endOffsets(List.of(tp)).get(tp);
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (c.position(tp) < end) {
        if (deadline.expired()) {
          fail("could not read " + topic + " to its end " + end + " within " + Clients.OP_TIMEOUT);
        }
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          lines.add(new String(r.value(), StandardCharsets.UTF_8));
          offsets.add(r.offset());
        }
      }
    }
  }

  private void awaitSinkHas(Path sinkFile, int lines, Duration budget, String what) {
    Set<String> expected = new java.util.HashSet<>();
    for (int i = 0; i < lines; i++) {
      expected.add(line(i));
    }
    String[] last = {"no sink file yet"};
    try {
      Deadline.awaitWithin(
          budget,
          what + " (" + lines + ") in the sink file",
          () -> {
            worker.failIfExited();
            try {
              if (!Files.exists(sinkFile)) {
                return false;
              }
              Set<String> got = new java.util.HashSet<>(Files.readAllLines(sinkFile, StandardCharsets.UTF_8));
              last[0] = got.size() + " distinct lines";
              return got.containsAll(expected);
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
          });
    } catch (IllegalStateException e) {
      throw new AssertionError(
          e.getMessage() + " (sink file: " + last[0] + ")\n" + diagnose() + "\n" + worker.status(SOURCE) + "\n" + worker.status(SINK)
              + "\n" + worker.outputTail(60),
          e);
    }
  }

  /** What the cluster says about the data topic and the sink's group, for a failure message. */
  private String diagnose() {
    if (topic == null) {
      return "";
    }
    StringBuilder sb = new StringBuilder();
    try {
      TopicPartitionInfo p = Clients.awaitDescribed(CLUSTER.admin(), topic, 1).partitions().get(0);
      sb.append("topic ").append(topic).append(": leader ").append(p.leader()).append(", isr ").append(p.isr());
      sb.append(", end offset ").append(endOffset(topic));
      sb.append(", sink group committed ").append(committedSinkOffset(topic));
      List<String> lines = new ArrayList<>();
      readTopic(topic, lines, new ArrayList<>());
      sb.append(", records read ").append(lines.size()).append(" (distinct ").append(new java.util.HashSet<>(lines).size()).append(")");
    } catch (RuntimeException | AssertionError e) {
      sb.append(" (diagnosis failed: ").append(e).append(")");
    }
    return sb.toString();
  }

  /** Appends fixed-width lines to the source file at a steady pace until closed. */
  static final class LineWriter implements AutoCloseable {
    private final AtomicInteger written = new AtomicInteger();
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final Thread thread;
    private volatile Throwable failure;

    LineWriter(Path file) {
      thread =
          new Thread(
              () -> {
                try {
                  while (running.get()) {
                    // Whole lines only: the source task never sees half a line.
                    Files.writeString(file, line(written.get()) + "\n", StandardCharsets.UTF_8, StandardOpenOption.APPEND);
                    written.incrementAndGet();
                    Thread.sleep(10);
                  }
                } catch (InterruptedException e) {
                  Thread.currentThread().interrupt();
                } catch (Throwable t) {
                  failure = t;
                }
              },
              "connect-line-writer");
      thread.setDaemon(true);
      thread.start();
    }

    int written() {
      if (failure != null) {
        throw new AssertionError("the line writer failed", failure);
      }
      return written.get();
    }

    void awaitLines(int n) {
      Deadline.awaitWithin(Duration.ofSeconds(30), n + " lines written", () -> written() >= n);
    }

    @Override
    public void close() throws InterruptedException {
      running.set(false);
      thread.join(10_000);
      written();
    }
  }

  /**
   * A Kafka Connect distributed worker ({@code ConnectDistributed}) in its own JVM, with its REST
   * listener on a free loopback port; start, kill (SIGKILL) and start again on the same
   * properties (same group and topics).
   */
  static final class ConnectWorker implements AutoCloseable {
    private final Path properties;
    private final int restPort;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private ChildProcess process;
    private final List<ChildProcess> started = new ArrayList<>();

    ConnectWorker(String bootstrap, String run, Path dir) {
      this.restPort = FreePorts.take();
      this.properties = dir.resolve("worker.properties");
      Map<String, String> p = new LinkedHashMap<>();
      p.put("bootstrap.servers", bootstrap);
      p.put("group.id", run + "-workers");
      p.put("config.storage.topic", run + "-configs");
      p.put("offset.storage.topic", run + "-offsets");
      p.put("status.storage.topic", run + "-status");
      // Connect's defaults, spelled out: RF 3 for its three compacted topics, 25 and 5
      // partitions for offsets and status.
      p.put("config.storage.replication.factor", "3");
      p.put("offset.storage.replication.factor", "3");
      p.put("status.storage.replication.factor", "3");
      p.put("key.converter", "org.apache.kafka.connect.storage.StringConverter");
      p.put("value.converter", "org.apache.kafka.connect.storage.StringConverter");
      // Source offsets and sink group offsets committed every second: the windows that a
      // restart may repeat stay short.
      p.put("offset.flush.interval.ms", "1000");
      // A killed worker's member stays in the group until its session times out; its
      // connectors and tasks are then reassigned at once instead of after the incremental
      // cooperative protocol's default grace period of five minutes (a worker restarted with a
      // new member id does not get its old assignment back).
      p.put("session.timeout.ms", "6000");
      p.put("heartbeat.interval.ms", "1000");
      p.put("scheduled.rebalance.max.delay.ms", "0");
      // Likewise the killed worker's sink consumer stays in the sink's group until its session
      // times out (45 s by default), and the restarted sink task's join waits for it.
      p.put("consumer.session.timeout.ms", "6000");
      p.put("consumer.heartbeat.interval.ms", "1000");
      // The tasks' consumers fetch from the replica in the worker's rack (KIP-392).
      p.put("consumer.client.rack", "rack-a");
      p.put("listeners", "http://" + FreePorts.LOOPBACK + ":" + restPort);
      p.put("rest.advertised.host.name", FreePorts.LOOPBACK);
      p.put("rest.advertised.port", Integer.toString(restPort));
      p.put("plugin.discovery", "only_scan");
      try {
        StringBuilder sb = new StringBuilder();
        p.forEach((k, v) -> sb.append(k).append('=').append(v).append('\n'));
        Files.writeString(properties, sb.toString(), StandardCharsets.UTF_8);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    /** Starts the JVM and waits until the REST API answers and the worker has joined its group. */
    void start() {
      launch();
      try {
        Deadline.awaitWithin(
            WORKER_TIMEOUT,
            "the Connect worker's REST API to list connectors",
            () -> {
              failIfExited();
              return get("/connectors").statusCode() == 200;
            });
      } catch (IllegalStateException e) {
        throw new AssertionError(e.getMessage() + "\n" + outputTail(60), e);
      }
    }

    /** Waits for a line of the worker's output that contains {@code text}. */
    void awaitOutput(String text, Duration budget) {
      try {
        Deadline.awaitWithin(
            budget, "the Connect worker to print " + text, () -> process.lines().stream().anyMatch(l -> l.contains(text)));
      } catch (IllegalStateException e) {
        throw new AssertionError(e.getMessage() + "\n" + outputTail(60), e);
      }
    }

    List<String> output() {
      return process == null ? List.of() : process.lines();
    }

    /** Starts the JVM. */
    void launch() {
      process =
          ChildProcess.startWithTestClasspath(
              List.of(
                  "-Xmx384m",
                  "-XX:TieredStopAtLevel=1",
                  "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                  "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.connect=info",
                  "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.connect.runtime.rest=warn",
                  "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.connect.runtime.isolation=warn",
                  "-Dorg.slf4j.simpleLogger.showDateTime=true",
                  "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS"),
              "org.apache.kafka.connect.cli.ConnectDistributed",
              properties.toString());
      started.add(process);
    }

    void failIfExited() {
      if (process != null && !process.alive()) {
        fail("the Connect worker exited:\n" + outputTail(80));
      }
    }

    void kill() {
      process.kill();
    }

    /** Creates or updates a connector; retried while the worker is still rebalancing (409). */
    void putConnector(String name, Map<String, String> config) {
      String body =
          config.entrySet().stream()
              .map(e -> json(e.getKey()) + ":" + json(e.getValue()))
              .collect(Collectors.joining(",", "{", "}"));
      int[] status = {0};
      String[] answer = {""};
      try {
        Deadline.awaitWithin(
            WORKER_TIMEOUT,
            "PUT /connectors/" + name + "/config",
            () -> {
              failIfExited();
              HttpResponse<String> r = send("PUT", "/connectors/" + name + "/config", body);
              status[0] = r.statusCode();
              answer[0] = r.body();
              return r.statusCode() == 200 || r.statusCode() == 201;
            });
      } catch (IllegalStateException e) {
        throw new AssertionError(e.getMessage() + ": last answer " + status[0] + " " + answer[0] + "\n" + outputTail(60), e);
      }
    }

    void awaitSinkCommitted(java.util.function.BooleanSupplier committed) {
      Deadline.awaitWithin(WORKER_TIMEOUT, "the sink's group offset committed to the log end", committed);
    }

    String status(String connector) {
      try {
        HttpResponse<String> r = get("/connectors/" + connector + "/status");
        return connector + ": " + r.statusCode() + " " + r.body();
      } catch (RuntimeException e) {
        return connector + ": " + e;
      }
    }

    /** Writes the worker's whole output (every start) to a file, for a failure's post-mortem. */
    void saveOutput(Path file) {
      List<String> all = new ArrayList<>();
      for (ChildProcess p : started) {
        all.add("---- worker start");
        all.addAll(p.lines());
      }
      try {
        Files.write(file, all, StandardCharsets.UTF_8);
      } catch (IOException e) {
        System.err.println("cannot write " + file + ": " + e);
      }
    }

    String outputTail(int n) {
      if (process == null) {
        return "(worker not started)";
      }
      List<String> lines = process.lines();
      return "---- Connect worker output (last " + n + " lines)\n"
          + String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size()));
    }

    private HttpResponse<String> get(String path) {
      return send("GET", path, null);
    }

    private HttpResponse<String> send(String method, String path, String body) {
      HttpRequest.Builder b =
          HttpRequest.newBuilder(URI.create("http://" + FreePorts.LOOPBACK + ":" + restPort + path))
              .timeout(Duration.ofSeconds(30))
              .header("Content-Type", "application/json");
      b = body == null ? b.method(method, HttpRequest.BodyPublishers.noBody()) : b.method(method, HttpRequest.BodyPublishers.ofString(body));
      try {
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
      } catch (IOException e) {
        return new RefusedResponse(e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }

    private static String json(String s) {
      return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    @Override
    public void close() {
      if (process != null) {
        process.close();
      }
    }
  }

  /** What {@link ConnectWorker#send} answers when the worker does not accept connections (yet). */
  private record RefusedResponse(IOException cause) implements HttpResponse<String> {
    @Override
    public int statusCode() {
      return -1;
    }

    @Override
    public HttpRequest request() {
      return null;
    }

    @Override
    public java.util.Optional<HttpResponse<String>> previousResponse() {
      return java.util.Optional.empty();
    }

    @Override
    public java.net.http.HttpHeaders headers() {
      return java.net.http.HttpHeaders.of(Map.of(), (a, b) -> true);
    }

    @Override
    public String body() {
      return cause.toString();
    }

    @Override
    public java.util.Optional<javax.net.ssl.SSLSession> sslSession() {
      return java.util.Optional.empty();
    }

    @Override
    public URI uri() {
      return null;
    }

    @Override
    public java.net.http.HttpClient.Version version() {
      return java.net.http.HttpClient.Version.HTTP_1_1;
    }
  }
}
