package shoal.conformance.clients;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * A consumer group member in its own JVM, so that a scenario can crash it (SIGKILL: no
 * LeaveGroup, no more heartbeats) and watch the group expire it after its session timeout.
 *
 * <pre>
 * java -cp ... shoal.conformance.clients.GroupMemberMain BOOTSTRAP TOPIC GROUP [name=value]...
 * </pre>
 *
 * The name=value pairs are consumer properties. It subscribes to TOPIC, polls until killed,
 * and prints {@code ASSIGNED p1,p2,...} after every rebalance that changed its partitions.
 */
public final class GroupMemberMain {
  private GroupMemberMain() {}

  public static void main(String[] args) {
    if (System.getProperty("org.slf4j.simpleLogger.defaultLogLevel") == null) {
      System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    }
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(ConsumerConfig.GROUP_ID_CONFIG, args[2]);
    p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "group-member-process");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    for (int i = 3; i < args.length; i++) {
      int eq = args[i].indexOf('=');
      p.put(args[i].substring(0, eq), args[i].substring(eq + 1));
    }
    TreeSet<Integer> owned = new TreeSet<>();
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      consumer.subscribe(
          List.of(args[1]),
          new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
              partitions.forEach(tp -> owned.remove(tp.partition()));
              report(owned);
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
              partitions.forEach(tp -> owned.add(tp.partition()));
              report(owned);
            }
          });
      while (true) {
        consumer.poll(Duration.ofMillis(100));
      }
    }
  }

  private static void report(TreeSet<Integer> owned) {
    StringBuilder b = new StringBuilder("ASSIGNED ");
    owned.forEach(p -> b.append(b.length() > 9 ? "," : "").append(p));
    System.out.println(b);
    System.out.flush();
  }
}
