package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/**
 * A group of three consumers on a six-partition topic rebalances when members join, when one
 * leaves (LeaveGroup on close), and when one crashes (a member in its own JVM killed with
 * SIGKILL, expired after its session timeout), with the eager range assignor, the cooperative
 * sticky assignor, and both rack-aware (KIP-881: consumers set client.rack, the broker reports
 * its rack in Metadata). After every step the partitions are split evenly and disjointly among
 * the live members.
 */
@Tag("groups")
class GroupRebalanceTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.GROUPS_RACK);

  private static final int PARTITIONS = 6;
  private static final int SESSION_TIMEOUT_MS = 6_000;
  private static final Duration STEP_TIMEOUT = Duration.ofSeconds(60);

  private static Map<String, Object> memberConfig(String group, String assignor, String rack) {
    Map<String, Object> c = new HashMap<>();
    c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    c.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
    c.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
    c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, SESSION_TIMEOUT_MS);
    c.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
    if (rack != null) {
      c.put(ConsumerConfig.CLIENT_RACK_CONFIG, rack);
    }
    return c;
  }

  /** Partitions per member id, from the coordinator (DescribeGroups), while the group is Stable. */
  private static Map<String, Set<Integer>> stableAssignment(String group) {
    ConsumerGroupDescription d;
    try {
      d = BROKER.admin().describeConsumerGroups(List.of(group)).describedGroups().get(group).get(30, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof GroupIdNotFoundException) {
        return null; // not created yet (Kafka answers DescribeGroups v6+ with GROUP_ID_NOT_FOUND)
      }
      throw new AssertionError(e);
    } catch (InterruptedException | TimeoutException e) {
      throw new AssertionError(e);
    }
    if (d.groupState() != GroupState.STABLE) {
      return null;
    }
    Map<String, Set<Integer>> byMember = new TreeMap<>();
    for (MemberDescription m : d.members()) {
      byMember.put(
          m.consumerId(),
          m.assignment().topicPartitions().stream().map(TopicPartition::partition).collect(Collectors.toCollection(TreeSet::new)));
    }
    return byMember;
  }

  /**
   * Polls the in-process members until the coordinator reports a Stable group of {@code members}
   * members whose assignments are disjoint, cover every partition, and differ in size by at most
   * one; and each in-process member owns exactly its share.
   */
  private static void awaitBalanced(String group, int members, List<KafkaConsumer<byte[], byte[]>> local, String step) {
    Deadline.awaitWithin(
        STEP_TIMEOUT,
        step + ": " + members + " members sharing " + PARTITIONS + " partitions evenly",
        () -> {
          for (KafkaConsumer<byte[], byte[]> c : local) {
            c.poll(Duration.ofMillis(50));
          }
          Map<String, Set<Integer>> a = stableAssignment(group);
          if (a == null || a.size() != members) {
            return false;
          }
          Set<Integer> union = new TreeSet<>();
          int total = 0;
          int min = Integer.MAX_VALUE;
          int max = 0;
          for (Set<Integer> owned : a.values()) {
            union.addAll(owned);
            total += owned.size();
            min = Math.min(min, owned.size());
            max = Math.max(max, owned.size());
          }
          if (total != PARTITIONS || union.size() != PARTITIONS || max - min > 1) {
            return false;
          }
          // Each in-process member owns exactly what the coordinator says it was assigned.
          for (KafkaConsumer<byte[], byte[]> c : local) {
            Set<Integer> owned =
                c.assignment().stream().map(TopicPartition::partition).collect(Collectors.toCollection(TreeSet::new));
            if (!owned.equals(a.get(c.groupMetadata().memberId()))) {
              return false;
            }
          }
          return true;
        });
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"range", "cooperative-sticky", "rack-aware range", "rack-aware cooperative-sticky"})
  void three_members_rebalance_on_join_leave_and_crash(String mode) {
    boolean racks = mode.startsWith("rack-aware");
    String assignor = mode.endsWith("cooperative-sticky") ? CooperativeStickyAssignor.class.getName() : RangeAssignor.class.getName();
    String topic = Clients.topicName("rebalance-" + mode.replace(' ', '-'));
    String group = Clients.topicName("rebalance-group");
    TopicDescription described = Clients.createTopic(BROKER.admin(), topic, PARTITIONS);
    if (racks) {
      // KIP-881 assignors match client.rack against the racks of the partitions' replicas,
      // which come from the brokers' racks in Metadata.
      for (Node n : Clients.get(BROKER.admin().describeCluster().nodes())) {
        assertEquals("rack-a", n.rack(), "broker rack in Metadata");
      }
      described.partitions().forEach(p -> assertEquals("rack-a", p.leader().rack(), "leader rack of " + p));
    }
    List<KafkaConsumer<byte[], byte[]>> local = new ArrayList<>();
    try (KafkaConsumer<byte[], byte[]> a = Clients.consumer(BROKER.broker(), memberConfig(group, assignor, racks ? "rack-a" : null))) {
      a.subscribe(List.of(topic));
      local.add(a);
      awaitBalanced(group, 1, local, "first member");
      assertEquals(PARTITIONS, a.assignment().size());

      KafkaConsumer<byte[], byte[]> b = Clients.consumer(BROKER.broker(), memberConfig(group, assignor, racks ? "rack-b" : null));
      ChildProcess c;
      try {
        b.subscribe(List.of(topic));
        local.add(b);
        awaitBalanced(group, 2, local, "second member joined");
        assertEquals(PARTITIONS / 2, a.assignment().size());
        c = startChild(topic, group, assignor, racks ? "rack-a" : null);
      } catch (RuntimeException | Error e) {
        b.close();
        throw e;
      }
      try (c) {
        try {
          Deadline.awaitWithin(STEP_TIMEOUT, "the third member (own JVM) to report an assignment", () -> {
            local.forEach(k -> k.poll(Duration.ofMillis(50)));
            return c.last("ASSIGNED ") != null;
          });
          awaitBalanced(group, 3, local, "third member joined");
          assertEquals(PARTITIONS / 3, a.assignment().size());
          assertEquals(PARTITIONS / 3, b.assignment().size());
        } finally {
          // Leaves the group with a LeaveGroup request.
          local.remove(b);
          b.close();
        }
        awaitBalanced(group, 2, local, "member left");
        assertEquals(PARTITIONS / 2, a.assignment().size());

        // Crash: no LeaveGroup, no more heartbeats; the coordinator expires it after its
        // session timeout and the group rebalances without it.
        c.kill();
        long crashedAt = System.nanoTime();
        awaitBalanced(group, 1, local, "member crashed");
        long tookMs = (System.nanoTime() - crashedAt) / 1_000_000;
        assertTrue(tookMs >= SESSION_TIMEOUT_MS / 2, "expired only after its session timeout, took " + tookMs + " ms");
        assertEquals(PARTITIONS, a.assignment().size());
      }
    }
  }

  private static ChildProcess startChild(String topic, String group, String assignor, String rack) {
    List<String> args = new ArrayList<>(List.of(
        BROKER.bootstrap(),
        topic,
        group,
        ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG + "=" + assignor,
        ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG + "=" + SESSION_TIMEOUT_MS,
        ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG + "=500"));
    if (rack != null) {
      args.add(ConsumerConfig.CLIENT_RACK_CONFIG + "=" + rack);
    }
    return ChildProcess.start("shoal.conformance.clients.GroupMemberMain", args.toArray(String[]::new));
  }
}
