package shoal.conformance.broker;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * One child process whose stdout and stderr are appended to a log file (kept across restarts, so
 * a failure report shows every run). Stopping escalates from SIGTERM to SIGKILL, and descendants
 * are killed too, so no stray process outlives the harness.
 */
final class ManagedProcess {
  private final String name;
  private final Path logFile;
  private Process process;
  private Thread pump;
  private int runs;

  ManagedProcess(String name, Path logFile) {
    this.name = name;
    this.logFile = logFile;
  }

  /**
   * Starts {@code command}; every output line is written to the log and given to {@code onLine}
   * (which must not block).
   */
  synchronized void start(
      List<String> command, Path workDir, Map<String, String> envChanges, Consumer<String> onLine) {
    if (isAlive()) {
      throw new IllegalStateException(name + " is already running");
    }
    runs++;
    ProcessBuilder pb = new ProcessBuilder(command).directory(workDir.toFile()).redirectErrorStream(true);
    Map<String, String> env = pb.environment();
    envChanges.forEach(
        (k, v) -> {
          if (v == null) {
            env.remove(k);
          } else {
            env.put(k, v);
          }
        });
    // Variables such as KAFKA_HEAP_OPTS or KAFKA_LOG_DIRS would silently change either broker.
    env.keySet().removeIf(k -> k.startsWith("KAFKA_") && !envChanges.containsKey(k));
    try {
      Files.createDirectories(logFile.getParent());
      try (Writer w =
          Files.newBufferedWriter(
              logFile, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
        w.write("==== run " + runs + " at " + Instant.now() + ": " + String.join(" ", command) + "\n");
      }
      process = pb.start();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot start " + name + ": " + command, e);
    }
    Process p = process;
    pump = new Thread(() -> pumpOutput(p, onLine), name + "-output");
    pump.setDaemon(true);
    pump.start();
  }

  private void pumpOutput(Process p, Consumer<String> onLine) {
    try (BufferedReader r =
            new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        Writer w =
            Files.newBufferedWriter(
                logFile, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
      String line;
      while ((line = r.readLine()) != null) {
        w.write(line);
        w.write('\n');
        w.flush();
        onLine.accept(line);
      }
    } catch (IOException e) {
      // The process closed its output (it exited or was killed); nothing more to copy.
    }
  }

  synchronized boolean isAlive() {
    return process != null && process.isAlive();
  }

  /** Exit code if the process has exited, else null. */
  synchronized Integer exitCode() {
    if (process == null || process.isAlive()) {
      return null;
    }
    return process.exitValue();
  }

  synchronized long pid() {
    return process == null ? -1 : process.pid();
  }

  /** SIGTERM and wait up to {@code grace}; SIGKILL if still alive. Returns the exit code. */
  synchronized Integer stop(Duration grace) {
    if (process == null) {
      return null;
    }
    if (process.isAlive()) {
      process.destroy();
      try {
        if (!process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
          appendNote("did not exit within " + grace + " of SIGTERM; sending SIGKILL");
          killNow();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        killNow();
      }
    }
    process.descendants().forEach(ProcessHandle::destroyForcibly);
    joinPump();
    return process.exitValue();
  }

  /** SIGKILL (the process and its descendants) and wait for exit. */
  synchronized void kill() {
    if (process == null) {
      return;
    }
    killNow();
    joinPump();
  }

  private void killNow() {
    process.descendants().forEach(ProcessHandle::destroyForcibly);
    process.destroyForcibly();
    boolean interrupted = false;
    while (true) {
      try {
        process.waitFor();
        break;
      } catch (InterruptedException e) {
        interrupted = true;
      }
    }
    if (interrupted) {
      Thread.currentThread().interrupt();
    }
  }

  private void joinPump() {
    if (pump != null) {
      try {
        pump.join(5_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void appendNote(String note) {
    try {
      Files.writeString(
          logFile,
          "==== harness: " + note + "\n",
          StandardCharsets.UTF_8,
          StandardOpenOption.CREATE,
          StandardOpenOption.APPEND);
    } catch (IOException ignored) {
      // Only a diagnostic note.
    }
  }

  /** The last {@code lines} lines of the log, for failure messages. */
  String tail(int lines) {
    return tail(logFile, lines);
  }

  static String tail(Path file, int lines) {
    if (!Files.exists(file)) {
      return "(no output)";
    }
    Deque<String> last = new ArrayDeque<>();
    try (BufferedReader r =
        new BufferedReader(new InputStreamReader(Files.newInputStream(file), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        last.addLast(line);
        if (last.size() > lines) {
          last.removeFirst();
        }
      }
    } catch (IOException e) {
      return "(cannot read " + file + ": " + e + ")";
    }
    return String.join("\n", last);
  }
}
