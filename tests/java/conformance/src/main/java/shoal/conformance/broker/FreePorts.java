package shoal.conformance.broker;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.HashSet;
import java.util.Set;

/**
 * Loopback ports for brokers, never handed out twice by this JVM, so nodes of one run cannot
 * collide with each other. They come from below the kernel's ephemeral range
 * ({@code net.ipv4.ip_local_port_range}, 32768-60999 by default): a port from there (what
 * binding port 0 gives) can be taken by some client's outgoing connection between a node's kill
 * and its restart on the same port, which then fails with "Address already in use".
 */
public final class FreePorts {
  public static final String LOOPBACK = "127.0.0.1";
  private static final int FIRST = 20_000;
  private static final int COUNT = 12_000;
  private static final Set<Integer> HANDED_OUT = new HashSet<>();
  /** Where this JVM starts looking: apart from other test processes running at the same time. */
  private static int next = (int) (ProcessHandle.current().pid() * 7919 % COUNT);

  private FreePorts() {}

  public static synchronized int take() {
    for (int attempt = 0; attempt < COUNT; attempt++) {
      int port = FIRST + next;
      next = (next + 1) % COUNT;
      if (HANDED_OUT.contains(port)) {
        continue;
      }
      try (ServerSocket socket = new ServerSocket()) {
        socket.setReuseAddress(false);
        socket.bind(new InetSocketAddress(InetAddress.getByName(LOOPBACK), port));
      } catch (IOException e) {
        continue; // in use
      }
      HANDED_OUT.add(port);
      return port;
    }
    throw new IllegalStateException("no free loopback port in " + FIRST + ".." + (FIRST + COUNT));
  }

  /** True if something accepts TCP connections on 127.0.0.1:port right now. */
  public static boolean accepting(int port) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(LOOPBACK, port), 500);
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
