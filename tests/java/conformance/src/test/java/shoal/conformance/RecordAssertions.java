package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;

/** Builders for deterministic test records and field-by-field comparisons of what came back. */
final class RecordAssertions {
  private RecordAssertions() {}

  /** A fixed epoch-millisecond base for explicit timestamps (2020-09-13T12:26:40Z). */
  static final long BASE_TIMESTAMP = 1_600_000_000_000L;

  /**
   * The i-th record of a varied sequence: some null keys, some null values, zero to three
   * headers (one with a null value, one key repeated), a value mixing compressible text and
   * pseudo-random bytes, and an explicit timestamp.
   */
  static ProducerRecord<byte[], byte[]> varied(String topic, Integer partition, int i) {
    byte[] key = i % 5 == 0 ? null : ("key-" + i).getBytes(StandardCharsets.UTF_8);
    byte[] value = i % 7 == 3 ? null : payload(i, 20 + (i * 37) % 900);
    List<Header> headers = new ArrayList<>();
    if (i % 4 >= 1) {
      headers.add(new RecordHeader("h-index", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
    }
    if (i % 4 >= 2) {
      headers.add(new RecordHeader("h-null", (byte[]) null));
    }
    if (i % 4 == 3) {
      headers.add(new RecordHeader("h-index", new byte[] {0, (byte) 0xff, (byte) i}));
    }
    return new ProducerRecord<>(topic, partition, BASE_TIMESTAMP + i * 1000L, key, value, headers);
  }

  /** {@code size} bytes: a text prefix then seeded pseudo-random bytes. */
  static byte[] payload(int seed, int size) {
    byte[] out = new byte[size];
    byte[] text = ("record " + seed + " payload; ").repeat(1 + size / 16).getBytes(StandardCharsets.UTF_8);
    int textLen = size / 2;
    System.arraycopy(text, 0, out, 0, Math.min(textLen, text.length));
    byte[] random = new byte[size - textLen];
    new Random(seed).nextBytes(random);
    System.arraycopy(random, 0, out, textLen, random.length);
    return out;
  }

  /** Compares every user-visible field of a consumed record with what was sent. */
  static void assertSame(
      ProducerRecord<byte[], byte[]> sent,
      int expectedPartition,
      long expectedOffset,
      TimestampType expectedType,
      long expectedTimestamp,
      ConsumerRecord<byte[], byte[]> got) {
    String where = "record at " + got.topic() + "-" + got.partition() + "@" + got.offset();
    assertEquals(sent.topic(), got.topic(), where + ": topic");
    assertEquals(expectedPartition, got.partition(), where + ": partition");
    assertEquals(expectedOffset, got.offset(), where + ": offset");
    assertArrayEquals(sent.key(), got.key(), where + ": key");
    assertArrayEquals(sent.value(), got.value(), where + ": value");
    assertEquals(expectedType, got.timestampType(), where + ": timestamp type");
    assertEquals(expectedTimestamp, got.timestamp(), where + ": timestamp");
    Header[] want = sent.headers().toArray();
    Header[] have = got.headers().toArray();
    assertEquals(want.length, have.length, where + ": header count");
    for (int h = 0; h < want.length; h++) {
      assertEquals(want[h].key(), have[h].key(), where + ": header " + h + " key");
      assertArrayEquals(want[h].value(), have[h].value(), where + ": header " + h + " value");
    }
    assertEquals(sent.key() == null ? -1 : sent.key().length, got.serializedKeySize(), where + ": key size");
    assertEquals(
        sent.value() == null ? -1 : sent.value().length, got.serializedValueSize(), where + ": value size");
  }

  /** CreateTime records: the timestamp consumed is the one sent. */
  static void assertSame(
      ProducerRecord<byte[], byte[]> sent, int expectedPartition, long expectedOffset, ConsumerRecord<byte[], byte[]> got) {
    assertSame(sent, expectedPartition, expectedOffset, TimestampType.CREATE_TIME, sent.timestamp(), got);
  }
}
