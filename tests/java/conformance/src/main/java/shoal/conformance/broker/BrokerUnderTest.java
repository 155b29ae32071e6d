package shoal.conformance.broker;

import java.util.List;

/**
 * A running broker cluster that scenarios talk to through {@link #bootstrapServers()}. Either
 * Shoal or the reference Apache Kafka; scenarios never know which, except through {@link #kind()}
 * where the two are documented to differ.
 *
 * <p>Lifecycle operations act on every node; {@link #node(int)} gives per-node control for
 * multi-node scenarios. {@link #close()} stops every process and deletes every directory the
 * cluster created, and is safe to call more than once and after a failed start.
 */
public interface BrokerUnderTest extends AutoCloseable {
  /** Which broker this is. */
  BrokerKind kind();

  ClusterSpec spec();

  /** Comma-separated host:port of every node's client listener. */
  String bootstrapServers();

  List<? extends BrokerNode> nodes();

  default BrokerNode node(int nodeId) {
    for (BrokerNode n : nodes()) {
      if (n.nodeId() == nodeId) {
        return n;
      }
    }
    throw new IllegalArgumentException("no node " + nodeId + " in " + spec());
  }

  /** Starts every stopped node and waits until the cluster serves clients. */
  void start();

  /** Graceful stop of every node (SIGTERM, then waits for exit). */
  void stop();

  /** Abrupt stop of every node (SIGKILL). */
  void kill();

  /** Stop then start on the same data directories and ports. */
  default void restart() {
    stop();
    start();
  }

  @Override
  void close();
}
