package shoal.cluster;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.InvocationTargetException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * The entry point of the reference image ({@code scripts/cluster test --reference}): Apache Kafka
 * from the Maven Central jars of tests/java/reference-kafka, configured exactly like a Shoal
 * container, so that the compose files and the cluster test are proven against Kafka before
 * Shoal can run them.
 *
 * <p>{@code ReferenceKafka --config FILE}: reads FILE, applies {@code KAFKA_*} environment
 * variables as the apache/kafka image does (the same mapping as Shoal's), formats the first log
 * directory with Kafka's StorageTool if it has no {@code meta.properties} (cluster id from
 * {@code CLUSTER_ID}, as in the apache/kafka image), then runs {@code kafka.Kafka} in this JVM.
 * Kafka's jars are only on the runtime classpath; they are called reflectively.
 */
public final class ReferenceKafka {
  /** Variables the apache/kafka image reserves (JVM and logging options): never properties. */
  private static final Set<String> EXCLUDED =
      Set.of(
          "KAFKA_VERSION", "KAFKA_HEAP_OPT", "KAFKA_HEAP_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS",
          "KAFKA_JMX_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS",
          "KAFKA_LOG4J_ROOT_LOGLEVEL", "KAFKA_LOG4J_LOGGERS", "KAFKA_TOOLS_LOG4J_LOGLEVEL", "KAFKA_DEBUG");
  private static final String DEFAULT_CLUSTER_ID = "4L6g3nShT-eMCtK--X86sw";

  private ReferenceKafka() {}

  public static void main(String[] argv) throws Exception {
    if (argv.length != 2 || !argv[0].equals("--config")) {
      System.err.println("usage: ReferenceKafka --config FILE");
      System.exit(2);
    }
    Properties props = new Properties();
    try (InputStream in = Files.newInputStream(Path.of(argv[1]))) {
      props.load(in);
    }
    for (var e : new TreeMap<>(System.getenv()).entrySet()) {
      String name = e.getKey();
      if (name.startsWith("KAFKA") && name.length() > "KAFKA".length() + 1 && !EXCLUDED.contains(name)) {
        props.setProperty(convertKey(name.substring("KAFKA".length() + 1)), e.getValue());
      }
    }
    Path config = Files.createTempFile("server", ".properties");
    try (OutputStream out = Files.newOutputStream(config)) {
      props.store(out, "ReferenceKafka: " + argv[1] + " plus KAFKA_* variables");
    }

    Path logDir = Path.of(props.getProperty("log.dirs", props.getProperty("log.dir", "/tmp/kafka-logs")).split(",")[0].trim());
    if (!Files.exists(logDir.resolve("meta.properties"))) {
      String clusterId = System.getenv().getOrDefault("CLUSTER_ID", DEFAULT_CLUSTER_ID);
      format(config, clusterId);
    }
    try {
      Class.forName("kafka.Kafka").getMethod("main", String[].class).invoke(null, (Object) new String[] {config.toString()});
    } catch (InvocationTargetException e) {
      throw (e.getCause() instanceof Exception cause) ? cause : e;
    }
  }

  /** StorageTool exits its JVM when done, so it runs in a child JVM with the same classpath. */
  private static void format(Path config, String clusterId) throws IOException, InterruptedException {
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse(System.getProperty("java.home") + "/bin/java"));
    cmd.addAll(List.of("-XX:-UsePerfData", "-Xmx256m", "-cp", System.getProperty("java.class.path")));
    cmd.addAll(List.of("kafka.tools.StorageTool", "format", "--cluster-id", clusterId, "--config", config.toString()));
    Process p = new ProcessBuilder(cmd).inheritIO().start();
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new IllegalStateException("StorageTool format did not finish within 120s");
    }
    if (p.exitValue() != 0) {
      throw new IllegalStateException("StorageTool format failed with exit code " + p.exitValue());
    }
  }

  /**
   * The apache/kafka image's {@code ConvertKey}: every {@code _} between two other characters
   * (leftmost, non-overlapping) becomes {@code .}, then {@code ___} becomes {@code -} and
   * {@code __} becomes {@code _}, lowercased.
   */
  static String convertKey(String key) {
    StringBuilder single = new StringBuilder(key.length());
    int i = 0;
    while (i < key.length()) {
      if (i + 2 < key.length() && key.charAt(i) != '_' && key.charAt(i + 1) == '_' && key.charAt(i + 2) != '_') {
        single.append(key.charAt(i)).append('.').append(key.charAt(i + 2));
        i += 3;
      } else {
        single.append(key.charAt(i));
        i++;
      }
    }
    return single.toString().replace("___", "-").replace("__", "_").toLowerCase(java.util.Locale.ROOT);
  }
}
