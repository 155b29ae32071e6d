//! Listener ports for broker processes that tests restart on the same port.
//!
//! A port the kernel hands out for `bind(0)` comes from the ephemeral range
//! (`net.ipv4.ip_local_port_range`, 32768–60999 by default), the same range it draws the local
//! ports of outgoing connections from. Between a node's kill and its restart, some client's
//! connection can take that port, and the restart fails with "Address already in use". Ports
//! here come from below that range instead, and are checked free when handed out.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::bail;

/// The range ports are handed out from: below the default ephemeral range.
const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000;

/// Next candidate, as an offset into the range; starts at a point derived from the process id,
/// so that test binaries running at the same time start apart.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A port that was free a moment ago and that the kernel does not give to outgoing
/// connections.
pub fn free_port() -> anyhow::Result<u16> {
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let Ok(port) = u16::try_from(FIRST + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {FIRST}..{}", FIRST + COUNT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let a = super::free_port().unwrap();
        let b = super::free_port().unwrap();
        assert_ne!(a, b);
        for p in [a, b] {
            assert!((20_000..32_000).contains(&p), "{p}");
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
