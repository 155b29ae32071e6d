package shoal.cluster;

import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;

/** {@code create-topic --topic T --partitions N --replication-factor R}, led and in sync. */
final class CreateTopic {
  private CreateTopic() {}

  static int run(Args args) throws Exception {
    String topic = args.required("topic");
    int partitions = (int) args.number("partitions", 3);
    short rf = (short) args.number("replication-factor", 1);
    try (Admin admin = KafkaClients.admin(args.bootstrap())) {
      admin
          .createTopics(List.of(new NewTopic(topic, Optional.of(partitions), Optional.of(rf))))
          .all()
          .get(KafkaClients.OP_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      TopicDescription[] d = new TopicDescription[1];
      KafkaClients.await(
          KafkaClients.OP_TIMEOUT,
          topic + " with a leader and " + rf + " in-sync replicas per partition",
          () -> {
            try {
              d[0] = admin.describeTopics(List.of(topic)).allTopicNames().get(10, TimeUnit.SECONDS).get(topic);
              return d[0].partitions().size() == partitions
                  && d[0].partitions().stream().allMatch(p -> p.leader() != null && p.isr().size() == rf);
            } catch (Exception e) {
              return false;
            }
          });
      d[0].partitions()
          .forEach(
              p ->
                  System.out.println(
                      "create-topic: " + topic + "-" + p.partition() + " leader " + p.leader().id()
                          + " replicas " + p.replicas().stream().map(n -> n.id()).toList()));
    }
    return 0;
  }
}
