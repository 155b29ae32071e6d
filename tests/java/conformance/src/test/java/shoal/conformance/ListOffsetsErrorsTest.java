package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import java.io.IOException;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.message.ListOffsetsRequestData.ListOffsetsPartition;
import org.apache.kafka.common.message.ListOffsetsRequestData.ListOffsetsTopic;
import org.apache.kafka.common.message.ListOffsetsResponseData.ListOffsetsPartitionResponse;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.ListOffsetsRequest;
import org.apache.kafka.common.requests.ListOffsetsResponse;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * ListOffsets for bad requests, answer by answer: raw requests at v9 (the highest version Shoal
 * advertises) so that each partition's error code, offset, timestamp and leader epoch are compared
 * exactly, plus what the Admin client makes of an unknown topic.
 */
class ListOffsetsErrorsTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  private static final short VERSION = 9;

  private static ListOffsetsPartition partition(int index, long timestamp, int currentLeaderEpoch) {
    return new ListOffsetsPartition()
        .setPartitionIndex(index)
        .setTimestamp(timestamp)
        .setCurrentLeaderEpoch(currentLeaderEpoch);
  }

  /**
   * The answers sorted by partition: Kafka collects them in a hash map keyed by topic-partition,
   * so their order on the wire is not part of the contract.
   */
  private static List<ListOffsetsPartitionResponse> list(String topic, ListOffsetsPartition... partitions)
      throws IOException {
    ListOffsetsRequest request =
        ListOffsetsRequest.Builder.forConsumer(false, IsolationLevel.READ_UNCOMMITTED)
            .setTargetTimes(List.of(new ListOffsetsTopic().setName(topic).setPartitions(List.of(partitions))))
            .build(VERSION);
    try (RawConnection c = new RawConnection(BROKER.bootstrap())) {
      ListOffsetsResponse response = c.roundTrip(request);
      assertEquals(1, response.data().topics().size(), response.toString());
      assertEquals(topic, response.data().topics().get(0).name());
      return response.data().topics().get(0).partitions().stream()
          .sorted(java.util.Comparator.comparingInt(ListOffsetsPartitionResponse::partitionIndex))
          .toList();
    }
  }

  /** (partition, error, offset, timestamp, leader epoch) of one answer. */
  private static List<Object> answer(ListOffsetsPartitionResponse r) {
    return List.of(r.partitionIndex(), Errors.forCode(r.errorCode()), r.offset(), r.timestamp(), r.leaderEpoch());
  }

  private static List<Object> failed(int partition, Errors error) {
    return List.of(partition, error, -1L, -1L, -1);
  }

  private static String topicWithRecords(String hint) {
    String name = Clients.topicName(hint);
    Clients.createTopic(BROKER.admin(), name, 1);
    try (KafkaProducer<byte[], byte[]> producer = Clients.producer(BROKER.broker(), Map.of())) {
      Clients.sendAll(
          producer,
          List.of(
              new ProducerRecord<>(name, 0, 1_000L, null, "a".getBytes()),
              new ProducerRecord<>(name, 0, 2_000L, null, "b".getBytes())));
    }
    return name;
  }

  @Test
  void unknown_topics_and_partitions_answer_unknown_topic_or_partition() throws IOException {
    String missing = Clients.topicName("lo-missing");
    assertEquals(
        List.of(failed(0, Errors.UNKNOWN_TOPIC_OR_PARTITION)),
        list(missing, partition(0, ListOffsetsRequest.LATEST_TIMESTAMP, -1)).stream().map(ListOffsetsErrorsTest::answer).toList());
    String name = topicWithRecords("lo-partitions");
    assertEquals(
        List.of(
            List.of(0, Errors.NONE, 2L, -1L, 0),
            failed(3, Errors.UNKNOWN_TOPIC_OR_PARTITION)),
        list(name, partition(0, ListOffsetsRequest.LATEST_TIMESTAMP, -1), partition(3, ListOffsetsRequest.LATEST_TIMESTAMP, -1))
            .stream()
            .map(ListOffsetsErrorsTest::answer)
            .toList());
    assertInstanceOf(
        UnknownTopicOrPartitionException.class,
        Clients.failureOf(
            BROKER.admin().listOffsets(Map.of(new TopicPartition(missing, 0), OffsetSpec.latest())).all()));
  }

  @Test
  void timestamps_and_leader_epochs_are_checked_per_partition() throws IOException {
    String name = topicWithRecords("lo-checks");
    assertEquals(
        List.of(failed(0, Errors.UNSUPPORTED_VERSION)),
        list(name, partition(0, -7L, -1)).stream().map(ListOffsetsErrorsTest::answer).toList(),
        "a negative timestamp that names no special offset");
    assertEquals(
        List.of(failed(0, Errors.UNKNOWN_LEADER_EPOCH)),
        list(name, partition(0, ListOffsetsRequest.EARLIEST_TIMESTAMP, 5)).stream().map(ListOffsetsErrorsTest::answer).toList(),
        "a current leader epoch ahead of the leader's");
    assertEquals(
        List.of(List.of(0, Errors.NONE, 0L, -1L, 0)),
        list(name, partition(0, ListOffsetsRequest.EARLIEST_TIMESTAMP, 0)).stream().map(ListOffsetsErrorsTest::answer).toList(),
        "the leader's own epoch");
    assertEquals(
        List.of(List.of(0, Errors.NONE, 1L, 2_000L, 0)),
        list(name, partition(0, 1_500L, -1)).stream().map(ListOffsetsErrorsTest::answer).toList(),
        "the first record at or after the time");
    assertEquals(
        List.of(List.of(0, Errors.NONE, -1L, -1L, -1)),
        list(name, partition(0, 9_000L, -1)).stream().map(ListOffsetsErrorsTest::answer).toList(),
        "no record at or after the time");
    assertEquals(
        List.of(List.of(0, Errors.NONE, 1L, 2_000L, 0)),
        list(name, partition(0, ListOffsetsRequest.MAX_TIMESTAMP, -1)).stream().map(ListOffsetsErrorsTest::answer).toList(),
        "the record with the largest timestamp");
  }

  @Test
  void a_partition_asked_twice_answers_invalid_request() throws IOException {
    String name = topicWithRecords("lo-duplicate");
    List<List<Object>> answers =
        list(name, partition(0, ListOffsetsRequest.LATEST_TIMESTAMP, -1), partition(0, ListOffsetsRequest.EARLIEST_TIMESTAMP, -1))
            .stream()
            .map(ListOffsetsErrorsTest::answer)
            .toList();
    // One answer per distinct partition.
    assertEquals(List.of(failed(0, Errors.INVALID_REQUEST)), answers);
  }
}
