//! `KAFKA_*` environment variables, mapped to property names exactly as the apache/kafka Docker
//! image does (`docker/resources/ub/ub.go`, `ConvertKey`, with the excludes of
//! `kafka-propertiesSpec.json`).
//!
//! The prefix `KAFKA` plus one character is removed; then every `_` that sits between two
//! non-underscore characters (leftmost non-overlapping matches of `[^_]_[^_]`, as Go's regexp
//! replaces them) becomes `.`, `___` becomes `-`, `__` becomes `_`, and the result is lowercased.
//! So `KAFKA_LOG_RETENTION_MS` is `log.retention.ms` and `KAFKA_LISTENER_NAME_X___Y` keeps a dash.

use std::collections::BTreeMap;

/// Variables the image reserves for itself (JVM and logging options, its version) plus
/// `KAFKA_HEAP_OPTS` and `KAFKA_DEBUG` from `kafka-run-class.sh`: never properties.
pub const EXCLUDED: &[&str] = &[
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPT",
    "KAFKA_HEAP_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
    "KAFKA_DEBUG",
];

/// The properties named by the environment, as (property, value, variable).
pub fn properties_from_env<I>(vars: I) -> BTreeMap<String, (String, String)>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut out = BTreeMap::new();
    for (name, value) in vars {
        if !name.starts_with("KAFKA") || EXCLUDED.contains(&name.as_str()) {
            continue;
        }
        // The image strips the prefix plus one character, whatever that character is.
        let Some((_, rest)) = name["KAFKA".len()..].split_at_checked(
            name["KAFKA".len()..]
                .chars()
                .next()
                .map_or(0, char::len_utf8),
        ) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        out.insert(convert_key(rest), (value, name));
    }
    out
}

/// The image's `ConvertKey`.
pub fn convert_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut single = String::with_capacity(key.len());
    let mut i = 0;
    while i < chars.len() {
        let is_match =
            i + 2 < chars.len() && chars[i] != '_' && chars[i + 1] == '_' && chars[i + 2] != '_';
        if is_match {
            // The whole three-character match, underscore replaced; matching resumes after it
            // (Go's matches do not overlap).
            single.push(chars[i]);
            single.push('.');
            single.push(chars[i + 2]);
            i += 3;
        } else {
            single.push(chars[i]);
            i += 1;
        }
    }
    single.replace("___", "-").replace("__", "_").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_escaping() {
        assert_eq!(convert_key("LOG_DIRS"), "log.dirs");
        assert_eq!(
            convert_key("AUTO_CREATE_TOPICS_ENABLE"),
            "auto.create.topics.enable"
        );
        assert_eq!(convert_key("NODE_ID"), "node.id");
        assert_eq!(convert_key("LISTENER_NAME__X"), "listener.name_x");
        assert_eq!(convert_key("FOO___BAR"), "foo-bar");
        // Go's leftmost non-overlapping matching leaves the underscore after a one-letter segment.
        assert_eq!(convert_key("A_B_C"), "a.b_c");
        assert_eq!(convert_key("É_X"), "é.x");
    }

    #[test]
    fn prefix_and_excludes() {
        let env = [
            ("KAFKA_LOG_DIRS", "/data"),
            ("KAFKA_HEAP_OPTS", "-Xmx1G"),
            ("KAFKA_OPTS", "-Dx"),
            ("KAFKA_VERSION", "4.1.0"),
            ("PATH", "/bin"),
            ("KAFKA_", "x"),
            ("KAFKA_BROKER_RACK", "rack-a"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let props = properties_from_env(env);
        let keys: Vec<_> = props.keys().cloned().collect();
        assert_eq!(keys, vec!["broker.rack", "log.dirs"]);
        assert_eq!(
            props["log.dirs"],
            ("/data".to_string(), "KAFKA_LOG_DIRS".to_string())
        );
    }
}
