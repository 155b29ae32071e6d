//! The node's KIP-392 state shared by every fetch: which selector leaders run, the client racks
//! inferred from addresses (`client.rack.cidrs`) and the consumer-fetch metrics.

use std::net::IpAddr;
use std::sync::Arc;

use crate::client_rack::ClientRackMap;
use crate::config::BrokerConfig;
use crate::metadata::MetadataImage;
use crate::metrics::{FetchMetrics, RackLabel};
use crate::replica_selector::{MIN_FETCH_VERSION, SelectorKind};

/// Follower fetching on this node.
#[derive(Debug)]
pub struct FollowerFetching {
    /// The selector partition leaders on this node run.
    pub selector: SelectorKind,
    /// This broker.
    pub node_id: i32,
    /// `client.rack.cidrs`.
    pub client_racks: ClientRackMap,
    /// Consumer-fetch counters.
    pub metrics: Arc<FetchMetrics>,
}

impl FollowerFetching {
    /// From the validated configuration (with any discovered rack already in it).
    pub fn new(config: &BrokerConfig) -> FollowerFetching {
        let rack_source = match (&config.rack, config.rack_awareness.discovered_from) {
            (None, _) => "none",
            (Some(_), Some(source)) => source.name(),
            (Some(_), None) => "static",
        };
        FollowerFetching {
            selector: config.rack_awareness.selector,
            node_id: config.node_id,
            client_racks: config.rack_awareness.client_rack_cidrs.clone(),
            metrics: Arc::new(FetchMetrics::new(
                config.node_id,
                config.rack.as_deref(),
                rack_source,
            )),
        }
    }

    /// The rack of a fetching client: the request's `rack_id` (v11+), else the rack of the
    /// client's address in `client.rack.cidrs`.
    pub fn client_rack(&self, version: i16, rack_id: &str, peer: IpAddr) -> Option<Arc<str>> {
        if version >= MIN_FETCH_VERSION && !rack_id.is_empty() {
            return Some(Arc::from(rack_id));
        }
        self.client_racks.rack_for(peer).cloned()
    }

    /// The metrics label of `client_rack`: itself if a broker or `client.rack.cidrs` names it.
    pub fn rack_label(&self, client_rack: Option<&str>, image: &MetadataImage) -> RackLabel {
        self.metrics.rack_label(client_rack, |rack| {
            image
                .brokers()
                .values()
                .any(|b| b.rack.as_deref() == Some(rack))
                || self.client_racks.racks().any(|r| r == rack)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::broker::{ConfigInput, Origin, load};

    fn node(pairs: &[(&str, &str)]) -> FollowerFetching {
        let mut input = ConfigInput::default();
        for (k, v) in pairs {
            input.set(*k, *v, Origin::Flag);
        }
        FollowerFetching::new(&load(&input, "h").unwrap().config)
    }

    #[test]
    fn the_request_rack_wins_over_the_address() {
        let ff = node(&[("client.rack.cidrs", "10.0.1.0/24=az1")]);
        let peer: IpAddr = "10.0.1.9".parse().unwrap();
        assert_eq!(ff.client_rack(11, "az7", peer).as_deref(), Some("az7"));
        assert_eq!(ff.client_rack(11, "", peer).as_deref(), Some("az1"));
        assert_eq!(
            ff.client_rack(10, "ignored-before-v11", peer).as_deref(),
            Some("az1")
        );
        assert_eq!(ff.client_rack(11, "", "10.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn rack_sources_for_the_info_metric() {
        assert!(node(&[]).metrics.render().contains("rack_source=\"none\""));
        assert!(
            node(&[("broker.rack", "r1")])
                .metrics
                .render()
                .contains("rack=\"r1\",rack_source=\"static\"")
        );
    }
}
