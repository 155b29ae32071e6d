//! Topic name rules (Kafka's `org.apache.kafka.common.internals.Topic`).

/// Longest legal topic name.
pub const MAX_NAME_LENGTH: usize = 249;

/// Kafka's internal metadata topic; clients may never create it.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Checks a topic name, with Kafka's exception messages.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".to_string());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".to_string());
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Whether the name contains '.' or '_', which Kafka's metric names cannot tell apart.
pub fn has_collision_chars(name: &str) -> bool {
    name.contains(['.', '_'])
}

/// The name with '.' replaced by '_': two topics with the same unified name collide.
pub fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

/// Internal topics (Kafka's `Topic.isInternal`).
pub fn is_internal(name: &str) -> bool {
    matches!(
        name,
        "__consumer_offsets" | "__transaction_state" | "__share_group_state"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_and_illegal_names() {
        for ok in ["a", "my-topic", "my_topic.v1", "A9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "ä", "a/b", "a:b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_topic_name("a b").unwrap_err(),
            "Topic name \"a b\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        );
    }

    #[test]
    fn collisions() {
        assert!(has_collision_chars("a.b"));
        assert!(!has_collision_chars("a-b"));
        assert_eq!(unify_collision_chars("a.b_c"), "a_b_c");
    }
}
