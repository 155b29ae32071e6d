package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConfigEntry.ConfigSource;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.BrokerNode;
import shoal.conformance.broker.Deadline;

/** DescribeConfigs and IncrementalAlterConfigs for topics and brokers. */
class AdminConfigsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  private static ConfigEntry entry(ConfigResource resource, String name) {
    Config config = Clients.get(BROKER.admin().describeConfigs(List.of(resource)).values().get(resource));
    ConfigEntry e = config.get(name);
    assertNotNull(e, resource + " has no config " + name);
    return e;
  }

  private static void assertEntry(ConfigResource r, String name, String value, ConfigSource source) {
    ConfigEntry e = entry(r, name);
    assertEquals(value, e.value(), r + " " + name + " value");
    assertEquals(source, e.source(), r + " " + name + " source");
  }

  /**
   * For changes that reach the broker asynchronously (Kafka's brokers apply config changes from
   * the metadata log after the controller commits them): wait for the entry, then assert it.
   */
  private static void awaitEntry(ConfigResource r, String name, String value, ConfigSource source) {
    try {
      Deadline.awaitWithin(
          Clients.OP_TIMEOUT,
          r + " " + name + " = " + value + " (" + source + ")",
          () -> {
            ConfigEntry e = entry(r, name);
            return Objects.equals(value, e.value()) && source == e.source();
          });
    } catch (IllegalStateException timedOut) {
      assertEntry(r, name, value, source);
    }
  }

  private static void alter(ConfigResource r, AlterConfigOp... ops) {
    Clients.get(BROKER.admin().incrementalAlterConfigs(Map.of(r, List.of(ops))).all());
  }

  private static ConfigResource newTopic(Map<String, String> configs) {
    String name = Clients.topicName("configs");
    Clients.createTopic(BROKER.admin(), name, 1, configs);
    return new ConfigResource(ConfigResource.Type.TOPIC, name);
  }

  private static ConfigResource thisBroker() {
    BrokerNode node = BROKER.broker().nodes().get(0);
    return new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node.nodeId()));
  }

  @Test
  void topic_configs_report_value_and_source() {
    ConfigResource topic = newTopic(Map.of("retention.ms", "3600000", "retention.bytes", "1048576"));
    assertEntry(topic, "retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG);
    assertEntry(topic, "retention.bytes", "1048576", ConfigSource.DYNAMIC_TOPIC_CONFIG);
    // Unset topic configs inherit the broker's: a static broker setting or Kafka's default.
    assertEntry(topic, "max.message.bytes", Integer.toString(Specs.MESSAGE_MAX_BYTES), ConfigSource.STATIC_BROKER_CONFIG);
    assertEntry(topic, "message.timestamp.type", "CreateTime", ConfigSource.DEFAULT_CONFIG);
    assertEntry(topic, "cleanup.policy", "delete", ConfigSource.DEFAULT_CONFIG);
  }

  @Test
  void incremental_alter_sets_appends_subtracts_and_deletes_topic_configs() {
    ConfigResource topic = newTopic(Map.of());
    assertEntry(topic, "retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG);
    alter(topic, new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET));
    awaitEntry(topic, "retention.ms", "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG);
    // A list-typed config: APPEND and SUBTRACT edit the list.
    String list = "leader.replication.throttled.replicas";
    assertEntry(topic, list, "", ConfigSource.DEFAULT_CONFIG);
    alter(topic, new AlterConfigOp(new ConfigEntry(list, "0:1"), AlterConfigOp.OpType.APPEND));
    awaitEntry(topic, list, "0:1", ConfigSource.DYNAMIC_TOPIC_CONFIG);
    alter(topic, new AlterConfigOp(new ConfigEntry(list, "1:1"), AlterConfigOp.OpType.APPEND));
    awaitEntry(topic, list, "0:1,1:1", ConfigSource.DYNAMIC_TOPIC_CONFIG);
    alter(topic, new AlterConfigOp(new ConfigEntry(list, "0:1"), AlterConfigOp.OpType.SUBTRACT));
    awaitEntry(topic, list, "1:1", ConfigSource.DYNAMIC_TOPIC_CONFIG);
    alter(topic, new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE));
    awaitEntry(topic, "retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG);
  }

  /** Log compaction as a topic policy. */
  @Test
  @Tag("compaction")
  void compact_cleanup_policy_is_accepted_and_edited_as_a_list() {
    ConfigResource topic = newTopic(Map.of("cleanup.policy", "compact"));
    assertEntry(topic, "cleanup.policy", "compact", ConfigSource.DYNAMIC_TOPIC_CONFIG);
    alter(topic, new AlterConfigOp(new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.APPEND));
    awaitEntry(topic, "cleanup.policy", "compact,delete", ConfigSource.DYNAMIC_TOPIC_CONFIG);
    alter(topic, new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT));
    awaitEntry(topic, "cleanup.policy", "delete", ConfigSource.DYNAMIC_TOPIC_CONFIG);
  }

  @Test
  void validate_only_alter_changes_nothing() {
    ConfigResource topic = newTopic(Map.of());
    Clients.get(
        BROKER
            .admin()
            .incrementalAlterConfigs(
                Map.of(topic, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "1000"), AlterConfigOp.OpType.SET))),
                new AlterConfigsOptions().validateOnly(true))
            .all());
    assertEntry(topic, "retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG);
  }

  @Test
  void invalid_topic_config_changes_are_rejected() {
    ConfigResource topic = newTopic(Map.of());
    Admin admin = BROKER.admin();
    Throwable badValue =
        Clients.failureOf(
            admin
                .incrementalAlterConfigs(
                    Map.of(topic, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET))))
                .all());
    assertInstanceOf(InvalidConfigurationException.class, badValue);
    Throwable unknownName =
        Clients.failureOf(
            admin
                .incrementalAlterConfigs(
                    Map.of(topic, List.of(new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET))))
                .all());
    assertInstanceOf(InvalidConfigurationException.class, unknownName);
    assertEntry(topic, "retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG);
  }

  @Test
  void describing_an_unknown_topic_fails_with_unknown_topic() {
    ConfigResource missing = new ConfigResource(ConfigResource.Type.TOPIC, Clients.topicName("never-created"));
    Throwable err = Clients.failureOf(BROKER.admin().describeConfigs(List.of(missing)).values().get(missing));
    assertInstanceOf(UnknownTopicOrPartitionException.class, err);
  }

  @Test
  void broker_configs_report_static_settings() {
    ConfigResource broker = thisBroker();
    BrokerNode node = BROKER.broker().nodes().get(0);
    assertEntry(broker, "message.max.bytes", Integer.toString(Specs.MESSAGE_MAX_BYTES), ConfigSource.STATIC_BROKER_CONFIG);
    assertEntry(broker, "auto.create.topics.enable", "false", ConfigSource.STATIC_BROKER_CONFIG);
    assertEntry(broker, "num.partitions", "1", ConfigSource.STATIC_BROKER_CONFIG);
    assertEntry(broker, "log.dirs", node.dataDir().toString(), ConfigSource.STATIC_BROKER_CONFIG);
    assertEntry(broker, "node.id", Integer.toString(node.nodeId()), ConfigSource.STATIC_BROKER_CONFIG);
    assertEntry(broker, "log.retention.bytes", "-1", ConfigSource.DEFAULT_CONFIG);
  }

  @Test
  void broker_dynamic_config_is_set_inherited_by_topics_and_deleted() {
    ConfigResource broker = thisBroker();
    ConfigResource topic = newTopic(Map.of());
    alter(broker, new AlterConfigOp(new ConfigEntry("log.retention.ms", "900000000"), AlterConfigOp.OpType.SET));
    try {
      awaitEntry(broker, "log.retention.ms", "900000000", ConfigSource.DYNAMIC_BROKER_CONFIG);
      awaitEntry(topic, "retention.ms", "900000000", ConfigSource.DYNAMIC_BROKER_CONFIG);
    } finally {
      alter(broker, new AlterConfigOp(new ConfigEntry("log.retention.ms", ""), AlterConfigOp.OpType.DELETE));
    }
    awaitEntry(topic, "retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG);
  }

  @Test
  void read_only_broker_configs_cannot_be_altered() {
    Throwable err =
        Clients.failureOf(
            BROKER
                .admin()
                .incrementalAlterConfigs(
                    Map.of(
                        thisBroker(),
                        List.of(new AlterConfigOp(new ConfigEntry("log.dirs", "/tmp/elsewhere"), AlterConfigOp.OpType.SET))))
                .all());
    assertInstanceOf(InvalidRequestException.class, err);
  }
}
