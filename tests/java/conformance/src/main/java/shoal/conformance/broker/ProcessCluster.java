package shoal.conformance.broker;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.common.Node;

/**
 * The lifecycle shared by every process-based cluster: a temporary root directory, one node per
 * spec node, start = launch all then wait for all (a KRaft quorum needs its peers up to elect),
 * readiness = each node's port accepts and an Admin client sees every node in describeCluster.
 */
abstract class ProcessCluster<N extends ProcessNode> implements BrokerUnderTest {
  private final ClusterSpec spec;
  private final Path root;
  private final List<N> nodes = new ArrayList<>();
  private boolean closed;

  ProcessCluster(ClusterSpec spec, String dirPrefix) {
    this.spec = spec;
    try {
      this.root = Files.createTempDirectory(dirPrefix);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create a temporary directory", e);
    }
    DirectoryCleanup.register(this);
  }

  /** Called by subclass constructors once per spec node, in node id order. */
  protected void addNode(N node) {
    nodes.add(node);
  }

  Path root() {
    return root;
  }

  Path nodeDir(int nodeId) {
    Path dir = root.resolve("node-" + nodeId);
    try {
      Files.createDirectories(dir.resolve("data"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return dir;
  }

  @Override
  public ClusterSpec spec() {
    return spec;
  }

  @Override
  public List<N> nodes() {
    return List.copyOf(nodes);
  }

  @Override
  public String bootstrapServers() {
    return nodes.stream().map(ProcessNode::clientAddress).collect(Collectors.joining(","));
  }

  /** Hook run once before the very first launch (e.g. formatting KRaft storage). */
  void prepareFirstStart() {}

  private boolean prepared;

  @Override
  public synchronized void start() {
    if (closed) {
      throw new IllegalStateException("cluster is closed");
    }
    Deadline deadline = Deadline.in(spec.startTimeout());
    try {
      if (!prepared) {
        prepareFirstStart();
        prepared = true;
      }
      List<N> launched = new ArrayList<>();
      for (N node : nodes) {
        if (!node.isRunning()) {
          node.launch();
          launched.add(node);
        }
      }
      for (N node : launched) {
        node.awaitListening(deadline);
      }
      awaitClusterServes(deadline);
    } catch (RuntimeException e) {
      throw new IllegalStateException(
          kind().label() + " cluster did not start: " + e.getMessage() + "\n" + describeLogs(), e);
    }
  }

  /** Waits until an Admin client sees exactly the running nodes in describeCluster. */
  void awaitClusterServes(Deadline deadline) {
    // Nodes stopped on purpose (a multi-node scenario restarting one node) are not expected.
    List<N> running = nodes.stream().filter(ProcessNode::isRunning).toList();
    Set<Integer> expected =
        running.stream().map(ProcessNode::nodeId).collect(Collectors.toUnmodifiableSet());
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers());
    props.put(AdminClientConfig.CLIENT_ID_CONFIG, "harness-readiness");
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 5_000);
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 10_000);
    props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500);
    String[] lastSeen = {"nothing yet"};
    try (Admin admin = Admin.create(props)) {
      deadline.await(
          kind().label() + " to serve describeCluster with nodes " + expected,
          () -> {
            for (N node : running) {
              node.failIfExited("before the cluster was ready");
            }
            try {
              Collection<Node> seen =
                  admin
                      .describeCluster(new DescribeClusterOptions().timeoutMs(5_000))
                      .nodes()
                      .get(6, TimeUnit.SECONDS);
              Set<Integer> ids = seen.stream().map(Node::id).collect(Collectors.toSet());
              lastSeen[0] = "nodes " + ids;
              return ids.equals(expected);
            } catch (ExecutionException | TimeoutException e) {
              lastSeen[0] = e.toString();
              return false;
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              throw new IllegalStateException(e);
            }
          });
    } catch (IllegalStateException e) {
      throw new IllegalStateException(e.getMessage() + " (last answer: " + lastSeen[0] + ")", e);
    }
  }

  @Override
  public synchronized void stop() {
    for (N node : nodes) {
      node.stop();
    }
  }

  @Override
  public synchronized void kill() {
    for (N node : nodes) {
      node.kill();
    }
  }

  /** A short excerpt of every node's output, for failure messages. */
  public String describeLogs() {
    StringBuilder sb = new StringBuilder();
    for (N node : nodes) {
      sb.append("---- node ").append(node.nodeId()).append(" (").append(node.logFile()).append(")\n");
      sb.append(node.outputTail(30)).append('\n');
    }
    return sb.toString();
  }

  /**
   * Stops every process and deletes the directory tree. With -Dharness.keep=true the tree is
   * kept for inspection (its path is printed).
   */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    DirectoryCleanup.unregister(this);
    for (N node : nodes) {
      try {
        node.stop();
      } catch (RuntimeException e) {
        node.kill();
      }
    }
    if (Boolean.getBoolean("harness.keep")) {
      System.err.println("harness.keep: leaving " + root);
    } else {
      DirectoryCleanup.deleteTree(root);
    }
  }

  @Override
  public String toString() {
    return kind().label() + "-cluster{" + root + "}";
  }
}
