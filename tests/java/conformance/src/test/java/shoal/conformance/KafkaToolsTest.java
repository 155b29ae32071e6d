package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Apache Kafka's command-line tools work against the broker as they do against Kafka. */
class KafkaToolsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  private static String bs() {
    return BROKER.bootstrap();
  }

  private static int nodeId() {
    return BROKER.broker().nodes().get(0).nodeId();
  }

  @Test
  void kafka_topics_creates_lists_describes_alters_and_deletes() {
    String t = Clients.topicName("cli-topics");
    KafkaTool.Result created =
        KafkaTool.run(
                KafkaTool.TOPICS, null, "--bootstrap-server", bs(), "--create", "--topic", t, "--partitions", "2",
                "--replication-factor", "1", "--config", "retention.ms=1000000")
            .expectSuccess();
    assertTrue(created.stdout().contains("Created topic " + t + "."), created.stdout());
    Clients.awaitTopic(BROKER.admin(), t, 2);

    KafkaTool.Result listed = KafkaTool.run(KafkaTool.TOPICS, null, "--bootstrap-server", bs(), "--list").expectSuccess();
    assertTrue(listed.lines().contains(t), listed.stdout());

    KafkaTool.Result again =
        KafkaTool.run(
            KafkaTool.TOPICS, null, "--bootstrap-server", bs(), "--create", "--topic", t, "--partitions", "1",
            "--replication-factor", "1");
    assertNotEquals(0, again.exitCode());
    assertTrue((again.stdout() + again.stderr()).contains("already exists"), again.stdout() + again.stderr());

    KafkaTool.run(KafkaTool.TOPICS, null, "--bootstrap-server", bs(), "--alter", "--topic", t, "--partitions", "3")
        .expectSuccess();
    Clients.awaitTopic(BROKER.admin(), t, 3);
    List<String> describe =
        KafkaTool.run(KafkaTool.TOPICS, null, "--bootstrap-server", bs(), "--describe", "--topic", t).expectSuccess().lines();
    String summary = describe.get(0);
    assertTrue(summary.startsWith("Topic: " + t + "\tTopicId: "), summary);
    assertTrue(summary.contains("\tPartitionCount: 3\tReplicationFactor: 1\t"), summary);
    assertTrue(summary.contains("retention.ms=1000000"), summary);
    for (int p = 0; p < 3; p++) {
      String line = describe.get(1 + p).trim();
      String expected = "Topic: " + t + "\tPartition: " + p + "\tLeader: " + nodeId() + "\tReplicas: " + nodeId() + "\tIsr: " + nodeId();
      assertTrue(line.startsWith(expected), "describe line " + p + ": " + line);
    }

    KafkaTool.run(KafkaTool.TOPICS, null, "--bootstrap-server", bs(), "--delete", "--topic", t).expectSuccess();
  }

  @Test
  void kafka_configs_alters_and_describes_topic_and_broker_configs() {
    String t = Clients.topicName("cli-configs");
    Clients.createTopic(BROKER.admin(), t, 1);
    KafkaTool.Result altered =
        KafkaTool.run(
                KafkaTool.CONFIGS, null, "--bootstrap-server", bs(), "--entity-type", "topics", "--entity-name", t,
                "--alter", "--add-config", "retention.ms=5000,leader.replication.throttled.replicas=[0:1,1:1]")
            .expectSuccess();
    assertTrue(altered.stdout().contains("Completed updating config for topic " + t + "."), altered.stdout());
    shoal.conformance.broker.Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        "kafka-configs to show the new topic configs",
        () -> {
          String out =
              KafkaTool.run(
                      KafkaTool.CONFIGS, null, "--bootstrap-server", bs(), "--entity-type", "topics", "--entity-name", t,
                      "--describe")
                  .expectSuccess()
                  .stdout();
          return out.contains("retention.ms=5000") && out.contains("leader.replication.throttled.replicas=0:1,1:1");
        });
    KafkaTool.Result broker =
        KafkaTool.run(
                KafkaTool.CONFIGS, null, "--bootstrap-server", bs(), "--entity-type", "brokers", "--entity-name",
                Integer.toString(nodeId()), "--describe", "--all")
            .expectSuccess();
    assertTrue(broker.stdout().contains("message.max.bytes=" + Specs.MESSAGE_MAX_BYTES), broker.stdout());
    assertTrue(broker.stdout().contains("auto.create.topics.enable=false"), broker.stdout());
  }

  @Test
  void console_producer_and_consumer_and_get_offsets_agree() {
    String t = Clients.topicName("cli-console");
    Clients.createTopic(BROKER.admin(), t, 1);
    KafkaTool.run(
            KafkaTool.CONSOLE_PRODUCER, "k1:first\nk2:second\nk3:third\n", "--bootstrap-server", bs(), "--topic", t,
            "--property", "parse.key=true", "--property", "key.separator=:", "--compression-codec", "lz4")
        .expectSuccess();
    KafkaTool.Result consumed =
        KafkaTool.run(
                KafkaTool.CONSOLE_CONSUMER, null, "--bootstrap-server", bs(), "--topic", t, "--partition", "0",
                "--offset", "earliest", "--max-messages", "3", "--timeout-ms", "30000", "--property", "print.key=true",
                "--property", "print.offset=true")
            .expectSuccess();
    assertEquals(
        List.of("Offset:0\tk1\tfirst", "Offset:1\tk2\tsecond", "Offset:2\tk3\tthird"),
        consumed.lines().stream().filter(l -> l.startsWith("Offset:")).toList(),
        consumed.stdout() + consumed.stderr());
    KafkaTool.Result offsets =
        KafkaTool.run(KafkaTool.GET_OFFSETS, null, "--bootstrap-server", bs(), "--topic", t).expectSuccess();
    assertEquals(List.of(t + ":0:3"), offsets.lines());
    KafkaTool.Result earliest =
        KafkaTool.run(KafkaTool.GET_OFFSETS, null, "--bootstrap-server", bs(), "--topic", t, "--time", "-2")
            .expectSuccess();
    assertEquals(List.of(t + ":0:0"), earliest.lines());
  }
}
