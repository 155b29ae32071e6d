package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/**
 * Apache Kafka's group tooling against the broker: kafka-consumer-groups (list, describe with its
 * --state/--members views, reset-offsets, delete-offsets, delete), the console consumer in a group,
 * and the formatters that read the __consumer_offsets topic itself.
 */
@Tag("groups")
class ConsumerGroupToolsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.GROUPS);

  private static String bs() {
    return BROKER.bootstrap();
  }

  private static KafkaTool.Result groups(String... args) {
    List<String> all = new ArrayList<>(List.of("--bootstrap-server", bs()));
    all.addAll(Arrays.asList(args));
    return KafkaTool.run(KafkaTool.CONSUMER_GROUPS, null, all.toArray(String[]::new));
  }

  /** The table rows of a tool's output that start with {@code first}, whitespace collapsed. */
  private static List<String> rows(KafkaTool.Result r, String first) {
    return r.lines().stream()
        .map(l -> String.join(" ", l.trim().split("\\s+")))
        .filter(l -> l.startsWith(first + " "))
        .toList();
  }

  private static void produce(String topic, int partitions, int perPartition) {
    List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      for (int i = 0; i < perPartition; i++) {
        records.add(new ProducerRecord<>(topic, p, null, ("v" + p + "-" + i).getBytes()));
      }
    }
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      Clients.sendAll(producer, records);
    }
  }

  private static KafkaConsumer<byte[], byte[]> member(String group) {
    return Clients.consumer(
        BROKER.broker(),
        Map.of(
            ConsumerConfig.GROUP_ID_CONFIG, group,
            ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic",
            ConsumerConfig.CLIENT_ID_CONFIG, "tools-member"));
  }

  private static void consumeAll(KafkaConsumer<byte[], byte[]> consumer, int expected) {
    List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
    Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
    while (got.size() < expected && !deadline.expired()) {
      consumer.poll(Duration.ofMillis(200)).forEach(got::add);
    }
    assertEquals(expected, got.size());
  }

  private static Map<TopicPartition, OffsetAndMetadata> committed(String group) {
    return Clients.get(BROKER.admin().listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
  }

  private static Map<Integer, Long> committedOffsets(String group, String topic) {
    return committed(group).entrySet().stream()
        .filter(e -> e.getKey().topic().equals(topic) && e.getValue() != null)
        .collect(Collectors.toMap(e -> e.getKey().partition(), e -> e.getValue().offset()));
  }

  @Test
  void kafka_consumer_groups_lists_describes_resets_and_deletes() {
    String topic = Clients.topicName("cg-tools");
    String group = Clients.topicName("cg-tools-group");
    Clients.createTopic(BROKER.admin(), topic, 3);
    produce(topic, 3, 10);

    try (KafkaConsumer<byte[], byte[]> consumer = member(group)) {
      consumer.subscribe(List.of(topic));
      consumeAll(consumer, 30);
      consumer.commitSync();

      KafkaTool.Result list = groups("--list").expectSuccess();
      assertTrue(list.lines().contains(group), list.stdout());

      // --describe: offsets, log end and lag per partition, with the owning member.
      KafkaTool.Result described = groups("--describe", "--group", group).expectSuccess();
      List<String> offsetRows = rows(described, group);
      assertEquals(3, offsetRows.size(), described.stdout());
      for (int p = 0; p < 3; p++) {
        String prefix = group + " " + topic + " " + p + " 10 10 0 tools-member-";
        int partition = p;
        assertTrue(
            offsetRows.stream().anyMatch(r -> r.startsWith(prefix) && r.endsWith(" tools-member")),
            "row for partition " + partition + " in:\n" + described.stdout());
      }

      // --state: coordinator, assignor, state and member count.
      KafkaTool.Result state = groups("--describe", "--group", group, "--state").expectSuccess();
      List<String> stateRows = rows(state, group);
      assertEquals(1, stateRows.size(), state.stdout());
      assertTrue(stateRows.get(0).endsWith(" range Stable 1"), state.stdout());
      var node = BROKER.broker().nodes().get(0);
      String port = node.clientAddress().substring(node.clientAddress().lastIndexOf(':'));
      assertTrue(stateRows.get(0).contains(port + " (" + node.nodeId() + ")"), state.stdout());

      // --members --verbose: the member's partitions.
      KafkaTool.Result members = groups("--describe", "--group", group, "--members", "--verbose").expectSuccess();
      List<String> memberRows = rows(members, group);
      assertEquals(1, memberRows.size(), members.stdout());
      assertTrue(memberRows.get(0).contains(" tools-member 3 - " + topic + ":0,1,2 "), members.stdout());

      // An active group can be neither reset nor deleted.
      KafkaTool.Result reset = groups("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute");
      assertTrue(
          (reset.stdout() + reset.stderr()).contains("Assignments can only be reset if the group '" + group + "' is inactive, but the current state is Stable."), reset.stdout() + reset.stderr());
      assertEquals(Map.of(0, 10L, 1, 10L, 2, 10L), committedOffsets(group, topic));
      KafkaTool.Result deleteActive = groups("--delete", "--group", group);
      String out = deleteActive.stdout() + deleteActive.stderr();
      assertTrue(out.contains("Deletion of some consumer groups failed:"), out);
      assertTrue(out.contains("Group '" + group + "' could not be deleted due to:"), out);
      assertTrue(out.contains("GroupNotEmptyException"), out);
    }

    // The member has left: the group is Empty and keeps its offsets.
    KafkaTool.Result state = groups("--describe", "--group", group, "--state").expectSuccess();
    assertTrue(rows(state, group).get(0).endsWith(" Empty 0"), state.stdout());
    KafkaTool.Result described = groups("--describe", "--group", group).expectSuccess();
    assertTrue(
        (described.stdout() + described.stderr()).contains("Consumer group '" + group + "' has no active members."),
        described.stdout() + described.stderr());
    assertEquals(3, rows(described, group).size(), described.stdout());
    assertTrue(rows(described, group).stream().allMatch(r -> r.contains(" 10 10 0 - - -")), described.stdout());

    // --reset-offsets: a dry run shows the new offsets and changes nothing; --execute commits them.
    KafkaTool.Result dryRun =
        groups("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--dry-run").expectSuccess();
    assertEquals(3, rows(dryRun, group).size(), dryRun.stdout());
    assertTrue(rows(dryRun, group).stream().allMatch(r -> r.endsWith(" 0")), dryRun.stdout());
    assertEquals(Map.of(0, 10L, 1, 10L, 2, 10L), committedOffsets(group, topic));

    groups("--reset-offsets", "--group", group, "--topic", topic + ":0", "--to-earliest", "--execute").expectSuccess();
    groups("--reset-offsets", "--group", group, "--topic", topic + ":1", "--to-offset", "4", "--execute").expectSuccess();
    KafkaTool.Result shifted =
        groups("--reset-offsets", "--group", group, "--topic", topic + ":2", "--shift-by", "-3", "--execute").expectSuccess();
    assertEquals(List.of(group + " " + topic + " 2 7"), rows(shifted, group), shifted.stdout());
    assertEquals(Map.of(0, 0L, 1, 4L, 2, 7L), committedOffsets(group, topic));
    KafkaTool.Result lag = groups("--describe", "--group", group).expectSuccess();
    assertTrue(rows(lag, group).contains(group + " " + topic + " 1 4 10 6 - - -"), lag.stdout());

    // A new member resumes from the reset offsets.
    try (KafkaConsumer<byte[], byte[]> consumer = member(group)) {
      consumer.subscribe(List.of(topic));
      consumeAll(consumer, 10 + 6 + 3);
    }

    // --delete-offsets removes one partition's offset (OffsetDelete) from the empty group.
    KafkaTool.Result deleteOffsets = groups("--delete-offsets", "--group", group, "--topic", topic + ":0").expectSuccess();
    assertTrue(
        deleteOffsets.lines().stream()
            .map(l -> String.join(" ", l.trim().split("\\s+")))
            .anyMatch(l -> l.equals(topic + " 0 Successful")),
        deleteOffsets.stdout());
    Map<TopicPartition, OffsetAndMetadata> after = committed(group);
    assertNull(after.get(new TopicPartition(topic, 0)), after.toString());
    assertEquals(4L, after.get(new TopicPartition(topic, 1)).offset());

    // --delete removes the group.
    KafkaTool.Result deleted = groups("--delete", "--group", group).expectSuccess();
    assertTrue(
        deleted.stdout().contains("Deletion of requested consumer groups ('" + group + "') was successful."),
        deleted.stdout());
    assertFalse(groups("--list").expectSuccess().lines().contains(group));
    KafkaTool.Result gone = groups("--describe", "--group", group);
    assertTrue((gone.stdout() + gone.stderr()).contains("GroupIdNotFoundException: Group " + group + " not found."), gone.stdout() + gone.stderr());
  }

  @Test
  void console_consumer_in_a_group_commits_and_the_next_run_resumes() {
    String topic = Clients.topicName("cg-console");
    String group = Clients.topicName("cg-console-group");
    Clients.createTopic(BROKER.admin(), topic, 1);
    produce(topic, 1, 6);
    KafkaTool.Result first =
        KafkaTool.run(
                KafkaTool.CONSOLE_CONSUMER, null, "--bootstrap-server", bs(), "--topic", topic, "--group", group,
                "--from-beginning", "--max-messages", "4", "--timeout-ms", "30000",
                "--consumer-property", "max.poll.records=1")
            .expectSuccess();
    assertEquals(List.of("v0-0", "v0-1", "v0-2", "v0-3"), first.lines().stream().filter(l -> l.startsWith("v")).toList(), first.stderr());
    assertEquals(Map.of(0, 4L), committedOffsets(group, topic));
    KafkaTool.Result second =
        KafkaTool.run(
                KafkaTool.CONSOLE_CONSUMER, null, "--bootstrap-server", bs(), "--topic", topic, "--group", group,
                "--from-beginning", "--max-messages", "2", "--timeout-ms", "30000")
            .expectSuccess();
    assertEquals(List.of("v0-4", "v0-5"), second.lines().stream().filter(l -> l.startsWith("v")).toList(), second.stderr());
    assertEquals(Map.of(0, 6L), committedOffsets(group, topic));
  }

  @Test
  void the_consumer_offsets_topic_is_readable_with_kafkas_formatters() {
    String topic = Clients.topicName("cg-format");
    String group = Clients.topicName("cg-format-group");
    Clients.createTopic(BROKER.admin(), topic, 1);
    produce(topic, 1, 3);
    try (KafkaConsumer<byte[], byte[]> consumer = member(group)) {
      consumer.subscribe(List.of(topic));
      consumeAll(consumer, 3);
      consumer.commitSync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(3, "tools-meta")));
    }
    String offsetKey = "{\"key\":{\"type\":1,\"data\":{\"group\":\"" + group + "\",\"topic\":\"" + topic + "\",\"partition\":0}}";
    awaitFormatted(
        "org.apache.kafka.tools.consumer.OffsetsMessageFormatter",
        l -> l.startsWith(offsetKey) && l.contains("\"offset\":3,") && l.contains("\"metadata\":\"tools-meta\""));
    String groupKey = "{\"key\":{\"type\":2,\"data\":{\"group\":\"" + group + "\"}}";
    awaitFormatted(
        "org.apache.kafka.tools.consumer.GroupMetadataMessageFormatter",
        l -> l.startsWith(groupKey) && l.contains("\"protocolType\":\"consumer\"") && l.contains("\"protocol\":\"range\""));
  }

  /** Reads __consumer_offsets with a formatter until a line matches (records can take a moment to show). */
  private static void awaitFormatted(String formatter, java.util.function.Predicate<String> line) {
    Deadline deadline = Deadline.in(Duration.ofSeconds(60));
    KafkaTool.Result r;
    do {
      r = readConsumerOffsets(formatter);
      // Kafka 4.1's coordinator record formatters end records with no line separator: split on the
      // start of the next record as well.
      if (Arrays.stream(r.stdout().split("\\R|(?<=\\})(?=\\{\"key\")")).anyMatch(line)) {
        return;
      }
    } while (!deadline.expired());
    throw new AssertionError(formatter + " printed no matching line:\n" + r.stdout() + "\nstderr:\n" + r.stderr());
  }

  private static KafkaTool.Result readConsumerOffsets(String formatter) {
    return KafkaTool.run(
            KafkaTool.CONSOLE_CONSUMER, null, "--bootstrap-server", bs(), "--topic", "__consumer_offsets",
            "--from-beginning", "--timeout-ms", "8000", "--formatter", formatter,
            "--consumer-property", "exclude.internal.topics=false")
        .expectSuccess();
  }
}
