package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.message.ApiVersionsResponseData;
import org.apache.kafka.common.message.ApiVersionsResponseData.ApiVersion;
import org.apache.kafka.common.message.ProduceRequestData;
import org.apache.kafka.common.message.ProduceResponseData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.record.MemoryRecords;
import org.apache.kafka.common.record.SimpleRecord;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.ApiVersionsRequest;
import org.apache.kafka.common.requests.ApiVersionsResponse;
import org.apache.kafka.common.requests.MetadataRequest;
import org.apache.kafka.common.requests.MetadataResponse;
import org.apache.kafka.common.requests.ProduceRequest;
import org.apache.kafka.common.requests.ProduceResponse;
import org.apache.kafka.common.requests.RequestHeader;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Bad input on the wire gets Kafka's answer (an error code, or the connection closed), and the
 * broker goes on serving other connections: one opened before the bad input and a new one.
 */
class ProtocolRobustnessTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.STANDARD);

  private static final Duration CLOSE_WITHIN = Duration.ofSeconds(10);
  private RawConnection bystander;

  @BeforeEach
  void openBystander() throws IOException {
    bystander = new RawConnection(bootstrap());
    assertServes(bystander);
  }

  @AfterEach
  void bystanderStillServed() throws IOException {
    try (RawConnection fresh = new RawConnection(bootstrap())) {
      assertServes(fresh);
    }
    assertServes(bystander);
    bystander.close();
  }

  private static String bootstrap() {
    return BROKER.broker().nodes().get(0).clientAddress();
  }

  private static void assertServes(RawConnection c) throws IOException {
    ApiVersionsResponse r = c.roundTrip(new ApiVersionsRequest.Builder().build((short) 3));
    assertEquals(Errors.NONE.code(), r.data().errorCode());
  }

  /** Header v2 (flexible) by hand, for API keys or versions the client library cannot encode. */
  private static ByteBuffer handMadeRequest(short apiKey, short version, int correlationId, byte[] body) {
    byte[] clientId = "raw-conformance".getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(2 + 2 + 4 + 2 + clientId.length + 1 + body.length);
    b.putShort(apiKey).putShort(version).putInt(correlationId);
    b.putShort((short) clientId.length).put(clientId);
    b.put((byte) 0); // no tagged fields
    b.put(body).flip();
    return b;
  }

  /** An ApiVersions v3+ style body: client software name and version, no tagged fields. */
  private static byte[] apiVersionsV3Body() {
    return new byte[] {4, 'r', 'a', 'w', 4, '1', '.', '0', 0};
  }

  @Test
  void api_versions_answers_every_version_from_0_to_4() throws IOException {
    for (short v = 0; v <= 4; v++) {
      ApiVersionsResponse r = bystander.roundTrip(new ApiVersionsRequest.Builder().build(v));
      assertEquals(Errors.NONE.code(), r.data().errorCode(), "ApiVersions v" + v);
      ApiVersion self = r.data().apiKeys().find(ApiKeys.API_VERSIONS.id);
      assertNotNull(self, "ApiVersions lists itself at v" + v);
      assertEquals(0, self.minVersion());
      assertEquals(4, self.maxVersion());
    }
  }

  @Test
  void an_unknown_api_versions_version_gets_the_kip511_v0_fallback() throws IOException {
    bystander.writeFrame(handMadeRequest(ApiKeys.API_VERSIONS.id, (short) 127, 4242, apiVersionsV3Body()));
    ByteBuffer frame = bystander.readFrame();
    assertEquals(4242, frame.getInt(), "correlation id in a v0 response header");
    ApiVersionsResponseData body = new ApiVersionsResponseData(new ByteBufferAccessor(frame), (short) 0);
    assertEquals(Errors.UNSUPPORTED_VERSION.code(), body.errorCode());
    ApiVersion self = body.apiKeys().find(ApiKeys.API_VERSIONS.id);
    assertNotNull(self, "the fallback lists the ApiVersions range so the client can retry");
    assertEquals(4, self.maxVersion());
    assertFalse(frame.hasRemaining(), "v0 body has no throttle time or tagged fields");
    assertServes(bystander);
  }

  @Test
  void requests_are_answered_in_order_when_pipelined() throws IOException {
    List<RequestHeader> sent = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      if (i % 3 == 0) {
        sent.add(bystander.send(new MetadataRequest.Builder(List.of(), false).build((short) 12)));
      } else {
        sent.add(bystander.send(new ApiVersionsRequest.Builder().build((short) (i % 2 == 0 ? 4 : 2))));
      }
    }
    for (RequestHeader h : sent) {
      // parseResponse checks that the correlation id is the one of this request.
      AbstractResponse r = bystander.receive(h);
      if (h.apiKey() == ApiKeys.METADATA) {
        assertEquals(1, ((MetadataResponse) r).brokers().size());
      } else {
        assertEquals(Errors.NONE.code(), ((ApiVersionsResponse) r).data().errorCode());
      }
    }
  }

  @Test
  void an_unsupported_version_of_another_api_closes_the_connection() throws IOException {
    try (RawConnection c = new RawConnection(bootstrap())) {
      c.writeFrame(handMadeRequest(ApiKeys.METADATA.id, (short) 99, 7, new byte[] {1, 0, 0}));
      assertTrue(c.closedByPeer(CLOSE_WITHIN), "Metadata v99 must close the connection");
    }
  }

  @Test
  void an_unknown_api_key_closes_the_connection() throws IOException {
    try (RawConnection c = new RawConnection(bootstrap())) {
      c.writeFrame(handMadeRequest((short) 32000, (short) 0, 8, new byte[] {0}));
      assertTrue(c.closedByPeer(CLOSE_WITHIN), "API key 32000 must close the connection");
    }
  }

  @Test
  void garbage_bytes_close_the_connection() throws IOException {
    byte[] garbage = new byte[68];
    new Random(42).nextBytes(garbage);
    ByteBuffer.wrap(garbage).putInt(64); // a plausible size, then noise
    try (RawConnection c = new RawConnection(bootstrap())) {
      c.writeRaw(garbage);
      assertTrue(c.closedByPeer(CLOSE_WITHIN), "an undecodable frame must close the connection");
    }
  }

  @Test
  void a_frame_over_socket_request_max_bytes_closes_the_connection_before_the_body() throws IOException {
    try (RawConnection c = new RawConnection(bootstrap())) {
      // 100 MiB is the default socket.request.max.bytes; only the size prefix is ever sent.
      c.writeRaw(ByteBuffer.allocate(4).putInt(100 * 1024 * 1024 + 1).array());
      assertTrue(c.closedByPeer(CLOSE_WITHIN), "an oversized frame must close the connection");
    }
  }

  @Test
  void a_negative_frame_size_closes_the_connection() throws IOException {
    try (RawConnection c = new RawConnection(bootstrap())) {
      c.writeRaw(ByteBuffer.allocate(4).putInt(-5).array());
      assertTrue(c.closedByPeer(CLOSE_WITHIN), "a negative size must close the connection");
    }
  }

  @Test
  void a_truncated_frame_then_half_close_ends_the_connection() throws IOException {
    try (RawConnection c = new RawConnection(bootstrap())) {
      ByteBuffer partial = ByteBuffer.allocate(4 + 10).putInt(1000);
      partial.put(new byte[] {0, 18, 0, 3, 0, 0, 0, 1, 0, 0});
      c.writeRaw(partial.array());
      c.shutdownOutput();
      assertTrue(c.closedByPeer(CLOSE_WITHIN), "the broker closes a connection whose frame never completes");
    }
  }

  private static ProduceRequest produce(String topic, MemoryRecords records) {
    ProduceRequestData data =
        new ProduceRequestData()
            .setAcks((short) 1)
            .setTimeoutMs(30_000)
            .setTopicData(
                new ProduceRequestData.TopicProduceDataCollection(
                    List.of(
                            new ProduceRequestData.TopicProduceData()
                                .setName(topic)
                                .setPartitionData(
                                    List.of(new ProduceRequestData.PartitionProduceData().setIndex(0).setRecords(records))))
                        .iterator()));
    return ProduceRequest.builder(data).build((short) 9);
  }

  private static ProduceResponseData.PartitionProduceResponse partitionResult(ProduceResponse r) {
    return r.data().responses().iterator().next().partitionResponses().get(0);
  }

  private static MemoryRecords oneRecord(byte[] value) {
    return MemoryRecords.withRecords(Compression.NONE, new SimpleRecord(1_000L, "k".getBytes(), value));
  }

  @Test
  void a_batch_with_a_bad_crc_gets_corrupt_message_and_takes_no_offset() throws IOException {
    String topic = Clients.topicName("bad-crc");
    Clients.createTopic(BROKER.admin(), topic, 1);
    byte[] bytes = RawConnection.toArray(oneRecord("intact value".getBytes()).buffer());
    bytes[bytes.length - 3] ^= 0x5a; // inside the value: covered by the batch CRC
    MemoryRecords corrupt = MemoryRecords.readableRecords(ByteBuffer.wrap(bytes));
    ProduceResponse bad = bystander.roundTrip(produce(topic, corrupt));
    assertEquals(Errors.CORRUPT_MESSAGE.code(), partitionResult(bad).errorCode());
    ProduceResponse good = bystander.roundTrip(produce(topic, oneRecord("intact value".getBytes())));
    assertEquals(Errors.NONE.code(), partitionResult(good).errorCode());
    assertEquals(0, partitionResult(good).baseOffset());
  }

  @Test
  void a_batch_over_message_max_bytes_gets_message_too_large() throws IOException {
    String topic = Clients.topicName("raw-too-large");
    Clients.createTopic(BROKER.admin(), topic, 1);
    ProduceResponse r = bystander.roundTrip(produce(topic, oneRecord(new byte[Specs.MESSAGE_MAX_BYTES + 1])));
    assertEquals(Errors.MESSAGE_TOO_LARGE.code(), partitionResult(r).errorCode());
  }

  @Test
  void producing_to_an_unknown_topic_gets_unknown_topic_or_partition() throws IOException {
    ProduceResponse r = bystander.roundTrip(produce(Clients.topicName("raw-unknown"), oneRecord("v".getBytes())));
    assertEquals(Errors.UNKNOWN_TOPIC_OR_PARTITION.code(), partitionResult(r).errorCode());
  }

  @Test
  void producing_to_an_invalid_topic_name_gets_unknown_topic_or_partition() throws IOException {
    ProduceResponse r = bystander.roundTrip(produce("bad topic!", oneRecord("v".getBytes())));
    assertEquals(Errors.UNKNOWN_TOPIC_OR_PARTITION.code(), partitionResult(r).errorCode());
  }

  @Test
  void metadata_for_an_invalid_topic_name_answers_invalid_topic() throws IOException {
    MetadataResponse r = bystander.roundTrip(new MetadataRequest.Builder(List.of("bad topic!"), false).build((short) 12));
    assertEquals(Errors.INVALID_TOPIC_EXCEPTION, r.errors().get("bad topic!"));
  }
}
