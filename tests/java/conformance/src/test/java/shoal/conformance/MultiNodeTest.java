package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.PreferredLeaderNotAvailableException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.BrokerNode;
import shoal.conformance.broker.ClusterSpec;
import shoal.conformance.broker.Deadline;

/**
 * Three nodes in three racks: Metadata shape (brokers, racks, replicas, ISR, spread leaders) and
 * a node stopped and restarted under acks=all; every leader killed in turn under an idempotent
 * acks=all producer; a consumer group across the loss of its coordinator's broker; preferred
 * leader election (Admin and {@code kafka-leader-election}).
 */
@Tag("multinode")
class MultiNodeTest {
  static final ClusterSpec THREE_RACKS =
      ClusterSpec.nodes(3)
          .withRacks("rack-a", "rack-b", "rack-c")
          .with("auto.create.topics.enable", "false")
          // Leaders move only when a scenario moves them (the leader election scenario needs a
          // leader away from its preferred replica to stay there until it asks).
          .with("auto.leader.rebalance.enable", "false")
          .with("replica.selector.class", "org.apache.kafka.common.replica.RackAwareReplicaSelector");

  @RegisterExtension static final BrokerExtension CLUSTER = BrokerExtension.dedicated(THREE_RACKS);

  /** A scenario that failed with a node stopped must not leave the next one a smaller cluster. */
  @BeforeEach
  void everyNodeRunning() {
    CLUSTER.broker().start();
  }

  @Test
  void metadata_shows_every_broker_with_its_rack_and_replicas_spread_over_them() {
    Map<Integer, String> racks =
        Clients.get(CLUSTER.admin().describeCluster().nodes()).stream()
            .collect(Collectors.toMap(Node::id, Node::rack, (a, b) -> a, TreeMap::new));
    assertEquals(Map.of(1, "rack-a", 2, "rack-b", 3, "rack-c"), racks);

    String topic = Clients.topicName("three-replicas");
    TopicDescription d = createReplicated(topic);
    Set<Integer> leaders = new HashSet<>();
    for (TopicPartitionInfo p : d.partitions()) {
      assertEquals(Set.of(1, 2, 3), ids(p.replicas()), "replicas of partition " + p.partition());
      assertEquals(Set.of(1, 2, 3), ids(p.isr()), "ISR of partition " + p.partition());
      leaders.add(p.leader().id());
    }
    assertEquals(Set.of(1, 2, 3), leaders, "three partitions on three brokers get three distinct leaders");
  }

  @Test
  void acknowledged_records_survive_a_leader_stop_and_the_node_rejoins_the_isr() {
    String topic = Clients.topicName("leader-stop");
    TopicDescription d = createReplicated(topic);
    int leader = d.partitions().get(0).leader().id();
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of())) {
      for (int i = 0; i < 20; i++) {
        Clients.get(producer.send(new ProducerRecord<>(topic, 0, null, ("before-" + i).getBytes())));
      }
      BrokerNode stopped = CLUSTER.broker().node(leader);
      stopped.stop();
      Deadline.awaitWithin(
          Clients.OP_TIMEOUT,
          "a new leader for partition 0",
          () -> {
            TopicPartitionInfo p0 = Clients.awaitDescribed(CLUSTER.admin(), topic, 3).partitions().get(0);
            return p0.leader() != null && p0.leader().id() != leader && !ids(p0.isr()).contains(leader);
          });
      for (int i = 0; i < 20; i++) {
        Clients.get(producer.send(new ProducerRecord<>(topic, 0, null, ("during-" + i).getBytes())));
      }
      stopped.start();
      Deadline.awaitWithin(
          Clients.OP_TIMEOUT,
          "node " + leader + " back in the ISR of partition 0",
          () -> ids(Clients.awaitDescribed(CLUSTER.admin(), topic, 3).partitions().get(0).isr()).contains(leader));
    }
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(CLUSTER.broker(), Map.of())) {
      var got = Clients.consume(consumer, List.of(new TopicPartition(topic, 0)), 0, 40);
      for (int i = 0; i < 40; i++) {
        String expected = i < 20 ? "before-" + i : "during-" + (i - 20);
        assertEquals(expected, new String(got.get(i).value()), "offset " + i);
      }
    }
  }

  /**
   * The key scenario: an RF=3 topic, an idempotent acks=all producer running while the
   * leader of each partition in turn is killed (SIGKILL) and later restarted. Every acknowledged
   * record is consumed exactly once, in order, and every replica holds the same records up to
   * the high watermark (read from each broker as a follower-fetching consumer in its rack).
   */
  @Test
  void idempotent_acks_all_writes_survive_killing_each_leader_in_turn() throws Exception {
    String topic = Clients.topicName("kill-leaders");
    TopicDescription d = createReplicated(topic);
    int partitions = d.partitions().size();
    Map<Integer, List<String>> acked = new TreeMap<>();
    java.util.concurrent.atomic.AtomicBoolean running = new java.util.concurrent.atomic.AtomicBoolean(true);
    java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(CLUSTER.broker(), Map.of("enable.idempotence", true, "delivery.timeout.ms", 120_000, "retries", Integer.MAX_VALUE))) {
      Thread writer =
          new Thread(
              () -> {
                int i = 0;
                try {
                  while (running.get()) {
                    int p = i % partitions;
                    String value = "p" + p + "-" + i;
                    var f = producer.send(new ProducerRecord<>(topic, p, null, value.getBytes()));
                    f.get();
                    synchronized (acked) {
                      acked.computeIfAbsent(p, k -> new java.util.ArrayList<>()).add(value);
                    }
                    i++;
                  }
                } catch (Throwable t) {
                  failure.set(t);
                }
              },
              "writer");
      writer.start();
      for (int p = 0; p < partitions; p++) {
        int partition = p;
        awaitAcked(acked, failure, 30 * (p + 1));
        int leader =
            Clients.awaitDescribed(CLUSTER.admin(), topic, partitions).partitions().get(partition).leader().id();
        BrokerNode victim = CLUSTER.broker().node(leader);
        victim.kill();
        Deadline.awaitWithin(
            Clients.OP_TIMEOUT,
            "a new leader for partition " + partition,
            () -> {
              TopicPartitionInfo info =
                  Clients.awaitDescribed(CLUSTER.admin(), topic, partitions).partitions().get(partition);
              return info.leader() != null && info.leader().id() != leader;
            });
        int before = count(acked);
        awaitAcked(acked, failure, before + 30);
        victim.start();
        Deadline.awaitWithin(
            Clients.OP_TIMEOUT,
            "node " + leader + " back in every ISR",
            () -> Clients.awaitDescribed(CLUSTER.admin(), topic, partitions).partitions().stream()
                .allMatch(info -> info.isr().size() == 3));
      }
      running.set(false);
      writer.join(120_000);
      if (failure.get() != null) {
        throw new AssertionError("an acks=all write failed", failure.get());
      }
    }
    for (int p = 0; p < partitions; p++) {
      List<String> expected = acked.getOrDefault(p, List.of());
      TopicPartition tp = new TopicPartition(topic, p);
      for (String rack : List.of("rack-a", "rack-b", "rack-c")) {
        try (KafkaConsumer<byte[], byte[]> consumer =
            Clients.consumer(CLUSTER.broker(), Map.of("client.rack", rack))) {
          var got = Clients.consume(consumer, List.of(tp), 0, expected.size());
          List<String> values = got.stream().map(r -> new String(r.value())).toList();
          assertEquals(expected, values, "partition " + p + " read in " + rack + ": every acknowledged record once, in order");
        }
      }
    }
  }

  /** A consumer group keeps consuming, and keeps its committed offsets, when the broker of its coordinator is killed. */
  @Test
  void a_consumer_group_survives_the_loss_of_its_coordinator() throws Exception {
    String topic = Clients.topicName("group-failover");
    createReplicated(topic);
    String group = "failover-" + topic;
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of())) {
      for (int i = 0; i < 60; i++) {
        Clients.get(producer.send(new ProducerRecord<>(topic, i % 3, null, ("v" + i).getBytes())));
      }
    }
    Set<String> seen = new HashSet<>();
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.consumer(CLUSTER.broker(), Map.of("group.id", group, "session.timeout.ms", 10_000))) {
      consumer.subscribe(List.of(topic));
      Deadline first = Deadline.in(Clients.OP_TIMEOUT);
      while (seen.size() < 30 && !first.expired()) {
        for (var r : consumer.poll(java.time.Duration.ofMillis(200))) {
          seen.add(new String(r.value()));
        }
      }
      consumer.commitSync();
      int coordinator =
          Clients.get(CLUSTER.admin().describeConsumerGroups(List.of(group)).describedGroups().get(group))
              .coordinator()
              .id();
      CLUSTER.broker().node(coordinator).kill();
      try (KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of())) {
        for (int i = 60; i < 90; i++) {
          Clients.get(producer.send(new ProducerRecord<>(topic, i % 3, null, ("v" + i).getBytes())));
        }
      }
      Deadline rest = Deadline.in(Duration.ofSeconds(90));
      while (seen.size() < 90 && !rest.expired()) {
        for (var r : consumer.poll(java.time.Duration.ofMillis(200))) {
          seen.add(new String(r.value()));
        }
        consumer.commitAsync();
      }
      consumer.commitSync(Duration.ofSeconds(60));
      assertEquals(90, seen.size(), "records consumed across the coordinator's loss");
      int newCoordinator =
          Clients.get(CLUSTER.admin().describeConsumerGroups(List.of(group)).describedGroups().get(group))
              .coordinator()
              .id();
      org.junit.jupiter.api.Assertions.assertNotEquals(coordinator, newCoordinator, "the coordinator moved");
    }
    // The committed offsets survived: every partition is committed up to its log end.
    var committed =
        Clients.get(CLUSTER.admin().listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    try (KafkaConsumer<byte[], byte[]> probe = Clients.consumer(CLUSTER.broker(), Map.of())) {
      var ends = probe.endOffsets(committed.keySet());
      Map<TopicPartition, Long> offsets = new TreeMap<>(java.util.Comparator.comparing(TopicPartition::toString));
      committed.forEach((tp, o) -> offsets.put(tp, o.offset()));
      Map<TopicPartition, Long> expectedEnds = new TreeMap<>(java.util.Comparator.comparing(TopicPartition::toString));
      expectedEnds.putAll(ends);
      assertEquals(3, offsets.size(), "committed partitions");
      assertEquals(expectedEnds, offsets, "committed offsets at the log end");
    }
  }

  private static int count(Map<Integer, List<String>> acked) {
    synchronized (acked) {
      return acked.values().stream().mapToInt(List::size).sum();
    }
  }

  private static void awaitAcked(
      Map<Integer, List<String>> acked, java.util.concurrent.atomic.AtomicReference<Throwable> failure, int atLeast) {
    Deadline.awaitWithin(
        Duration.ofSeconds(90),
        atLeast + " acknowledged writes",
        () -> {
          if (failure.get() != null) {
            throw new AssertionError("an acks=all write failed", failure.get());
          }
          return count(acked) >= atLeast;
        });
  }

  /**
   * KIP-392: with the rack-aware selector, a consumer whose client.rack holds a follower is sent
   * to that follower, reads every record there, and stays on the leader when its rack has none.
   */
  @Test
  void consumers_read_from_the_replica_in_their_rack() {
    String topic = Clients.topicName("follower-fetch");
    TopicDescription d = createReplicated(topic);
    TopicPartition tp = new TopicPartition(topic, 0);
    int leader = d.partitions().get(0).leader().id();
    int follower = leader % 3 + 1;
    String followerRack = "rack-" + (char) ('a' + follower - 1);
    String leaderRack = "rack-" + (char) ('a' + leader - 1);
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of())) {
      for (int i = 0; i < 30; i++) {
        Clients.get(producer.send(new ProducerRecord<>(topic, 0, null, ("r" + i).getBytes())));
      }
    }
    Map<String, Integer> expectedReplica = Map.of(followerRack, follower, leaderRack, -1, "rack-elsewhere", -1);
    for (var e : expectedReplica.entrySet()) {
      try (KafkaConsumer<byte[], byte[]> consumer =
          Clients.consumer(CLUSTER.broker(), Map.of("client.rack", e.getKey()))) {
        var got = Clients.consume(consumer, List.of(tp), 0, 30);
        for (int i = 0; i < 30; i++) {
          assertEquals("r" + i, new String(got.get(i).value()), "client.rack=" + e.getKey() + " offset " + i);
        }
        assertEquals(
            e.getValue().intValue(),
            FollowerFetchingTest.preferredReadReplica(consumer, tp),
            "replica read by a consumer in " + e.getKey() + " (leader " + leader + ")");
      }
    }
  }

  /**
   * CreatePartitions on a cluster: the new partitions get three replicas spread over the racks
   * and a leader, take writes at once, and DeleteTopics then removes the topic from every broker.
   */
  @Test
  void added_partitions_are_replicated_and_deleted_topics_leave_every_broker() {
    String topic = Clients.topicName("grow");
    createReplicated(topic);
    Clients.get(
        CLUSTER.admin()
            .createPartitions(Map.of(topic, org.apache.kafka.clients.admin.NewPartitions.increaseTo(6)))
            .all());
    TopicDescription[] d = new TopicDescription[1];
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        topic + " grown to six fully replicated partitions",
        () -> {
          d[0] = Clients.awaitTopic(CLUSTER.admin(), topic, 6);
          return d[0].partitions().stream().allMatch(p -> p.isr().size() == 3 && p.leader() != null);
        });
    for (TopicPartitionInfo p : d[0].partitions()) {
      assertEquals(Set.of(1, 2, 3), ids(p.replicas()), "replicas of partition " + p.partition());
    }
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of());
        KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(CLUSTER.broker(), Map.of())) {
      for (int p = 3; p < 6; p++) {
        // Not necessarily offset 0 on Shoal: the Raft group's own entries (a new leader's
        // blank entry) are control batches that take offsets, as transaction markers do.
        var meta = Clients.get(producer.send(new ProducerRecord<>(topic, p, null, ("new-" + p).getBytes())));
        var got = Clients.consume(consumer, List.of(new TopicPartition(topic, p)), 0, 1);
        assertEquals(List.of("new-" + p), got.stream().map(r -> new String(r.value())).toList(), "added partition " + p);
        assertEquals(meta.offset(), got.get(0).offset(), "offset of the record in added partition " + p);
      }
    }
    Clients.get(CLUSTER.admin().deleteTopics(List.of(topic)).all());
    for (int id = 1; id <= 3; id++) {
      int node = id;
      Deadline.awaitWithin(
          Clients.OP_TIMEOUT,
          topic + " gone from broker " + node + "'s metadata",
          () -> {
            try (var admin =
                org.apache.kafka.clients.admin.Admin.create(
                    Map.of("bootstrap.servers", CLUSTER.broker().node(node).clientAddress()))) {
              return !Clients.get(admin.listTopics().names()).contains(topic);
            }
          });
    }
  }

  /**
   * Preferred leader election (ElectLeaders) on a cluster, through {@code Admin.electLeaders} and
   * {@code kafka-leader-election}: not needed while the first replica of the assignment leads;
   * not available while that replica is stopped (out of the ISR); once it is back in the ISR,
   * the election hands it the leadership, and the next one is not needed again.
   */
  @Test
  void preferred_leader_election_returns_leadership_to_the_first_replica() {
    String topic = Clients.topicName("elect");
    createReplicated(topic);
    TopicPartition tp = new TopicPartition(topic, 0);
    int[] preferred = new int[1];
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        "partition 0 led by its first replica",
        () -> {
          TopicPartitionInfo p0 = Clients.awaitDescribed(CLUSTER.admin(), topic, 3).partitions().get(0);
          preferred[0] = p0.replicas().get(0).id();
          return p0.leader() != null && p0.leader().id() == preferred[0];
        });
    assertInstanceOf(ElectionNotNeededException.class, electPreferred(Set.of(tp)).get(tp).orElseThrow());
    TopicPartition unknown = new TopicPartition(topic, 7);
    assertInstanceOf(UnknownTopicOrPartitionException.class, electPreferred(Set.of(unknown)).get(unknown).orElseThrow());

    BrokerNode first = CLUSTER.broker().node(preferred[0]);
    first.stop();
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        "another leader for partition 0 and node " + preferred[0] + " out of its ISR",
        () -> {
          TopicPartitionInfo p0 = Clients.awaitDescribed(CLUSTER.admin(), topic, 3).partitions().get(0);
          return p0.leader() != null && p0.leader().id() != preferred[0] && !ids(p0.isr()).contains(preferred[0]);
        });
    assertInstanceOf(PreferredLeaderNotAvailableException.class, electPreferred(Set.of(tp)).get(tp).orElseThrow());

    first.start();
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        "node " + preferred[0] + " back in the ISR of partition 0",
        () -> ids(Clients.awaitDescribed(CLUSTER.admin(), topic, 3).partitions().get(0).isr()).contains(preferred[0]));
    int leader = Clients.awaitDescribed(CLUSTER.admin(), topic, 3).partitions().get(0).leader().id();
    assertTrue(leader != preferred[0], "still led by " + leader + " until an election");

    KafkaTool.Result elected =
        KafkaTool.run(
                KafkaTool.LEADER_ELECTION, null, "--bootstrap-server", CLUSTER.broker().bootstrapServers(),
                "--election-type", "preferred", "--topic", topic, "--partition", "0")
            .expectSuccess();
    assertEquals(
        List.of("Successfully completed leader election (PREFERRED) for partitions " + topic + "-0"),
        elected.lines(),
        elected.stdout() + elected.stderr());
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        "node " + preferred[0] + " leads partition 0 again",
        () -> {
          TopicPartitionInfo p0 = Clients.awaitDescribed(CLUSTER.admin(), topic, 3).partitions().get(0);
          return p0.leader() != null && p0.leader().id() == preferred[0];
        });
    assertInstanceOf(ElectionNotNeededException.class, electPreferred(Set.of(tp)).get(tp).orElseThrow());
    // The partition takes writes under its new leader.
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(CLUSTER.broker(), Map.of())) {
      Clients.get(producer.send(new ProducerRecord<>(topic, 0, null, "after-election".getBytes())));
    }
  }

  private static Map<TopicPartition, Optional<Throwable>> electPreferred(Set<TopicPartition> partitions) {
    return Clients.get(CLUSTER.admin().electLeaders(ElectionType.PREFERRED, partitions).partitions());
  }

  private static TopicDescription createReplicated(String topic) {
    Clients.get(
        CLUSTER.admin().createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(topic, 3, (short) 3))).all());
    TopicDescription[] d = new TopicDescription[1];
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        topic + " fully replicated",
        () -> {
          d[0] = Clients.awaitTopic(CLUSTER.admin(), topic, 3);
          return d[0].partitions().stream().allMatch(p -> p.isr().size() == 3);
        });
    return d[0];
  }

  private static Set<Integer> ids(List<Node> nodes) {
    return nodes.stream().map(Node::id).collect(Collectors.toSet());
  }
}
