//! Cluster mode: the KRaft-style settings that turn a node into a member of a multi-node
//! cluster (`process.roles`, `controller.quorum.voters`, the `CONTROLLER` listener, ...).
//!
//! With no `controller.quorum.voters`, or a quorum of this node alone (the apache/kafka image's
//! default file), the node stays a single-node broker: [`load`] returns `None` and nothing of
//! this module is used. Otherwise every node must be a voter (`process.roles=broker,controller`:
//! Shoal has no broker-only or controller-only nodes yet) and open the controller listener its
//! own voter entry names.

use std::collections::BTreeMap;

use super::broker::StaticConfig;
use super::listener::{Endpoint, parse_endpoints};

/// One entry of `controller.quorum.voters`: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// Node id.
    pub node_id: i32,
    /// Host of its controller listener.
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

/// The validated cluster settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `controller.quorum.voters`, by node id.
    pub voters: BTreeMap<i32, Voter>,
    /// The controller listener this node binds (all Raft traffic between nodes).
    pub controller_listener: Endpoint,
    /// `cluster.id`: pins the cluster id (otherwise the first node to start picks one).
    pub cluster_id: Option<String>,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `auto.leader.rebalance.enable`: move leadership back to preferred replicas.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub leader_imbalance_check_interval_ms: u64,
    /// `controlled.shutdown.enable`: hand leaderships away before stopping.
    pub controlled_shutdown: bool,
    /// `broker.session.timeout.ms`: a broker silent for this long is fenced.
    pub broker_session_timeout_ms: i64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
}

/// Parses `controller.quorum.voters` (`1@host:9093,2@host:9094`).
pub fn parse_voters(value: &str) -> Result<BTreeMap<i32, Voter>, String> {
    let mut out = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || format!("'{item}' is not a voter of the form id@host:port");
        let (id, address) = item.split_once('@').ok_or_else(bad)?;
        let node_id: i32 = id.trim().parse().map_err(|_| bad())?;
        if node_id < 0 {
            return Err(bad());
        }
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(format!(
                "'{item}': a voter needs a host and a non-zero port"
            ));
        }
        let voter = Voter {
            node_id,
            host: host.to_string(),
            port,
        };
        if out.insert(node_id, voter).is_some() {
            return Err(format!("node id {node_id} appears more than once"));
        }
    }
    Ok(out)
}

/// Validates the cluster settings; `None` for a single-node broker. Problems are appended to
/// `problems`.
pub fn load(
    statics: &StaticConfig,
    node_id: i32,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<ClusterConfig> {
    let voters = match parse_voters(
        &statics
            .value("controller.quorum.voters")
            .unwrap_or_default(),
    ) {
        Ok(voters) => voters,
        Err(e) => {
            problems.push(format!("controller.quorum.voters: {e}"));
            return None;
        }
    };
    let single_node = voters.is_empty() || (voters.len() == 1 && voters.contains_key(&node_id));
    if single_node {
        if statics.explicit("process.roles").is_some() {
            warnings.push(
                "process.roles is accepted but has no effect: without other nodes in controller.quorum.voters, Shoal runs a single-node broker"
                    .to_string(),
            );
        }
        if !voters.is_empty() {
            warnings.push(
                "controller.quorum.voters names only this node: running a single-node broker"
                    .to_string(),
            );
        }
        return None;
    }
    let before = problems.len();
    if !voters.contains_key(&node_id) {
        problems.push(format!(
            "node.id={node_id} is not in controller.quorum.voters ({}): every Shoal node of a cluster is a controller voter",
            voters.keys().map(i32::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    let roles: Vec<String> = statics
        .value("process.roles")
        .unwrap_or_default()
        .split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if !(roles.iter().any(|r| r == "broker") && roles.iter().any(|r| r == "controller")) {
        problems.push(format!(
            "process.roles={} is not supported with controller.quorum.voters: Shoal nodes are always broker,controller",
            roles.join(",")
        ));
    }
    let controller_names = super::broker::controller_listener_names(statics);
    if controller_names.is_empty() {
        problems.push(
            "controller.listener.names must name the listener for controller traffic (e.g. CONTROLLER)"
                .to_string(),
        );
    }
    let listeners =
        parse_endpoints(&statics.value("listeners").unwrap_or_default()).unwrap_or_default();
    let controller_listener = listeners
        .iter()
        .find(|l| controller_names.first() == Some(&l.name))
        .cloned();
    let controller_listener = match controller_listener {
        Some(l) => l,
        None => {
            if let Some(name) = controller_names.first() {
                problems.push(format!(
                    "listeners has no {name}://host:port entry (controller.listener.names={name}): it carries all traffic between nodes"
                ));
            }
            return None;
        }
    };
    if let Some(me) = voters.get(&node_id)
        && controller_listener.port != 0
        && controller_listener.port != me.port
    {
        problems.push(format!(
            "listener {controller_listener} and this node's entry in controller.quorum.voters ({}@{}:{}) name different ports",
            node_id, me.host, me.port
        ));
    }
    let cluster_id = statics.value("cluster.id").filter(|c| !c.is_empty());
    if let Some(id) = &cluster_id
        && (id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        problems.push(format!(
            "cluster.id={id}: use up to 64 letters, digits, '-' or '_' (e.g. a Kafka cluster id)"
        ));
    }
    let session: i64 = statics.number("broker.session.timeout.ms");
    let heartbeat: u64 = statics.number("broker.heartbeat.interval.ms");
    if i64::try_from(heartbeat).unwrap_or(i64::MAX) >= session {
        problems.push(format!(
            "broker.heartbeat.interval.ms={heartbeat} must be smaller than broker.session.timeout.ms={session}"
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some(ClusterConfig {
        voters,
        controller_listener,
        cluster_id,
        replica_lag_time_max_ms: statics.number("replica.lag.time.max.ms"),
        auto_leader_rebalance: statics.flag("auto.leader.rebalance.enable"),
        leader_imbalance_check_interval_ms: statics
            .number::<u64>("leader.imbalance.check.interval.seconds")
            .saturating_mul(1000),
        controlled_shutdown: statics.flag("controlled.shutdown.enable"),
        broker_session_timeout_ms: session,
        broker_heartbeat_interval_ms: heartbeat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_reject_bad_entries() {
        let v = parse_voters("1@localhost:9093, 2@[::1]:9094").unwrap();
        assert_eq!(v[&1].host, "localhost");
        assert_eq!(v[&2].host, "::1");
        assert_eq!(v[&2].port, 9094);
        assert!(parse_voters("1@localhost").is_err());
        assert!(parse_voters("x@localhost:1").is_err());
        assert!(parse_voters("1@localhost:1,1@other:2").is_err());
        assert!(parse_voters("1@:9093").is_err());
        assert!(parse_voters("-1@h:9093").is_err());
    }
}
