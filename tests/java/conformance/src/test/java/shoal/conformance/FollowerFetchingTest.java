package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
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
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.BrokerNode;
import shoal.conformance.broker.ClusterSpec;
import shoal.conformance.broker.Deadline;

/**
 * KIP-392 beyond the simple case, on three nodes in three racks with the rack-aware selector:
 * what a follower-fetching consumer does when its same-rack follower dies and comes back, and a
 * rack-aware consumer group that reads its records from its own racks only.
 * Untagged: every scenario runs on Shoal and on Apache Kafka with the same assertions.
 *
 * <p>Which broker served a consumer is read from the client itself: the {@code
 * preferred-read-replica} fetch-manager metric (-1 when the leader serves) and the per-node
 * {@code consumer-node-metrics} {@code incoming-byte-total}.
 */
class FollowerFetchingTest {
  static final ClusterSpec THREE_RACKS =
      ClusterSpec.nodes(3)
          .withRacks("rack-a", "rack-b", "rack-c")
          .with("auto.create.topics.enable", "false")
          .with("replica.selector.class", "org.apache.kafka.common.replica.RackAwareReplicaSelector");

  @RegisterExtension static final BrokerExtension CLUSTER = BrokerExtension.dedicated(THREE_RACKS);

  /**
   * Long enough for Kafka to fence a killed broker (broker.session.timeout.ms, 9 s) and drop it
   * from the ISR, and for a restarted one to catch up and rejoin it.
   */
  private static final Duration FAILOVER_TIMEOUT = Duration.ofSeconds(90);

  /** The consumer's preferred-replica lease ({@code metadata.max.age.ms}), kept short here. */
  private static final int LEASE_MS = 3_000;

  /** A scenario that failed with a node stopped must not leave the next one a smaller cluster. */
  @BeforeEach
  void everyNodeRunning() {
    CLUSTER.broker().start();
  }

  /**
   * The same-rack follower is killed (SIGKILL) under a consumer reading from it: the consumer
   * falls back to the leader and goes on reading, every record exactly once and in order, the
   * records written after the kill coming from the leader.
   */
  @Test
  void killing_the_same_rack_follower_falls_back_to_the_leader_without_loss_or_duplicates() {
    Setup s = setUp("ff-kill");
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of());
        KafkaConsumer<byte[], byte[]> consumer = followerConsumer(s)) {
      produce(producer, s.tp, "before-", 50);
      consumer.assign(List.of(s.tp));
      consumer.seek(s.tp, 0);
      List<String> got = new ArrayList<>();
      Set<Integer> servedBy = pollUntil(consumer, got, 50, FAILOVER_TIMEOUT);
      assertTrue(servedBy.contains(s.follower), "read from the same-rack follower first, not only " + servedBy);
      assertTrue(nodeIncomingBytes(consumer, s.follower) > 0, "bytes received from the follower");

      CLUSTER.broker().node(s.follower).kill();
      double fromLeaderBefore = nodeIncomingBytes(consumer, s.leader);
      produce(producer, s.tp, "after-", 50);
      pollUntil(consumer, got, 100, FAILOVER_TIMEOUT);
      assertExactly(got, 50, 50);
      assertTrue(
          preferredReadReplica(consumer, s.tp) != s.follower,
          "no longer reading from the killed follower " + s.follower);
      assertTrue(
          nodeIncomingBytes(consumer, s.leader) - fromLeaderBefore >= 50 * "after-00".length(),
          "the records written after the kill came from the leader " + s.leader);
    }
  }

  /**
   * After the same-rack follower comes back (restarted, caught up, in the ISR again), the
   * consumer, which fell back to the leader, is sent to it again: the leader chooses on every
   * fetch the consumer sends it, and a consumer holding a preferred replica comes back to the
   * leader when its lease (metadata.max.age.ms) expires.
   */
  @Test
  void the_consumer_returns_to_the_same_rack_follower_when_it_is_back_in_sync() {
    Setup s = setUp("ff-return");
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of("acks", "1"));
        KafkaConsumer<byte[], byte[]> consumer = followerConsumer(s)) {
      produce(producer, s.tp, "before-", 20);
      consumer.assign(List.of(s.tp));
      consumer.seek(s.tp, 0);
      List<String> got = new ArrayList<>();
      Set<Integer> servedBy = pollUntil(consumer, got, 20, FAILOVER_TIMEOUT);
      // On Shoal the leader of a partition created a moment ago sometimes serves the first fetch
      // itself (seen in 2 of 4 runs of the whole suite; not yet explained): keep writing until
      // the consumer is on the follower. The kill scenario above checks the first fetch.
      int warm = 0;
      Deadline onFollower = Deadline.in(FAILOVER_TIMEOUT);
      while (!servedBy.contains(s.follower)) {
        if (onFollower.expired()) {
          fail("never read from the same-rack follower " + s.follower + ", only " + servedBy);
        }
        produce(producer, s.tp, "warm" + warm + "-", 1);
        warm++;
        servedBy.addAll(pollUntil(consumer, got, 20 + warm, FAILOVER_TIMEOUT));
      }

      BrokerNode followerNode = CLUSTER.broker().node(s.follower);
      followerNode.kill();
      produce(producer, s.tp, "during-", 20);
      pollUntil(consumer, got, 40 + warm, FAILOVER_TIMEOUT);
      assertTrue(preferredReadReplica(consumer, s.tp) != s.follower, "fell back from the killed follower");

      followerNode.start();
      Deadline.awaitWithin(
          FAILOVER_TIMEOUT,
          "node " + s.follower + " back in the ISR",
          () -> ids(Clients.awaitDescribed(CLUSTER.admin(), s.tp.topic(), 1).partitions().get(0).isr()).contains(s.follower));
      double fromFollowerBefore = nodeIncomingBytes(consumer, s.follower);
      int expected = 40 + warm;
      Deadline deadline = Deadline.in(FAILOVER_TIMEOUT);
      // Keep writing a little so that there is something to fetch from the follower.
      while (preferredReadReplica(consumer, s.tp) != s.follower
          || nodeIncomingBytes(consumer, s.follower) - fromFollowerBefore < "after-00".length()) {
        if (deadline.expired()) {
          fail("the consumer did not return to follower " + s.follower + " within " + FAILOVER_TIMEOUT
              + " (preferred read replica " + preferredReadReplica(consumer, s.tp) + ")");
        }
        produce(producer, s.tp, "after" + expected + "-", 1);
        expected++;
        pollUntil(consumer, got, expected, FAILOVER_TIMEOUT);
      }
      assertEquals(expected, got.size(), "every record once");
      assertEquals(List.copyOf(new java.util.LinkedHashSet<>(got)), got, "no duplicates");
    }
  }

  /**
   * A consumer group of three members, one per rack, with the rack-aware range assignor
   * (KIP-881: the members send their rack) and follower fetching, on six RF=3 partitions with
   * leaders spread over the racks: every record is consumed once, and each member's records come
   * from the broker in its own rack. The client counts all bytes per broker, group coordination
   * and metadata included, so "zero cross-rack record bytes" is checked as: what a member
   * received from brokers outside its rack (its bootstrap and coordinator connections included)
   * is a few kilobytes of coordination, under 5% of the record payload it consumed, while one of
   * its two partitions read from another rack would be half of that payload; and what it received
   * from its own rack covers at least all that payload.
   */
  @Test
  void a_rack_aware_group_with_follower_fetching_reads_no_records_across_racks() {
    String topic = Clients.topicName("ff-group");
    int partitions = 6;
    Clients.get(CLUSTER.admin().createTopics(List.of(new NewTopic(topic, partitions, (short) 3))).all());
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        topic + " fully replicated",
        () -> Clients.awaitTopic(CLUSTER.admin(), topic, partitions).partitions().stream()
            .allMatch(p -> p.leader() != null && p.isr().size() == 3));
    String group = Clients.topicName("ff-group-members");
    List<KafkaConsumer<byte[], byte[]>> members = new ArrayList<>();
    try {
      for (int node = 1; node <= 3; node++) {
        KafkaConsumer<byte[], byte[]> c =
            Clients.consumer(
                CLUSTER.broker(),
                Map.of(
                    "group.id", group,
                    "client.id", "member-" + rackOf(node),
                    "client.rack", rackOf(node),
                    "partition.assignment.strategy", "org.apache.kafka.clients.consumer.RangeAssignor"));
        c.subscribe(List.of(topic));
        members.add(c);
      }
      List<List<String>> got = new ArrayList<>(List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>()));
      Deadline.awaitWithin(
          FAILOVER_TIMEOUT,
          "every member assigned two partitions",
          () -> {
            for (int i = 0; i < 3; i++) {
              members.get(i).poll(Duration.ofMillis(100)).forEach(r -> fail("record before anything was written"));
            }
            return members.stream().allMatch(c -> c.assignment().size() == partitions / 3);
          });
      int perPartition = 300;
      byte[] payload = new byte[1000];
      try (KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of())) {
        List<java.util.concurrent.Future<?>> acks = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
          for (int i = 0; i < perPartition; i++) {
            byte[] value = payload.clone();
            byte[] tag = String.format("p%d-%03d", p, i).getBytes();
            System.arraycopy(tag, 0, value, 0, tag.length);
            acks.add(producer.send(new ProducerRecord<>(topic, p, null, value)));
          }
        }
        acks.forEach(Clients::get);
      }
      int total = partitions * perPartition;
      Deadline deadline = Deadline.in(FAILOVER_TIMEOUT);
      while (got.stream().mapToInt(List::size).sum() < total) {
        if (deadline.expired()) {
          fail("received " + got.stream().mapToInt(List::size).sum() + " of " + total + " records");
        }
        for (int i = 0; i < 3; i++) {
          for (ConsumerRecord<byte[], byte[]> r : members.get(i).poll(Duration.ofMillis(100))) {
            got.get(i).add(new String(r.value(), 0, 8));
          }
        }
      }
      Set<String> distinct = got.stream().flatMap(List::stream).collect(Collectors.toSet());
      assertEquals(total, distinct.size(), "distinct records consumed");
      assertEquals(total, got.stream().mapToInt(List::size).sum(), "records consumed (more means duplicates)");
      for (int i = 0; i < 3; i++) {
        int node = i + 1;
        KafkaConsumer<byte[], byte[]> c = members.get(i);
        double sameRack = nodeIncomingBytes(c, node);
        double crossRack = totalIncomingBytes(c) - sameRack;
        long payloadBytes = (long) got.get(i).size() * payload.length;
        assertTrue(
            sameRack >= payloadBytes,
            "member in " + rackOf(node) + " received " + sameRack + " bytes from its rack's broker, less than the "
                + payloadBytes + " bytes of records it consumed");
        assertTrue(
            crossRack < 0.05 * payloadBytes,
            "member in " + rackOf(node) + " received " + crossRack + " bytes from other racks (records consumed: "
                + payloadBytes + " bytes)");
      }
    } finally {
      members.forEach(KafkaConsumer::close);
    }
  }

  private record Setup(TopicPartition tp, int leader, int follower, String followerRack) {}

  /** A one-partition RF=3 topic, fully in sync; the consumer's rack is a follower's. */
  private static Setup setUp(String hint) {
    String topic = Clients.topicName(hint);
    Clients.get(CLUSTER.admin().createTopics(List.of(new NewTopic(topic, 1, (short) 3))).all());
    TopicDescription[] d = new TopicDescription[1];
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        topic + " fully replicated",
        () -> {
          d[0] = Clients.awaitTopic(CLUSTER.admin(), topic, 1);
          TopicPartitionInfo p = d[0].partitions().get(0);
          return p.leader() != null && p.isr().size() == 3;
        });
    int leader = d[0].partitions().get(0).leader().id();
    int follower = leader % 3 + 1;
    return new Setup(new TopicPartition(topic, 0), leader, follower, rackOf(follower));
  }

  private static String rackOf(int nodeId) {
    return "rack-" + (char) ('a' + nodeId - 1);
  }

  private static KafkaConsumer<byte[], byte[]> followerConsumer(Setup s) {
    return Clients.consumer(
        CLUSTER.broker(),
        Map.of(
            "client.rack", s.followerRack,
            "metadata.max.age.ms", LEASE_MS,
            "reconnect.backoff.max.ms", 500,
            "request.timeout.ms", 5_000));
  }

  private static void produce(KafkaProducer<byte[], byte[]> producer, TopicPartition tp, String prefix, int count) {
    List<java.util.concurrent.Future<?>> acks = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      acks.add(producer.send(new ProducerRecord<>(tp.topic(), tp.partition(), null, String.format("%s%02d", prefix, i).getBytes())));
    }
    for (var ack : acks) {
      Clients.get(ack);
    }
  }

  /**
   * Polls until {@code got} holds {@code total} values; more would be duplicates and fail later.
   * Returns the consumer's preferred read replica (-1: the leader) as sampled after each poll that
   * returned records. Sampled then because the client forgets its preferred replica when the lease
   * ({@code metadata.max.age.ms}) runs out, until its next fetch to the leader renews it: a single
   * look after the loop can fall in that gap on a slow machine.
   */
  private static Set<Integer> pollUntil(
      KafkaConsumer<byte[], byte[]> consumer, List<String> got, int total, Duration budget) {
    Deadline deadline = Deadline.in(budget);
    Set<Integer> servedBy = new java.util.TreeSet<>();
    TopicPartition tp = consumer.assignment().iterator().next();
    while (got.size() < total) {
      if (deadline.expired()) {
        fail("received " + got.size() + " of " + total + " records within " + budget);
      }
      var records = consumer.poll(Duration.ofMillis(200));
      for (ConsumerRecord<byte[], byte[]> r : records) {
        got.add(new String(r.value()));
      }
      if (!records.isEmpty()) {
        servedBy.add(preferredReadReplica(consumer, tp));
      }
    }
    assertEquals(total, got.size(), "records received (more means duplicates)");
    return servedBy;
  }

  private static void assertExactly(List<String> got, int before, int after) {
    List<String> expected = new ArrayList<>();
    for (int i = 0; i < before; i++) {
      expected.add(String.format("before-%02d", i));
    }
    for (int i = 0; i < after; i++) {
      expected.add(String.format("after-%02d", i));
    }
    assertEquals(expected, got, "every record exactly once, in order");
  }

  static int preferredReadReplica(KafkaConsumer<byte[], byte[]> consumer, TopicPartition tp) {
    for (var e : consumer.metrics().entrySet()) {
      var name = e.getKey();
      if (name.name().equals("preferred-read-replica")
          && tp.topic().equals(name.tags().get("topic"))
          && Integer.toString(tp.partition()).equals(name.tags().get("partition"))) {
        return ((Number) e.getValue().metricValue()).intValue();
      }
    }
    return -1;
  }

  /** Bytes the consumer received from one broker (all requests), from consumer-node-metrics. */
  static double nodeIncomingBytes(KafkaConsumer<byte[], byte[]> consumer, int nodeId) {
    for (var e : consumer.metrics().entrySet()) {
      var name = e.getKey();
      if (name.group().equals("consumer-node-metrics")
          && name.name().equals("incoming-byte-total")
          && ("node-" + nodeId).equals(name.tags().get("node-id"))) {
        return ((Number) e.getValue().metricValue()).doubleValue();
      }
    }
    return 0;
  }

  /** Bytes the consumer received from every connection (brokers, bootstrap, coordinator). */
  static double totalIncomingBytes(KafkaConsumer<byte[], byte[]> consumer) {
    double sum = 0;
    for (var e : consumer.metrics().entrySet()) {
      var name = e.getKey();
      if (name.group().equals("consumer-node-metrics") && name.name().equals("incoming-byte-total")) {
        sum += ((Number) e.getValue().metricValue()).doubleValue();
      }
    }
    return sum;
  }

  private static Set<Integer> ids(List<Node> nodes) {
    return nodes.stream().map(Node::id).collect(Collectors.toSet());
  }
}
