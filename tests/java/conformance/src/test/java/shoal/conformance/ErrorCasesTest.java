package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetOutOfRangeException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** What clients see for bad requests; the broker keeps serving afterwards. */
class ErrorCasesTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  private static void assertTopicMissing(String name) {
    assertFalse(Clients.get(BROKER.admin().listTopics().names()).contains(name), name + " must not exist");
  }

  @Test
  void unknown_topic_is_not_auto_created_and_producer_times_out() {
    String name = Clients.topicName("unknown");
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.MAX_BLOCK_MS_CONFIG, 3000))) {
      Throwable err = Clients.failureOf(producer.send(new ProducerRecord<>(name, "v".getBytes())));
      assertInstanceOf(TimeoutException.class, err);
      assertTrue(err.getMessage().contains("not present in metadata"), err.getMessage());
    }
    assertTopicMissing(name);
  }

  @Test
  void unknown_topic_answers_unknown_topic_or_partition_to_admin_calls() {
    Admin admin = BROKER.admin();
    String name = Clients.topicName("unknown-admin");
    assertInstanceOf(
        UnknownTopicOrPartitionException.class, Clients.failureOf(admin.describeTopics(List.of(name)).allTopicNames()));
    assertInstanceOf(UnknownTopicOrPartitionException.class, Clients.failureOf(admin.deleteTopics(List.of(name)).all()));
    assertInstanceOf(
        UnknownTopicOrPartitionException.class,
        Clients.failureOf(admin.createPartitions(Map.of(name, NewPartitions.increaseTo(2))).all()));
  }

  @Test
  void consumer_sees_no_partitions_for_an_unknown_topic() {
    String name = Clients.topicName("unknown-consumer");
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.consumer(BROKER.broker(), Map.of(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 3000))) {
      assertEquals(List.of(), consumer.partitionsFor(name));
      assertFalse(consumer.listTopics().containsKey(name));
    }
    assertTopicMissing(name);
  }

  @Test
  void producing_to_a_partition_beyond_the_count_times_out() {
    String name = Clients.topicName("few-partitions");
    Clients.createTopic(BROKER.admin(), name, 1);
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.MAX_BLOCK_MS_CONFIG, 3000))) {
      Throwable err = Clients.failureOf(producer.send(new ProducerRecord<>(name, 5, null, "v".getBytes())));
      assertInstanceOf(TimeoutException.class, err);
      assertTrue(err.getMessage().contains("Partition 5 of topic " + name + " with partition count 1"), err.getMessage());
    }
  }

  @Test
  void invalid_partition_counts_are_rejected() {
    Admin admin = BROKER.admin();
    String zero = Clients.topicName("zero-partitions");
    assertInstanceOf(
        InvalidPartitionsException.class,
        Clients.failureOf(admin.createTopics(List.of(new NewTopic(zero, Optional.of(0), Optional.empty()))).all()));
    assertTopicMissing(zero);

    String name = Clients.topicName("shrink");
    Clients.createTopic(admin, name, 3);
    assertInstanceOf(
        InvalidPartitionsException.class,
        Clients.failureOf(admin.createPartitions(Map.of(name, NewPartitions.increaseTo(2))).all()));
    assertInstanceOf(
        InvalidPartitionsException.class,
        Clients.failureOf(admin.createPartitions(Map.of(name, NewPartitions.increaseTo(3))).all()));
    assertEquals(3, Clients.awaitTopic(admin, name, 3).partitions().size());
  }

  @Test
  void replication_factor_above_the_broker_count_is_rejected() {
    String name = Clients.topicName("rf3");
    Throwable err =
        Clients.failureOf(BROKER.admin().createTopics(List.of(new NewTopic(name, 1, (short) 3))).all());
    assertInstanceOf(InvalidReplicationFactorException.class, err);
    assertTopicMissing(name);
  }

  @Test
  void creating_an_existing_topic_fails_with_topic_exists() {
    String name = Clients.topicName("twice");
    Clients.createTopic(BROKER.admin(), name, 2);
    Throwable err = Clients.failureOf(BROKER.admin().createTopics(List.of(new NewTopic(name, 1, (short) 1))).all());
    assertInstanceOf(TopicExistsException.class, err);
    assertEquals(2, Clients.awaitTopic(BROKER.admin(), name, 2).partitions().size());
  }

  @ParameterizedTest(name = "topic name \"{0}\"")
  @ValueSource(
      strings = {
        "has space",
        "slash/inside",
        ".",
        "..",
        "colon:inside",
        "tooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooong"
      })
  void invalid_topic_names_are_rejected_by_create_topics(String name) {
    Throwable err = Clients.failureOf(BROKER.admin().createTopics(List.of(new NewTopic(name, 1, (short) 1))).all());
    assertInstanceOf(InvalidTopicException.class, err);
  }

  @Test
  void producing_to_an_invalid_topic_name_fails_with_invalid_topic() {
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.MAX_BLOCK_MS_CONFIG, 5000))) {
      Throwable err = Clients.failureOf(producer.send(new ProducerRecord<>("bad topic!", "v".getBytes())));
      assertInstanceOf(InvalidTopicException.class, err);
    }
  }

  @Test
  void records_over_message_max_bytes_are_rejected_and_the_topic_stays_usable() {
    String name = Clients.topicName("oversized");
    Clients.createTopic(BROKER.admin(), name, 1);
    int tooBig = Specs.MESSAGE_MAX_BYTES + 512 * 1024;
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(
            BROKER.broker(),
            Map.of(
                ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 4 * tooBig,
                ProducerConfig.BUFFER_MEMORY_CONFIG, 8 * tooBig,
                ProducerConfig.RETRIES_CONFIG, 0))) {
      Throwable err =
          Clients.failureOf(producer.send(new ProducerRecord<>(name, 0, null, RecordAssertions.payload(7, tooBig))));
      assertInstanceOf(RecordTooLargeException.class, err);
      RecordMetadata ok = Clients.get(producer.send(new ProducerRecord<>(name, 0, null, "small".getBytes())));
      assertEquals(0, ok.offset(), "the rejected record took no offset");
    }
  }

  @Test
  void topic_max_message_bytes_overrides_the_broker_limit() {
    String name = Clients.topicName("topic-limit");
    Clients.createTopic(BROKER.admin(), name, 1, Map.of("max.message.bytes", "20000"));
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.RETRIES_CONFIG, 0))) {
      Throwable err =
          Clients.failureOf(producer.send(new ProducerRecord<>(name, 0, null, RecordAssertions.payload(8, 30_000))));
      assertInstanceOf(RecordTooLargeException.class, err);
      RecordMetadata ok =
          Clients.get(producer.send(new ProducerRecord<>(name, 0, null, RecordAssertions.payload(9, 10_000))));
      assertEquals(0, ok.offset());
    }
  }

  @Test
  void fetching_past_the_log_end_with_reset_none_raises_offset_out_of_range() {
    String name = Clients.topicName("out-of-range");
    Clients.createTopic(BROKER.admin(), name, 1);
    TopicPartition tp = new TopicPartition(name, 0);
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      for (int i = 0; i < 5; i++) {
        Clients.get(producer.send(new ProducerRecord<>(name, 0, null, ("v" + i).getBytes())));
      }
    }
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.consumer(BROKER.broker(), Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none"))) {
      consumer.assign(List.of(tp));
      consumer.seek(tp, 100);
      OffsetOutOfRangeException err =
          assertThrows(
              OffsetOutOfRangeException.class,
              () -> {
                long end = System.nanoTime() + Duration.ofSeconds(30).toNanos();
                while (System.nanoTime() < end) {
                  consumer.poll(Duration.ofMillis(200));
                }
              });
      assertEquals(Map.of(tp, 100L), err.offsetOutOfRangePartitions());
      // Seeking back inside the log works again, and the log end is exactly the boundary.
      consumer.seek(tp, 5);
      assertEquals(0, consumer.poll(Duration.ofMillis(500)).count());
      consumer.seek(tp, 4);
      assertEquals(1, Clients.pollExactly(consumer, 1).size());
    }
  }

  @Test
  void fetching_past_the_log_end_with_reset_earliest_restarts_from_the_beginning() {
    String name = Clients.topicName("reset-earliest");
    Clients.createTopic(BROKER.admin(), name, 1);
    TopicPartition tp = new TopicPartition(name, 0);
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      for (int i = 0; i < 3; i++) {
        Clients.get(producer.send(new ProducerRecord<>(name, 0, null, ("v" + i).getBytes())));
      }
    }
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.consumer(BROKER.broker(), Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest"))) {
      consumer.assign(List.of(tp));
      consumer.seek(tp, 50);
      var got = Clients.pollExactly(consumer, 3);
      assertEquals(List.of(0L, 1L, 2L), got.stream().map(r -> r.offset()).toList());
    }
  }
}
