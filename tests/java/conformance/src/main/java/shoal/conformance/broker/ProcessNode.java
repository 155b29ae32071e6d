package shoal.conformance.broker;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * A broker node that runs as a child process. Subclasses say how to launch it; this class owns
 * the lifecycle: launch, wait for the client port with a deadline (failing fast, with the log
 * tail, if the process dies), stop with SIGTERM and kill with SIGKILL.
 */
abstract class ProcessNode implements BrokerNode {
  static final Duration STOP_GRACE = Duration.ofSeconds(30);

  private final int nodeId;
  private final Path nodeDir;
  protected final ManagedProcess process;

  ProcessNode(int nodeId, Path nodeDir, String processName) {
    this.nodeId = nodeId;
    this.nodeDir = nodeDir;
    this.process = new ManagedProcess(processName, nodeDir.resolve("output.log"));
  }

  @Override
  public int nodeId() {
    return nodeId;
  }

  Path nodeDir() {
    return nodeDir;
  }

  @Override
  public Path dataDir() {
    return nodeDir.resolve("data");
  }

  @Override
  public Path logFile() {
    return nodeDir.resolve("output.log");
  }

  @Override
  public boolean isRunning() {
    return process.isAlive();
  }

  /** The client port, or 0 while it is not known yet (a broker asked to bind port 0). */
  abstract int clientPort();

  @Override
  public String clientAddress() {
    int port = clientPort();
    if (port == 0) {
      throw new IllegalStateException("node " + nodeId + " has not reported its port yet");
    }
    return FreePorts.LOOPBACK + ":" + port;
  }

  /** Command line, working directory and environment changes for one run. */
  abstract List<String> command();

  Map<String, String> environment() {
    return Map.of();
  }

  /** Called with every output line (from the output thread); must not block. */
  void onOutputLine(String line) {}

  /** Called before each launch, e.g. to write config files. */
  void beforeLaunch() {}

  /** Starts the process without waiting. */
  void launch() {
    beforeLaunch();
    process.start(command(), nodeDir, environment(), this::onOutputLine);
  }

  /** Waits until the node's client port accepts connections. */
  void awaitListening(Deadline deadline) {
    deadline.await(
        "node " + nodeId + " to listen",
        () -> {
          failIfExited("while starting");
          int port = clientPort();
          return port != 0 && FreePorts.accepting(port);
        });
  }

  void failIfExited(String when) {
    Integer code = process.exitCode();
    if (code != null) {
      throw new IllegalStateException(
          "node "
              + nodeId
              + " exited with code "
              + code
              + " "
              + when
              + "; last output ("
              + logFile()
              + "):\n"
              + process.tail(40));
    }
  }

  @Override
  public void start() {
    launch();
    awaitListening(Deadline.in(Duration.ofSeconds(60)));
  }

  @Override
  public void stop() {
    process.stop(STOP_GRACE);
  }

  @Override
  public void kill() {
    process.kill();
  }

  String outputTail(int lines) {
    return process.tail(lines);
  }

  @Override
  public String toString() {
    return getClass().getSimpleName() + "{id=" + nodeId + ", dir=" + nodeDir + "}";
  }
}
