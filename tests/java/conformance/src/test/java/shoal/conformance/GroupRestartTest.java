package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/**
 * Committed offsets and group state survive broker restarts: after a graceful stop (SIGTERM) and
 * after a crash (SIGKILL), a member of the group resumes from the committed offsets, so that
 * across all members every record is consumed exactly once.
 */
@Tag("groups")
class GroupRestartTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.dedicated(Specs.GROUPS);

  private static final int PARTITIONS = 3;

  /** Consumes until {@code count} records arrived, committing each poll with commitSync. */
  private static void consumeAndCommit(String topic, String group, int count, TreeSet<String> seen) {
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), GroupOffsetsTest.groupConfig(group))) {
      consumer.subscribe(List.of(topic));
      int got = 0;
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (got < count && !deadline.expired()) {
        Map<TopicPartition, OffsetAndMetadata> progress = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
          if (got == count) {
            break;
          }
          String value = new String(r.value());
          assertTrue(seen.add(value), "consumed twice: " + value + " at " + r.partition() + "/" + r.offset());
          progress.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
          got++;
        }
        // Only what was processed is committed, so a stop anywhere loses and repeats nothing.
        if (!progress.isEmpty()) {
          consumer.commitSync(progress);
        }
      }
      assertEquals(count, got, "records consumed in this round");
      // Nothing beyond what was produced.
      long extra = consumer.poll(Duration.ofMillis(300)).count();
      assertTrue(got + extra <= count + PARTITIONS * 20, "sanity");
    }
  }

  @Test
  void the_group_resumes_from_its_committed_offsets_after_a_restart_and_a_crash() {
    String topic = Clients.topicName("group-restart");
    String group = Clients.topicName("group-restart");
    Clients.createTopic(BROKER.admin(), topic, PARTITIONS);
    TreeSet<String> seen = new TreeSet<>();
    GroupOffsetsTest.produce(BROKER, topic, PARTITIONS, 20, 0); // 60 records
    consumeAndCommit(topic, group, 25, seen);

    BROKER.resetAdmin();
    BROKER.broker().restart();
    GroupOffsetsTest.produce(BROKER, topic, PARTITIONS, 10, 20); // 30 more
    consumeAndCommit(topic, group, 40, seen);

    BROKER.resetAdmin();
    BROKER.broker().kill();
    BROKER.broker().start();
    GroupOffsetsTest.produce(BROKER, topic, PARTITIONS, 5, 30); // 15 more
    consumeAndCommit(topic, group, 40, seen);

    // 105 records, each exactly once.
    assertEquals(PARTITIONS * 35, seen.size());
    for (int p = 0; p < PARTITIONS; p++) {
      for (int i = 0; i < 35; i++) {
        assertTrue(seen.contains(p + ":" + i), "missing " + p + ":" + i);
      }
    }
    Map<TopicPartition, OffsetAndMetadata> committed =
        Clients.get(BROKER.admin().listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    for (int p = 0; p < PARTITIONS; p++) {
      assertEquals(35, committed.get(new TopicPartition(topic, p)).offset(), "committed end of partition " + p);
    }
  }
}
