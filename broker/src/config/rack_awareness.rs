//! Racks and follower fetching (KIP-392): `replica.selector.class` / `follower.fetching.enabled`,
//! `client.rack.cidrs`, `broker.rack=auto` with its sources, and `metrics.listener`.

use super::broker::StaticConfig;
use crate::client_rack::ClientRackMap;
use crate::http::HttpUrl;
use crate::replica_selector::SelectorKind;

/// The value of `broker.rack` that asks for discovery at startup.
pub const AUTO_RACK: &str = "auto";

/// Where `broker.rack=auto` may find the rack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RackSource {
    /// An environment variable (`broker.rack.auto.env.name`).
    Env,
    /// AWS IMDSv2: the availability-zone id (`use1-az1`), the same in every account.
    Aws,
    /// GCP metadata: the zone (`europe-west1-b`).
    Gcp,
    /// Azure IMDS: location and zone (`westeurope-2`).
    Azure,
}

impl RackSource {
    /// The name used in `broker.rack.auto.sources` and log lines.
    pub fn name(self) -> &'static str {
        match self {
            RackSource::Env => "env",
            RackSource::Aws => "aws",
            RackSource::Gcp => "gcp",
            RackSource::Azure => "azure",
        }
    }

    fn from_name(name: &str) -> Option<RackSource> {
        [
            RackSource::Env,
            RackSource::Aws,
            RackSource::Gcp,
            RackSource::Azure,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// How `broker.rack=auto` looks for the rack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RackAutoConfig {
    /// Sources in order of preference (`broker.rack.auto.sources`).
    pub sources: Vec<RackSource>,
    /// Environment variable read by the `env` source (`broker.rack.auto.env.name`).
    pub env_name: String,
    /// Deadline of each metadata service exchange (`broker.rack.auto.timeout.ms`).
    pub timeout_ms: u64,
    /// AWS instance metadata service (`broker.rack.auto.aws.endpoint`).
    pub aws_endpoint: HttpUrl,
    /// GCP metadata server (`broker.rack.auto.gcp.endpoint`).
    pub gcp_endpoint: HttpUrl,
    /// Azure instance metadata service (`broker.rack.auto.azure.endpoint`).
    pub azure_endpoint: HttpUrl,
}

/// Follower fetching and rack settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RackAwarenessConfig {
    /// The replica selector leaders run.
    pub selector: SelectorKind,
    /// Racks of clients that do not say theirs (`client.rack.cidrs`).
    pub client_rack_cidrs: ClientRackMap,
    /// Set when `broker.rack=auto`: how to find the rack at startup.
    pub auto_rack: Option<RackAutoConfig>,
    /// Where `broker.rack=auto` found the rack (set at startup).
    pub discovered_from: Option<RackSource>,
}

const AUTO_PROPERTIES: [&str; 6] = [
    "broker.rack.auto.sources",
    "broker.rack.auto.env.name",
    "broker.rack.auto.timeout.ms",
    "broker.rack.auto.aws.endpoint",
    "broker.rack.auto.gcp.endpoint",
    "broker.rack.auto.azure.endpoint",
];

/// Validates the rack and follower-fetching properties of `statics`.
pub fn load(
    statics: &StaticConfig,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> RackAwarenessConfig {
    let class = statics.value("replica.selector.class").unwrap_or_default();
    let class_selector = SelectorKind::from_class(&class).unwrap_or_else(|e| {
        problems.push(e.to_string());
        SelectorKind::Leader
    });
    let selector = match statics.explicit("follower.fetching.enabled") {
        Some("true")
            if statics.explicit("replica.selector.class").is_some()
                && class_selector == SelectorKind::Leader =>
        {
            problems.push(format!(
                "follower.fetching.enabled=true contradicts replica.selector.class={class}"
            ));
            SelectorKind::Leader
        }
        Some("true") => SelectorKind::RackAware,
        Some("false") if class_selector == SelectorKind::RackAware => {
            problems.push(format!(
                "follower.fetching.enabled=false contradicts replica.selector.class={class}"
            ));
            SelectorKind::Leader
        }
        _ => class_selector,
    };

    let client_rack_cidrs =
        ClientRackMap::parse(&statics.value("client.rack.cidrs").unwrap_or_default())
            .unwrap_or_else(|e| {
                problems.push(e.to_string());
                ClientRackMap::default()
            });
    if !client_rack_cidrs.is_empty() && selector == SelectorKind::Leader {
        warnings.push(
            "client.rack.cidrs only labels metrics: follower fetching is off (set follower.fetching.enabled=true)"
                .into(),
        );
    }

    let rack = statics.value("broker.rack").unwrap_or_default();
    let auto_rack = if rack.trim() == AUTO_RACK {
        Some(auto_config(statics, problems))
    } else {
        for name in AUTO_PROPERTIES {
            if statics.explicit(name).is_some() {
                warnings.push(format!("{name} has no effect unless broker.rack=auto"));
            }
        }
        if selector == SelectorKind::RackAware && rack.trim().is_empty() {
            warnings.push(
                "follower fetching is enabled but broker.rack is not set: no consumer will be sent to this broker as a same-rack replica"
                    .into(),
            );
        }
        None
    };
    RackAwarenessConfig {
        selector,
        client_rack_cidrs,
        auto_rack,
        discovered_from: None,
    }
}

fn auto_config(statics: &StaticConfig, problems: &mut Vec<String>) -> RackAutoConfig {
    let sources: Vec<RackSource> = statics
        .value("broker.rack.auto.sources")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| RackSource::from_name(s.trim()))
        .collect();
    if sources.is_empty() {
        problems
            .push("broker.rack=auto needs at least one source in broker.rack.auto.sources".into());
    }
    let env_name = statics
        .value("broker.rack.auto.env.name")
        .unwrap_or_default();
    if sources.contains(&RackSource::Env) && (env_name.is_empty() || env_name.contains(['=', '\0']))
    {
        problems.push(format!(
            "broker.rack.auto.env.name='{env_name}' is not an environment variable name"
        ));
    }
    let mut endpoint = |name: &str| {
        let value = statics.value(name).unwrap_or_default();
        HttpUrl::parse(&value).unwrap_or_else(|e| {
            problems.push(format!("{name}: {e}"));
            HttpUrl {
                host: "invalid".into(),
                port: 80,
                path: "/".into(),
            }
        })
    };
    let aws_endpoint = endpoint("broker.rack.auto.aws.endpoint");
    let gcp_endpoint = endpoint("broker.rack.auto.gcp.endpoint");
    let azure_endpoint = endpoint("broker.rack.auto.azure.endpoint");
    RackAutoConfig {
        sources,
        env_name,
        timeout_ms: statics
            .value("broker.rack.auto.timeout.ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
        aws_endpoint,
        gcp_endpoint,
        azure_endpoint,
    }
}

/// `metrics.listener`: where the Prometheus endpoint listens, if anywhere.
pub fn metrics_listener(statics: &StaticConfig, problems: &mut Vec<String>) -> Option<HttpUrl> {
    let value = statics.value("metrics.listener")?;
    if value.trim().is_empty() {
        return None;
    }
    match HttpUrl::parse(&value) {
        Ok(url) if url.path == "/" => Some(HttpUrl {
            path: "/metrics".into(),
            ..url
        }),
        Ok(url) => Some(url),
        Err(e) => {
            problems.push(format!("metrics.listener: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::broker::{ConfigInput, Origin, load};
    use crate::replica_selector::{LEADER_SELECTOR_CLASS, RACK_AWARE_SELECTOR_CLASS};

    fn try_load(pairs: &[(&str, &str)]) -> Result<crate::config::Loaded, String> {
        let mut input = ConfigInput::default();
        for (k, v) in pairs {
            input.set(*k, *v, Origin::Flag);
        }
        load(&input, "host").map_err(|e| e.to_string())
    }

    fn selector(pairs: &[(&str, &str)]) -> SelectorKind {
        try_load(pairs).unwrap().config.rack_awareness.selector
    }

    #[test]
    fn the_default_is_kafkas_leader_selector() {
        let loaded = try_load(&[]).unwrap();
        assert_eq!(loaded.config.rack_awareness, RackAwarenessConfig::default());
        assert_eq!(loaded.config.metrics_listener, None);
        assert_eq!(loaded.config.rack, None);
    }

    #[test]
    fn selector_class_and_switch() {
        assert_eq!(
            selector(&[("replica.selector.class", RACK_AWARE_SELECTOR_CLASS)]),
            SelectorKind::RackAware
        );
        assert_eq!(
            selector(&[("replica.selector.class", LEADER_SELECTOR_CLASS)]),
            SelectorKind::Leader
        );
        assert_eq!(
            selector(&[("follower.fetching.enabled", "true")]),
            SelectorKind::RackAware
        );
        assert_eq!(
            selector(&[
                ("follower.fetching.enabled", "TRUE"),
                ("replica.selector.class", RACK_AWARE_SELECTOR_CLASS)
            ]),
            SelectorKind::RackAware
        );
        assert_eq!(
            selector(&[("follower.fetching.enabled", "false")]),
            SelectorKind::Leader
        );
        let err = try_load(&[("replica.selector.class", "com.example.Nearest")]).unwrap_err();
        assert!(
            err.contains("com.example.Nearest is not supported"),
            "{err}"
        );
        let err = try_load(&[
            ("follower.fetching.enabled", "true"),
            ("replica.selector.class", LEADER_SELECTOR_CLASS),
        ])
        .unwrap_err();
        assert!(err.contains("contradicts"), "{err}");
        let err = try_load(&[
            ("follower.fetching.enabled", "false"),
            ("replica.selector.class", RACK_AWARE_SELECTOR_CLASS),
        ])
        .unwrap_err();
        assert!(err.contains("contradicts"), "{err}");
    }

    #[test]
    fn enabling_without_a_rack_warns() {
        let loaded = try_load(&[("follower.fetching.enabled", "true")]).unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("broker.rack is not set")),
            "{:?}",
            loaded.warnings
        );
        let loaded =
            try_load(&[("follower.fetching.enabled", "true"), ("broker.rack", "r1")]).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.config.rack.as_deref(), Some("r1"));
    }

    #[test]
    fn client_rack_cidrs_are_validated() {
        let loaded = try_load(&[
            (
                "client.rack.cidrs",
                "10.0.1.0/24=use1-az1,10.0.2.0/24=use1-az2",
            ),
            ("follower.fetching.enabled", "true"),
            ("broker.rack", "use1-az1"),
        ])
        .unwrap();
        let map = &loaded.config.rack_awareness.client_rack_cidrs;
        assert_eq!(
            map.rack_for("10.0.2.9".parse().unwrap())
                .map(|r| r.as_ref()),
            Some("use1-az2")
        );
        let err = try_load(&[("client.rack.cidrs", "10.0.1.0/24")]).unwrap_err();
        assert!(
            err.contains("client.rack.cidrs entry '10.0.1.0/24'"),
            "{err}"
        );
        let loaded = try_load(&[("client.rack.cidrs", "10.0.1.0/24=a")]).unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("only labels metrics"))
        );
    }

    #[test]
    fn auto_rack_settings() {
        let loaded = try_load(&[("broker.rack", "auto")]).unwrap();
        assert_eq!(loaded.config.rack, None, "resolved at startup");
        let auto = loaded.config.rack_awareness.auto_rack.unwrap();
        assert_eq!(
            auto.sources,
            vec![
                RackSource::Env,
                RackSource::Aws,
                RackSource::Gcp,
                RackSource::Azure
            ]
        );
        assert_eq!(auto.env_name, "SHOAL_RACK");
        assert_eq!(auto.timeout_ms, 1000);
        assert_eq!(auto.aws_endpoint.authority(), "169.254.169.254:80");

        let loaded = try_load(&[
            ("broker.rack", "auto"),
            ("broker.rack.auto.sources", "gcp, env"),
            ("broker.rack.auto.env.name", "ZONE"),
            ("broker.rack.auto.timeout.ms", "250"),
            ("broker.rack.auto.gcp.endpoint", "http://127.0.0.1:8080"),
        ])
        .unwrap();
        let auto = loaded.config.rack_awareness.auto_rack.unwrap();
        assert_eq!(auto.sources, vec![RackSource::Gcp, RackSource::Env]);
        assert_eq!(auto.env_name, "ZONE");
        assert_eq!(auto.timeout_ms, 250);
        assert_eq!(auto.gcp_endpoint.port, 8080);

        for (pairs, needle) in [
            (
                &[("broker.rack", "auto"), ("broker.rack.auto.sources", "ibm")][..],
                "broker.rack.auto.sources",
            ),
            (
                &[("broker.rack", "auto"), ("broker.rack.auto.sources", " ")][..],
                "at least one source",
            ),
            (
                &[
                    ("broker.rack", "auto"),
                    ("broker.rack.auto.aws.endpoint", "https://x"),
                ][..],
                "broker.rack.auto.aws.endpoint",
            ),
            (
                &[
                    ("broker.rack", "auto"),
                    ("broker.rack.auto.env.name", "A=B"),
                ][..],
                "not an environment variable name",
            ),
            (&[("broker.rack.auto.timeout.ms", "0")][..], "timeout"),
        ] {
            let err = try_load(pairs).unwrap_err();
            assert!(err.contains(needle), "{pairs:?}: {err}");
        }
        let loaded =
            try_load(&[("broker.rack", "r1"), ("broker.rack.auto.env.name", "Z")]).unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("unless broker.rack=auto"))
        );
    }

    #[test]
    fn rack_discovered_at_startup_is_what_describe_reports() {
        let loaded = try_load(&[("broker.rack", "auto")]).unwrap();
        let config = loaded
            .config
            .with_discovered_rack("use1-az1".into(), RackSource::Aws);
        assert_eq!(config.rack_awareness.discovered_from, Some(RackSource::Aws));
        assert_eq!(config.rack.as_deref(), Some("use1-az1"));
        assert_eq!(config.statics.explicit("broker.rack"), Some("use1-az1"));
    }

    #[test]
    fn metrics_listener_urls() {
        let url = |v: &str| try_load(&[("metrics.listener", v)]).map(|l| l.config.metrics_listener);
        assert_eq!(
            url("http://127.0.0.1:9644/metrics")
                .unwrap()
                .unwrap()
                .to_string(),
            "http://127.0.0.1:9644/metrics"
        );
        assert_eq!(url("http://0.0.0.0:0").unwrap().unwrap().path, "/metrics");
        assert_eq!(url("http://[::1]:9/prom").unwrap().unwrap().path, "/prom");
        assert_eq!(url("").unwrap(), None);
        assert!(
            url("127.0.0.1:9644")
                .unwrap_err()
                .contains("metrics.listener")
        );
    }

    #[test]
    fn testing_faults_are_off_by_default_and_need_the_metrics_listener() {
        assert!(!try_load(&[]).unwrap().config.testing_faults_enabled);
        let err = try_load(&[("testing.faults.enabled", "true")]).unwrap_err();
        assert!(err.contains("testing.faults.enabled"), "{err}");
        assert!(err.contains("metrics.listener"), "{err}");
        let on = try_load(&[
            ("testing.faults.enabled", "true"),
            ("metrics.listener", "http://127.0.0.1:0"),
        ])
        .unwrap();
        assert!(on.config.testing_faults_enabled);
    }
}
