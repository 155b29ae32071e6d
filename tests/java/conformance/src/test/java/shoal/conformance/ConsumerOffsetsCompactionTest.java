package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/**
 * {@code __consumer_offsets} is compacted: repeated commits of one partition's offset shrink to
 * the latest ones, and the group coordinator loads the compacted topic after a restart with the
 * last committed offset. Segments roll after 200 ms (log.roll.ms) and the cleaner runs every
 * 500 ms; every wait has a deadline.
 */
@Tag("compaction")
@Tag("groups")
class ConsumerOffsetsCompactionTest {
  @RegisterExtension
  static final BrokerExtension BROKER =
      BrokerExtension.dedicated(
          Specs.GROUPS
              .with("offsets.topic.num.partitions", "1")
              .with("log.roll.ms", "200")
              .with("log.cleaner.backoff.ms", "500"));

  private static final int COMMITS = 20;

  /** Records of partition 0 of __consumer_offsets whose key mentions {@code group}. */
  private static int recordsOf(String group) {
    TopicPartition tp = new TopicPartition("__consumer_offsets", 0);
    byte[] needle = group.getBytes(StandardCharsets.UTF_8);
    int count = 0;
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      consumer.assign(List.of(tp));
      consumer.seekToBeginning(List.of(tp));
      long end = Clients.endOffset(consumer, tp);
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (consumer.position(tp) < end && !deadline.expired()) {
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
          if (r.key() != null && contains(r.key(), needle)) {
            count++;
          }
        }
      }
    }
    return count;
  }

  private static boolean contains(byte[] haystack, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= haystack.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (haystack[i + j] != needle[j]) {
          continue outer;
        }
      }
      return true;
    }
    return false;
  }

  @Test
  void repeated_commits_are_compacted_and_the_latest_offset_survives_a_restart() {
    String topic = Clients.topicName("offsets-compaction");
    String group = Clients.topicName("offsets-compaction-group");
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), GroupOffsetsTest.groupConfig(group))) {
      consumer.assign(List.of(tp));
      // Rounds of four commits, each round in its own segment, and the last commit alone in
      // the active segment (which is never cleaned).
      for (int i = 1; i <= COMMITS; i++) {
        if (i > 1 && (i % 4 == 1 || i == COMMITS)) {
          long since = System.currentTimeMillis();
          Deadline.awaitWithin(Duration.ofSeconds(5), "log.roll.ms to pass", () -> System.currentTimeMillis() > since + 400);
        }
        consumer.commitSync(Map.of(tp, new OffsetAndMetadata(i)));
      }
    }
    // The latest commit of the cleaned segments and the one in the active segment remain (plus
    // at most one group record the coordinator may keep for the group).
    Deadline.awaitWithin(
        Duration.ofSeconds(90),
        "the commits of " + group + " to be compacted",
        () -> recordsOf(group) <= 3);

    BROKER.resetAdmin();
    BROKER.broker().restart();
    Map<TopicPartition, OffsetAndMetadata> committed =
        Clients.get(BROKER.admin().listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    assertEquals(COMMITS, committed.get(tp).offset());
  }
}
