package shoal.cluster;

import java.util.Arrays;
import java.util.List;

/**
 * The docker cluster test's client, run by {@code scripts/cluster test} on the host (bootstrap
 * {@code 127.0.0.1:<published port>}) and in the client container on the compose network
 * (bootstrap {@code shoal-1:9092}). Each subcommand prints what it saw and exits non-zero when
 * an expectation fails, so that the script can stay a plain sequence of steps and faults:
 *
 * <ul>
 *   <li>{@code describe}: the brokers and the endpoints they advertise to this client;
 *   <li>{@code create-topic}: a topic, waiting until every partition has a leader;
 *   <li>{@code produce}: records under load until a stop file appears, logging each acknowledged
 *       one;
 *   <li>{@code verify}: every acknowledged record at its acknowledged offset, none twice;
 *   <li>{@code follower-fetch}: KIP-392, a consumer reads from the replica in its rack.
 * </ul>
 */
public final class ClusterClient {
  private ClusterClient() {}

  public static void main(String[] argv) {
    if (argv.length == 0 || argv[0].equals("--help")) {
      usage();
      System.exit(argv.length == 0 ? 2 : 0);
    }
    List<String> rest = Arrays.asList(argv).subList(1, argv.length);
    int code;
    try {
      Args args = Args.parse(rest);
      code =
          switch (argv[0]) {
            case "describe" -> Describe.run(args);
            case "create-topic" -> CreateTopic.run(args);
            case "produce" -> Produce.run(args);
            case "verify" -> Verify.run(args);
            case "follower-fetch" -> FollowerFetch.run(args);
            default -> {
              System.err.println("unknown subcommand " + argv[0]);
              usage();
              yield 2;
            }
          };
    } catch (Args.UsageException e) {
      System.err.println(argv[0] + ": " + e.getMessage());
      code = 2;
    } catch (CheckFailed e) {
      System.out.println(argv[0] + ": FAILED: " + e.getMessage());
      code = 1;
    } catch (Exception e) {
      System.out.println(argv[0] + ": FAILED with " + e);
      e.printStackTrace(System.err);
      code = 1;
    }
    // Kafka's client threads are daemons, but a stuck close must not keep a test step alive.
    System.exit(code);
  }

  private static void usage() {
    System.err.println(
        String.join(
            "\n",
            "usage: ClusterClient SUBCOMMAND --bootstrap HOST:PORT [options]",
            "  describe --expect ID=HOST:PORT[@RACK],...   brokers and advertised endpoints",
            "  create-topic --topic T --partitions N --replication-factor R",
            "  produce --topic T --id NAME --acked FILE --stop-file FILE [--rate N] [--max-seconds N]",
            "          [--compression C] [--idempotent]     acks=all load, one line per acknowledgement",
            "  verify --topic T[,T...] --acked FILE[,FILE...] [--client-rack R]",
            "                                               every acknowledged record once, at its offset",
            "  follower-fetch --topic T --client-rack R --records N",
            "                                               KIP-392: the replica read is the one in rack R"));
  }
}
