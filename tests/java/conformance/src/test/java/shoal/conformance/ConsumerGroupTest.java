package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/**
 * Classic consumer groups: join/sync/heartbeat, committed offsets, rebalancing between members.
 * Tagged so the test command can leave it out until Shoal has group coordination.
 */
@Tag("groups")
class ConsumerGroupTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  private static Map<String, Object> groupConfig(String group) {
    return Map.of(
        ConsumerConfig.GROUP_ID_CONFIG, group,
        ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic",
        ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10_000,
        ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
  }

  private static void produce(String topic, int partitions, int perPartition) {
    List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      for (int i = 0; i < perPartition; i++) {
        records.add(new ProducerRecord<>(topic, p, null, (p + "-" + i).getBytes()));
      }
    }
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      Clients.sendAll(producer, records);
    }
  }

  @Test
  void committed_offsets_are_resumed_by_the_next_member() {
    String topic = Clients.topicName("group-commit");
    String group = Clients.topicName("group");
    Clients.createTopic(BROKER.admin(), topic, 2);
    produce(topic, 2, 15);
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), groupConfig(group))) {
      consumer.subscribe(List.of(topic));
      List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (got.size() < 30 && !deadline.expired()) {
        consumer.poll(Duration.ofMillis(200)).forEach(got::add);
      }
      assertEquals(30, got.size());
      consumer.commitSync();
    }
    Map<TopicPartition, OffsetAndMetadata> committed =
        Clients.get(BROKER.admin().listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    assertEquals(15, committed.get(new TopicPartition(topic, 0)).offset());
    assertEquals(15, committed.get(new TopicPartition(topic, 1)).offset());

    // kafka-consumer-groups sees the same committed offsets and lag.
    KafkaTool.Result described =
        KafkaTool.run(KafkaTool.CONSUMER_GROUPS, null, "--bootstrap-server", BROKER.bootstrap(), "--describe", "--group", group)
            .expectSuccess();
    List<String> rows =
        described.lines().stream().filter(l -> l.startsWith(group + " ")).map(l -> String.join(" ", l.trim().split("\\s+"))).toList();
    assertEquals(2, rows.size(), described.stdout());
    for (int p = 0; p < 2; p++) {
      String prefix = group + " " + topic + " " + p + " 15 15 0 ";
      int partition = p;
      assertTrue(rows.stream().anyMatch(r -> r.startsWith(prefix)), "row for partition " + partition + " in:\n" + described.stdout());
    }

    produce(topic, 2, 1);
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), groupConfig(group))) {
      consumer.subscribe(List.of(topic));
      List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (got.size() < 2 && !deadline.expired()) {
        consumer.poll(Duration.ofMillis(200)).forEach(got::add);
      }
      assertEquals(2, got.size(), "only the records after the committed offsets");
      got.forEach(r -> assertEquals(15, r.offset()));
    }
  }

  @Test
  void two_members_split_the_partitions_and_the_group_is_described() {
    String topic = Clients.topicName("group-split");
    String group = Clients.topicName("group");
    Clients.createTopic(BROKER.admin(), topic, 4);
    produce(topic, 4, 5);
    try (KafkaConsumer<byte[], byte[]> a = Clients.consumer(BROKER.broker(), groupConfig(group));
        KafkaConsumer<byte[], byte[]> b = Clients.consumer(BROKER.broker(), groupConfig(group))) {
      a.subscribe(List.of(topic));
      b.subscribe(List.of(topic));
      Deadline.awaitWithin(
          Duration.ofSeconds(60),
          "both members to own two partitions each",
          () -> {
            a.poll(Duration.ofMillis(100));
            b.poll(Duration.ofMillis(100));
            return a.assignment().size() == 2 && b.assignment().size() == 2;
          });
      Set<TopicPartition> union = new HashSet<>(a.assignment());
      union.addAll(b.assignment());
      assertEquals(4, union.size(), "assignments are disjoint and cover the topic");
      ConsumerGroupDescription d =
          Clients.get(BROKER.admin().describeConsumerGroups(List.of(group)).describedGroups().get(group));
      assertEquals(GroupState.STABLE, d.groupState());
      assertEquals(2, d.members().size());
      assertTrue(d.members().stream().allMatch(m -> m.assignment().topicPartitions().size() == 2));
    }
  }
}
