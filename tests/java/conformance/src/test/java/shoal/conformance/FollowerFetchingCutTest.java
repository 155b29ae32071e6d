package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.BrokerKind;
import shoal.conformance.broker.BrokerNode;
import shoal.conformance.broker.Brokers;
import shoal.conformance.broker.ClusterSpec;
import shoal.conformance.broker.Deadline;

/**
 * KIP-392 with a follower cut off from its leader, seen by a real consumer: on three nodes in three
 * racks with the rack-aware selector, a consumer in a follower's rack reads from that follower;
 * then the replication of that partition to that follower is cut while a producer keeps writing.
 * The follower leaves the ISR ({@code replica.lag.time.max.ms}), the leader stops choosing it, and
 * once the consumer's preferred-replica lease ({@code metadata.max.age.ms}) runs out it reads from
 * the leader, every record exactly once and in order, only acknowledged records, no gaps. After the
 * heal the follower catches up, rejoins the ISR and the consumer is sent back to it.
 *
 * <p><b>Shoal only, tagged {@code shoal-faults}.</b> The cut is Shoal's test fault hook ({@code
 * testing.faults.enabled=true}, {@code POST /faults/replication/cut} on the leader's {@code
 * metrics.listener}; {@code docs/testing-faults.md}): it stalls one partition's replication to one
 * follower while everything else between the two nodes keeps working, as a Kafka follower whose
 * fetcher for that partition is stuck. Apache Kafka has no way to do that from outside (killing or
 * partitioning the broker stops all its partitions and its controller session too, which
 * {@link FollowerFetchingTest} already covers on both brokers), so the reference run ({@code
 * scripts/test --reference}) excludes this tag. Run on Kafka anyway, the class fails at once saying
 * so, rather than skipping itself.
 *
 * <p>Which broker served the consumer is read from the client itself, as in {@link
 * FollowerFetchingTest}: the {@code preferred-read-replica} fetch-manager metric (-1 when the leader
 * serves) and the per-node {@code consumer-node-metrics} {@code incoming-byte-total}.
 */
@Tag("shoal-faults")
class FollowerFetchingCutTest {
  /** A cut follower leaves the ISR after this long without catching up. */
  private static final int LAG_MS = 2_000;

  /** The consumer's preferred-replica lease ({@code metadata.max.age.ms}), kept short here. */
  private static final int LEASE_MS = 3_000;

  /**
   * How long, once the follower is out of the ISR and any lease the leader granted before that
   * has run out, the consumer is watched reading from the leader without ever being sent back to
   * the cut follower: two leases, so that the consumer went back to the leader for a new choice
   * at least twice.
   */
  private static final Duration NOT_CHOSEN_WINDOW = Duration.ofMillis(2L * LEASE_MS);

  /** Each phase's limit (the follower leaving or rejoining the ISR, the consumer moving). */
  private static final Duration PHASE_TIMEOUT = Duration.ofSeconds(30);

  static final ClusterSpec THREE_RACKS_WITH_FAULTS =
      ClusterSpec.nodes(3)
          .withRacks("rack-a", "rack-b", "rack-c")
          .with("auto.create.topics.enable", "false")
          // The leader must stay where it is through the cut and the heal.
          .with("auto.leader.rebalance.enable", "false")
          .with("replica.selector.class", "org.apache.kafka.common.replica.RackAwareReplicaSelector")
          .with("replica.lag.time.max.ms", Integer.toString(LAG_MS))
          .with("testing.faults.enabled", "true")
          .with("metrics.listener", "http://127.0.0.1:0/metrics");

  /** Registered first: on any other broker the class fails before a cluster is started. */
  @RegisterExtension
  @Order(1)
  static final BeforeAllCallback SHOAL_ONLY =
      context -> {
        if (Brokers.selected() != BrokerKind.SHOAL) {
          fail(
              "FollowerFetchingCutTest needs Shoal's test fault hook (testing.faults.enabled), which "
                  + Brokers.selected()
                  + " does not have: it is tagged shoal-faults, which the reference run excludes "
                  + "(-Dconformance.exclude=shoal-faults)");
        }
      };

  @RegisterExtension
  @Order(2)
  static final BrokerExtension CLUSTER = BrokerExtension.dedicated(THREE_RACKS_WITH_FAULTS);

  @Test
  void a_follower_cut_off_from_the_leader_is_not_chosen_and_is_chosen_again_after_the_heal() throws Exception {
    String topic = Clients.topicName("ff-cut");
    Clients.get(CLUSTER.admin().createTopics(List.of(new NewTopic(topic, 1, (short) 3))).all());
    TopicPartition tp = new TopicPartition(topic, 0);
    TopicPartitionInfo initial = awaitPartition(tp, "fully replicated", p -> p.leader() != null && p.isr().size() == 3);
    int leader = initial.leader().id();
    int follower = leader % 3 + 1;
    String rack = rackOf(follower);

    Writer writer = new Writer(tp);
    try (writer;
        KafkaConsumer<byte[], byte[]> consumer =
            Clients.consumer(
                CLUSTER.broker(),
                Map.of(
                    "client.rack", rack,
                    "metadata.max.age.ms", LEASE_MS,
                    "request.timeout.ms", 5_000))) {
      consumer.assign(List.of(tp));
      consumer.seek(tp, 0);
      Reader reader = new Reader(consumer, tp, writer);
      writer.start();

      // 1. In sync: the consumer reads from the follower in its rack.
      reader.pollUntil(
          PHASE_TIMEOUT,
          "the consumer in " + rack + " reading from follower " + follower,
          () -> reader.servedBy.contains(follower) && nodeIncomingBytes(consumer, follower) > 0);

      // 2. Cut: the follower stops receiving records and the high watermark, and leaves the ISR.
      String answer = fault(leader, "cut", topic, follower);
      double fromLeaderAtCut = nodeIncomingBytes(consumer, leader);
      int readAtCut = reader.got.size();
      long cutAt = System.nanoTime();
      TopicPartitionInfo shrunk =
          reader.pollUntilPartition(
              PHASE_TIMEOUT,
              "follower " + follower + " out of the ISR after the cut (" + answer + ")",
              p -> !ids(p.isr()).contains(follower));
      long outOfIsrAt = System.nanoTime();
      assertEquals(leader, shrunk.leader().id(), "the leader keeps its leadership through the cut");
      assertEquals(Set.of(1, 2, 3), ids(shrunk.replicas()), "the cut follower is still a replica");
      assertEquals(
          Set.of(1, 2, 3).stream().filter(n -> n != follower).collect(Collectors.toSet()),
          ids(shrunk.isr()),
          "ISR after the cut");

      // A lease the leader granted just before the follower left the ISR runs out within
      // LEASE_MS (plus a poll); from then on the leader must never name the cut follower again.
      reader.pollFor(Duration.ofMillis(LEASE_MS + 1_000));
      double fromLeaderBefore = nodeIncomingBytes(consumer, leader);
      int readBefore = reader.got.size();
      reader.preferredAfterEveryPoll.clear();
      reader.pollFor(NOT_CHOSEN_WINDOW);
      assertTrue(
          !reader.preferredAfterEveryPoll.contains(follower),
          "the leader sent the consumer to follower " + follower + " while it was out of the ISR: preferred "
              + "read replica after each poll " + reader.preferredAfterEveryPoll);
      int readInWindow = reader.got.size() - readBefore;
      assertTrue(
          readInWindow >= 10,
          "the consumer kept reading from the leader while the follower was cut: " + readInWindow + " records in "
              + NOT_CHOSEN_WINDOW + " (" + (reader.got.size() - readAtCut) + " since the cut, "
              + writer.acked() + " acknowledged in all)");
      double fromLeader = nodeIncomingBytes(consumer, leader) - fromLeaderBefore;
      assertTrue(
          fromLeader >= (double) readInWindow * Writer.VALUE_BYTES,
          "the records read while the follower was cut came from the leader " + leader + ": " + fromLeader
              + " bytes from it for " + readInWindow + " records");
      assertTrue(
          nodeIncomingBytes(consumer, leader) > fromLeaderAtCut, "bytes from the leader grew after the cut");
      TopicPartitionInfo stillCut = describe(tp);
      assertTrue(
          !ids(stillCut.isr()).contains(follower) && stillCut.leader().id() == leader,
          "still cut: follower " + follower + " out of the ISR, leader " + leader + ": " + stillCut);

      // 3. Heal: the follower catches up, rejoins the ISR, and the consumer is sent back to it.
      long healAt = System.nanoTime();
      fault(leader, "heal", topic, follower);
      TopicPartitionInfo healed =
          reader.pollUntilPartition(
              PHASE_TIMEOUT, "follower " + follower + " back in the ISR after the heal", p -> ids(p.isr()).contains(follower));
      long backInIsrAt = System.nanoTime();
      assertEquals(leader, healed.leader().id(), "the leader keeps its leadership through the heal");
      double fromFollowerAtIsr = nodeIncomingBytes(consumer, follower);
      reader.servedBy.clear();
      reader.pollUntil(
          PHASE_TIMEOUT,
          "the consumer back on follower " + follower,
          () -> reader.servedBy.contains(follower) && nodeIncomingBytes(consumer, follower) > fromFollowerAtIsr);
      long consumerBackAt = System.nanoTime();

      // 4. Every acknowledged record read once, in order, and nothing else.
      writer.stop();
      List<String> acked = writer.ackedValues();
      reader.pollUntil(PHASE_TIMEOUT, "all " + acked.size() + " acknowledged records", () -> reader.got.size() >= acked.size());
      assertEquals(acked, reader.got, "every acknowledged record exactly once, in order, nothing unacknowledged");
      System.out.printf(
          "FollowerFetchingCutTest: %d records; follower %d out of the ISR %d ms after the cut; after the heal, back in"
              + " the ISR in %d ms and serving the consumer in %d ms%n",
          acked.size(),
          follower,
          (outOfIsrAt - cutAt) / 1_000_000,
          (backInIsrAt - healAt) / 1_000_000,
          (consumerBackAt - healAt) / 1_000_000);
    }
  }

  /**
   * A producer thread writing {@code v-000000}, {@code v-000001}, ... one acknowledged record after
   * another (acks=all, idempotent), until stopped. Any failed write fails the scenario.
   */
  private static final class Writer implements AutoCloseable {
    static final int VALUE_BYTES = "v-000000".length();

    private final TopicPartition tp;
    private final KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of());
    private final AtomicBoolean stopping = new AtomicBoolean();
    private final AtomicInteger acked = new AtomicInteger();
    private final ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
    private final Thread thread = new Thread(this::run, "cut-test-writer");

    Writer(TopicPartition tp) {
      this.tp = tp;
    }

    static String value(int i) {
      return String.format("v-%06d", i);
    }

    void start() {
      thread.start();
    }

    private void run() {
      try {
        for (int i = 0; !stopping.get(); i++) {
          producer.send(new ProducerRecord<>(tp.topic(), tp.partition(), null, value(i).getBytes())).get();
          acked.incrementAndGet();
        }
      } catch (Exception e) {
        failures.add(e);
      }
    }

    int acked() {
      return acked.get();
    }

    /** Stops writing; returns once the last write was answered. */
    void stop() throws InterruptedException {
      stopping.set(true);
      thread.join(Clients.OP_TIMEOUT.toMillis());
      assertTrue(!thread.isAlive(), "the writer did not stop within " + Clients.OP_TIMEOUT);
      assertTrue(failures.isEmpty(), "every write acknowledged, but: " + failures);
    }

    List<String> ackedValues() {
      List<String> values = new ArrayList<>();
      for (int i = 0; i < acked.get(); i++) {
        values.add(value(i));
      }
      return values;
    }

    @Override
    public void close() throws InterruptedException {
      stopping.set(true);
      thread.join(Clients.OP_TIMEOUT.toMillis());
      producer.close(Duration.ofSeconds(5));
    }
  }

  /**
   * The consumer's side: every value is checked as it arrives (the next one written, so no gap,
   * duplicate or reordering), and the preferred read replica is sampled after each poll.
   */
  private static final class Reader {
    private final KafkaConsumer<byte[], byte[]> consumer;
    private final TopicPartition tp;
    private final Writer writer;
    final List<String> got = new ArrayList<>();

    /**
     * The preferred read replica after each poll that returned records. Sampled then because the
     * client forgets its preferred replica when the lease runs out, until its next fetch to the
     * leader renews it: a look at any other moment can fall in that gap.
     */
    final Set<Integer> servedBy = new TreeSet<>();

    /**
     * The preferred read replica after every poll, records or not. Meaningful for "never that
     * replica": the client holds an id only when the leader has just named it.
     */
    final List<Integer> preferredAfterEveryPoll = new ArrayList<>();

    Reader(KafkaConsumer<byte[], byte[]> consumer, TopicPartition tp, Writer writer) {
      this.consumer = consumer;
      this.tp = tp;
      this.writer = writer;
    }

    private String progress() {
      return "read " + got.size() + " records, " + writer.acked() + " acknowledged, write failures " + writer.failures
          + "; preferred read replica after polls with records " + servedBy;
    }

    void pollOnce() {
      var records = consumer.poll(Duration.ofMillis(200));
      for (ConsumerRecord<byte[], byte[]> r : records) {
        String value = new String(r.value());
        String expected = Writer.value(got.size());
        if (!value.equals(expected)) {
          fail("record " + got.size() + " (offset " + r.offset() + ") is " + value + ", expected " + expected
              + " (a gap, a duplicate or a reordering)");
        }
        got.add(value);
      }
      int preferred = preferredReadReplica(consumer, tp);
      preferredAfterEveryPoll.add(preferred);
      if (!records.isEmpty()) {
        servedBy.add(preferred);
      }
    }

    void pollUntil(Duration budget, String what, java.util.function.BooleanSupplier done) {
      Deadline deadline = Deadline.in(budget);
      while (!done.getAsBoolean()) {
        if (deadline.expired()) {
          fail(what + ": not within " + budget + " (" + progress() + ")");
        }
        pollOnce();
      }
    }

    /** Polls, and every half second describes the partition, until {@code check} accepts it. */
    TopicPartitionInfo pollUntilPartition(
        Duration budget, String what, java.util.function.Predicate<TopicPartitionInfo> check) {
      Deadline deadline = Deadline.in(budget);
      long nextLook = 0;
      TopicPartitionInfo last = null;
      while (true) {
        if (System.nanoTime() >= nextLook) {
          last = describe(tp);
          if (check.test(last)) {
            return last;
          }
          nextLook = System.nanoTime() + 500_000_000L;
        }
        if (deadline.expired()) {
          fail(what + ": not within " + budget + " (last described " + last + "; " + progress() + ")");
        }
        pollOnce();
      }
    }

    void pollFor(Duration duration) {
      Deadline deadline = Deadline.in(duration);
      while (!deadline.expired()) {
        pollOnce();
      }
    }
  }

  private static TopicPartitionInfo describe(TopicPartition tp) {
    TopicDescription d = Clients.awaitDescribed(CLUSTER.admin(), tp.topic(), 1);
    return d.partitions().get(tp.partition());
  }

  private static TopicPartitionInfo awaitPartition(
      TopicPartition tp, String what, java.util.function.Predicate<TopicPartitionInfo> check) {
    TopicPartitionInfo[] p = new TopicPartitionInfo[1];
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        tp + " " + what,
        () -> {
          p[0] = Clients.awaitTopic(CLUSTER.admin(), tp.topic(), 1).partitions().get(tp.partition());
          return check.test(p[0]);
        });
    return p[0];
  }

  /**
   * {@code POST /faults/replication/ACTION} on the leader's metrics listener, whose address the
   * node printed at startup ({@code shoal metrics: URL}); returns the answer, which must be 200.
   */
  private static String fault(int leader, String action, String topic, int follower) {
    BrokerNode node = CLUSTER.broker().node(leader);
    String metricsUrl = null;
    try {
      for (String line : Files.readAllLines(node.logFile())) {
        if (line.startsWith("shoal metrics: ")) {
          metricsUrl = line.substring("shoal metrics: ".length()).trim();
        }
      }
      if (metricsUrl == null) {
        fail("node " + leader + " printed no metrics address (metrics.listener) in " + node.logFile());
      }
      URI base = URI.create(metricsUrl);
      URI uri =
          URI.create(
              base.getScheme() + "://" + base.getAuthority() + "/faults/replication/" + action + "?topic=" + topic
                  + "&partition=0&follower=" + follower);
      HttpResponse<String> r =
          HttpClient.newHttpClient()
              .send(
                  HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(10)).POST(HttpRequest.BodyPublishers.noBody()).build(),
                  HttpResponse.BodyHandlers.ofString());
      assertEquals(200, r.statusCode(), "POST " + uri + ": " + r.body());
      return r.body().trim();
    } catch (IOException e) {
      throw new AssertionError("cannot reach the fault hook of node " + leader + " at " + metricsUrl, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  private static String rackOf(int nodeId) {
    return "rack-" + (char) ('a' + nodeId - 1);
  }

  private static int preferredReadReplica(KafkaConsumer<byte[], byte[]> consumer, TopicPartition tp) {
    return FollowerFetchingTest.preferredReadReplica(consumer, tp);
  }

  private static double nodeIncomingBytes(KafkaConsumer<byte[], byte[]> consumer, int nodeId) {
    return FollowerFetchingTest.nodeIncomingBytes(consumer, nodeId);
  }

  private static Set<Integer> ids(List<Node> nodes) {
    return nodes.stream().map(Node::id).collect(Collectors.toSet());
  }
}
