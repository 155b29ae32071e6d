package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.InvalidTimestampException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/** Topic-level rules a producer or consumer runs into: ISR minimum, timestamp bounds, re-creation, isolation. */
class TopicSemanticsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  /**
   * Kafka caps the effective min.insync.replicas at the replication factor (its partition's
   * effective min ISR is the smaller of the two), so a single-replica topic with
   * min.insync.replicas=2 still accepts acks=all.
   */
  @Test
  void min_insync_replicas_above_the_replication_factor_does_not_block_acks_all() {
    String topic = Clients.topicName("min-isr");
    Clients.createTopic(BROKER.admin(), topic, 1, Map.of("min.insync.replicas", "2"));
    try (KafkaProducer<byte[], byte[]> all =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.ACKS_CONFIG, "all", ProducerConfig.RETRIES_CONFIG, 0))) {
      RecordMetadata md = Clients.get(all.send(new ProducerRecord<>(topic, 0, null, "rf-1".getBytes())));
      assertEquals(0, md.offset());
    }
  }

  @Test
  void records_stamped_too_far_in_the_future_are_rejected_by_the_topic_bound() {
    String topic = Clients.topicName("future-ts");
    Clients.createTopic(BROKER.admin(), topic, 1, Map.of("message.timestamp.after.max.ms", "60000"));
    long now = System.currentTimeMillis();
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.RETRIES_CONFIG, 0))) {
      Throwable err =
          Clients.failureOf(producer.send(new ProducerRecord<>(topic, 0, now + 3_600_000L, null, "late".getBytes())));
      assertInstanceOf(InvalidTimestampException.class, err);
      RecordMetadata ok = Clients.get(producer.send(new ProducerRecord<>(topic, 0, now, null, "now".getBytes())));
      assertEquals(0, ok.offset());
    }
  }

  @Test
  void a_deleted_topic_can_be_recreated_empty_with_a_new_id() {
    Admin admin = BROKER.admin();
    String topic = Clients.topicName("recreate");
    Uuid first = Clients.createTopic(admin, topic, 1).topicId();
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      for (int i = 0; i < 5; i++) {
        Clients.get(producer.send(new ProducerRecord<>(topic, 0, null, ("old-" + i).getBytes())));
      }
    }
    Clients.get(admin.deleteTopics(List.of(topic)).all());
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT, topic + " to be gone", () -> !Clients.get(admin.listTopics().names()).contains(topic));
    Uuid second = Clients.createTopic(admin, topic, 1).topicId();
    assertNotEquals(first, second, "a re-created topic gets a new id");
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of());
        KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      assertEquals(0L, Clients.endOffset(consumer, tp), "no record of the deleted topic survives");
      RecordMetadata md = Clients.get(producer.send(new ProducerRecord<>(topic, 0, null, "new".getBytes())));
      assertEquals(0, md.offset());
      List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, 1);
      assertEquals("new", new String(got.get(0).value()));
    }
  }

  @Test
  void read_committed_consumers_see_every_non_transactional_record() {
    String topic = Clients.topicName("read-committed");
    Clients.createTopic(BROKER.admin(), topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      for (int i = 0; i < 25; i++) {
        Clients.get(producer.send(new ProducerRecord<>(topic, 0, null, ("r" + i).getBytes())));
      }
    }
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.consumer(BROKER.broker(), Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
      // Without transactions the last stable offset is the high watermark.
      assertEquals(25L, Clients.endOffset(consumer, tp));
      List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, 25);
      for (int i = 0; i < 25; i++) {
        assertEquals("r" + i, new String(got.get(i).value()));
      }
      assertFalse(got.isEmpty());
    }
  }
}
