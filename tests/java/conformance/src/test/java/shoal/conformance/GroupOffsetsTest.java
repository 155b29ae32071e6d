package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/** commitSync and commitAsync in a group: what is committed is what the next member starts from. */
@Tag("groups")
class GroupOffsetsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.GROUPS);

  static Map<String, Object> groupConfig(String group) {
    Map<String, Object> c = new HashMap<>();
    c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    c.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
    c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 7);
    return c;
  }

  static void produce(BrokerExtension broker, String topic, int partitions, int perPartition, int from) {
    List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      for (int i = from; i < from + perPartition; i++) {
        records.add(new ProducerRecord<>(topic, p, null, (p + ":" + i).getBytes()));
      }
    }
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(broker.broker(), Map.of())) {
      Clients.sendAll(producer, records);
    }
  }

  @Test
  void commit_sync_and_async_store_offsets_and_metadata_that_the_next_member_resumes_from() {
    String topic = Clients.topicName("commits");
    String group = Clients.topicName("commits-group");
    Clients.createTopic(BROKER.admin(), topic, 2);
    produce(BROKER, topic, 2, 20, 0);
    TopicPartition p0 = new TopicPartition(topic, 0);
    TopicPartition p1 = new TopicPartition(topic, 1);
    AtomicInteger asyncDone = new AtomicInteger();
    Map<TopicPartition, OffsetAndMetadata> asyncCommitted = new ConcurrentHashMap<>();
    List<Exception> asyncErrors = new ArrayList<>();
    Map<TopicPartition, Long> consumed = new HashMap<>();
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), groupConfig(group))) {
      consumer.subscribe(List.of(topic));
      int polls = 0;
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (consumed.values().stream().mapToLong(Long::longValue).sum() < 30 && !deadline.expired()) {
        ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
        for (ConsumerRecord<byte[], byte[]> r : records) {
          consumed.put(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
        }
        if (!records.isEmpty()) {
          polls++;
          // Every poll's progress is committed asynchronously; commits are applied in order.
          consumer.commitAsync(
              (offsets, e) -> {
                if (e != null) {
                  synchronized (asyncErrors) {
                    asyncErrors.add(e);
                  }
                } else {
                  asyncCommitted.putAll(offsets);
                }
                asyncDone.incrementAndGet();
              });
        }
      }
      assertTrue(polls > 1, "several polls (max.poll.records=7)");
      // commitSync flushes the pending async commits' callbacks too.
      consumer.commitSync();
      assertEquals(polls, asyncDone.get(), "every async commit completed");
      assertEquals(List.of(), asyncErrors);
      Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(Set.of(p0, p1));
      for (Map.Entry<TopicPartition, Long> e : consumed.entrySet()) {
        OffsetAndMetadata c = committed.get(e.getKey());
        assertEquals(e.getValue(), c.offset(), "committed position of " + e.getKey());
        // Positions carry the leader epoch of the last record consumed; it is kept.
        assertEquals(0, c.leaderEpoch().orElse(-1), "leader epoch of " + e.getKey() + ": " + c);
      }
      // An explicit commitSync with metadata, of an offset behind the position.
      consumer.commitSync(Map.of(p0, new OffsetAndMetadata(3, "checkpoint-3")));
      OffsetAndMetadata back = consumer.committed(Set.of(p0)).get(p0);
      assertEquals(3, back.offset());
      assertEquals("checkpoint-3", back.metadata());
      assertTrue(back.leaderEpoch().isEmpty(), "no leader epoch was given: " + back);
    }
    // Admin sees the same offsets; a new member resumes exactly there.
    Map<TopicPartition, OffsetAndMetadata> listed =
        Clients.get(BROKER.admin().listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    assertEquals(3, listed.get(p0).offset());
    long p1Committed = listed.get(p1) == null ? 0 : listed.get(p1).offset();
    try (KafkaConsumer<byte[], byte[]> next = Clients.consumer(BROKER.broker(), groupConfig(group))) {
      next.subscribe(List.of(topic));
      List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
      long expected = (20 - 3) + (20 - p1Committed);
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (got.size() < expected && !deadline.expired()) {
        next.poll(Duration.ofMillis(200)).forEach(got::add);
      }
      assertEquals(expected, got.size());
      assertEquals(3, got.stream().filter(r -> r.partition() == 0).findFirst().orElseThrow().offset());
      assertNull(next.poll(Duration.ofMillis(300)).records(p0).stream().findAny().orElse(null), "nothing more");
    }
  }
}
