package shoal.conformance.bench;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads a topic from the beginning with assign() (no consumer group) and prints records/s and
 * MB/s, like ConsumerPerformance's summary. Complements Kafka's ConsumerPerformance, which
 * subscribes through a group, so that brokers without group coordination can be measured too.
 *
 * <p>Usage: {@code AssignedConsumerThroughput BOOTSTRAP TOPIC RECORDS [TIMEOUT_SECONDS]}
 */
public final class AssignedConsumerThroughput {
  private AssignedConsumerThroughput() {}

  public static void main(String[] args) {
    if (args.length < 3) {
      System.err.println("usage: AssignedConsumerThroughput BOOTSTRAP TOPIC RECORDS [TIMEOUT_SECONDS]");
      System.exit(2);
    }
    String topic = args[1];
    long expected = Long.parseLong(args[2]);
    long timeoutNanos = Duration.ofSeconds(args.length > 3 ? Long.parseLong(args[3]) : 120).toNanos();
    Map<String, Object> props = new HashMap<>();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    // As ConsumerPerformance does: leave client-side CRC checks out of the measurement.
    props.put(ConsumerConfig.CHECK_CRCS_CONFIG, false);
    props.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, 1024 * 1024);
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      List<TopicPartition> partitions =
          consumer.partitionsFor(topic).stream().map(p -> new TopicPartition(p.topic(), p.partition())).toList();
      if (partitions.isEmpty()) {
        System.err.println("topic " + topic + " has no partitions");
        System.exit(1);
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      long records = 0;
      long bytes = 0;
      long start = System.nanoTime();
      while (records < expected) {
        if (System.nanoTime() - start > timeoutNanos) {
          System.err.println("timed out after " + records + " of " + expected + " records");
          System.exit(1);
        }
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          records++;
          bytes += (r.key() == null ? 0 : r.key().length) + (r.value() == null ? 0 : r.value().length);
        }
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      System.out.printf(
          "%d records consumed, %.1f records/sec (%.2f MB/sec) in %.2f s%n",
          records, records / seconds, bytes / seconds / (1024 * 1024), seconds);
    }
  }
}
