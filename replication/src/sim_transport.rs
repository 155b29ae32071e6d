//! An in-process network for tests, behind the same [`Transport`] seam as TCP: every message
//! goes through its wire encoding, and the network drops, delays, partitions and takes nodes
//! down as told. Decisions come from a seeded RNG ([`SimRng`]), so a seed fixes the fault
//! pattern; thread scheduling and timers still vary between runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;

use crate::transport::{RpcHandler, Transport, TransportError};
use crate::types::NodeId;
use crate::wire::RpcMessage;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A small seeded RNG (SplitMix64): enough for fault schedules, no dependency.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.next_u64() % 1000 < u64::from(per_mille)
    }
}

/// Message faults applied to every link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimFaults {
    /// Requests and responses lost, per thousand.
    pub drop_per_mille: u32,
    /// Delay of each message, uniform in this range (microseconds).
    pub min_delay_us: u64,
    pub max_delay_us: u64,
}

/// Counters of what the network did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub refused: u64,
}

#[derive(Default)]
struct SimState {
    handlers: HashMap<NodeId, Weak<dyn RpcHandler>>,
    faults: SimFaults,
    /// Directed links that carry nothing.
    cut: BTreeSet<(NodeId, NodeId)>,
    stats: SimStats,
}

/// The simulated network. See the module documentation.
pub struct SimNetwork {
    state: Mutex<SimState>,
    rng: Mutex<SimRng>,
}

impl std::fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNetwork")
            .field("stats", &lock(&self.state).stats)
            .finish()
    }
}

impl SimNetwork {
    pub fn new(seed: u64) -> Arc<SimNetwork> {
        Arc::new(SimNetwork {
            state: Mutex::new(SimState::default()),
            rng: Mutex::new(SimRng::new(seed)),
        })
    }

    /// The transport of node `node`.
    pub fn transport(self: &Arc<Self>, node: NodeId) -> Arc<SimTransport> {
        Arc::new(SimTransport {
            node,
            net: Arc::clone(self),
        })
    }

    pub fn set_faults(&self, faults: SimFaults) {
        lock(&self.state).faults = faults;
    }

    /// Splits the nodes into sides that cannot reach each other (nodes not listed keep
    /// their links). Replaces earlier partitions.
    pub fn partition(&self, sides: &[BTreeSet<NodeId>]) {
        let mut st = lock(&self.state);
        st.cut.clear();
        for (i, a) in sides.iter().enumerate() {
            for (j, b) in sides.iter().enumerate() {
                if i != j {
                    for x in a {
                        for y in b {
                            st.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts one directed link (messages from `from` to `to` are lost).
    pub fn cut_link(&self, from: NodeId, to: NodeId) {
        lock(&self.state).cut.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&self) {
        lock(&self.state).cut.clear();
    }

    pub fn stats(&self) -> SimStats {
        lock(&self.state).stats
    }

    fn reachable(&self, from: NodeId, to: NodeId) -> bool {
        !lock(&self.state).cut.contains(&(from, to))
    }

    /// Decides the fate of one message: `None` if lost, else its delay.
    fn roll(&self) -> Option<Duration> {
        let faults = lock(&self.state).faults;
        let mut rng = lock(&self.rng);
        if rng.chance(faults.drop_per_mille) {
            return None;
        }
        Some(Duration::from_micros(
            rng.range(faults.min_delay_us, faults.max_delay_us),
        ))
    }

    fn count(&self, f: impl FnOnce(&mut SimStats)) {
        f(&mut lock(&self.state).stats);
    }

    async fn deliver(
        self: Arc<Self>,
        from: NodeId,
        to: NodeId,
        request: RpcMessage,
        timeout: Duration,
    ) -> Result<RpcMessage, TransportError> {
        self.count(|s| s.sent += 1);
        let lost = || TransportError::Timeout { node: to, timeout };
        if !self.reachable(from, to) {
            self.count(|s| s.dropped += 1);
            tokio::time::sleep(timeout).await;
            return Err(lost());
        }
        let Some(delay) = self.roll() else {
            self.count(|s| s.dropped += 1);
            tokio::time::sleep(timeout).await;
            return Err(lost());
        };
        tokio::time::sleep(delay).await;
        let handler = lock(&self.state).handlers.get(&to).and_then(Weak::upgrade);
        let Some(handler) = handler else {
            self.count(|s| s.refused += 1);
            return Err(TransportError::Unreachable {
                node: to,
                reason: "connection refused".into(),
            });
        };
        let response = handler.handle(from, through_wire(&request)).await;
        drop(handler);
        // The way back may have been cut meanwhile, or lose the response.
        let back = if self.reachable(to, from) {
            self.roll()
        } else {
            None
        };
        let Some(delay) = back else {
            self.count(|s| s.dropped += 1);
            tokio::time::sleep(timeout).await;
            return Err(lost());
        };
        tokio::time::sleep(delay).await;
        self.count(|s| s.delivered += 1);
        Ok(through_wire(&response))
    }
}

/// A message after encoding and decoding, as a socket would deliver it.
fn through_wire(m: &RpcMessage) -> RpcMessage {
    let mut buf = BytesMut::with_capacity(m.len());
    for p in m.wire_parts() {
        buf.extend_from_slice(&p);
    }
    match RpcMessage::decode(buf.freeze()) {
        Ok(m) => m,
        // Only a bug in the codec gets here; the test must see it.
        Err(e) => panic!("message does not survive its own encoding: {e}"),
    }
}

/// One node's end of the simulated network.
#[derive(Debug)]
pub struct SimTransport {
    node: NodeId,
    net: Arc<SimNetwork>,
}

impl Transport for SimTransport {
    fn send(
        &self,
        target: NodeId,
        request: RpcMessage,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<RpcMessage, TransportError>> {
        let net = Arc::clone(&self.net);
        let from = self.node;
        Box::pin(async move {
            match tokio::time::timeout(timeout, net.deliver(from, target, request, timeout)).await {
                Ok(r) => r,
                Err(_) => Err(TransportError::Timeout {
                    node: target,
                    timeout,
                }),
            }
        })
    }

    fn attach(&self, handler: Weak<dyn RpcHandler>) {
        lock(&self.net.state).handlers.insert(self.node, handler);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rng_is_deterministic_and_in_range() {
        let mut a = SimRng::new(42);
        let mut b = SimRng::new(42);
        for _ in 0..1000 {
            let x = a.range(5, 9);
            assert_eq!(x, b.range(5, 9));
            assert!((5..=9).contains(&x));
        }
        assert_ne!(SimRng::new(1).next_u64(), SimRng::new(2).next_u64());
        let hits = (0..10_000).filter(|_| a.chance(100)).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }
}
