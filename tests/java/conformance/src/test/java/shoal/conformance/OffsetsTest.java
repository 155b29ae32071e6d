package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** ListOffsets in all its forms: beginning, end, by timestamp, max timestamp; LogAppendTime. */
class OffsetsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  private static final long T = RecordAssertions.BASE_TIMESTAMP;

  /** A new topic's first leader epoch is 0, and ListOffsets v4+ reports it. */
  private static OffsetAndTimestamp at(long offset, long timestamp) {
    return new OffsetAndTimestamp(offset, timestamp, Optional.of(0));
  }

  private static void produce(String topic, long... timestamps) {
    List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
    for (int i = 0; i < timestamps.length; i++) {
      records.add(new ProducerRecord<>(topic, 0, timestamps[i], null, ("v" + i).getBytes()));
    }
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      Clients.sendAll(producer, records);
    }
  }

  @Test
  void beginning_and_end_offsets_follow_the_log() {
    String topic = Clients.topicName("begin-end");
    Clients.createTopic(BROKER.admin(), topic, 2);
    TopicPartition p0 = new TopicPartition(topic, 0);
    TopicPartition p1 = new TopicPartition(topic, 1);
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      assertEquals(Map.of(p0, 0L, p1, 0L), consumer.beginningOffsets(List.of(p0, p1)));
      assertEquals(Map.of(p0, 0L, p1, 0L), consumer.endOffsets(List.of(p0, p1)));
      produce(topic, T, T + 1, T + 2, T + 3, T + 4, T + 5, T + 6);
      assertEquals(Map.of(p0, 0L, p1, 0L), consumer.beginningOffsets(List.of(p0, p1)));
      assertEquals(Map.of(p0, 7L, p1, 0L), consumer.endOffsets(List.of(p0, p1)));
      // auto.offset.reset=latest starts at the end offset.
      try (KafkaConsumer<byte[], byte[]> latest =
          Clients.consumer(BROKER.broker(), Map.of("auto.offset.reset", "latest"))) {
        latest.assign(List.of(p0));
        assertEquals(7L, latest.position(p0));
      }
    }
  }

  @Test
  void offsets_for_times_finds_the_first_record_at_or_after_the_target() {
    String topic = Clients.topicName("for-times");
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    long[] ts = new long[10];
    for (int i = 0; i < ts.length; i++) {
      ts[i] = T + i * 1000L;
    }
    produce(topic, ts);
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      assertEquals(at(0, T), consumer.offsetsForTimes(Map.of(tp, 0L)).get(tp));
      assertEquals(at(0, T), consumer.offsetsForTimes(Map.of(tp, T)).get(tp));
      assertEquals(at(2, T + 2000), consumer.offsetsForTimes(Map.of(tp, T + 1500)).get(tp));
      assertEquals(at(9, T + 9000), consumer.offsetsForTimes(Map.of(tp, T + 9000)).get(tp));
      assertNull(consumer.offsetsForTimes(Map.of(tp, T + 9001)).get(tp), "no record at or after the target");
    }
  }

  @Test
  void out_of_order_timestamps_answer_by_log_order_and_max_timestamp() {
    String topic = Clients.topicName("unordered-times");
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    // Separate produce calls give separate batches: [5000] [1000] [3000] [2000, 4000].
    produce(topic, T + 5000);
    produce(topic, T + 1000);
    produce(topic, T + 3000);
    produce(topic, T + 2000, T + 4000);
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      // The first record in log order whose timestamp is >= the target.
      assertEquals(at(0, T + 5000), consumer.offsetsForTimes(Map.of(tp, T + 2500)).get(tp));
      assertEquals(at(0, T + 5000), consumer.offsetsForTimes(Map.of(tp, T + 500)).get(tp));
      assertNull(consumer.offsetsForTimes(Map.of(tp, T + 5001)).get(tp));
    }
    Map<TopicPartition, OffsetSpec> query = new HashMap<>();
    query.put(tp, OffsetSpec.maxTimestamp());
    ListOffsetsResultInfo max = Clients.get(BROKER.admin().listOffsets(query).partitionResult(tp));
    assertEquals(0, max.offset(), "offset of the record with the largest timestamp");
    assertEquals(T + 5000, max.timestamp());
  }

  @Test
  void admin_list_offsets_answers_earliest_latest_timestamp_and_max_timestamp() {
    String topic = Clients.topicName("admin-offsets");
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    produce(topic, T + 10, T + 20, T + 30, T + 40);
    var admin = BROKER.admin();
    ListOffsetsResultInfo earliest = Clients.get(admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp));
    ListOffsetsResultInfo latest = Clients.get(admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp));
    ListOffsetsResultInfo byTime =
        Clients.get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(T + 25))).partitionResult(tp));
    ListOffsetsResultInfo maxTs = Clients.get(admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).partitionResult(tp));
    assertEquals(0, earliest.offset());
    assertEquals(4, latest.offset());
    assertEquals(2, byTime.offset());
    assertEquals(T + 30, byTime.timestamp());
    assertEquals(3, maxTs.offset());
    assertEquals(T + 40, maxTs.timestamp());
  }

  @Test
  void log_append_time_topics_stamp_records_with_broker_time() {
    String topic = Clients.topicName("log-append-time");
    Clients.createTopic(BROKER.admin(), topic, 1, Map.of("message.timestamp.type", "LogAppendTime"));
    TopicPartition tp = new TopicPartition(topic, 0);
    List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      sent.add(RecordAssertions.varied(topic, 0, i));
    }
    long before = System.currentTimeMillis();
    List<RecordMetadata> acks;
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "gzip"))) {
      acks = Clients.sendAll(producer, sent);
    }
    long after = System.currentTimeMillis();
    for (int i = 0; i < acks.size(); i++) {
      long stamped = acks.get(i).timestamp();
      assertTrue(
          stamped >= before && stamped <= after,
          "record " + i + " acknowledged with broker time " + stamped + ", expected within [" + before + ", " + after + "]");
    }
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, sent.size());
      for (int i = 0; i < sent.size(); i++) {
        RecordAssertions.assertSame(
            sent.get(i), 0, i, TimestampType.LOG_APPEND_TIME, acks.get(i).timestamp(), got.get(i));
      }
      // Searching by time uses the broker's timestamps, not the ones the producer set.
      OffsetAndTimestamp first = consumer.offsetsForTimes(Map.of(tp, before)).get(tp);
      assertEquals(0, first.offset());
      assertEquals(acks.get(0).timestamp(), first.timestamp());
      assertNull(consumer.offsetsForTimes(Map.of(tp, after + 60_000)).get(tp));
    }
  }
}
