package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static shoal.conformance.RecordAssertions.assertSame;
import static shoal.conformance.RecordAssertions.varied;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Acknowledged records, topics and their configs survive a graceful stop (SIGTERM) and an abrupt
 * one (SIGKILL) followed by a start on the same data directory and port.
 */
@TestMethodOrder(MethodOrderer.MethodName.class)
class RestartTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.dedicated(Specs.STANDARD);

  private static final List<String> CODECS = ProduceConsumeTest.CODECS;

  /** Produces {@code count} records per partition with the given codec; checks offsets from {@code firstOffset}. */
  private static List<ProducerRecord<byte[], byte[]>> produce(
      String topic, int partitions, int count, String codec, int seed, long firstOffset) {
    List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      for (int i = 0; i < count; i++) {
        sent.add(varied(topic, p, seed + i));
      }
    }
    try (KafkaProducer<byte[], byte[]> producer =
        Clients.producer(BROKER.broker(), Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec))) {
      List<RecordMetadata> acks = Clients.sendAll(producer, sent);
      for (int k = 0; k < acks.size(); k++) {
        assertEquals(k / count, acks.get(k).partition(), "partition of record " + k + ": " + acks.get(k));
        assertEquals(firstOffset + k % count, acks.get(k).offset(), "offset of record " + k + ": " + acks.get(k));
      }
    }
    return sent;
  }

  private static void verify(String topic, int partitions, List<List<ProducerRecord<byte[], byte[]>>> rounds) {
    try (KafkaConsumer<byte[], byte[]> consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      for (int p = 0; p < partitions; p++) {
        List<ProducerRecord<byte[], byte[]>> expected = new ArrayList<>();
        for (List<ProducerRecord<byte[], byte[]>> round : rounds) {
          for (ProducerRecord<byte[], byte[]> r : round) {
            if (r.partition() == p) {
              expected.add(r);
            }
          }
        }
        TopicPartition tp = new TopicPartition(topic, p);
        List<ConsumerRecord<byte[], byte[]>> got = Clients.consume(consumer, List.of(tp), 0, expected.size());
        for (int i = 0; i < expected.size(); i++) {
          assertSame(expected.get(i), p, i, got.get(i));
        }
      }
    }
  }

  private static void restartWith(Runnable stop, String what) {
    BROKER.resetAdmin();
    stop.run();
    BROKER.broker().start();
  }

  @Test
  void a_graceful_restart_keeps_every_record_topic_and_config() {
    verifySurvives(() -> BROKER.broker().stop(), "stop");
  }

  @Test
  void a_killed_broker_keeps_every_acknowledged_record() {
    verifySurvives(() -> BROKER.broker().kill(), "kill");
  }

  private void verifySurvives(Runnable stop, String how) {
    int partitions = 2;
    int perRound = 60;
    List<String> topics = new ArrayList<>();
    List<List<ProducerRecord<byte[], byte[]>>> before = new ArrayList<>();
    List<TopicDescription> descriptions = new ArrayList<>();
    for (String codec : CODECS) {
      String topic = Clients.topicName(how + "-" + codec);
      topics.add(topic);
      descriptions.add(Clients.createTopic(BROKER.admin(), topic, partitions, Map.of("retention.ms", "86400000")));
      before.add(produce(topic, partitions, perRound, codec, 0, 0));
    }

    restartWith(stop, how);

    for (int t = 0; t < topics.size(); t++) {
      String topic = topics.get(t);
      TopicDescription after = Clients.awaitTopic(BROKER.admin(), topic, partitions);
      assertEquals(descriptions.get(t).topicId(), after.topicId(), "topic id survives the restart");
      ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      Config config = Clients.get(BROKER.admin().describeConfigs(List.of(r)).values().get(r));
      assertEquals("86400000", config.get("retention.ms").value());
      // Records written after the restart continue the offsets.
      List<ProducerRecord<byte[], byte[]>> later = produce(topic, partitions, 10, CODECS.get(t), 1000, perRound);
      verify(topic, partitions, List.of(before.get(t), later));
    }
  }
}
