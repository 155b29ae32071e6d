package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.InvalidRecordException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/**
 * Log compaction as a consumer sees it: reading a compacted topic from the beginning gives the
 * latest record of every key (tombstones included, within delete.retention.ms), at the offsets
 * the producer was told. Segments roll after segment.ms and the cleaner runs every 500 ms, so
 * cleaning happens within seconds; every wait has a deadline.
 */
@Tag("compaction")
class CompactionTest {
  @RegisterExtension
  static final BrokerExtension BROKER =
      BrokerExtension.shared(Specs.STANDARD.with("log.cleaner.backoff.ms", "500"));

  private static final Duration CLEANED_WITHIN = Duration.ofSeconds(90);
  private static final long SEGMENT_MS = 200;

  private static final Map<String, String> COMPACTED =
      Map.of(
          "cleanup.policy", "compact",
          "segment.ms", Long.toString(SEGMENT_MS),
          "min.cleanable.dirty.ratio", "0.01");

  /** One record as consumed: offset, key, value (null for a tombstone). */
  private record Seen(long offset, String key, String value) {}

  /** Waits until segment.ms has passed since {@code sinceMs}, so that the next append rolls. */
  private static void awaitSegmentAge(long sinceMs) {
    Deadline.awaitWithin(
        Duration.ofSeconds(5),
        "segment.ms to pass",
        () -> System.currentTimeMillis() > sinceMs + 2 * SEGMENT_MS);
  }

  /** Sends rounds of updates to keys k0..k9 (tombstones for k8, k9 in the last round), each
   * round in its own segment, then a marker that rolls the last round's segment. Returns the
   * expected compacted content. */
  private static List<Seen> produceRounds(String topic, int rounds) {
    Map<String, Seen> latest = new LinkedHashMap<>();
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4"))) {
      for (int r = 0; r < rounds; r++) {
        long sent = System.currentTimeMillis();
        List<java.util.concurrent.Future<RecordMetadata>> acks = new ArrayList<>();
        List<String[]> pairs = new ArrayList<>();
        for (int k = 0; k < 10; k++) {
          String key = "k" + k;
          String value = (r == rounds - 1 && k >= 8) ? null : "round-" + r + "-" + key;
          pairs.add(new String[] {key, value});
          acks.add(
              producer.send(
                  new ProducerRecord<>(topic, 0, key.getBytes(), value == null ? null : value.getBytes())));
        }
        for (int i = 0; i < acks.size(); i++) {
          long offset = Clients.get(acks.get(i)).offset();
          latest.put(pairs.get(i)[0], new Seen(offset, pairs.get(i)[0], pairs.get(i)[1]));
        }
        awaitSegmentAge(sent);
      }
      long offset = Clients.get(producer.send(new ProducerRecord<>(topic, 0, "end".getBytes(), "marker".getBytes()))).offset();
      latest.put("end", new Seen(offset, "end", "marker"));
    }
    TreeMap<Long, Seen> byOffset = new TreeMap<>();
    latest.values().forEach(s -> byOffset.put(s.offset(), s));
    return new ArrayList<>(byOffset.values());
  }

  /** Everything from the beginning of partition 0 up to its end offset. */
  private static List<Seen> readAll(String topic) {
    TopicPartition tp = new TopicPartition(topic, 0);
    List<Seen> out = new ArrayList<>();
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      consumer.assign(List.of(tp));
      consumer.seekToBeginning(List.of(tp));
      long end = Clients.endOffset(consumer, tp);
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (consumer.position(tp) < end && !deadline.expired()) {
        for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofMillis(200))) {
          out.add(
              new Seen(
                  rec.offset(),
                  new String(rec.key()),
                  rec.value() == null ? null : new String(rec.value())));
        }
      }
    }
    return out;
  }

  private static void awaitCompacted(String topic, List<Seen> expected) {
    List<List<Seen>> last = new ArrayList<>();
    try {
      Deadline.awaitWithin(
          CLEANED_WITHIN,
          "topic " + topic + " to be compacted",
          () -> {
            List<Seen> got = readAll(topic);
            last.clear();
            last.add(got);
            return got.equals(expected);
          });
    } catch (AssertionError e) {
      assertEquals(expected, last.isEmpty() ? List.of() : last.get(0), e.getMessage());
    }
  }

  @Test
  void a_consumer_reading_a_compacted_topic_from_the_beginning_gets_the_latest_record_of_every_key() {
    String topic = Clients.topicName("compacted");
    Clients.createTopic(BROKER.admin(), topic, 1, COMPACTED);
    List<Seen> expected = produceRounds(topic, 4);
    awaitCompacted(topic, expected);
  }

  @Test
  void switching_a_topic_to_compact_takes_effect_without_a_restart() {
    String topic = Clients.topicName("to-compact");
    Clients.createTopic(BROKER.admin(), topic, 1, Map.of("segment.ms", Long.toString(SEGMENT_MS)));
    List<Seen> expected = produceRounds(topic, 3);
    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    List<AlterConfigOp> ops = new ArrayList<>();
    for (Map.Entry<String, String> e : COMPACTED.entrySet()) {
      ops.add(new AlterConfigOp(new ConfigEntry(e.getKey(), e.getValue()), AlterConfigOp.OpType.SET));
    }
    Clients.get(BROKER.admin().incrementalAlterConfigs(Map.of(resource, ops)).all());
    awaitCompacted(topic, expected);
  }

  @Test
  void records_without_a_key_are_refused_by_a_compacted_topic() {
    String topic = Clients.topicName("keyless");
    Clients.createTopic(BROKER.admin(), topic, 1, COMPACTED);
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.RETRIES_CONFIG, 0))) {
      Throwable err = Clients.failureOf(producer.send(new ProducerRecord<>(topic, 0, null, "v".getBytes())));
      assertInstanceOf(InvalidRecordException.class, err);
      RecordMetadata ok = Clients.get(producer.send(new ProducerRecord<>(topic, 0, "k".getBytes(), "v".getBytes())));
      assertEquals(List.of(new Seen(ok.offset(), "k", "v")), readAll(topic));
    }
  }
}
