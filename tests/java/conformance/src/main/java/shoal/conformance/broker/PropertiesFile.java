package shoal.conformance.broker;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Writes {@code name=value} lines without java.util.Properties escaping ({@code \:}), which
 * Kafka reads either way but which a simpler properties parser need not accept.
 */
final class PropertiesFile {
  private PropertiesFile() {}

  static void write(Path file, Map<String, String> props) {
    StringBuilder sb = new StringBuilder();
    props.forEach(
        (k, v) -> {
          if (k.contains("=") || k.contains("\n") || v.contains("\n")) {
            throw new IllegalArgumentException("property cannot be written plainly: " + k);
          }
          sb.append(k).append('=').append(v).append('\n');
        });
    try {
      Files.writeString(file, sb.toString(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file, e);
    }
  }
}
