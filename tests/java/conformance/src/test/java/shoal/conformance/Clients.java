package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import shoal.conformance.broker.BrokerUnderTest;
import shoal.conformance.broker.Deadline;

/** Client factories and small blocking helpers shared by the scenarios. */
final class Clients {
  static final Duration OP_TIMEOUT = Duration.ofSeconds(30);
  private static final AtomicLong TOPIC_SEQ = new AtomicLong();
  private static final String RUN_ID = Long.toString(System.nanoTime() % 1_000_000, 36);

  private Clients() {}

  static Admin admin(BrokerUnderTest broker) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers());
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, "conformance-admin");
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 20_000);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
    return Admin.create(p);
  }

  static KafkaProducer<byte[], byte[]> producer(BrokerUnderTest broker, Map<String, Object> overrides) {
    Map<String, Object> p = new HashMap<>();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers());
    p.put(ProducerConfig.CLIENT_ID_CONFIG, "conformance-producer");
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    // Idempotence stays on (the Java client's default): up to five requests in flight keep
    // their order and retries are not written twice.
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20_000);
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 40_000);
    p.putAll(overrides);
    Object acks = p.get(ProducerConfig.ACKS_CONFIG);
    boolean idempotent = !"false".equals(String.valueOf(p.get(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG)))
        && ("all".equals(acks) || "-1".equals(String.valueOf(acks)));
    if (!idempotent) {
      // Without idempotence (explicitly off, or acks 0/1, which turn it off), a retried batch
      // may overtake later ones when several are in flight (e.g. NOT_LEADER_OR_FOLLOWER just
      // after a topic is created); one in flight keeps the order that the scenarios assert.
      p.putIfAbsent(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 1);
    }
    return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
  }

  static KafkaConsumer<byte[], byte[]> consumer(BrokerUnderTest broker, Map<String, Object> overrides) {
    Map<String, Object> p = new HashMap<>();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers());
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "conformance-consumer");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
    p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20_000);
    p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 200);
    p.putAll(overrides);
    return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  /** A topic name unique within this run: {@code <hint>-<run>-<seq>}. */
  static String topicName(String hint) {
    String clean = hint.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9._-]", "-");
    return clean + "-" + RUN_ID + "-" + TOPIC_SEQ.incrementAndGet();
  }

  static <T> T get(KafkaFuture<T> future) {
    return get((Future<T>) future);
  }

  static <T> T get(Future<T> future) {
    try {
      return future.get(OP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      throw new AssertionError("operation failed: " + e.getCause(), e.getCause());
    } catch (TimeoutException e) {
      throw new AssertionError("operation did not complete within " + OP_TIMEOUT, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** Waits for a future that must fail, and returns the cause. */
  static Throwable failureOf(Future<?> future) {
    try {
      Object value = future.get(OP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
      throw new AssertionError("expected a failure but the operation succeeded with " + value);
    } catch (ExecutionException e) {
      return e.getCause();
    } catch (TimeoutException e) {
      throw new AssertionError("operation neither failed nor succeeded within " + OP_TIMEOUT, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /**
   * Creates a topic and waits until describeTopics shows every partition with a leader, so the
   * scenario does not race the broker's metadata propagation.
   */
  static TopicDescription createTopic(Admin admin, String name, int partitions, Map<String, String> configs) {
    NewTopic topic = new NewTopic(name, Optional.of(partitions), Optional.empty()).configs(configs);
    get(admin.createTopics(List.of(topic)).all());
    return awaitTopic(admin, name, partitions);
  }

  static TopicDescription createTopic(Admin admin, String name, int partitions) {
    return createTopic(admin, name, partitions, Map.of());
  }

  /**
   * Waits until the topic is described with a leader for every partition and each leader answers
   * ListOffsets. Apache Kafka publishes a new topic's metadata slightly before its leader accepts
   * requests; a first produce in that window gets NOT_LEADER_OR_FOLLOWER, which is harmless for
   * clients but makes retries (and the idempotent producer's sequence recovery) part of every
   * scenario. Waiting here keeps the scenarios about what they test.
   */
  static TopicDescription awaitTopic(Admin admin, String name, int partitions) {
    TopicDescription d = awaitDescribed(admin, name, partitions);
    Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
    for (int p = 0; p < partitions; p++) {
      latest.put(new TopicPartition(name, p), OffsetSpec.latest());
    }
    Deadline.awaitWithin(
        OP_TIMEOUT,
        "leaders of " + name + " to answer ListOffsets",
        () -> {
          try {
            admin.listOffsets(latest).all().get(10, TimeUnit.SECONDS);
            return true;
          } catch (ExecutionException | TimeoutException e) {
            return false;
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
          }
        });
    return d;
  }

  /** Waits only until describeTopics shows {@code partitions} partitions, each with a leader. */
  static TopicDescription awaitDescribed(Admin admin, String name, int partitions) {
    TopicDescription[] found = new TopicDescription[1];
    Deadline.awaitWithin(
        OP_TIMEOUT,
        "topic " + name + " with " + partitions + " led partitions",
        () -> {
          try {
            TopicDescription d =
                admin.describeTopics(List.of(name)).topicNameValues().get(name).get(5, TimeUnit.SECONDS);
            found[0] = d;
            return d.partitions().size() == partitions
                && d.partitions().stream().allMatch(p -> p.leader() != null && !p.leader().isEmpty());
          } catch (ExecutionException | TimeoutException e) {
            return false;
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
          }
        });
    return found[0];
  }

  /** Sends every record, flushes, and returns the acknowledgements in send order. */
  static List<RecordMetadata> sendAll(
      KafkaProducer<byte[], byte[]> producer, List<ProducerRecord<byte[], byte[]>> records) {
    List<Future<RecordMetadata>> futures = new ArrayList<>();
    for (ProducerRecord<byte[], byte[]> r : records) {
      futures.add(producer.send(r));
    }
    producer.flush();
    List<RecordMetadata> acks = new ArrayList<>();
    for (Future<RecordMetadata> f : futures) {
      acks.add(get(f));
    }
    return acks;
  }

  /**
   * Assigns {@code partitions}, seeks each to {@code fromOffset} and polls until exactly
   * {@code expected} records arrived (failing if more arrive or the deadline passes).
   */
  static List<ConsumerRecord<byte[], byte[]>> consume(
      KafkaConsumer<byte[], byte[]> consumer, Collection<TopicPartition> partitions, long fromOffset, int expected) {
    consumer.assign(partitions);
    for (TopicPartition tp : partitions) {
      consumer.seek(tp, fromOffset);
    }
    return pollExactly(consumer, expected);
  }

  static List<ConsumerRecord<byte[], byte[]>> pollExactly(KafkaConsumer<byte[], byte[]> consumer, int expected) {
    List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
    Deadline deadline = Deadline.in(OP_TIMEOUT);
    while (out.size() < expected) {
      if (deadline.expired()) {
        fail("received " + out.size() + " of " + expected + " records within " + OP_TIMEOUT);
      }
      consumer.poll(Duration.ofMillis(200)).forEach(out::add);
    }
    // Records beyond the expected ones would mean duplicates or stray data; the log end says so.
    Set<TopicPartition> assigned = consumer.assignment();
    Map<TopicPartition, Long> positions = new HashMap<>();
    for (TopicPartition tp : assigned) {
      positions.put(tp, consumer.position(tp));
    }
    assertEquals(positions, consumer.endOffsets(assigned), "consumer position after the expected records");
    assertEquals(expected, out.size(), "record count");
    return out;
  }

  static long endOffset(KafkaConsumer<byte[], byte[]> consumer, TopicPartition tp) {
    return consumer.endOffsets(List.of(tp)).get(tp);
  }
}
