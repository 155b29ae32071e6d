package shoal.conformance.broker;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.CountDownLatch;

/**
 * Command-line launcher, so that scripts and non-Java suites reuse the same broker lifecycle:
 *
 * <pre>
 * java -cp ... shoal.conformance.broker.BrokerMain --broker kafka|shoal [--nodes N]
 *     [--racks r1,r2,...] [--prop name=value]... [--bootstrap-file FILE]
 * </pre>
 *
 * Starts the cluster, writes its bootstrap servers to FILE (atomically) and to stdout as
 * {@code BOOTSTRAP <servers>}, then runs until SIGTERM/SIGINT, when it stops the brokers and
 * deletes their directories. Exits 1 if the cluster cannot start. System properties such as
 * {@code shoal.bin} and {@code kafka.classpath.file} work as in the JUnit suites.
 */
public final class BrokerMain {
  private BrokerMain() {}

  public static void main(String[] args) throws Exception {
    // The readiness probe's Admin client is chatty at INFO; keep the launcher's output to the point.
    if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
      System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    }
    BrokerKind kind = Brokers.selected();
    ClusterSpec spec = ClusterSpec.singleNode();
    int nodes = 1;
    String[] racks = null;
    Path bootstrapFile = null;
    java.util.Map<String, String> props = new java.util.LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      String v = i + 1 < args.length ? args[i + 1] : null;
      switch (a) {
        case "--broker" -> kind = BrokerKind.parse(require(a, v));
        case "--nodes" -> nodes = Integer.parseInt(require(a, v));
        case "--racks" -> racks = require(a, v).split(",");
        case "--prop" -> {
          String kv = require(a, v);
          int eq = kv.indexOf('=');
          if (eq <= 0) {
            usage("--prop needs name=value, got " + kv);
          }
          props.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        case "--bootstrap-file" -> bootstrapFile = Paths.get(require(a, v));
        case "--shoal-bin" -> System.setProperty("shoal.bin", require(a, v));
        case "--kafka-classpath-file" -> System.setProperty("kafka.classpath.file", require(a, v));
        case "-h", "--help" -> usage(null);
        default -> usage("unknown argument " + a);
      }
      i++;
    }
    if (nodes != 1) {
      spec = ClusterSpec.nodes(nodes);
    }
    if (racks != null) {
      spec = spec.withRacks(racks);
    }
    for (var e : props.entrySet()) {
      spec = spec.with(e.getKey(), e.getValue());
    }

    BrokerUnderTest broker;
    try {
      broker = Brokers.create(kind, spec);
    } catch (RuntimeException e) {
      System.err.println("cannot create the " + kind.label() + " broker: " + e.getMessage());
      System.exit(1);
      return;
    }
    CountDownLatch stopped = new CountDownLatch(1);
    BrokerUnderTest running = broker;
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  running.close();
                  stopped.countDown();
                },
                "broker-main-shutdown"));
    try {
      broker.start();
    } catch (RuntimeException e) {
      System.err.println(e.getMessage());
      broker.close();
      System.exit(1);
      return;
    }
    String bootstrap = broker.bootstrapServers();
    if (bootstrapFile != null) {
      Path tmp = bootstrapFile.resolveSibling(bootstrapFile.getFileName() + ".tmp");
      Files.writeString(tmp, bootstrap + "\n", StandardCharsets.UTF_8);
      Files.move(tmp, bootstrapFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
    System.out.println("BOOTSTRAP " + bootstrap);
    System.out.flush();
    stopped.await();
  }

  private static String require(String flag, String value) {
    if (value == null) {
      usage(flag + " needs a value");
    }
    return value;
  }

  private static void usage(String error) {
    if (error != null) {
      System.err.println("error: " + error);
    }
    System.err.println(
        "usage: BrokerMain --broker kafka|shoal [--nodes N] [--racks r1,r2,...] "
            + "[--prop name=value]... [--bootstrap-file FILE] [--shoal-bin PATH] [--kafka-classpath-file PATH]");
    System.exit(error == null ? 0 : 2);
  }

}
