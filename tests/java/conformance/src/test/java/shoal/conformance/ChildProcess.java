package shoal.conformance;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * A Java main class of this module run in its own JVM (kafka-clients on its classpath), with its
 * output lines collected; {@link #kill()} is SIGKILL. Closing it kills it too.
 */
final class ChildProcess implements AutoCloseable {
  private final Process process;
  private final List<String> lines = new CopyOnWriteArrayList<>();

  private ChildProcess(Process process) {
    this.process = process;
    Thread reader =
        new Thread(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                  lines.add(line);
                }
              } catch (IOException e) {
                // The process is gone.
              }
            },
            "child-output");
    reader.setDaemon(true);
    reader.start();
  }

  /** This module's classes and its runtime dependencies, as Maven built them. */
  private static String classpath() {
    Path file = Paths.get("target", "runtime.classpath");
    try {
      return Paths.get("target", "classes").toAbsolutePath() + java.io.File.pathSeparator
          + Files.readString(file, StandardCharsets.UTF_8).trim();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file.toAbsolutePath() + " (run mvn package first)", e);
    }
  }

  /** This module's test classpath (test classes, Kafka Connect, MirrorMaker 2), as Maven resolved it. */
  private static String testClasspath() {
    Path file = Paths.get("target", "test.classpath");
    try {
      return Paths.get("target", "test-classes").toAbsolutePath() + java.io.File.pathSeparator
          + classpath() + java.io.File.pathSeparator
          + Files.readString(file, StandardCharsets.UTF_8).trim();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read " + file.toAbsolutePath() + " (run mvn test-compile first)", e);
    }
  }

  static ChildProcess start(String mainClass, String... args) {
    return launch(List.of("-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", classpath(), mainClass), args);
  }

  /**
   * A main class from the test classpath (e.g. Kafka Connect's {@code ConnectDistributed}), with
   * extra JVM options such as a larger heap or logging levels.
   */
  static ChildProcess startWithTestClasspath(List<String> jvmOptions, String mainClass, String... args) {
    List<String> head = new ArrayList<>(jvmOptions);
    head.addAll(List.of("-cp", testClasspath(), mainClass));
    return launch(head, args);
  }

  private static ChildProcess launch(List<String> head, String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
    cmd.addAll(head);
    cmd.addAll(List.of(args));
    try {
      return new ChildProcess(new ProcessBuilder(cmd).redirectErrorStream(true).start());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  List<String> lines() {
    return List.copyOf(lines);
  }

  /** The last output line starting with {@code prefix}, or null. */
  String last(String prefix) {
    String found = null;
    for (String l : lines) {
      if (l.startsWith(prefix)) {
        found = l;
      }
    }
    return found;
  }

  boolean alive() {
    return process.isAlive();
  }

  /** SIGKILL, and waits for the process to be gone. */
  void kill() {
    process.destroyForcibly();
    try {
      process.waitFor(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    if (process.isAlive()) {
      kill();
    }
  }
}
