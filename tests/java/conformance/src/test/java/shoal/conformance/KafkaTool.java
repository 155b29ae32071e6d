package shoal.conformance;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs one of Apache Kafka's command-line tools (kafka-tools jars) in its own JVM. */
final class KafkaTool {
  static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
  static final String CONFIGS = "kafka.admin.ConfigCommand";
  static final String CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
  static final String CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
  static final String GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell";
  static final String LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand";
  static final String LEADER_ELECTION = "org.apache.kafka.tools.LeaderElectionCommand";
  static final String CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

  private KafkaTool() {}

  record Result(int exitCode, String stdout, String stderr) {
    Result expectSuccess() {
      if (exitCode != 0) {
        throw new AssertionError("tool exited " + exitCode + "\nstdout:\n" + stdout + "\nstderr:\n" + stderr);
      }
      return this;
    }

    List<String> lines() {
      return stdout.lines().filter(l -> !l.isBlank()).toList();
    }
  }

  private static String classpath() {
    Path file = Paths.get(System.getProperty("kafka.classpath.file", "../reference-kafka/target/kafka.classpath"));
    try {
      return Files.readString(file, StandardCharsets.UTF_8).trim();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the Kafka tools classpath " + file, e);
    }
  }

  /**
   * JVM options for a class-data-sharing archive per tool: the first run of a tool dumps the
   * classes it loaded, later runs map them instead of loading them again (about half of a tool's
   * start-up). An archive that no longer matches the classpath is ignored by the JVM; logging is
   * off so that CDS warnings never mix with a tool's output.
   */
  private static List<String> classDataSharing(String mainClass) {
    Path dir = Paths.get(System.getProperty("kafka.tools.cds.dir", "target/kafka-tools-cds"));
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      return List.of();
    }
    Path archive = dir.resolve(mainClass + ".jsa");
    String option =
        Files.isRegularFile(archive) ? "-XX:SharedArchiveFile=" + archive : "-XX:ArchiveClassesAtExit=" + archive;
    return List.of("-Xlog:disable", "-Xlog:all=off", option);
  }

  static Result run(String mainClass, String stdin, String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
    cmd.addAll(List.of("-Xmx256m", "-XX:TieredStopAtLevel=1"));
    cmd.addAll(classDataSharing(mainClass));
    cmd.addAll(List.of("-cp", classpath(), mainClass));
    cmd.addAll(List.of(args));
    try {
      Path out = Files.createTempFile("kafka-tool-", ".out");
      Path err = Files.createTempFile("kafka-tool-", ".err");
      try {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile());
        pb.environment().keySet().removeIf(k -> k.startsWith("KAFKA_"));
        Process p = pb.start();
        try (var in = p.getOutputStream()) {
          if (stdin != null) {
            in.write(stdin.getBytes(StandardCharsets.UTF_8));
          }
        }
        if (!p.waitFor(90, TimeUnit.SECONDS)) {
          p.destroyForcibly().waitFor();
          throw new AssertionError("tool did not finish in 90s: " + String.join(" ", args));
        }
        return new Result(
            p.exitValue(), Files.readString(out, StandardCharsets.UTF_8), Files.readString(err, StandardCharsets.UTF_8));
      } finally {
        Files.deleteIfExists(out);
        Files.deleteIfExists(err);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
