package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConfigEntry.ConfigSource;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.AlterConfigsRequest;
import org.apache.kafka.common.requests.AlterConfigsResponse;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/**
 * The legacy AlterConfigs API (key 33; Java's Admin dropped it in 4.0, older clients such as
 * kafka-python and librdkafka still send it), raw at v0 and v2: a request replaces a topic's
 * whole set of overrides, validate-only changes nothing, and errors come per resource.
 */
class AlterConfigsLegacyTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  private static Map<ConfigResource, Errors> alter(
      short version, boolean validateOnly, ConfigResource resource, Map<String, String> configs) throws IOException {
    AlterConfigsRequest.Config config =
        new AlterConfigsRequest.Config(
            configs.entrySet().stream()
                .map(e -> new AlterConfigsRequest.ConfigEntry(e.getKey(), e.getValue()))
                .toList());
    AlterConfigsRequest request = new AlterConfigsRequest.Builder(Map.of(resource, config), validateOnly).build(version);
    try (RawConnection c = new RawConnection(BROKER.bootstrap())) {
      AlterConfigsResponse response = c.roundTrip(request);
      return response.errors().entrySet().stream()
          .collect(Collectors.toMap(Map.Entry::getKey, e -> e.getValue().error()));
    }
  }

  /** The topic's dynamic overrides (source DYNAMIC_TOPIC_CONFIG), by name. */
  private static Map<String, String> overrides(ConfigResource topic) {
    Config config = Clients.get(BROKER.admin().describeConfigs(List.of(topic)).values().get(topic));
    return config.entries().stream()
        .filter(e -> e.source() == ConfigSource.DYNAMIC_TOPIC_CONFIG)
        .collect(Collectors.toMap(ConfigEntry::name, ConfigEntry::value));
  }

  private static void awaitOverrides(ConfigResource topic, Map<String, String> expected) {
    try {
      Deadline.awaitWithin(Clients.OP_TIMEOUT, topic + " overrides " + expected, () -> overrides(topic).equals(expected));
    } catch (IllegalStateException timedOut) {
      assertEquals(expected, overrides(topic));
    }
  }

  private static ConfigResource newTopic(Map<String, String> configs) {
    String name = Clients.topicName("legacy-configs");
    Clients.createTopic(BROKER.admin(), name, 1, configs);
    return new ConfigResource(ConfigResource.Type.TOPIC, name);
  }

  @Test
  void alter_configs_replaces_every_override_of_a_topic() throws IOException {
    for (short version : new short[] {0, 2}) {
      ConfigResource topic = newTopic(Map.of("retention.ms", "3600000", "segment.ms", "7200000"));
      assertEquals(Map.of(topic, Errors.NONE), alter(version, false, topic, Map.of("max.message.bytes", "50000")));
      // Overrides not named in the request are removed, not kept.
      awaitOverrides(topic, Map.of("max.message.bytes", "50000"));
      assertEquals(Map.of(topic, Errors.NONE), alter(version, false, topic, Map.of()));
      awaitOverrides(topic, Map.of());
    }
  }

  @Test
  void validate_only_and_errors_change_nothing() throws IOException {
    ConfigResource topic = newTopic(Map.of("retention.ms", "3600000"));
    assertEquals(Map.of(topic, Errors.NONE), alter((short) 2, true, topic, Map.of("segment.ms", "1000")));
    assertEquals(Map.of(topic, Errors.INVALID_CONFIG), alter((short) 2, false, topic, Map.of("retention.ms", "soon")));
    ConfigResource missing = new ConfigResource(ConfigResource.Type.TOPIC, Clients.topicName("legacy-missing"));
    assertEquals(
        Map.of(missing, Errors.UNKNOWN_TOPIC_OR_PARTITION), alter((short) 2, false, missing, Map.of("retention.ms", "1000")));
    assertEquals(Map.of("retention.ms", "3600000"), overrides(topic));
  }
}
