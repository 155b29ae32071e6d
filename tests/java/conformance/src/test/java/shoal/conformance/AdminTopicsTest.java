package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TopicListing;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.BrokerNode;
import shoal.conformance.broker.Deadline;

/** AdminClient topic management and cluster description. */
class AdminTopicsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  private static Set<String> topicNames(Admin admin) {
    return Clients.get(admin.listTopics().names());
  }

  @Test
  void create_list_describe_delete_topic() {
    Admin admin = BROKER.admin();
    String name = Clients.topicName("lifecycle");
    CreateTopicsResult created =
        admin.createTopics(List.of(new NewTopic(name, 3, (short) 1).configs(Map.of("retention.ms", "3600000"))));
    Clients.get(created.all());
    assertEquals(3, Clients.get(created.numPartitions(name)));
    assertEquals(1, Clients.get(created.replicationFactor(name)));
    Uuid createdId = Clients.get(created.topicId(name));
    assertNotEquals(Uuid.ZERO_UUID, createdId);
    assertEquals("3600000", Clients.get(created.config(name)).get("retention.ms").value());

    TopicDescription d = Clients.awaitTopic(admin, name, 3);
    assertEquals(name, d.name());
    assertFalse(d.isInternal());
    assertEquals(createdId, d.topicId(), "describeTopics reports the id createTopics returned");
    int nodeId = BROKER.broker().nodes().get(0).nodeId();
    for (int p = 0; p < 3; p++) {
      TopicPartitionInfo info = d.partitions().get(p);
      assertEquals(p, info.partition());
      assertEquals(nodeId, info.leader().id());
      assertEquals(List.of(nodeId), info.replicas().stream().map(Node::id).toList());
      assertEquals(List.of(nodeId), info.isr().stream().map(Node::id).toList());
    }
    // Describing by id gives the same topic.
    TopicDescription byId =
        Clients.get(admin.describeTopics(TopicCollection.ofTopicIds(List.of(createdId))).allTopicIds()).get(createdId);
    assertEquals(name, byId.name());

    Collection<TopicListing> listings = Clients.get(admin.listTopics().listings());
    TopicListing listing = listings.stream().filter(l -> l.name().equals(name)).findFirst().orElseThrow();
    assertEquals(createdId, listing.topicId());
    assertFalse(listing.isInternal());

    Clients.get(admin.deleteTopics(List.of(name)).all());
    Deadline.awaitWithin(Clients.OP_TIMEOUT, "deleted topic to leave listTopics", () -> !topicNames(admin).contains(name));
    Throwable err = Clients.failureOf(admin.describeTopics(List.of(name)).allTopicNames());
    assertInstanceOf(UnknownTopicOrPartitionException.class, err);
  }

  @Test
  void delete_by_topic_id() {
    Admin admin = BROKER.admin();
    String name = Clients.topicName("delete-by-id");
    Uuid id = Clients.createTopic(admin, name, 1).topicId();
    Clients.get(admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all());
    Deadline.awaitWithin(Clients.OP_TIMEOUT, "topic deleted by id to disappear", () -> !topicNames(admin).contains(name));
  }

  @Test
  void list_topics_hides_internal_topics_unless_asked() {
    Admin admin = BROKER.admin();
    String name = Clients.topicName("listing");
    Clients.createTopic(admin, name, 1);
    Set<String> visible = topicNames(admin);
    assertTrue(visible.contains(name));
    assertTrue(visible.stream().noneMatch(t -> t.startsWith("__")), "internal topics listed by default: " + visible);
    Set<String> all = Clients.get(admin.listTopics(new ListTopicsOptions().listInternal(true)).names());
    assertTrue(all.containsAll(visible));
  }

  @Test
  void validate_only_creates_nothing() {
    Admin admin = BROKER.admin();
    String name = Clients.topicName("validate-only");
    CreateTopicsResult r =
        admin.createTopics(List.of(new NewTopic(name, 2, (short) 1)), new CreateTopicsOptions().validateOnly(true));
    Clients.get(r.all());
    assertEquals(2, Clients.get(r.numPartitions(name)));
    assertFalse(topicNames(admin).contains(name));
    Throwable err = Clients.failureOf(admin.describeTopics(List.of(name)).allTopicNames());
    assertInstanceOf(UnknownTopicOrPartitionException.class, err);
  }

  @Test
  void default_partitions_and_replication_come_from_the_broker() {
    Admin admin = BROKER.admin();
    String name = Clients.topicName("defaults");
    CreateTopicsResult r = admin.createTopics(List.of(new NewTopic(name, Optional.empty(), Optional.empty())));
    Clients.get(r.all());
    assertEquals(1, Clients.get(r.numPartitions(name)), "num.partitions=1");
    assertEquals(1, Clients.get(r.replicationFactor(name)));
    Clients.awaitTopic(admin, name, 1);
  }

  @Test
  void create_partitions_grows_a_topic_that_then_accepts_records() {
    Admin admin = BROKER.admin();
    String name = Clients.topicName("grow");
    Clients.createTopic(admin, name, 1);
    Clients.get(admin.createPartitions(Map.of(name, NewPartitions.increaseTo(4))).all());
    TopicDescription d = Clients.awaitTopic(admin, name, 4);
    assertEquals(List.of(0, 1, 2, 3), d.partitions().stream().map(TopicPartitionInfo::partition).toList());
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      RecordMetadata md = Clients.get(producer.send(new ProducerRecord<>(name, 3, null, "x".getBytes())));
      assertEquals(3, md.partition());
      assertEquals(0, md.offset());
    }
  }

  @Test
  void describe_cluster_names_this_broker() throws Exception {
    Admin admin = BROKER.admin();
    DescribeClusterResult r = admin.describeCluster();
    Collection<Node> nodes = r.nodes().get(30, TimeUnit.SECONDS);
    BrokerNode node = BROKER.broker().nodes().get(0);
    assertEquals(1, nodes.size(), "nodes: " + nodes);
    Node n = nodes.iterator().next();
    assertEquals(node.nodeId(), n.id());
    assertEquals(node.clientAddress(), n.host() + ":" + n.port());
    assertNull(n.rack(), "no broker.rack configured");
    Node controller = r.controller().get(30, TimeUnit.SECONDS);
    assertNotNull(controller);
    assertEquals(node.nodeId(), controller.id(), "a single node is also the node the admin sends CreateTopics to");
    String clusterId = r.clusterId().get(30, TimeUnit.SECONDS);
    assertNotNull(clusterId);
    assertFalse(clusterId.isBlank());
    // The cluster id is stable across calls.
    assertEquals(clusterId, admin.describeCluster().clusterId().get(30, TimeUnit.SECONDS));
  }

  @Test
  void metadata_through_producer_and_consumer_matches_the_admin_view() throws ExecutionException, InterruptedException {
    Admin admin = BROKER.admin();
    String name = Clients.topicName("client-metadata");
    Clients.createTopic(admin, name, 3);
    int nodeId = BROKER.broker().nodes().get(0).nodeId();
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of());
        var consumer = Clients.consumer(BROKER.broker(), Map.of())) {
      var fromProducer = producer.partitionsFor(name);
      assertEquals(3, fromProducer.size());
      fromProducer.forEach(p -> assertEquals(nodeId, p.leader().id()));
      var fromConsumer = consumer.listTopics().get(name);
      assertNotNull(fromConsumer, "consumer listTopics includes " + name);
      assertEquals(List.of(0, 1, 2), fromConsumer.stream().map(p -> p.partition()).sorted().toList());
    }
  }
}
