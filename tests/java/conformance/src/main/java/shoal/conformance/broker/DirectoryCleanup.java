package shoal.conformance.broker;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * Deletes temporary trees, and closes every cluster still open when the JVM exits (a test that
 * failed half-way, Ctrl-C, SIGTERM to the launcher), so neither processes nor directories leak.
 */
public final class DirectoryCleanup {
  private static final Deque<AutoCloseable> OPEN = new ArrayDeque<>();

  static {
    Runtime.getRuntime()
        .addShutdownHook(new Thread(DirectoryCleanup::closeAllOpen, "broker-harness-cleanup"));
  }

  private DirectoryCleanup() {}

  static synchronized void register(AutoCloseable resource) {
    OPEN.push(resource);
  }

  static synchronized void unregister(AutoCloseable resource) {
    OPEN.remove(resource);
  }

  private static void closeAllOpen() {
    List<AutoCloseable> toClose;
    synchronized (DirectoryCleanup.class) {
      toClose = new ArrayList<>(OPEN);
      OPEN.clear();
    }
    for (AutoCloseable c : toClose) {
      try {
        c.close();
      } catch (Exception e) {
        System.err.println("cleanup of " + c + " failed: " + e);
      }
    }
  }

  /** Deletes {@code root} and everything below it; missing trees are fine. */
  public static void deleteTree(Path root) {
    if (root == null || !Files.exists(root)) {
      return;
    }
    try {
      Files.walkFileTree(
          root,
          new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
              Files.deleteIfExists(file);
              return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
              Files.deleteIfExists(dir);
              return FileVisitResult.CONTINUE;
            }
          });
    } catch (IOException e) {
      System.err.println("could not delete " + root + ": " + e);
    }
  }
}
