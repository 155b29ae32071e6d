package shoal.cluster;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * {@code produce --topic T --id NAME --acked FILE --stop-file FILE [--rate N] [--max-seconds N]
 * [--compression none|gzip|snappy|lz4|zstd] [--idempotent]}:
 * acks=all load at a fixed rate while the script kills, restarts and disconnects brokers. Every
 * acknowledged record is appended to FILE as {@code key partition offset} (flushed within 200 ms,
 * so the script can watch the count grow again after a fault). Keys are {@code NAME-<seq>},
 * unique across the run. The broker decompresses every batch to validate it, so lz4 and zstd
 * batches run the C code linked into its static binary. Stops when the stop file appears or after {@code --max-seconds}, so it
 * ends by itself even if the script dies.
 */
final class Produce {
  private static final int VALUE_PAD_BYTES = 100;
  private static final long FLUSH_INTERVAL_MS = 200;

  private Produce() {}

  /** Counts an error by type and keeps the first message of each type, causes included. */
  private static void countError(
      Throwable error, AtomicLong failed, Map<String, AtomicLong> errors, Map<String, String> firstErrors) {
    failed.incrementAndGet();
    String type = error.getClass().getSimpleName();
    errors.computeIfAbsent(type, k -> new AtomicLong()).incrementAndGet();
    firstErrors.computeIfAbsent(
        type,
        k -> {
          StringBuilder m = new StringBuilder(String.valueOf(error.getMessage()));
          for (Throwable c = error.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            m.append(" <- ").append(c);
          }
          return m.toString();
        });
  }

  static int run(Args args) throws Exception {
    String topic = args.required("topic");
    String id = args.required("id");
    Path ackedFile = Path.of(args.required("acked"));
    Path stopFile = Path.of(args.required("stop-file"));
    long rate = args.number("rate", 200);
    long maxSeconds = args.number("max-seconds", 600);
    boolean idempotent = args.flag("idempotent");
    String compression = args.optional("compression", "none");

    AtomicLong acked = new AtomicLong();
    AtomicLong failed = new AtomicLong();
    Map<String, AtomicLong> errors = new ConcurrentHashMap<>();
    Map<String, String> firstErrors = new ConcurrentHashMap<>();
    long sent = 0;
    long start = System.nanoTime();
    long deadline = start + Duration.ofSeconds(maxSeconds).toNanos();
    String stoppedBy = "max-seconds";
    try (BufferedWriter out = Files.newBufferedWriter(ackedFile, StandardCharsets.UTF_8);
        KafkaProducer<byte[], byte[]> producer = KafkaClients.producer(args.bootstrap(), "producer-" + id, idempotent, compression)) {
      long lastFlush = System.nanoTime();
      while (System.nanoTime() < deadline) {
        if (Files.exists(stopFile)) {
          stoppedBy = "stop file";
          break;
        }
        String key = String.format("%s-%09d", id, sent);
        byte[] value = (key + "|" + "x".repeat(VALUE_PAD_BYTES)).getBytes(StandardCharsets.UTF_8);
        sent++;
        try {
          producer.send(
              new ProducerRecord<>(topic, key.getBytes(StandardCharsets.UTF_8), value),
              (metadata, error) -> {
                if (error != null) {
                  countError(error, failed, errors, firstErrors);
                  return;
                }
                acked.incrementAndGet();
                synchronized (out) {
                  try {
                    out.write(key + " " + metadata.partition() + " " + metadata.offset() + "\n");
                  } catch (IOException e) {
                    throw new IllegalStateException("cannot log an acknowledgement", e);
                  }
                }
              });
        } catch (RuntimeException e) {
          // send() itself throws for some errors (e.g. serialization); count like callback errors.
          countError(e, failed, errors, firstErrors);
        }
        long now = System.nanoTime();
        if (now - lastFlush > FLUSH_INTERVAL_MS * 1_000_000) {
          synchronized (out) {
            out.flush();
          }
          lastFlush = now;
        }
        long due = start + sent * 1_000_000_000L / rate;
        if (due > now) {
          Thread.sleep((due - now) / 1_000_000, (int) ((due - now) % 1_000_000));
        }
      }
      producer.flush();
      producer.close(Duration.ofSeconds(20));
      synchronized (out) {
        out.flush();
      }
    }
    System.out.printf(
        "produce: %s (%s) stopped by %s after %.1fs: sent=%d acked=%d failed=%d errors=%s%n",
        id, compression, stoppedBy, (System.nanoTime() - start) / 1e9, sent, acked.get(), failed.get(), new TreeMap<>(errors));
    firstErrors.forEach((type, message) -> System.out.println("produce:   first " + type + ": " + message));
    if (acked.get() + failed.get() != sent) {
      throw new CheckFailed(sent - acked.get() - failed.get() + " records neither acknowledged nor failed");
    }
    if (acked.get() == 0) {
      throw new CheckFailed("no record was acknowledged");
    }
    return 0;
  }
}
