//! `client.rack.cidrs`: the rack of a consumer that does not set `client.rack`, inferred from its
//! address.
//!
//! The value maps networks to racks, `10.0.1.0/24=use1-az1,2001:db8:1::/48=use1-az1`. The most
//! specific network containing the client's address wins (longest prefix). IPv4 clients seen
//! through an IPv6 socket (`::ffff:10.0.1.7`) match IPv4 networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// A network: address bits and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    V4 { bits: u32, prefix: u8 },
    V6 { bits: u128, prefix: u8 },
}

impl Network {
    fn prefix(&self) -> u8 {
        match *self {
            Network::V4 { prefix, .. } | Network::V6 { prefix, .. } => prefix,
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (Network::V4 { bits, prefix }, IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(prefix) == bits
            }
            (Network::V6 { bits, prefix }, IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(prefix) == bits
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Network::V4 { bits, prefix } => write!(f, "{}/{prefix}", Ipv4Addr::from(bits)),
            Network::V6 { bits, prefix } => write!(f, "{}/{prefix}", Ipv6Addr::from(bits)),
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// A malformed `client.rack.cidrs` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client.rack.cidrs entry '{entry}': {reason}")]
pub struct CidrMapError {
    /// The offending entry.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Networks and their racks, most specific first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRackMap {
    entries: Vec<(Network, Arc<str>)>,
}

impl ClientRackMap {
    /// Parses `CIDR=rack` entries separated by commas (blank entries are ignored).
    pub fn parse(value: &str) -> Result<ClientRackMap, CidrMapError> {
        let mut entries: Vec<(Network, Arc<str>)> = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let err = |reason: String| CidrMapError {
                entry: entry.to_string(),
                reason,
            };
            let (cidr, rack) = entry
                .split_once('=')
                .ok_or_else(|| err("expected CIDR=rack".into()))?;
            let rack = rack.trim();
            if rack.is_empty() {
                return Err(err("the rack is empty".into()));
            }
            let network = parse_cidr(cidr.trim()).map_err(err)?;
            if let Some((_, other)) = entries.iter().find(|(n, _)| *n == network) {
                return Err(err(format!("{network} is already mapped to rack {other}")));
            }
            entries.push((network, Arc::from(rack)));
        }
        // Stable: among equal prefixes (different networks) order does not matter.
        entries.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix()));
        Ok(ClientRackMap { entries })
    }

    /// Whether no network is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The rack of the most specific network containing `ip`.
    pub fn rack_for(&self, ip: IpAddr) -> Option<&Arc<str>> {
        let ip = ip.to_canonical();
        self.entries
            .iter()
            .find(|(n, _)| n.contains(ip))
            .map(|(_, rack)| rack)
    }

    /// Every rack named by the map (with repetitions).
    pub fn racks(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(_, r)| r.as_ref())
    }
}

fn parse_cidr(cidr: &str) -> Result<Network, String> {
    let (address, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| format!("'{cidr}' is not a CIDR (address/prefix)"))?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("'{address}' is not an IP address"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| format!("prefix length '{prefix}' must be a number from 0 to {max}"))?;
    let network = match address {
        IpAddr::V4(a) => Network::V4 {
            bits: u32::from(a) & mask32(prefix),
            prefix,
        },
        IpAddr::V6(a) => Network::V6 {
            bits: u128::from(a) & mask128(prefix),
            prefix,
        },
    };
    let exact = match (network, address) {
        (Network::V4 { bits, .. }, IpAddr::V4(a)) => bits == u32::from(a),
        (Network::V6 { bits, .. }, IpAddr::V6(a)) => bits == u128::from(a),
        _ => false,
    };
    if !exact {
        return Err(format!(
            "{cidr} has host bits set (did you mean {network}?)"
        ));
    }
    Ok(network)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rack<'a>(map: &'a ClientRackMap, addr: &str) -> Option<&'a str> {
        map.rack_for(ip(addr)).map(|r| r.as_ref())
    }

    #[test]
    fn maps_ipv4_networks() {
        let map = ClientRackMap::parse("10.0.1.0/24=use1-az1, 10.0.2.0/24 = use1-az2 ,,").unwrap();
        assert_eq!(rack(&map, "10.0.1.7"), Some("use1-az1"));
        assert_eq!(rack(&map, "10.0.2.255"), Some("use1-az2"));
        assert_eq!(rack(&map, "10.0.3.1"), None);
        assert_eq!(rack(&map, "::1"), None);
        assert_eq!(map.racks().count(), 2);
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        for value in [
            "10.0.0.0/8=wide,10.0.1.0/24=narrow,10.0.1.128/25=narrowest",
            "10.0.1.128/25=narrowest,10.0.0.0/8=wide,10.0.1.0/24=narrow",
        ] {
            let map = ClientRackMap::parse(value).unwrap();
            assert_eq!(rack(&map, "10.9.9.9"), Some("wide"));
            assert_eq!(rack(&map, "10.0.1.1"), Some("narrow"));
            assert_eq!(rack(&map, "10.0.1.200"), Some("narrowest"));
        }
    }

    #[test]
    fn ipv6_networks_and_mapped_ipv4_clients() {
        let map = ClientRackMap::parse(
            "2001:db8:1::/48=az1,2001:db8::/32=az-any,10.0.0.0/16=az4,::/0=default6",
        )
        .unwrap();
        assert_eq!(rack(&map, "2001:db8:1:2::5"), Some("az1"));
        assert_eq!(rack(&map, "2001:db8:2::5"), Some("az-any"));
        assert_eq!(rack(&map, "fe80::1"), Some("default6"));
        assert_eq!(rack(&map, "::ffff:10.0.3.4"), Some("az4"));
        assert_eq!(rack(&map, "10.0.3.4"), Some("az4"));
        assert_eq!(rack(&map, "192.168.0.1"), None, "::/0 holds no IPv4 client");
    }

    #[test]
    fn zero_and_full_prefixes() {
        let map = ClientRackMap::parse("0.0.0.0/0=any,192.0.2.9/32=one").unwrap();
        assert_eq!(rack(&map, "192.0.2.9"), Some("one"));
        assert_eq!(rack(&map, "192.0.2.8"), Some("any"));
        let map = ClientRackMap::parse("2001:db8::1/128=one").unwrap();
        assert_eq!(rack(&map, "2001:db8::1"), Some("one"));
        assert_eq!(rack(&map, "2001:db8::2"), None);
    }

    #[test]
    fn empty_value_is_an_empty_map() {
        let map = ClientRackMap::parse("  ").unwrap();
        assert!(map.is_empty());
        assert_eq!(rack(&map, "10.0.0.1"), None);
    }

    #[test]
    fn malformed_entries_are_rejected_with_the_entry() {
        for (value, needle) in [
            ("10.0.1.0/24", "CIDR=rack"),
            ("10.0.1.0/24=", "empty"),
            ("10.0.1.0=az1", "not a CIDR"),
            ("10.0.1/24=az1", "not an IP"),
            ("10.0.1.0/33=az1", "0 to 32"),
            ("2001:db8::/129=az1", "0 to 128"),
            ("10.0.1.0/x=az1", "prefix length"),
            ("10.0.1.5/24=az1", "did you mean 10.0.1.0/24"),
            ("10.0.1.0/24=a,10.0.1.0/24=b", "already mapped"),
        ] {
            let err = ClientRackMap::parse(value).unwrap_err();
            assert!(err.to_string().contains(needle), "{value}: {err}");
        }
    }
}
