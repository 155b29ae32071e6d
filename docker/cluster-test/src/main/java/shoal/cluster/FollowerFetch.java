package shoal.cluster;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;

/**
 * {@code follower-fetch --topic T --client-rack R [--records N]} (KIP-392, for clusters whose
 * brokers set {@code replica.selector.class=...RackAwareReplicaSelector}): a consumer with
 * {@code client.rack=R} reads N records of partition 0 and must end up reading from the in-sync
 * replica in rack R when the leader is elsewhere, and from the leader (gauge -1) when the leader
 * is in R or no replica is.
 */
final class FollowerFetch {
  private FollowerFetch() {}

  static int run(Args args) throws Exception {
    String topic = args.required("topic");
    String rack = args.required("client-rack");
    long records = args.number("records", 100);
    TopicPartition tp = new TopicPartition(topic, 0);

    int expected;
    TopicPartitionInfo p0;
    try (Admin admin = KafkaClients.admin(args.bootstrap())) {
      Map<Integer, String> racks = new HashMap<>();
      for (Node n : admin.describeCluster().nodes().get(30, TimeUnit.SECONDS)) {
        racks.put(n.id(), n.rack());
      }
      TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
      p0 = d.partitions().get(0);
      expected = expectedReplica(p0, racks, rack);
    }

    try (KafkaConsumer<byte[], byte[]> consumer = KafkaClients.consumer(args.bootstrap(), rack)) {
      consumer.assign(List.of(tp));
      consumer.seekToBeginning(List.of(tp));
      long[] got = {0};
      KafkaClients.await(
          KafkaClients.OP_TIMEOUT,
          records + " records of " + tp + " with client.rack=" + rack,
          () -> {
            got[0] += consumer.poll(Duration.ofMillis(200)).count();
            return got[0] >= records;
          });
      int actual = preferredReadReplica(consumer, tp);
      System.out.println(
          "follower-fetch: " + tp + " leader " + p0.leader().id() + ", client.rack=" + rack
              + " reads from " + (actual < 0 ? "the leader" : "replica " + actual));
      if (actual != expected) {
        throw new CheckFailed(
            "client.rack=" + rack + " reads from " + actual + ", expected " + expected + " (-1: the leader)");
      }
    }
    return 0;
  }

  /** The in-sync follower in {@code rack}, or -1 when the leader is there or no replica is. */
  static int expectedReplica(TopicPartitionInfo p, Map<Integer, String> racks, String rack) {
    if (rack.equals(racks.get(p.leader().id()))) {
      return -1;
    }
    return p.isr().stream().map(Node::id).filter(id -> rack.equals(racks.get(id))).findFirst().orElse(-1);
  }

  /** The consumer's "preferred-read-replica" gauge for a partition: -1 while it reads the leader. */
  private static int preferredReadReplica(KafkaConsumer<byte[], byte[]> consumer, TopicPartition tp) {
    for (var e : consumer.metrics().entrySet()) {
      var name = e.getKey();
      if (name.name().equals("preferred-read-replica")
          && tp.topic().equals(name.tags().get("topic"))
          && Integer.toString(tp.partition()).equals(name.tags().get("partition"))) {
        return ((Number) e.getValue().metricValue()).intValue();
      }
    }
    return -1;
  }
}
