//! DescribeConfigs entries for topics and brokers, with Kafka's values, sources and synonyms
//! (`ConfigHelper.createTopicConfigEntry` / `createBrokerConfigEntry`).

use std::collections::BTreeMap;

use super::catalog::{self, ConfigType};
use super::topic::{ConfigSource, ConfigView, Synonym, broker_synonyms};

/// One described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    /// Name.
    pub name: String,
    /// Effective value; `None` for null or sensitive values.
    pub value: Option<String>,
    /// Where the value comes from (the head of the synonym list).
    pub source: ConfigSource,
    /// Whether AlterConfigs may change it.
    pub read_only: bool,
    /// Whether it is a secret.
    pub sensitive: bool,
    /// The synonym list, strongest first.
    pub synonyms: Vec<Synonym>,
    /// Value type.
    pub ty: ConfigType,
    /// One line of documentation.
    pub doc: &'static str,
}

/// Every topic config of a topic with `overrides`, sorted by name.
pub fn describe_topic(
    view: &ConfigView<'_>,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribedConfig> {
    let mut out: Vec<DescribedConfig> = catalog::TOPIC_DEFS
        .iter()
        .map(|def| {
            let (value, source) = view.topic_value(def, overrides);
            DescribedConfig {
                name: def.name.to_string(),
                value: Some(value),
                source,
                read_only: false,
                sensitive: false,
                synonyms: view.topic_chain(def, overrides),
                ty: def.ty,
                doc: def.doc,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Every broker property as this node sees it (`DescribeConfigs` for resource name = node id).
pub fn describe_broker(view: &ConfigView<'_>) -> Vec<DescribedConfig> {
    let mut out: Vec<DescribedConfig> = catalog::BROKER_DEFS
        .iter()
        .map(|def| {
            let synonyms = broker_synonym_chain(view, def.name, false);
            let sensitive = def.ty == ConfigType::Password;
            DescribedConfig {
                name: def.name.to_string(),
                value: if sensitive {
                    None
                } else {
                    view.broker_value(def.name)
                },
                source: synonyms.first().map_or(ConfigSource::Default, |s| s.source),
                read_only: !def.dynamic,
                sensitive,
                synonyms,
                ty: def.ty,
                doc: def.doc,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The cluster-wide dynamic values (`DescribeConfigs` for the empty broker name).
pub fn describe_broker_defaults(view: &ConfigView<'_>) -> Vec<DescribedConfig> {
    view.dynamic
        .cluster
        .iter()
        .filter_map(|(name, value)| {
            let def = catalog::broker_def(name)?;
            Some(DescribedConfig {
                name: name.clone(),
                value: Some(value.clone()),
                source: ConfigSource::DynamicDefaultBroker,
                read_only: !def.dynamic,
                sensitive: def.ty == ConfigType::Password,
                synonyms: broker_synonym_chain(view, name, true),
                ty: def.ty,
                doc: def.doc,
            })
        })
        .collect()
}

fn broker_synonym_chain(view: &ConfigView<'_>, name: &str, defaults_only: bool) -> Vec<Synonym> {
    let chains: Vec<Vec<Synonym>> = broker_synonyms(name)
        .iter()
        .map(|n| view.broker_chain(n))
        .collect();
    let mut out = Vec::new();
    for source in [
        ConfigSource::DynamicBroker,
        ConfigSource::DynamicDefaultBroker,
        ConfigSource::StaticBroker,
        ConfigSource::Default,
    ] {
        for chain in &chains {
            out.extend(chain.iter().filter(|s| s.source == source).cloned());
        }
    }
    // Kafka's `configSynonyms` ends with `dropWhile(_.name != name)`: the synonyms of a name start
    // at its own first value, so `log.retention.hours` does not list a dynamic
    // `log.retention.ms`, and an unset `log.roll.ms` lists nothing.
    let own = out.iter().position(|s| s.name == name).unwrap_or(out.len());
    out.drain(..own);
    if defaults_only {
        out.retain(|s| s.source == ConfigSource::DynamicDefaultBroker);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::broker::{ConfigInput, Origin, load};
    use crate::config::topic::DynamicBrokerConfigs;

    #[test]
    fn topic_and_broker_descriptions() {
        let mut input = ConfigInput::default();
        input.set("log.retention.hours", "24", Origin::Flag);
        let statics = load(&input, "h").unwrap().config.statics;
        let dynamic = DynamicBrokerConfigs::default();
        let view = ConfigView {
            statics: &statics,
            dynamic: &dynamic,
            node_id: 1,
        };
        let topic = describe_topic(
            &view,
            &BTreeMap::from([("segment.ms".to_string(), "1000".to_string())]),
        );
        let retention = topic.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(retention.value.as_deref(), Some("86400000"));
        assert_eq!(retention.source, ConfigSource::StaticBroker);
        assert_eq!(retention.synonyms[0].name, "log.retention.hours");
        assert_eq!(retention.synonyms[0].value, "24");
        assert_eq!(retention.synonyms[1].source, ConfigSource::Default);
        let segment = topic.iter().find(|c| c.name == "segment.ms").unwrap();
        assert_eq!(segment.source, ConfigSource::Topic);

        let broker = describe_broker(&view);
        let ms = broker
            .iter()
            .find(|c| c.name == "log.retention.ms")
            .unwrap();
        // Unset itself: a static log.retention.hours is not its synonym (Kafka's dropWhile).
        assert_eq!(ms.value, None);
        assert_eq!(ms.source, ConfigSource::Default);
        assert!(ms.synonyms.is_empty());
        assert!(!ms.read_only);
        let hours = broker
            .iter()
            .find(|c| c.name == "log.retention.hours")
            .unwrap();
        assert_eq!(hours.source, ConfigSource::StaticBroker);
        assert_eq!(
            hours.synonyms.iter().map(|s| s.source).collect::<Vec<_>>(),
            vec![ConfigSource::StaticBroker, ConfigSource::Default]
        );
        let hours = broker.iter().find(|c| c.name == "node.id").unwrap();
        assert!(hours.read_only);
        assert!(describe_broker_defaults(&view).is_empty());
    }
}
