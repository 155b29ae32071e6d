package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Metadata requests auto-create topics when the broker allows it and the client asks. */
class AutoCreateTopicsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.AUTO_CREATE);

  @Test
  void producing_to_a_new_topic_creates_it_with_num_partitions() {
    String name = Clients.topicName("auto");
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      RecordMetadata md = Clients.get(producer.send(new ProducerRecord<>(name, 2, null, "first".getBytes())));
      assertEquals(2, md.partition());
      assertEquals(0, md.offset());
    }
    assertEquals(3, Clients.awaitTopic(BROKER.admin(), name, 3).partitions().size());
  }

  @Test
  void a_consumer_that_disallows_auto_creation_does_not_create_topics() {
    String name = Clients.topicName("no-auto");
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.consumer(
            BROKER.broker(),
            Map.of(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, false, ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 3000))) {
      assertEquals(List.of(), consumer.partitionsFor(name));
    }
    assertFalse(Clients.get(BROKER.admin().listTopics().names()).contains(name));
  }
}
