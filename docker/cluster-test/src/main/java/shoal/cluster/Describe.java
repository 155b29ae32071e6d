package shoal.cluster;

import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.Node;

/**
 * {@code describe --bootstrap B --expect 1=shoal-1:9092@rack-a,...}: the brokers the cluster
 * reports to a client that bootstrapped through {@code B}, and the endpoints they advertise on
 * the listener it used. A client on the host must be given {@code 127.0.0.1:<published port>}
 * and one in the compose network the container name: anything else is the advertised-listener
 * mistake (the bootstrap works, every later connection goes to an address the client cannot
 * reach).
 */
final class Describe {
  private Describe() {}

  static int run(Args args) throws Exception {
    Map<Integer, String> expected = new TreeMap<>();
    for (String item : args.list("expect")) {
      String[] kv = item.split("=", 2);
      if (kv.length != 2) {
        throw new Args.UsageException("--expect items are ID=HOST:PORT[@RACK], got " + item);
      }
      expected.put(Integer.parseInt(kv[0].trim()), kv[1].trim());
    }
    Map<Integer, String> seen = new TreeMap<>();
    try (Admin admin = KafkaClients.admin(args.bootstrap())) {
      KafkaClients.await(
          KafkaClients.OP_TIMEOUT,
          expected.size() + " brokers in describeCluster",
          () -> {
            try {
              seen.clear();
              for (Node n : admin.describeCluster().nodes().get(10, TimeUnit.SECONDS)) {
                seen.put(n.id(), n.host() + ":" + n.port() + (n.hasRack() ? "@" + n.rack() : ""));
              }
              return seen.size() >= expected.size();
            } catch (Exception e) {
              return false;
            }
          });
    }
    seen.forEach((id, endpoint) -> System.out.println("describe: node " + id + " at " + endpoint));
    for (var e : expected.entrySet()) {
      String want = e.getValue().contains("@") ? e.getValue() : e.getValue() + dropRack(seen.get(e.getKey()));
      if (!want.equals(seen.get(e.getKey()))) {
        throw new CheckFailed(
            "node " + e.getKey() + " advertises " + seen.get(e.getKey()) + " to this client, expected " + want);
      }
    }
    if (!seen.keySet().equals(expected.keySet())) {
      throw new CheckFailed("brokers " + seen.keySet() + ", expected " + expected.keySet());
    }
    System.out.println("describe: ok, " + seen.size() + " brokers advertise the expected endpoints");
    return 0;
  }

  /** The rack suffix of a seen endpoint, so that an expectation without a rack ignores it. */
  private static String dropRack(String seen) {
    if (seen == null) {
      return "";
    }
    int at = seen.indexOf('@');
    return at < 0 ? "" : seen.substring(at);
  }
}
