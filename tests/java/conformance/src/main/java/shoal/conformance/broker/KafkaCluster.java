package shoal.conformance.broker;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.common.Uuid;

/**
 * The reference: Apache Kafka in KRaft mode, each node a combined broker+controller JVM
 * ({@code kafka.Kafka server.properties}) from the Maven Central jars listed in the classpath file
 * that tests/java/reference-kafka writes. Storage is formatted with Kafka's StorageTool. With N
 * nodes, all N are voters of a static quorum and {@code broker.rack} comes from the spec.
 */
public final class KafkaCluster extends ProcessCluster<KafkaCluster.KafkaNode> {
  private final String classpath;
  private final String clusterId = Uuid.randomUuid().toString();
  private final List<String> jvmOptions;

  public KafkaCluster(ClusterSpec spec, Path classpathFile) {
    super(spec, "kafka-reference-");
    this.classpath = readClasspath(classpathFile);
    this.jvmOptions = jvmOptions();
    List<int[]> ports = new ArrayList<>();
    for (int i = 0; i < spec.nodeCount(); i++) {
      ports.add(new int[] {FreePorts.take(), FreePorts.take()});
    }
    String voters =
        java.util.stream.IntStream.range(0, spec.nodeCount())
            .mapToObj(i -> spec.nodeId(i) + "@" + FreePorts.LOOPBACK + ":" + ports.get(i)[1])
            .collect(Collectors.joining(","));
    for (int i = 0; i < spec.nodeCount(); i++) {
      int id = spec.nodeId(i);
      addNode(new KafkaNode(id, nodeDir(id), ports.get(i)[0], ports.get(i)[1], voters, spec.rack(i)));
    }
  }

  @Override
  public BrokerKind kind() {
    return BrokerKind.KAFKA;
  }

  private static String readClasspath(Path file) {
    try {
      String cp = Files.readString(file, StandardCharsets.UTF_8).trim();
      if (cp.isEmpty()) {
        throw new IllegalStateException("empty Kafka classpath file " + file);
      }
      return cp;
    } catch (IOException e) {
      throw new UncheckedIOException(
          "cannot read the Kafka classpath file "
              + file
              + " (build it with: mvn -f tests/java/reference-kafka generate-resources)",
          e);
    }
  }

  private static List<String> jvmOptions() {
    String extra = System.getProperty("kafka.jvm.opts", "-Xms256m -Xmx1g");
    List<String> opts = new ArrayList<>(List.of(extra.trim().split("\\s+")));
    opts.add("-XX:+UseG1GC");
    opts.add("-Djava.awt.headless=true");
    return opts;
  }

  static String javaBinary() {
    return Paths.get(System.getProperty("java.home"), "bin", "java").toString();
  }

  /** Formats every node's log directory with Kafka's StorageTool (a separate JVM per node). */
  @Override
  void prepareFirstStart() {
    for (KafkaNode node : nodes()) {
      node.writeConfig();
      List<String> cmd = new ArrayList<>();
      cmd.add(javaBinary());
      cmd.addAll(node.commonJvmOptions());
      cmd.addAll(
          List.of(
              "-cp",
              classpath,
              "kafka.tools.StorageTool",
              "format",
              "--cluster-id",
              clusterId,
              "--config",
              node.configFile().toString()));
      runToCompletion(cmd, node.nodeDir(), node.nodeDir().resolve("format.log"), Duration.ofSeconds(60));
    }
  }

  private static void runToCompletion(List<String> cmd, Path dir, Path log, Duration timeout) {
    try {
      Process p =
          new ProcessBuilder(cmd)
              .directory(dir.toFile())
              .redirectErrorStream(true)
              .redirectOutput(log.toFile())
              .start();
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        p.destroyForcibly().waitFor();
        throw new IllegalStateException("timed out: " + String.join(" ", cmd.subList(cmd.size() - 6, cmd.size())));
      }
      if (p.exitValue() != 0) {
        throw new IllegalStateException(
            "StorageTool format failed with code " + p.exitValue() + ":\n" + ManagedProcess.tail(log, 30));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** One combined broker+controller node. */
  public final class KafkaNode extends ProcessNode {
    private final int clientPort;
    private final int controllerPort;
    private final String voters;
    private final String rack;

    KafkaNode(int nodeId, Path dir, int clientPort, int controllerPort, String voters, String rack) {
      super(nodeId, dir, "kafka-" + nodeId);
      this.clientPort = clientPort;
      this.controllerPort = controllerPort;
      this.voters = voters;
      this.rack = rack;
    }

    @Override
    int clientPort() {
      return clientPort;
    }

    public int controllerPort() {
      return controllerPort;
    }

    Path configFile() {
      return nodeDir().resolve("server.properties");
    }

    Map<String, String> serverProperties() {
      int n = spec().nodeCount();
      String internalRf = Integer.toString(Math.min(3, n));
      String internalMinIsr = Integer.toString(Math.min(2, n));
      Map<String, String> p = new LinkedHashMap<>();
      p.put("process.roles", "broker,controller");
      p.put("node.id", Integer.toString(nodeId()));
      p.put("controller.quorum.voters", voters);
      p.put(
          "listeners",
          "PLAINTEXT://" + FreePorts.LOOPBACK + ":" + clientPort + ",CONTROLLER://" + FreePorts.LOOPBACK + ":" + controllerPort);
      p.put("advertised.listeners", "PLAINTEXT://" + FreePorts.LOOPBACK + ":" + clientPort);
      p.put("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT");
      p.put("controller.listener.names", "CONTROLLER");
      p.put("inter.broker.listener.name", "PLAINTEXT");
      p.put("log.dirs", dataDir().toString());
      p.put("num.partitions", "1");
      p.put("default.replication.factor", "1");
      p.put("offsets.topic.replication.factor", internalRf);
      p.put("offsets.topic.num.partitions", "10");
      p.put("transaction.state.log.replication.factor", internalRf);
      p.put("transaction.state.log.min.isr", internalMinIsr);
      p.put("share.coordinator.state.topic.replication.factor", internalRf);
      p.put("share.coordinator.state.topic.min.isr", internalMinIsr);
      p.put("group.initial.rebalance.delay.ms", "0");
      if (rack != null) {
        p.put("broker.rack", rack);
      }
      p.putAll(spec().serverProperties());
      return p;
    }

    void writeConfig() {
      PropertiesFile.write(configFile(), serverProperties());
      try {
        Files.writeString(
            nodeDir().resolve("log4j2.properties"),
            String.join(
                "\n",
                "status = warn",
                "appender.out.type = Console",
                "appender.out.name = OUT",
                "appender.out.layout.type = PatternLayout",
                "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.out.ref = OUT",
                "logger.kafka.name = kafka.log",
                "logger.kafka.level = WARN",
                ""),
            StandardCharsets.UTF_8);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    List<String> commonJvmOptions() {
      List<String> o = new ArrayList<>(jvmOptions);
      o.add("-Dlog4j2.configurationFile=" + nodeDir().resolve("log4j2.properties").toUri());
      o.add("-Dkafka.logs.dir=" + nodeDir());
      return o;
    }

    @Override
    void beforeLaunch() {
      writeConfig();
    }

    @Override
    List<String> command() {
      List<String> cmd = new ArrayList<>();
      cmd.add(javaBinary());
      cmd.addAll(commonJvmOptions());
      cmd.addAll(List.of("-cp", classpath, "kafka.Kafka", configFile().toString()));
      return cmd;
    }

    @Override
    public void start() {
      launch();
      Deadline deadline = Deadline.in(spec().startTimeout());
      awaitListening(deadline);
      awaitClusterServes(deadline);
    }
  }
}
