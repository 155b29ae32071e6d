package shoal.conformance;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * A TCP proxy on 127.0.0.1 in front of a broker, that can cut every connection through it at
 * once ({@link #cutAll}). The broker advertises the proxy's address, so that every client
 * connection (bootstrap and after Metadata) passes through it. The upstream address is asked for
 * when a connection arrives (the broker's port may be known only once it runs).
 */
final class CuttingProxy implements AutoCloseable {
  private final ServerSocket server;
  private volatile Supplier<String> upstream;
  private final Set<Socket> open = ConcurrentHashMap.newKeySet();
  private final AtomicInteger cut = new AtomicInteger();
  private volatile boolean closed;

  CuttingProxy() throws IOException {
    server = new ServerSocket();
    server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
    Thread acceptor = new Thread(this::acceptLoop, "cutting-proxy-accept");
    acceptor.setDaemon(true);
    acceptor.start();
  }

  int port() {
    return server.getLocalPort();
  }

  /** Where connections go ({@code host:port}). */
  void upstream(Supplier<String> address) {
    this.upstream = address;
  }

  /** Closes every connection through the proxy; returns how many it cut. */
  int cutAll() {
    int n = 0;
    for (Socket s : open) {
      if (open.remove(s)) {
        closeQuietly(s);
        n++;
      }
    }
    cut.addAndGet(n);
    return n;
  }

  /** Connections cut so far (each side counted once). */
  int cutCount() {
    return cut.get();
  }

  private void acceptLoop() {
    while (!closed) {
      Socket client;
      try {
        client = server.accept();
      } catch (IOException e) {
        return;
      }
      Thread t = new Thread(() -> connect(client), "cutting-proxy-connect");
      t.setDaemon(true);
      t.start();
    }
  }

  private void connect(Socket client) {
    Supplier<String> target = upstream;
    if (target == null) {
      closeQuietly(client);
      return;
    }
    String address = target.get();
    int colon = address.lastIndexOf(':');
    Socket server;
    try {
      server = new Socket();
      server.connect(new InetSocketAddress(address.substring(0, colon), Integer.parseInt(address.substring(colon + 1))), 5_000);
      client.setTcpNoDelay(true);
      server.setTcpNoDelay(true);
    } catch (IOException e) {
      closeQuietly(client);
      return;
    }
    // Registered as a pair: cutting closes the client side, and the pumps close the other.
    open.add(client);
    open.add(server);
    pump(client, server);
    pump(server, client);
  }

  private void pump(Socket from, Socket to) {
    Thread t =
        new Thread(
            () -> {
              byte[] buf = new byte[64 * 1024];
              try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) >= 0) {
                  out.write(buf, 0, n);
                  out.flush();
                }
              } catch (SocketException e) {
                // Cut or closed.
              } catch (IOException e) {
                // The other side went away.
              } finally {
                open.remove(from);
                open.remove(to);
                closeQuietly(from);
                closeQuietly(to);
              }
            },
            "cutting-proxy-pump");
    t.setDaemon(true);
    t.start();
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // Already closed.
    }
  }

  @Override
  public void close() {
    closed = true;
    closeQuietly(new Socket());
    try {
      server.close();
    } catch (IOException e) {
      // Already closed.
    }
    cutAll();
  }
}
