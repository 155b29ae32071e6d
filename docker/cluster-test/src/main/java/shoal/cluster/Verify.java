package shoal.cluster;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * {@code verify --topic T1,T2 --acked F1,F2 [--client-rack R]}: reads every partition of each
 * topic from the start to its end offset and checks, for the acknowledgement log Fi of topic Ti,
 * that each acknowledged record is there exactly once, at the partition and offset its
 * acknowledgement named, with its value intact. A record that was sent but never acknowledged
 * may be present (the broker wrote it, the response was lost) but not twice: the producer sent
 * it once.
 */
final class Verify {
  /** Reading fails when no partition advanced for this long. */
  private static final Duration STALL_TIMEOUT = Duration.ofSeconds(60);

  private Verify() {}

  record Location(String topic, int partition, long offset) {
    @Override
    public String toString() {
      return topic + "-" + partition + "@" + offset;
    }
  }

  static int run(Args args) throws Exception {
    List<String> topics = args.list("topic");
    List<String> ackedFiles = args.list("acked");
    if (topics.size() != ackedFiles.size()) {
      throw new Args.UsageException("--topic and --acked need the same number of items");
    }
    String clientRack = args.optional("client-rack", null);

    Map<String, Location> acked = new HashMap<>();
    for (int i = 0; i < topics.size(); i++) {
      readAcks(topics.get(i), Path.of(ackedFiles.get(i)), acked);
    }

    List<TopicPartition> partitions = new ArrayList<>();
    try (Admin admin = KafkaClients.admin(args.bootstrap())) {
      var described = admin.describeTopics(topics).allTopicNames().get(KafkaClients.OP_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      described.forEach((t, d) -> d.partitions().forEach(p -> partitions.add(new TopicPartition(t, p.partition()))));
    }

    Map<String, Location> found = new HashMap<>();
    List<String> problems = new ArrayList<>();
    long duplicates = 0;
    long corrupt = 0;
    long read = 0;
    try (KafkaConsumer<byte[], byte[]> consumer = KafkaClients.consumer(args.bootstrap(), clientRack)) {
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions, KafkaClients.OP_TIMEOUT);
      long lastProgress = System.nanoTime();
      while (!caughtUp(consumer, end)) {
        if (System.nanoTime() - lastProgress > STALL_TIMEOUT.toNanos()) {
          throw new CheckFailed("reading stalled for " + STALL_TIMEOUT.toSeconds() + "s before the end offsets " + end);
        }
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          lastProgress = System.nanoTime();
          if (r.offset() >= end.get(new TopicPartition(r.topic(), r.partition()))) {
            continue;
          }
          read++;
          String key = r.key() == null ? "<null>" : new String(r.key(), StandardCharsets.UTF_8);
          Location at = new Location(r.topic(), r.partition(), r.offset());
          String value = r.value() == null ? "" : new String(r.value(), StandardCharsets.UTF_8);
          if (!value.startsWith(key + "|")) {
            corrupt++;
            note(problems, "record at " + at + " with key " + key + " has a foreign value");
          }
          Location before = found.putIfAbsent(key, at);
          if (before != null) {
            duplicates++;
            note(problems, "key " + key + " at " + before + " and again at " + at);
          }
        }
      }
    }

    long missing = 0;
    long misplaced = 0;
    for (var e : acked.entrySet()) {
      Location at = found.get(e.getKey());
      if (at == null) {
        missing++;
        note(problems, "acknowledged " + e.getKey() + " at " + e.getValue() + " is missing");
      } else if (!at.equals(e.getValue())) {
        misplaced++;
        note(problems, "acknowledged " + e.getKey() + " at " + e.getValue() + " was read at " + at);
      }
    }
    long unacked = found.keySet().stream().filter(k -> !acked.containsKey(k)).count();
    System.out.printf(
        "verify: %s%s: read=%d acknowledged=%d missing=%d misplaced=%d duplicates=%d corrupt=%d present-but-unacknowledged=%d%n",
        String.join(",", topics), clientRack == null ? "" : " (client.rack=" + clientRack + ")",
        read, acked.size(), missing, misplaced, duplicates, corrupt, unacked);
    problems.forEach(p -> System.out.println("verify:   " + p));
    if (missing + misplaced + duplicates + corrupt > 0) {
      throw new CheckFailed("acknowledged records lost, moved, duplicated or corrupted (see above)");
    }
    if (acked.isEmpty()) {
      throw new CheckFailed("no acknowledged record to verify");
    }
    return 0;
  }

  private static void readAcks(String topic, Path file, Map<String, Location> into) throws IOException {
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      if (line.isBlank()) {
        continue;
      }
      String[] f = line.trim().split(" ");
      if (f.length != 3) {
        throw new CheckFailed(file + ": malformed acknowledgement line '" + line + "'");
      }
      Location at = new Location(topic, Integer.parseInt(f[1]), Long.parseLong(f[2]));
      Location before = into.put(f[0], at);
      if (before != null) {
        throw new CheckFailed(file + ": " + f[0] + " acknowledged twice, at " + before + " and " + at);
      }
    }
  }

  private static boolean caughtUp(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> end) {
    for (var e : end.entrySet()) {
      if (consumer.position(e.getKey(), KafkaClients.OP_TIMEOUT) < e.getValue()) {
        return false;
      }
    }
    return true;
  }

  /** The first problems in full; the counts above tell how many there were. */
  private static void note(List<String> problems, String problem) {
    if (problems.size() < 20) {
      problems.add(problem);
    }
  }
}
