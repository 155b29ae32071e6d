package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.management.MBeanServer;
import javax.management.ObjectName;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.connect.mirror.MirrorMaker;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.BrokerKind;
import shoal.conformance.broker.BrokerNode;
import shoal.conformance.broker.Brokers;
import shoal.conformance.broker.ClusterSpec;
import shoal.conformance.broker.Deadline;

/**
 * MirrorMaker 2 ({@code connect-mirror}, the dedicated {@code MirrorMaker} driver, run in this JVM
 * so that its clients' metrics can be read over JMX) from a three-node cluster in three racks
 * with the rack-aware replica selector to a second, single-node cluster: records in order into
 * {@code src.<topic>}, a consumer group's committed offset translated and synced onto the target,
 * a topic config change mirrored, and the MirrorSourceConnector's consumer, given the rack of a
 * follower ({@code src.consumer.client.rack}), reading its bytes from that follower. Two clusters
 * run at once: each launcher has its own directories and free ports. Untagged: it runs on Shoal and
 * on Apache Kafka with the same assertions.
 */
class MirrorMakerTest {
  private static final ClusterSpec THREE_RACKS =
      ClusterSpec.nodes(3)
          .withRacks("rack-a", "rack-b", "rack-c")
          .with("auto.create.topics.enable", "false")
          .with("replica.selector.class", "org.apache.kafka.common.replica.RackAwareReplicaSelector");

  /**
   * On Shoal, each node also publishes Prometheus metrics ({@code metrics.listener}, a Shoal
   * property, on a free port that the node prints at startup), so that the brokers' own count of
   * bytes served per role and client rack can be checked too.
   */
  static final ClusterSpec SOURCE =
      Brokers.selected() == BrokerKind.SHOAL
          ? THREE_RACKS.with("metrics.listener", "http://127.0.0.1:0/metrics")
          : THREE_RACKS;

  static final ClusterSpec TARGET = ClusterSpec.singleNode().with("auto.create.topics.enable", "false");

  @RegisterExtension static final BrokerExtension SRC = BrokerExtension.dedicated(SOURCE);
  @RegisterExtension static final BrokerExtension DST = BrokerExtension.dedicated(TARGET);

  /** MirrorMaker's start (three connectors, their tasks) and a few of its one-second intervals. */
  private static final Duration MIRROR_TIMEOUT = Duration.ofSeconds(90);

  private static final int PAYLOAD_BYTES = 1000;

  @Test
  void records_group_offsets_and_configs_are_mirrored_and_read_from_the_same_rack_replica() {
    String topic = Clients.topicName("mm2");
    String group = Clients.topicName("mm2-group");
    Map<String, String> configs = Map.of("retention.ms", "86400000");
    Clients.get(
        SRC.admin().createTopics(List.of(new NewTopic(topic, 1, (short) 3).configs(configs))).all());
    TopicPartitionInfo p = awaitFullyReplicated(topic);
    int leader = p.leader().id();
    int follower = leader % 3 + 1;
    String followerRack = "rack-" + (char) ('a' + follower - 1);
    TopicPartition tp = new TopicPartition(topic, 0);

    // Batch A, consumed by the group on the source, which commits the end of it.
    produce(topic, "a-", 200);
    try (KafkaConsumer<byte[], byte[]> c =
        Clients.consumer(SRC.broker(), Map.of("group.id", group, "client.id", "conformance-source-group"))) {
      c.subscribe(List.of(topic));
      List<String> got = new ArrayList<>();
      Deadline deadline = Deadline.in(Clients.OP_TIMEOUT);
      while (got.size() < 200) {
        if (deadline.expired()) {
          fail("the source group received " + got.size() + " of 200 records");
        }
        c.poll(Duration.ofMillis(200)).forEach(r -> got.add(key(r)));
      }
      c.commitSync();
    }
    long committedOnSource = committed(SRC, group, tp);

    String mirrored = "src." + topic;
    MirrorMaker mm = new MirrorMaker(mm2Properties(topic, group, followerRack));
    try {
      mm.start();
      List<String> expected = new ArrayList<>();
      for (int i = 0; i < 200; i++) {
        expected.add(String.format("a-%03d", i));
      }
      assertEquals(expected, readMirrored(mirrored, 200), "batch A in " + mirrored + ", in order, once");

      // The group's offset, translated through MirrorMaker's offset syncs, is the end of batch A
      // on the target (whose offsets differ from the source's). MirrorMaker keeps a sparse set of
      // syncs and translates an offset between two of them to the older one (never past a record
      // the group has not read), so the exact offset is checked while batch A's last sync is the
      // latest.
      TopicPartition mtp = new TopicPartition(mirrored, 0);
      long[] onTargetOffset = {-1};
      try {
        Deadline.awaitWithin(
            MIRROR_TIMEOUT,
            "group " + group + " synced onto the target at the end of batch A",
            () -> {
              onTargetOffset[0] = committed(DST, group, mtp);
              return onTargetOffset[0] == 200;
            });
      } catch (IllegalStateException e) {
        throw new AssertionError(e.getMessage() + " (last seen: " + onTargetOffset[0] + ")", e);
      }

      // Batch B, written while MirrorMaker runs; the group never read it on the source, and on the
      // target it resumes with it.
      produce(topic, "b-", 100);
      for (int i = 0; i < 100; i++) {
        expected.add(String.format("b-%03d", i));
      }
      assertEquals(expected, readMirrored(mirrored, 300), "records of " + topic + " in " + mirrored + ", in order, once");
      try (KafkaConsumer<byte[], byte[]> c =
          Clients.consumer(DST.broker(), Map.of("group.id", group, "client.id", "conformance-target-group"))) {
        c.assign(List.of(mtp));
        List<ConsumerRecord<byte[], byte[]>> rest = Clients.pollExactly(c, 100);
        assertEquals(
            expected.subList(200, 300),
            rest.stream().map(MirrorMakerTest::key).toList(),
            "the target group resumes where the source group stopped (source offset " + committedOnSource + ")");
      }

      // A topic config changed on the source is mirrored.
      ConfigResource src = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      Clients.get(
          SRC.admin()
              .incrementalAlterConfigs(
                  Map.of(src, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET))))
              .all());
      ConfigResource dst = new ConfigResource(ConfigResource.Type.TOPIC, mirrored);
      String[] seen = {""};
      Deadline.awaitWithin(
          MIRROR_TIMEOUT,
          "retention.ms=3600000 mirrored onto " + mirrored,
          () -> {
            Config c = Clients.get(DST.admin().describeConfigs(List.of(dst)).all()).get(dst);
            seen[0] = c.get("retention.ms").value();
            return "3600000".equals(seen[0]);
          });

      // MirrorMaker's source consumer was sent to the follower in its rack and read from it.
      assertEquals(
          follower,
          preferredReadReplica(topic),
          "preferred read replica of MirrorMaker's consumer in " + followerRack + " (leader " + leader + ")");
      Map<Integer, Double> bytes = incomingBytesByNode(topic);
      long payload = 300L * PAYLOAD_BYTES;
      double fromFollower = bytes.getOrDefault(follower, 0.0);
      double fromOthers = bytes.entrySet().stream().filter(e -> e.getKey() != follower).mapToDouble(Map.Entry::getValue).sum();
      assertTrue(
          fromFollower >= payload,
          "MirrorMaker's consumer received " + fromFollower + " bytes from follower " + follower + ", less than the "
              + payload + " bytes of records (per node: " + bytes + ")");
      assertTrue(
          fromOthers < 0.05 * payload,
          "MirrorMaker's consumer received " + fromOthers + " bytes from other nodes (per node: " + bytes + ")");
      System.out.printf(
          "MirrorMakerTest: leader %d, follower %d (%s); group offset %d on the source, %d on the target; "
              + "MirrorMaker consumer bytes per node %s%n",
          leader, follower, followerRack, committedOnSource, onTargetOffset[0], bytes);

      if (SRC.broker().kind() == BrokerKind.SHOAL) {
        // The brokers' side: the follower served MirrorMaker's rack the records, the leader
        // served that rack no record bytes.
        double followerServed = servedBytes(SRC.broker().node(follower), topic, "follower", followerRack);
        double leaderServed = servedBytes(SRC.broker().node(leader), topic, "leader", followerRack);
        assertTrue(
            followerServed >= payload,
            "follower " + follower + " served " + followerRack + " " + followerServed + " bytes of " + topic
                + " (shoal_consumer_fetch_bytes_total), less than the " + payload + " bytes of records");
        assertEquals(0.0, leaderServed, "bytes of " + topic + " the leader " + leader + " served to " + followerRack);
        System.out.printf(
            "MirrorMakerTest: shoal_consumer_fetch_bytes_total for %s: follower %.0f, leader %.0f%n",
            followerRack, followerServed, leaderServed);
      }
    } finally {
      mm.stop();
    }
  }

  /**
   * The MirrorMaker 2 configuration (what a {@code mm2.properties} file would hold), with short
   * intervals so that the scenario takes seconds.
   */
  private Map<String, String> mm2Properties(String topic, String group, String rack) {
    Map<String, String> p = new LinkedHashMap<>();
    p.put("clusters", "src, dst");
    p.put("src.bootstrap.servers", SRC.bootstrap());
    p.put("dst.bootstrap.servers", DST.bootstrap());
    p.put("src->dst.enabled", "true");
    p.put("src->dst.topics", topic);
    p.put("src->dst.groups", group);
    // Fetch from the replica in this rack (KIP-392): the source cluster's consumers get client.rack.
    p.put("src.consumer.client.rack", rack);
    // No dst->src flow: no heartbeats connector writing into the source cluster.
    p.put("emit.heartbeats.enabled", "false");
    p.put("emit.checkpoints.enabled", "true");
    p.put("emit.checkpoints.interval.seconds", "1");
    p.put("sync.group.offsets.enabled", "true");
    p.put("sync.group.offsets.interval.seconds", "1");
    p.put("refresh.groups.interval.seconds", "1");
    p.put("refresh.topics.interval.seconds", "1");
    p.put("sync.topic.configs.enabled", "true");
    p.put("sync.topic.configs.interval.seconds", "1");
    // ACL sync reads the source's ACLs (DescribeAcls) and writes them on the target
    // (CreateAcls); clusters without an authorizer have none to mirror.
    p.put("sync.topic.acls.enabled", "false");
    // An offset sync for every record, so that any committed offset translates exactly.
    p.put("offset.lag.max", "0");
    // The target has one node: MirrorMaker's topics there, and its Connect worker's, get RF 1.
    p.put("replication.factor", "1");
    p.put("checkpoints.topic.replication.factor", "1");
    p.put("heartbeats.topic.replication.factor", "1");
    p.put("config.storage.replication.factor", "1");
    p.put("offset.storage.replication.factor", "1");
    p.put("status.storage.replication.factor", "1");
    // The offset-syncs topic lives on the source, which has three nodes.
    p.put("offset-syncs.topic.replication.factor", "3");
    p.put("dst.offset.flush.interval.ms", "1000");
    return p;
  }

  /**
   * {@code shoal_consumer_fetch_bytes_total} of one node for {@code topic} partition 0, served in
   * {@code role} to consumers in {@code clientRack} (0 when the series does not exist), read from
   * the Prometheus endpoint whose address the node printed at its last start.
   */
  private static double servedBytes(BrokerNode node, String topic, String role, String clientRack) {
    String url = null;
    try {
      for (String line : java.nio.file.Files.readAllLines(node.logFile())) {
        if (line.startsWith("shoal metrics: ")) {
          url = line.substring("shoal metrics: ".length()).trim();
        }
      }
      if (url == null) {
        fail("node " + node.nodeId() + " printed no metrics address (metrics.listener) in " + node.logFile());
      }
      java.net.http.HttpResponse<String> r =
          java.net.http.HttpClient.newHttpClient()
              .send(
                  java.net.http.HttpRequest.newBuilder(java.net.URI.create(url)).timeout(Duration.ofSeconds(10)).build(),
                  java.net.http.HttpResponse.BodyHandlers.ofString());
      assertEquals(200, r.statusCode(), "GET " + url);
      String labels =
          "topic=\"" + topic + "\",partition=\"0\",role=\"" + role + "\",";
      double sum = 0;
      for (String line : r.body().split("\n")) {
        if (line.startsWith("shoal_consumer_fetch_bytes_total{") && line.contains(labels)
            && line.contains("client_rack=\"" + clientRack + "\"}")) {
          sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        }
      }
      return sum;
    } catch (java.io.IOException e) {
      throw new AssertionError("cannot read the metrics of node " + node.nodeId() + " at " + url, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  private static TopicPartitionInfo awaitFullyReplicated(String topic) {
    TopicPartitionInfo[] p = new TopicPartitionInfo[1];
    Deadline.awaitWithin(
        Clients.OP_TIMEOUT,
        topic + " fully replicated",
        () -> {
          TopicDescription d = Clients.awaitTopic(SRC.admin(), topic, 1);
          p[0] = d.partitions().get(0);
          return p[0].leader() != null && p[0].isr().size() == 3;
        });
    return p[0];
  }

  private static void produce(String topic, String prefix, int count) {
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(SRC.broker(), Map.of())) {
      List<Future<?>> acks = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        byte[] value = new byte[PAYLOAD_BYTES];
        acks.add(producer.send(new ProducerRecord<>(topic, 0, String.format("%s%03d", prefix, i).getBytes(), value)));
      }
      acks.forEach(Clients::get);
    }
  }

  private static String key(ConsumerRecord<byte[], byte[]> r) {
    return new String(r.key());
  }

  /** Reads the mirrored topic on the target until {@code count} records (failing on more). */
  private static List<String> readMirrored(String mirrored, int count) {
    Clients.awaitDescribed(DST.admin(), mirrored, 1);
    TopicPartition mtp = new TopicPartition(mirrored, 0);
    try (KafkaConsumer<byte[], byte[]> c = Clients.consumer(DST.broker(), Map.of("client.id", "conformance-target-reader"))) {
      c.assign(List.of(mtp));
      c.seekToBeginning(List.of(mtp));
      List<String> got = new ArrayList<>();
      Deadline deadline = Deadline.in(MIRROR_TIMEOUT);
      while (got.size() < count) {
        if (deadline.expired()) {
          fail("received " + got.size() + " of " + count + " records from " + mirrored);
        }
        c.poll(Duration.ofMillis(200)).forEach(r -> got.add(key(r)));
      }
      // Nothing more than the expected records: MirrorMaker wrote each once.
      assertEquals(c.endOffsets(List.of(mtp)).get(mtp), c.position(mtp), "position at the end of " + mirrored);
      return got;
    }
  }

  private static long committed(BrokerExtension cluster, String group, TopicPartition tp) {
    try {
      Map<TopicPartition, OffsetAndMetadata> m =
          cluster.admin()
              .listConsumerGroupOffsets(Map.of(group, new ListConsumerGroupOffsetsSpec()))
              .partitionsToOffsetAndMetadata(group)
              .get(10, TimeUnit.SECONDS);
      OffsetAndMetadata o = m.get(tp);
      return o == null ? -1 : o.offset();
    } catch (ExecutionException | TimeoutException e) {
      return -1;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /**
   * The consumers in this JVM that fetch {@code topic} other than this scenario's own: MirrorMaker's
   * source task consumer. Their client ids, from the per-partition fetch metrics.
   */
  private static Set<String> mirrorConsumers(String topic) {
    MBeanServer server = ManagementFactory.getPlatformMBeanServer();
    Set<String> ids = new java.util.TreeSet<>();
    try {
      for (ObjectName n : server.queryNames(new ObjectName("kafka.consumer:type=consumer-fetch-manager-metrics,*"), null)) {
        String id = n.getKeyProperty("client-id");
        if (topic.equals(n.getKeyProperty("topic")) && "0".equals(n.getKeyProperty("partition"))
            && id != null && !id.contains("conformance")) {
          ids.add(id);
        }
      }
    } catch (javax.management.MalformedObjectNameException e) {
      throw new IllegalStateException(e);
    }
    if (ids.isEmpty()) {
      fail("no MirrorMaker consumer of " + topic + " among this JVM's consumer metrics");
    }
    return ids;
  }

  private static int preferredReadReplica(String topic) {
    MBeanServer server = ManagementFactory.getPlatformMBeanServer();
    int replica = -1;
    try {
      for (String id : mirrorConsumers(topic)) {
        ObjectName n =
            new ObjectName(
                "kafka.consumer:type=consumer-fetch-manager-metrics,client-id=" + id + ",topic=" + topic + ",partition=0");
        Object v = server.getAttribute(n, "preferred-read-replica");
        replica = ((Number) v).intValue();
      }
    } catch (Exception e) {
      throw new AssertionError("cannot read preferred-read-replica over JMX", e);
    }
    return replica;
  }

  /** Bytes MirrorMaker's source consumer received per node id, from consumer-node-metrics over JMX. */
  private static Map<Integer, Double> incomingBytesByNode(String topic) {
    MBeanServer server = ManagementFactory.getPlatformMBeanServer();
    Map<Integer, Double> out = new HashMap<>();
    try {
      for (String id : mirrorConsumers(topic)) {
        for (ObjectName n :
            server.queryNames(new ObjectName("kafka.consumer:type=consumer-node-metrics,client-id=" + id + ",*"), null)) {
          String node = n.getKeyProperty("node-id");
          if (node == null || !node.startsWith("node-")) {
            continue;
          }
          int nodeId = Integer.parseInt(node.substring("node-".length()));
          double v = ((Number) server.getAttribute(n, "incoming-byte-total")).doubleValue();
          // Bootstrap connections have negative ids; they carry metadata, no records, and count
          // as another node's bytes only through the cap on what came from other nodes.
          out.merge(nodeId < 0 ? -1 : nodeId, v, Double::sum);
        }
      }
    } catch (Exception e) {
      throw new AssertionError("cannot read consumer-node-metrics over JMX", e);
    }
    return out;
  }
}
