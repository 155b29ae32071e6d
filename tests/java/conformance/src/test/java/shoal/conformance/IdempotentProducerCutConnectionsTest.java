package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import shoal.conformance.broker.BrokerUnderTest;
import shoal.conformance.broker.Brokers;

/**
 * The idempotent producer (Java's default) keeps every record exactly once and in order when its
 * connections are cut again and again while it sends: batches in flight when a connection dies
 * are retried, and the broker acknowledges a retried batch that it already has with the original
 * offsets instead of writing it twice.
 */
@Tag("idempotence")
class IdempotentProducerCutConnectionsTest {
  private static final int PARTITIONS = 3;
  private static final int RECORDS = 9_000;

  @Test
  void every_record_exactly_once_in_order_while_connections_are_cut() throws Exception {
    try (CuttingProxy proxy = new CuttingProxy()) {
      // Clients reach the broker only through the proxy: the broker advertises it.
      BrokerUnderTest broker =
          Brokers.create(Specs.STANDARD.with("advertised.listeners", "PLAINTEXT://127.0.0.1:" + proxy.port()));
      proxy.upstream(broker::bootstrapServers);
      try {
        broker.start();
        run(broker, proxy);
      } finally {
        broker.close();
      }
    }
  }

  private static void run(BrokerUnderTest broker, CuttingProxy proxy) throws Exception {
    String topic = Clients.topicName("cut-connections");
    try (Admin admin = Clients.admin(broker)) {
      Clients.createTopic(admin, topic, PARTITIONS);
    }
    List<Future<RecordMetadata>> acks = new ArrayList<>();
    AtomicBoolean sending = new AtomicBoolean(true);
    Thread cutter =
        new Thread(
            () -> {
              Random random = new Random(42);
              while (sending.get()) {
                try {
                  Thread.sleep(50 + random.nextInt(200));
                } catch (InterruptedException e) {
                  return;
                }
                proxy.cutAll();
              }
            },
            "connection-cutter");
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(
            broker,
            Map.of(
                ProducerConfig.BATCH_SIZE_CONFIG, 512,
                ProducerConfig.LINGER_MS_CONFIG, 1,
                ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 5_000,
                ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 20,
                ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 120_000))) {
      cutter.start();
      for (int i = 0; i < RECORDS; i++) {
        int p = i % PARTITIONS;
        acks.add(producer.send(new ProducerRecord<>(topic, p, null, (p + ":" + i / PARTITIONS).getBytes())));
        if (i % 20 == 0) {
          Thread.sleep(10); // spread the sends over a few seconds of cuts
        }
      }
      producer.flush();
    } finally {
      sending.set(false);
      cutter.join();
    }
    for (Future<RecordMetadata> f : acks) {
      Clients.get(f);
    }
    assertTrue(proxy.cutCount() > 10, "connections were cut while sending: " + proxy.cutCount());
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(broker, Map.of())) {
      for (int p = 0; p < PARTITIONS; p++) {
        TopicPartition tp = new TopicPartition(topic, p);
        List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, RECORDS / PARTITIONS);
        for (int k = 0; k < got.size(); k++) {
          assertEquals(p + ":" + k, new String(got.get(k).value()), "record at offset " + k + " of partition " + p);
          assertEquals(k, got.get(k).offset());
        }
        assertEquals(RECORDS / PARTITIONS, Clients.endOffset(consumer, tp), "nothing written twice in partition " + p);
      }
    }
    // Every acknowledged offset is the record's real offset.
    for (int i = 0; i < RECORDS; i++) {
      RecordMetadata m = Clients.get(acks.get(i));
      assertEquals(i % PARTITIONS, m.partition());
      assertEquals(i / PARTITIONS, m.offset(), "acknowledged offset of record " + i);
    }
  }
}
