package shoal.conformance.broker;

import java.nio.file.Path;

/** One broker process of a cluster, with its own lifecycle. */
public interface BrokerNode {
  int nodeId();

  /** Host and port of the client (PLAINTEXT) listener. Fixed for the node's lifetime. */
  String clientAddress();

  /** The node's data directory (kept across stop/start, deleted by the cluster's close). */
  Path dataDir();

  /** The file that collects the process's stdout and stderr. */
  Path logFile();

  boolean isRunning();

  /** Starts the process if stopped and waits until its listener accepts connections. */
  void start();

  /** SIGTERM, then waits for exit; SIGKILL if the process does not exit in time. */
  void stop();

  /** SIGKILL and waits for exit. */
  void kill();
}
