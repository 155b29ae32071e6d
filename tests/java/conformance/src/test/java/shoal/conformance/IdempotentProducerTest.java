package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static shoal.conformance.RecordAssertions.assertSame;
import static shoal.conformance.RecordAssertions.varied;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The idempotent producer (the Java client's default): InitProducerId, then sequenced batches
 * with up to five in flight. Tagged so the test command can leave it out until Shoal has it.
 */
@Tag("idempotence")
class IdempotentProducerTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  @ParameterizedTest(name = "compression={0}")
  @ValueSource(strings = {"none", "zstd"})
  void idempotent_producer_writes_each_record_exactly_once_in_order(String codec) {
    String topic = Clients.topicName("idempotent-" + codec);
    int partitions = 3;
    Clients.createTopic(BROKER.admin(), topic, partitions);
    List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
    for (int i = 0; i < 3000; i++) {
      sent.add(varied(topic, i % partitions, i));
    }
    List<RecordMetadata> acks;
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(
            BROKER.broker(),
            Map.of(
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5,
                ProducerConfig.BATCH_SIZE_CONFIG, 2048,
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec))) {
      acks = Clients.sendAll(producer, sent);
    }
    for (int i = 0; i < sent.size(); i++) {
      assertEquals(i / partitions, acks.get(i).offset(), "offset of record " + i);
    }
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      for (int p = 0; p < partitions; p++) {
        TopicPartition tp = new TopicPartition(topic, p);
        List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, sent.size() / partitions);
        for (int k = 0; k < got.size(); k++) {
          assertSame(sent.get(k * partitions + p), p, k, got.get(k));
        }
      }
    }
  }

  @Test
  void the_console_producer_with_its_defaults_writes_records() {
    String topic = Clients.topicName("console-idempotent");
    Clients.createTopic(BROKER.admin(), topic, 1);
    KafkaTool.run(KafkaTool.CONSOLE_PRODUCER, "one\ntwo\n", "--bootstrap-server", BROKER.bootstrap(), "--topic", topic)
        .expectSuccess();
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(new TopicPartition(topic, 0)), 0, 2);
      assertEquals("one", new String(got.get(0).value()));
      assertEquals("two", new String(got.get(1).value()));
    }
  }
}
