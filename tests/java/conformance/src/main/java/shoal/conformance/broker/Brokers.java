package shoal.conformance.broker;

import java.nio.file.Paths;

/**
 * Creates the broker under test from system properties:
 *
 * <ul>
 *   <li>{@code broker}: {@code shoal} (default) or {@code kafka};
 *   <li>{@code shoal.bin}: the shoal binary (default {@code target/debug/shoal});
 *   <li>{@code kafka.classpath.file}: the reference broker's classpath (default
 *       {@code tests/java/reference-kafka/target/kafka.classpath}).
 * </ul>
 */
public final class Brokers {
  private Brokers() {}

  public static BrokerKind selected() {
    return BrokerKind.parse(System.getProperty("broker", "shoal"));
  }

  /** Creates (does not start) a cluster of the selected kind. */
  public static BrokerUnderTest create(ClusterSpec spec) {
    return create(selected(), spec);
  }

  public static BrokerUnderTest create(BrokerKind kind, ClusterSpec spec) {
    return switch (kind) {
      case SHOAL -> new ShoalCluster(spec, Paths.get(System.getProperty("shoal.bin", "target/debug/shoal")));
      case KAFKA ->
          new KafkaCluster(
              spec,
              Paths.get(
                  System.getProperty(
                      "kafka.classpath.file", "tests/java/reference-kafka/target/kafka.classpath")));
    };
  }

  /** Creates and starts; closes everything if the start fails. */
  public static BrokerUnderTest start(ClusterSpec spec) {
    BrokerUnderTest broker = create(spec);
    try {
      broker.start();
      return broker;
    } catch (RuntimeException e) {
      broker.close();
      throw e;
    }
  }
}
