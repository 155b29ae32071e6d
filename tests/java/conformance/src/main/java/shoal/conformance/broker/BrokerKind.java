package shoal.conformance.broker;

import java.util.Locale;

/** The brokers this harness can run. */
public enum BrokerKind {
  SHOAL,
  KAFKA;

  public static BrokerKind parse(String name) {
    try {
      return valueOf(name.trim().toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("unknown broker '" + name + "': expected shoal or kafka", e);
    }
  }

  public String label() {
    return name().toLowerCase(Locale.ROOT);
  }
}
