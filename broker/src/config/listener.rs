//! `listeners` and `advertised.listeners`: `NAME://host:port` lists.

use std::collections::BTreeMap;

/// One `NAME://host:port` entry. The name is upper-cased as Kafka normalises it; an empty host
/// means every interface; port 0 means an ephemeral port chosen at bind time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Listener name, e.g. `PLAINTEXT`.
    pub name: String,
    /// Host name or address, without IPv6 brackets; may be empty.
    pub host: String,
    /// Port; 0 binds an ephemeral port.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// Parses a comma-separated listener list; names must be unique.
pub fn parse_endpoints(value: &str) -> Result<Vec<Endpoint>, String> {
    let mut out: Vec<Endpoint> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let endpoint = parse_endpoint(item)?;
        if out.iter().any(|e| e.name == endpoint.name) {
            return Err(format!(
                "listener name {} appears more than once",
                endpoint.name
            ));
        }
        out.push(endpoint);
    }
    Ok(out)
}

fn parse_endpoint(item: &str) -> Result<Endpoint, String> {
    let bad = || format!("'{item}' is not a listener of the form NAME://host:port");
    let (name, rest) = item.split_once("://").ok_or_else(bad)?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(bad());
    }
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.contains(['/', ' ']) || (host.contains(':') && !rest.starts_with('[')) {
        return Err(bad());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{item}': port must be a number from 0 to 65535"))?;
    Ok(Endpoint {
        name: name.to_ascii_uppercase(),
        host: host.to_string(),
        port,
    })
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
pub fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, protocol) = item
            .split_once(':')
            .ok_or_else(|| format!("'{item}' is not of the form NAME:PROTOCOL"))?;
        out.insert(
            name.trim().to_ascii_uppercase(),
            protocol.trim().to_ascii_uppercase(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, host: &str, port: u16) -> Endpoint {
        Endpoint {
            name: name.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_hosts_ports_and_ipv6() {
        assert_eq!(
            parse_endpoints(
                "PLAINTEXT://localhost:9092, plaintext_host://0.0.0.0:0,X://:1,V6://[::1]:2"
            )
            .unwrap(),
            vec![
                ep("PLAINTEXT", "localhost", 9092),
                ep("PLAINTEXT_HOST", "0.0.0.0", 0),
                ep("X", "", 1),
                ep("V6", "::1", 2),
            ]
        );
        assert_eq!(ep("V6", "::1", 2).to_string(), "V6://[::1]:2");
    }

    #[test]
    fn rejects_malformed_entries_and_duplicates() {
        for bad in [
            "localhost:9092",
            "A://h",
            "A://h:99999",
            "A://h:x",
            "://h:1",
            "A://::1:2",
        ] {
            assert!(parse_endpoints(bad).is_err(), "{bad}");
        }
        assert!(parse_endpoints("A://h:1,a://h:2").is_err());
    }

    #[test]
    fn protocol_map() {
        let map = parse_protocol_map("CONTROLLER:PLAINTEXT, ext:ssl").unwrap();
        assert_eq!(map["EXT"], "SSL");
        assert!(parse_protocol_map("nope").is_err());
    }
}
