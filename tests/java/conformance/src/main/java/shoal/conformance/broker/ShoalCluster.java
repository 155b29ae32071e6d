package shoal.conformance.broker;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Shoal under test: the {@code shoal} binary with {@code --config server.properties} (Kafka's
 * property names) in a temporary directory, on a loopback port.
 *
 * <p>Two ways to get the port, chosen with {@code -Dshoal.listen}:
 *
 * <ul>
 *   <li>{@code port0} (default): {@code listeners=PLAINTEXT://127.0.0.1:0}; the kernel picks the
 *       port, so nothing can take it between choosing and binding. The port is read from the
 *       broker's readiness line (the first output line matching {@code -Dshoal.ready.regex},
 *       whose last group is the port), and restarts reuse it explicitly.
 *   <li>{@code free-port}: the harness picks a free port and writes it in {@code listeners} and
 *       {@code advertised.listeners}.
 * </ul>
 *
 * <p>With more than one node, every node is broker and controller of one cluster, configured as a
 * KRaft combined-mode cluster: {@code controller.quorum.voters} lists every node's {@code
 * CONTROLLER} listener on a free loopback port, and client ports are free ports chosen up front
 * (all nodes start together: a node waits for a quorum before it serves).
 */
public final class ShoalCluster extends ProcessCluster<ShoalCluster.ShoalNode> {
  /** A line announcing the bound client address, e.g. "listening on 127.0.0.1:40123". */
  static final String DEFAULT_READY_REGEX =
      "(?i)(?:listening|ready|started|serving|bound).*?(?:127\\.0\\.0\\.1|localhost):(\\d+)";

  private final Path binary;
  private final boolean portZero;
  private final Pattern readyPattern;

  public ShoalCluster(ClusterSpec spec, Path binary) {
    super(spec, "shoal-under-test-");
    if (!Files.isExecutable(binary)) {
      close();
      throw new IllegalStateException(
          "no shoal binary at " + binary + " (build it with cargo build -p shoal-broker, or set -Dshoal.bin)");
    }
    this.binary = binary;
    String mode = System.getProperty("shoal.listen", "port0");
    this.portZero = switch (mode) {
      case "free-port" -> false;
      case "port0" -> true;
      default -> {
        close();
        throw new IllegalArgumentException("shoal.listen must be free-port or port0, got " + mode);
      }
    };
    this.readyPattern = Pattern.compile(System.getProperty("shoal.ready.regex", DEFAULT_READY_REGEX));
    if (spec.nodeCount() == 1) {
      int id = spec.nodeId(0);
      addNode(new ShoalNode(id, nodeDir(id), portZero ? 0 : FreePorts.take(), 0, null, spec.rack(0)));
      return;
    }
    List<int[]> ports = new ArrayList<>();
    for (int i = 0; i < spec.nodeCount(); i++) {
      ports.add(new int[] {FreePorts.take(), FreePorts.take()});
    }
    StringBuilder voters = new StringBuilder();
    for (int i = 0; i < spec.nodeCount(); i++) {
      if (i > 0) {
        voters.append(',');
      }
      voters.append(spec.nodeId(i)).append('@').append(FreePorts.LOOPBACK).append(':').append(ports.get(i)[1]);
    }
    for (int i = 0; i < spec.nodeCount(); i++) {
      int id = spec.nodeId(i);
      addNode(new ShoalNode(id, nodeDir(id), ports.get(i)[0], ports.get(i)[1], voters.toString(), spec.rack(i)));
    }
  }

  @Override
  public BrokerKind kind() {
    return BrokerKind.SHOAL;
  }

  /** One Shoal process. */
  public final class ShoalNode extends ProcessNode {
    private volatile int clientPort;
    private final int controllerPort;
    private final String voters;
    private final String rack;

    ShoalNode(int nodeId, Path dir, int clientPort, int controllerPort, String voters, String rack) {
      super(nodeId, dir, "shoal-" + nodeId);
      this.clientPort = clientPort;
      this.controllerPort = controllerPort;
      this.voters = voters;
      this.rack = rack;
    }

    @Override
    int clientPort() {
      return clientPort;
    }

    Path configFile() {
      return nodeDir().resolve("server.properties");
    }

    @Override
    void beforeLaunch() {
      Map<String, String> p = new LinkedHashMap<>();
      p.put("node.id", Integer.toString(nodeId()));
      p.put("listeners", "PLAINTEXT://" + FreePorts.LOOPBACK + ":" + clientPort);
      if (voters != null) {
        int n = spec().nodeCount();
        p.put("process.roles", "broker,controller");
        p.put("controller.quorum.voters", voters);
        p.put("controller.listener.names", "CONTROLLER");
        p.put(
            "listeners",
            "PLAINTEXT://" + FreePorts.LOOPBACK + ":" + clientPort + ",CONTROLLER://" + FreePorts.LOOPBACK + ":" + controllerPort);
        p.put("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT");
        p.put("offsets.topic.replication.factor", Integer.toString(Math.min(3, n)));
        p.put("offsets.topic.num.partitions", "10");
        p.put("group.initial.rebalance.delay.ms", "0");
        // Failures are detected within seconds, as the scenarios' deadlines expect.
        p.put("broker.session.timeout.ms", "4000");
        p.put("broker.heartbeat.interval.ms", "500");
      }
      if (clientPort != 0) {
        p.put("advertised.listeners", "PLAINTEXT://" + FreePorts.LOOPBACK + ":" + clientPort);
      }
      p.put("log.dirs", dataDir().toString());
      if (rack != null) {
        p.put("broker.rack", rack);
      }
      p.putAll(spec().serverProperties());
      PropertiesFile.write(configFile(), p);
    }

    @Override
    void onOutputLine(String line) {
      if (clientPort == 0) {
        Matcher m = readyPattern.matcher(line);
        if (m.find()) {
          clientPort = Integer.parseInt(m.group(m.groupCount()));
        }
      }
    }

    @Override
    List<String> command() {
      return List.of(binary.toString(), "--config", configFile().toString());
    }

    @Override
    Map<String, String> environment() {
      // Where the broker appends the (API, version) pairs it served when it stops (see
      // tests/README.md); otherwise SHOAL_API_COVERAGE_FILE is inherited from the environment.
      String coverage = System.getProperty("shoal.api.coverage.file", "");
      return coverage.isEmpty()
          ? Map.of("RUST_BACKTRACE", "1")
          : Map.of("RUST_BACKTRACE", "1", "SHOAL_API_COVERAGE_FILE", Paths.get(coverage).toAbsolutePath().toString());
    }
  }
}
