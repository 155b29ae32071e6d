package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.BrokerKind;

/**
 * Transactions. Kafka runs them; Shoal does not have a transaction coordinator yet and must say so
 * at once (FindCoordinator(TRANSACTION) → INVALID_REQUEST, a fatal error for the producer) instead
 * of leaving initTransactions() to retry until max.block.ms. The same scenario asserts each
 * broker's behaviour, so it cannot pass by accident on either.
 */
@Tag("idempotence")
class TransactionsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.GROUPS);

  private static final Duration FAIL_FAST = Duration.ofSeconds(10);

  @Test
  void a_transactional_producer_fails_fast_on_shoal_and_commits_on_kafka() {
    String topic = Clients.topicName("txn");
    Clients.createTopic(BROKER.admin(), topic, 1);
    Map<String, Object> config =
        Map.of(
            ProducerConfig.TRANSACTIONAL_ID_CONFIG, Clients.topicName("txn-id"),
            // Far longer than FAIL_FAST: a broker that makes the client retry would exceed it.
            ProducerConfig.MAX_BLOCK_MS_CONFIG, 60_000);
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), config)) {
      if (BROKER.broker().kind() == BrokerKind.SHOAL) {
        long start = System.nanoTime();
        KafkaException e = assertThrows(KafkaException.class, producer::initTransactions);
        Duration took = Duration.ofNanos(System.nanoTime() - start);
        assertTrue(took.compareTo(FAIL_FAST) < 0, "initTransactions failed only after " + took + ": " + e);
        return;
      }
      producer.initTransactions();
      producer.beginTransaction();
      producer.send(new ProducerRecord<>(topic, 0, null, "in-txn".getBytes()));
      producer.commitTransaction();
    }
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.consumer(BROKER.broker(), Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
      var got = Clients.consume(consumer, List.of(new TopicPartition(topic, 0)), 0, 1);
      assertEquals("in-txn", new String(got.get(0).value()));
    }
  }
}
