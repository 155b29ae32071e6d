package shoal.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import shoal.conformance.broker.Deadline;

/**
 * Static membership (group.instance.id): a member that restarts within its session timeout takes
 * its old place (a new member id, the same partitions) without a rebalance: the other member's
 * partitions are never revoked or reassigned.
 */
@Tag("groups")
class StaticMembershipTest {
  @RegisterExtension static final BrokerExtension BROKER = BrokerExtension.shared(Specs.GROUPS);

  private static Map<String, Object> staticConfig(String group, String instance) {
    Map<String, Object> c = new HashMap<>();
    c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    c.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
    c.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance);
    c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 30_000);
    return c;
  }

  /** Records every revocation and assignment. */
  static final class Events implements ConsumerRebalanceListener {
    final List<String> log = new ArrayList<>();

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      if (!partitions.isEmpty()) {
        log.add("revoked " + partitions);
      }
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      log.add("assigned " + partitions);
    }
  }

  private static ConsumerGroupDescription describe(String group) {
    return Clients.get(BROKER.admin().describeConsumerGroups(List.of(group)).describedGroups().get(group));
  }

  private static Set<Integer> partitions(KafkaConsumer<byte[], byte[]> c) {
    return c.assignment().stream().map(TopicPartition::partition).collect(Collectors.toCollection(TreeSet::new));
  }

  @Test
  void a_static_member_restarts_without_a_rebalance() {
    String topic = Clients.topicName("static");
    String group = Clients.topicName("static-group");
    Clients.createTopic(BROKER.admin(), topic, 4);
    Events eventsA = new Events();
    try (KafkaConsumer<byte[], byte[]> a = Clients.consumer(BROKER.broker(), staticConfig(group, "instance-a"))) {
      a.subscribe(List.of(topic), eventsA);
      Set<Integer> before;
      String oldMemberId;
      try (KafkaConsumer<byte[], byte[]> b = Clients.consumer(BROKER.broker(), staticConfig(group, "instance-b"))) {
        b.subscribe(List.of(topic));
        Deadline.awaitWithin(Duration.ofSeconds(60), "two static members with two partitions each", () -> {
          a.poll(Duration.ofMillis(50));
          b.poll(Duration.ofMillis(50));
          return a.assignment().size() == 2 && b.assignment().size() == 2
              && describe(group).groupState() == GroupState.STABLE;
        });
        before = partitions(b);
        oldMemberId = b.groupMetadata().memberId();
        // A static member does not send LeaveGroup when it closes.
      }
      eventsA.log.clear();
      Set<Integer> aBefore = partitions(a);
      try (KafkaConsumer<byte[], byte[]> restarted = Clients.consumer(BROKER.broker(), staticConfig(group, "instance-b"))) {
        restarted.subscribe(List.of(topic));
        Deadline.awaitWithin(Duration.ofSeconds(60), "the restarted member to own its partitions again", () -> {
          a.poll(Duration.ofMillis(50));
          restarted.poll(Duration.ofMillis(50));
          return !restarted.assignment().isEmpty();
        });
        assertEquals(before, partitions(restarted), "the same partitions as before the restart");
        assertNotEquals(oldMemberId, restarted.groupMetadata().memberId(), "a new member id");
        for (int i = 0; i < 10; i++) {
          a.poll(Duration.ofMillis(100));
          restarted.poll(Duration.ofMillis(100));
        }
        assertEquals(List.of(), eventsA.log, "the other member saw no rebalance");
        assertEquals(aBefore, partitions(a));
        ConsumerGroupDescription d = describe(group);
        assertEquals(GroupState.STABLE, d.groupState());
        Map<String, String> instances = new HashMap<>();
        for (MemberDescription m : d.members()) {
          instances.put(m.groupInstanceId().orElseThrow(), m.consumerId());
        }
        assertEquals(restarted.groupMetadata().memberId(), instances.get("instance-b"));
      }
    }
  }
}
