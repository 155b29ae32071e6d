package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.BrokerKind;
import shoal.conformance.broker.Deadline;

/**
 * The KIP-848 consumer group protocol ({@code group.protocol=consumer}). Kafka 4.x runs it; Shoal
 * implements the classic protocol only and does not advertise ConsumerGroupHeartbeat, so the
 * consumer must fail with an error that says so rather than hang. Each broker's behaviour is
 * asserted.
 */
@Tag("groups")
class ConsumerProtocolTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.GROUPS);

  @Test
  void the_consumer_protocol_is_refused_clearly_on_shoal_and_works_on_kafka() {
    String topic = Clients.topicName("kip848");
    Clients.createTopic(BROKER.admin(), topic, 1);
    GroupOffsetsTest.produce(BROKER, topic, 1, 3, 0);
    try (KafkaConsumer<byte[], byte[]> consumer =
        Clients.consumer(
            BROKER.broker(),
            Map.of(
                ConsumerConfig.GROUP_ID_CONFIG, Clients.topicName("kip848-group"),
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer"))) {
      consumer.subscribe(List.of(topic));
      if (BROKER.broker().kind() == BrokerKind.SHOAL) {
        Deadline deadline = Deadline.in(Duration.ofSeconds(20));
        UnsupportedVersionException e =
            assertThrows(
                UnsupportedVersionException.class,
                () -> {
                  while (!deadline.expired()) {
                    consumer.poll(Duration.ofMillis(200));
                  }
                });
        assertTrue(e.getMessage().contains("CONSUMER group protocol"), e.getMessage());
        return;
      }
      int got = 0;
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (got < 3 && !deadline.expired()) {
        got += consumer.poll(Duration.ofMillis(200)).count();
      }
      assertEquals(3, got);
    }
  }
}
