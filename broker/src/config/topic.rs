//! Topic configs: validation of overrides (CreateTopics, AlterConfigs), effective values through
//! Kafka's synonym chain, and the typed view the log uses.
//!
//! A topic config's value is, in order: the topic's own override (source TOPIC_CONFIG), then for
//! each broker synonym in turn its per-broker dynamic value (DYNAMIC_BROKER_CONFIG), the
//! cluster-wide dynamic value (DYNAMIC_DEFAULT_BROKER_CONFIG), the static value
//! (STATIC_BROKER_CONFIG) and the broker default (DEFAULT_CONFIG), and finally the topic default.
//! This mirrors `ConfigHelper.createTopicConfigEntry` and `DynamicBrokerConfig` in Kafka.

use std::collections::BTreeMap;

use super::broker::StaticConfig;
use super::catalog::{self, SynonymUnit, TopicDef, TopicSupport};

/// DescribeConfigs `config_source` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// A topic override.
    Topic = 1,
    /// A dynamic per-broker value.
    DynamicBroker = 2,
    /// A dynamic cluster-wide value.
    DynamicDefaultBroker = 3,
    /// A value from the properties file, environment or flags.
    StaticBroker = 4,
    /// The built-in default.
    Default = 5,
}

/// Dynamic broker configuration set through AlterConfigs, part of the cluster metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DynamicBrokerConfigs {
    /// Cluster-wide values (resource name "").
    pub cluster: BTreeMap<String, String>,
    /// Per-broker values by node id.
    pub per_broker: BTreeMap<i32, BTreeMap<String, String>>,
}

/// One value in a synonym chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    /// Property or config name.
    pub name: String,
    /// Value in the property's own unit.
    pub value: String,
    /// Where it comes from.
    pub source: ConfigSource,
}

/// Resolves broker properties and topic configs for one node.
#[derive(Debug, Clone, Copy)]
pub struct ConfigView<'a> {
    /// Static properties.
    pub statics: &'a StaticConfig,
    /// Dynamic properties from the metadata.
    pub dynamic: &'a DynamicBrokerConfigs,
    /// This node.
    pub node_id: i32,
}

impl ConfigView<'_> {
    /// Every value of broker property `name`, strongest first (Kafka's synonym list for one name).
    pub fn broker_chain(&self, name: &str) -> Vec<Synonym> {
        let mut out = Vec::new();
        let mut push = |value: Option<&String>, source| {
            if let Some(value) = value {
                out.push(Synonym {
                    name: name.to_string(),
                    value: value.clone(),
                    source,
                });
            }
        };
        push(
            self.dynamic
                .per_broker
                .get(&self.node_id)
                .and_then(|m| m.get(name)),
            ConfigSource::DynamicBroker,
        );
        push(
            self.dynamic.cluster.get(name),
            ConfigSource::DynamicDefaultBroker,
        );
        push(
            self.statics.explicit(name).map(str::to_string).as_ref(),
            ConfigSource::StaticBroker,
        );
        push(
            catalog::broker_def(name)
                .and_then(|d| d.default)
                .map(str::to_string)
                .as_ref(),
            ConfigSource::Default,
        );
        out
    }

    /// The effective value of broker property `name` (None for Kafka's null).
    pub fn broker_value(&self, name: &str) -> Option<String> {
        self.broker_chain(name).into_iter().next().map(|s| s.value)
    }

    /// Kafka's synonym list for a topic config: the override, then every broker synonym's chain in
    /// precedence order. Values are in each synonym's own unit.
    pub fn topic_chain(
        &self,
        def: &TopicDef,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<Synonym> {
        let mut chain = Vec::new();
        if let Some(value) = overrides.get(def.name) {
            chain.push(Synonym {
                name: def.name.to_string(),
                value: value.clone(),
                source: ConfigSource::Topic,
            });
        }
        // Kafka groups by source first, then synonym order: all dynamic-broker values, then all
        // dynamic-default, static, default.
        let per_synonym: Vec<Vec<Synonym>> = def
            .synonyms
            .iter()
            .map(|(name, _)| self.broker_chain(name))
            .collect();
        for source in [
            ConfigSource::DynamicBroker,
            ConfigSource::DynamicDefaultBroker,
            ConfigSource::StaticBroker,
            ConfigSource::Default,
        ] {
            for chain_of_one in &per_synonym {
                chain.extend(chain_of_one.iter().filter(|s| s.source == source).cloned());
            }
        }
        chain
    }

    /// The effective value of topic config `def` and where it comes from.
    pub fn topic_value(
        &self,
        def: &TopicDef,
        overrides: &BTreeMap<String, String>,
    ) -> (String, ConfigSource) {
        match self.topic_chain(def, overrides).into_iter().next() {
            Some(s) if s.source == ConfigSource::Topic => (s.value, s.source),
            Some(s) => {
                let unit = def
                    .synonyms
                    .iter()
                    .find(|(n, _)| *n == s.name)
                    .map_or(SynonymUnit::Same, |(_, u)| *u);
                (catalog::convert_synonym(unit, &s.value), s.source)
            }
            None => (def.default.to_string(), ConfigSource::Default),
        }
    }

    /// The typed configuration a partition log of this topic runs with.
    pub fn topic_log_config(&self, overrides: &BTreeMap<String, String>) -> TopicLogConfig {
        let get = |name: &str| -> String {
            catalog::topic_def(name)
                .map(|def| self.topic_value(def, overrides).0)
                .unwrap_or_default()
        };
        let long = |name: &str, fallback: i64| get(name).parse::<i64>().unwrap_or(fallback);
        TopicLogConfig {
            segment_bytes: long("segment.bytes", 1 << 30),
            segment_ms: long("segment.ms", 604_800_000),
            retention_ms: long("retention.ms", 604_800_000),
            retention_bytes: long("retention.bytes", -1),
            max_message_bytes: long("max.message.bytes", 1_048_588),
            timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            timestamp_before_max_ms: long("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms", 3_600_000),
            min_insync_replicas: long("min.insync.replicas", 1),
            cleanup_policy: shoal_storage::CleanupPolicy::parse(&get("cleanup.policy"))
                .unwrap_or_default(),
            delete_retention_ms: long("delete.retention.ms", 86_400_000),
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(0.5),
            min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
            max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
        }
    }
}

/// Timestamp semantics of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps (validated against the before/after bounds).
    CreateTime,
    /// Replace them with the broker's clock at append.
    LogAppendTime,
}

/// The effective topic configuration, typed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicLogConfig {
    /// `segment.bytes`.
    pub segment_bytes: i64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `retention.ms`; -1 keeps data forever.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 is unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: i64,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: shoal_storage::CleanupPolicy,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
}

/// A rejected topic config (always `INVALID_CONFIG` in responses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TopicConfigError(pub String);

/// Validates one topic config value and returns its canonical form, plus a warning when the config
/// has no effect on a Shoal node.
pub fn validate_topic_config(
    name: &str,
    value: &str,
) -> Result<(String, Option<String>), TopicConfigError> {
    let def = catalog::topic_def(name)
        .ok_or_else(|| TopicConfigError(format!("Unknown topic config name: {name}")))?;
    let canonical = catalog::canonicalize(def.ty, def.bound, value).map_err(|reason| {
        TopicConfigError(format!(
            "Invalid value {value} for configuration {name}: {reason}"
        ))
    })?;
    match def.support {
        TopicSupport::Applied => Ok((canonical, None)),
        TopicSupport::NoEffect(reason) => Ok((
            canonical,
            Some(format!(
                "topic config {name} is stored but has no effect: {reason}"
            )),
        )),
        TopicSupport::Only(allowed, reason) => {
            if allowed.contains(&canonical.as_str()) {
                Ok((canonical, None))
            } else {
                Err(TopicConfigError(format!(
                    "Invalid value {value} for configuration {name}: {reason} (allowed: {})",
                    allowed.join(", ")
                )))
            }
        }
    }
}

/// Validates a whole set of overrides.
pub fn validate_topic_configs(
    configs: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Vec<String>), TopicConfigError> {
    let mut out = BTreeMap::new();
    let mut warnings = Vec::new();
    for (name, value) in configs {
        let (canonical, warning) = validate_topic_config(name, value)?;
        warnings.extend(warning);
        out.insert(name.clone(), canonical);
    }
    Ok((out, warnings))
}

/// Kafka's `DynamicBrokerConfig.brokerConfigSynonyms`: the properties that stand for the same
/// setting as `name`, strongest first.
pub fn broker_synonyms(name: &str) -> Vec<&'static str> {
    const GROUPS: &[&[&str]] = &[
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        &["log.roll.ms", "log.roll.hours"],
        &["log.roll.jitter.ms", "log.roll.jitter.hours"],
        &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
    ];
    GROUPS
        .iter()
        .find(|g| g.contains(&name))
        .map(|g| g.to_vec())
        .or_else(|| catalog::broker_def(name).map(|d| vec![d.name]))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::broker::{ConfigInput, Origin, load};

    fn statics(pairs: &[(&str, &str)]) -> StaticConfig {
        let mut input = ConfigInput::default();
        for (k, v) in pairs {
            input.set(*k, *v, Origin::Flag);
        }
        load(&input, "h").unwrap().config.statics
    }

    #[test]
    fn defaults_follow_the_synonym_chain() {
        let statics = statics(&[]);
        let dynamic = DynamicBrokerConfigs::default();
        let view = ConfigView {
            statics: &statics,
            dynamic: &dynamic,
            node_id: 1,
        };
        let def = catalog::topic_def("retention.ms").unwrap();
        let none = BTreeMap::new();
        assert_eq!(
            view.topic_value(def, &none),
            ("604800000".to_string(), ConfigSource::Default)
        );
        let chain = view.topic_chain(def, &none);
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0].name, "log.retention.hours");
    }

    #[test]
    fn overrides_dynamic_and_static_values_in_order() {
        let statics = statics(&[
            ("log.retention.minutes", "10"),
            ("message.max.bytes", "2000"),
        ]);
        let mut dynamic = DynamicBrokerConfigs::default();
        let view = ConfigView {
            statics: &statics,
            dynamic: &dynamic,
            node_id: 1,
        };
        let retention = catalog::topic_def("retention.ms").unwrap();
        let none = BTreeMap::new();
        assert_eq!(
            view.topic_value(retention, &none),
            ("600000".to_string(), ConfigSource::StaticBroker)
        );
        assert_eq!(view.topic_log_config(&none).max_message_bytes, 2000);

        dynamic
            .cluster
            .insert("log.retention.ms".into(), "5".into());
        let view = ConfigView {
            statics: &statics,
            dynamic: &dynamic,
            node_id: 1,
        };
        assert_eq!(
            view.topic_value(retention, &none),
            ("5".to_string(), ConfigSource::DynamicDefaultBroker)
        );
        dynamic
            .per_broker
            .entry(1)
            .or_default()
            .insert("log.retention.hours".into(), "1".into());
        let view = ConfigView {
            statics: &statics,
            dynamic: &dynamic,
            node_id: 1,
        };
        assert_eq!(
            view.topic_value(retention, &none),
            ("3600000".to_string(), ConfigSource::DynamicBroker)
        );

        let topic = BTreeMap::from([("retention.ms".to_string(), "7".to_string())]);
        assert_eq!(
            view.topic_value(retention, &topic),
            ("7".to_string(), ConfigSource::Topic)
        );
        assert_eq!(view.topic_log_config(&topic).retention_ms, 7);
    }

    #[test]
    fn validation_messages_match_kafka() {
        assert_eq!(
            validate_topic_config("nope", "1").unwrap_err().0,
            "Unknown topic config name: nope"
        );
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert_eq!(
            validate_topic_config("cleanup.policy", "compact").unwrap(),
            ("compact".to_string(), None)
        );
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(
            validate_topic_config("delete.retention.ms", "100")
                .unwrap()
                .1
                .is_none()
        );
        assert_eq!(
            validate_topic_config("cleanup.policy", " delete ").unwrap(),
            ("delete".to_string(), None)
        );
        assert!(
            validate_topic_config("preallocate", "true")
                .unwrap()
                .1
                .is_some()
        );
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
    }
}
