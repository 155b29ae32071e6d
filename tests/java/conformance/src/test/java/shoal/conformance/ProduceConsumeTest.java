package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static shoal.conformance.RecordAssertions.assertSame;
import static shoal.conformance.RecordAssertions.varied;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;
import shoal.conformance.broker.Deadline;

/** Producing with every codec and acks setting, then reading every field back in order. */
class ProduceConsumeTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  static final List<String> CODECS = List.of("none", "gzip", "snappy", "lz4", "zstd");

  static Stream<Arguments> codecsAndAcks() {
    return CODECS.stream().flatMap(c -> Stream.of(Arguments.of(c, "1"), Arguments.of(c, "all")));
  }

  @ParameterizedTest(name = "compression={0} acks={1}")
  @MethodSource("codecsAndAcks")
  void every_field_round_trips_with_codec_and_acks(String codec, String acks) {
    String topic = Clients.topicName("codec-" + codec + "-acks-" + acks);
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    int count = 120;
    List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      sent.add(varied(topic, null, i));
    }
    List<RecordMetadata> acksSeen;
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(
            BROKER.broker(),
            Map.of(
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                ProducerConfig.ACKS_CONFIG, acks,
                // Several batches, each holding several records.
                ProducerConfig.BATCH_SIZE_CONFIG, 8192,
                ProducerConfig.LINGER_MS_CONFIG, 20))) {
      acksSeen = Clients.sendAll(producer, sent);
    }
    for (int i = 0; i < count; i++) {
      RecordMetadata md = acksSeen.get(i);
      assertEquals(0, md.partition(), "partition of record " + i);
      assertEquals(i, md.offset(), "offset of record " + i);
      assertEquals(sent.get(i).timestamp(), md.timestamp(), "acknowledged timestamp of record " + i);
    }
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, count);
      for (int i = 0; i < count; i++) {
        assertSame(sent.get(i), 0, i, got.get(i));
      }
      // Reading from the middle returns the suffix, starting exactly at the sought offset.
      List<ConsumerRecord<byte[], byte[]>> tail = Clients.consume(consumer, List.of(tp), 77, count - 77);
      for (int i = 77; i < count; i++) {
        assertSame(sent.get(i), 0, i, tail.get(i - 77));
      }
    }
  }

  @Test
  void acks_zero_records_arrive_without_offsets_in_acknowledgements() {
    String topic = Clients.topicName("acks0");
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      sent.add(varied(topic, 0, i));
    }
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.ACKS_CONFIG, "0"))) {
      for (RecordMetadata md : Clients.sendAll(producer, sent)) {
        assertFalse(md.hasOffset(), "acks=0 acknowledgements carry no offset");
      }
    }
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      Deadline.awaitWithin(
          Clients.OP_TIMEOUT, "40 acks=0 records in the log", () -> Clients.endOffset(consumer, tp) == 40);
      List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, 40);
      for (int i = 0; i < 40; i++) {
        assertSame(sent.get(i), 0, i, got.get(i));
      }
    }
  }

  @Test
  void records_land_on_explicit_and_key_hashed_partitions_in_order() {
    String topic = Clients.topicName("partitions");
    int partitions = 4;
    Clients.createTopic(BROKER.admin(), topic, partitions);
    List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
    List<Integer> expectedPartition = new ArrayList<>();
    for (int i = 0; i < 200; i++) {
      ProducerRecord<byte[], byte[]> r;
      if (i % 2 == 0) {
        r = varied(topic, i % partitions, i);
        expectedPartition.add(i % partitions);
      } else {
        // Keyed records without a partition go where murmur2(key) says, on any broker.
        ProducerRecord<byte[], byte[]> v = varied(topic, null, i);
        byte[] key = ("user-" + (i % 13)).getBytes();
        r = new ProducerRecord<>(topic, null, v.timestamp(), key, v.value(), v.headers());
        expectedPartition.add(Utils.toPositive(Utils.murmur2(key)) % partitions);
      }
      sent.add(r);
    }
    List<RecordMetadata> acks;
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4"))) {
      acks = Clients.sendAll(producer, sent);
    }
    Map<Integer, Long> nextOffset = new HashMap<>();
    Map<TopicPartition, List<Integer>> sentIndexByPartition = new HashMap<>();
    for (int i = 0; i < sent.size(); i++) {
      int p = expectedPartition.get(i);
      assertEquals(p, acks.get(i).partition(), "partition of record " + i);
      long expected = nextOffset.merge(p, 1L, Long::sum) - 1;
      assertEquals(expected, acks.get(i).offset(), "offset of record " + i);
      sentIndexByPartition.computeIfAbsent(new TopicPartition(topic, p), k -> new ArrayList<>()).add(i);
    }
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      for (var e : sentIndexByPartition.entrySet()) {
        List<Integer> indexes = e.getValue();
        List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(e.getKey()), 0, indexes.size());
        for (int k = 0; k < indexes.size(); k++) {
          assertSame(sent.get(indexes.get(k)), e.getKey().partition(), k, got.get(k));
        }
      }
    }
  }

  @ParameterizedTest(name = "compression={0}")
  @ValueSource(strings = {"none", "zstd"})
  void one_mebibyte_records_round_trip(String codec) {
    String topic = Clients.topicName("large-" + codec);
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    int size = 1024 * 1024;
    List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      byte[] value = RecordAssertions.payload(1000 + i, size);
      sent.add(new ProducerRecord<>(topic, 0, RecordAssertions.BASE_TIMESTAMP + i, ("big-" + i).getBytes(), value));
    }
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(
            BROKER.broker(),
            Map.of(
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 2 * size,
                ProducerConfig.BUFFER_MEMORY_CONFIG, 16 * size))) {
      List<RecordMetadata> acks = Clients.sendAll(producer, sent);
      for (int i = 0; i < sent.size(); i++) {
        assertEquals(i, acks.get(i).offset());
        assertEquals(size, acks.get(i).serializedValueSize());
      }
    }
    // The default max.partition.fetch.bytes (1 MiB) is smaller than one batch: the broker must
    // still return the first batch whole so the consumer makes progress.
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, sent.size());
      for (int i = 0; i < sent.size(); i++) {
        assertEquals(size, got.get(i).value().length);
        assertSame(sent.get(i), 0, i, got.get(i));
      }
    }
  }

  @Test
  void fetch_limits_split_reads_without_losing_or_repeating_records() {
    String topic = Clients.topicName("fetch-limits");
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
    for (int i = 0; i < 300; i++) {
      sent.add(varied(topic, 0, i));
    }
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.BATCH_SIZE_CONFIG, 4096))) {
      Clients.sendAll(producer, sent);
    }
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.consumer(
            BROKER.broker(),
            Map.of(
                ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, 5000,
                ConsumerConfig.FETCH_MAX_BYTES_CONFIG, 6000,
                ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 7))) {
      consumer.assign(List.of(tp));
      consumer.seekToBeginning(List.of(tp));
      List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
      int polls = 0;
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (got.size() < sent.size() && !deadline.expired()) {
        var batch = consumer.poll(Duration.ofMillis(200));
        assertTrue(batch.count() <= 7, "max.poll.records respected");
        batch.forEach(got::add);
        polls++;
      }
      assertEquals(sent.size(), got.size(), "records read through small fetches");
      assertTrue(polls >= 300 / 7, "small fetch limits took several polls");
      for (int i = 0; i < sent.size(); i++) {
        assertSame(sent.get(i), 0, i, got.get(i));
      }
    }
  }

  @Test
  void empty_and_binary_keys_and_values_are_kept_exactly() {
    String topic = Clients.topicName("binary");
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    byte[] allBytes = new byte[256];
    for (int b = 0; b < 256; b++) {
      allBytes[b] = (byte) b;
    }
    List<ProducerRecord<byte[], byte[]>> sent =
        List.of(
            new ProducerRecord<>(topic, 0, 1L, new byte[0], new byte[0]),
            new ProducerRecord<>(topic, 0, 2L, (byte[]) null, (byte[]) null),
            new ProducerRecord<>(topic, 0, 3L, allBytes, allBytes),
            new ProducerRecord<>(topic, 0, 0L, new byte[] {0}, (byte[]) null));
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      Clients.sendAll(producer, sent);
    }
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, sent.size());
      for (int i = 0; i < sent.size(); i++) {
        assertSame(sent.get(i), 0, i, got.get(i));
      }
      assertArrayEquals(new byte[0], got.get(0).value(), "an empty value stays empty, not null");
    }
  }
}
