package shoal.conformance.broker;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What a scenario needs from the broker under test, independent of which broker it is: the number
 * of nodes, the rack of each node, and server properties using Apache Kafka's names. Only names
 * that both brokers understand belong here; launcher-specific settings (KRaft controller
 * listeners, internal topic replication) are added by each launcher.
 */
public final class ClusterSpec {
  private final int nodeCount;
  private final List<String> racks;
  private final Map<String, String> serverProperties;
  private final Duration startTimeout;

  private ClusterSpec(
      int nodeCount, List<String> racks, Map<String, String> serverProperties, Duration startTimeout) {
    if (nodeCount < 1) {
      throw new IllegalArgumentException("a cluster needs at least one node, got " + nodeCount);
    }
    if (!racks.isEmpty() && racks.size() != nodeCount) {
      throw new IllegalArgumentException(
          "racks must name one rack per node: " + racks.size() + " racks for " + nodeCount + " nodes");
    }
    this.nodeCount = nodeCount;
    this.racks = List.copyOf(racks);
    this.serverProperties = Collections.unmodifiableMap(new LinkedHashMap<>(serverProperties));
    this.startTimeout = Objects.requireNonNull(startTimeout);
  }

  /** One node, no rack, Kafka's defaults. */
  public static ClusterSpec singleNode() {
    return new ClusterSpec(1, List.of(), Map.of(), Duration.ofSeconds(90));
  }

  /** {@code nodeCount} nodes; node ids are 1..nodeCount. */
  public static ClusterSpec nodes(int nodeCount) {
    return new ClusterSpec(nodeCount, List.of(), Map.of(), Duration.ofSeconds(120));
  }

  /** Same spec with one more server property (Kafka's property name and value syntax). */
  public ClusterSpec with(String name, String value) {
    Map<String, String> props = new LinkedHashMap<>(serverProperties);
    props.put(name, value);
    return new ClusterSpec(nodeCount, racks, props, startTimeout);
  }

  /** Same spec with {@code broker.rack} set per node, in node id order. */
  public ClusterSpec withRacks(String... nodeRacks) {
    return new ClusterSpec(nodeCount, new ArrayList<>(List.of(nodeRacks)), serverProperties, startTimeout);
  }

  public ClusterSpec withStartTimeout(Duration timeout) {
    return new ClusterSpec(nodeCount, racks, serverProperties, timeout);
  }

  public int nodeCount() {
    return nodeCount;
  }

  /** Node ids, 1-based like a Kafka cluster's usual numbering. */
  public int nodeId(int index) {
    return index + 1;
  }

  /** The rack of the node at {@code index}, or null if racks are not set. */
  public String rack(int index) {
    return racks.isEmpty() ? null : racks.get(index);
  }

  public Map<String, String> serverProperties() {
    return serverProperties;
  }

  public Duration startTimeout() {
    return startTimeout;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof ClusterSpec other
        && nodeCount == other.nodeCount
        && racks.equals(other.racks)
        && serverProperties.equals(other.serverProperties)
        && startTimeout.equals(other.startTimeout);
  }

  @Override
  public int hashCode() {
    return Objects.hash(nodeCount, racks, serverProperties, startTimeout);
  }

  @Override
  public String toString() {
    return "ClusterSpec{nodes=" + nodeCount + ", racks=" + racks + ", props=" + serverProperties + "}";
  }
}
