package shoal.cluster;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** {@code --name value} and {@code --flag} arguments; unknown or repeated names are errors. */
final class Args {
  private static final Set<String> FLAGS = Set.of("idempotent");

  private final Map<String, String> values;

  private Args(Map<String, String> values) {
    this.values = values;
  }

  static final class UsageException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UsageException(String message) {
      super(message);
    }
  }

  static Args parse(List<String> argv) {
    Map<String, String> values = new HashMap<>();
    for (int i = 0; i < argv.size(); i++) {
      String a = argv.get(i);
      if (!a.startsWith("--") || a.length() == 2) {
        throw new UsageException("expected --name, got '" + a + "'");
      }
      String name = a.substring(2);
      String value;
      if (FLAGS.contains(name)) {
        value = "true";
      } else if (i + 1 < argv.size()) {
        value = argv.get(++i);
      } else {
        throw new UsageException("--" + name + " needs a value");
      }
      if (values.put(name, value) != null) {
        throw new UsageException("--" + name + " given twice");
      }
    }
    return new Args(values);
  }

  String required(String name) {
    String v = values.get(name);
    if (v == null || v.isEmpty()) {
      throw new UsageException("--" + name + " is required");
    }
    return v;
  }

  String optional(String name, String fallback) {
    return values.getOrDefault(name, fallback);
  }

  boolean flag(String name) {
    return values.containsKey(name);
  }

  long number(String name, long fallback) {
    String v = values.get(name);
    if (v == null) {
      return fallback;
    }
    try {
      long n = Long.parseLong(v);
      if (n <= 0) {
        throw new UsageException("--" + name + " must be positive, got " + v);
      }
      return n;
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be a number, got " + v);
    }
  }

  List<String> list(String name) {
    List<String> out = new ArrayList<>();
    for (String item : required(name).split(",")) {
      if (!item.isBlank()) {
        out.add(item.trim());
      }
    }
    return out;
  }

  String bootstrap() {
    return required("bootstrap");
  }
}
