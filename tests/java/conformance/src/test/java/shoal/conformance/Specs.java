package shoal.conformance;

import shoal.conformance.broker.ClusterSpec;

/** The broker configurations the scenarios run against (Kafka property names). */
final class Specs {
  private Specs() {}

  /** Broker limit used by the large-record and oversized-record scenarios. */
  static final int MESSAGE_MAX_BYTES = 2 * 1024 * 1024;

  /**
   * Most scenarios: one node, auto-creation off (so unknown topics stay unknown), and a 2 MiB
   * message.max.bytes so that 1 MiB records fit and 3 MiB records do not.
   */
  static final ClusterSpec STANDARD =
      ClusterSpec.singleNode()
          .with("auto.create.topics.enable", "false")
          .with("num.partitions", "1")
          .with("message.max.bytes", Integer.toString(MESSAGE_MAX_BYTES));

  /**
   * Consumer group scenarios: the first rebalance of a new group does not wait for more members
   * (group.initial.rebalance.delay.ms=0, as the Kafka launcher also configures), so scenarios do
   * not sleep through Kafka's 3 s default.
   */
  static final ClusterSpec GROUPS = STANDARD.with("group.initial.rebalance.delay.ms", "0");

  /** Group scenarios for rack-aware assignors (KIP-881): the broker is in rack-a. */
  static final ClusterSpec GROUPS_RACK = GROUPS.withRacks("rack-a");

  /** Topic auto-creation on, with 3 partitions per auto-created topic. */
  static final ClusterSpec AUTO_CREATE =
      ClusterSpec.singleNode().with("auto.create.topics.enable", "true").with("num.partitions", "3");
}
