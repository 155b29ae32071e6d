//! The accept loops: one per listener, a limit on connections (total and per address), and
//! graceful shutdown through a cancellation token and a task tracker.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::connection::{self, ConnectionInfo, ConnectionLimits, RequestHandler};

/// Limits that apply across connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// `max.connections`.
    pub max_connections: usize,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: usize,
    /// Limits of each connection.
    pub connection: ConnectionLimits,
}

/// A bound listener, ready to accept.
#[derive(Debug)]
pub struct BoundListener {
    /// Listener name.
    pub name: Arc<str>,
    /// The socket.
    pub listener: TcpListener,
}

/// Connection counts per client address.
#[derive(Debug, Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one slot of the global and the per-address limit; releases both when dropped.
#[derive(Debug)]
struct Slot {
    _global: OwnedSemaphorePermit,
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .per_ip
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections on every listener until `shutdown` fires, then waits for open
/// connections to finish their queued responses.
pub async fn run<H: RequestHandler + 'static>(
    listeners: Vec<BoundListener>,
    handler: Arc<H>,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let global = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let ids = Arc::new(AtomicU64::new(0));
    for bound in listeners {
        tracker.spawn(accept_loop(
            bound,
            handler.clone(),
            limits,
            shutdown.clone(),
            tracker.clone(),
            global.clone(),
            per_ip.clone(),
            ids.clone(),
        ));
    }
    tracker.close();
    tracker.wait().await;
}

#[allow(clippy::too_many_arguments)]
async fn accept_loop<H: RequestHandler + 'static>(
    bound: BoundListener,
    handler: Arc<H>,
    limits: ServerLimits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    global: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    ids: Arc<AtomicU64>,
) {
    loop {
        // Like Kafka's acceptor, stop accepting while at max.connections.
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            permit = global.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = bound.listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically EMFILE/ENFILE: back off instead of spinning on the error.
                    warn!(listener = %bound.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = take_slot(&per_ip, permit, peer, limits.max_connections_per_ip) else {
            warn!(peer = %peer, limit = limits.max_connections_per_ip, "closing connection: max.connections.per.ip reached");
            continue;
        };
        let info = ConnectionInfo {
            id: ids.fetch_add(1, Ordering::Relaxed),
            peer,
            listener: bound.name.clone(),
        };
        debug!(connection = info.id, peer = %peer, listener = %bound.name, "accepted connection");
        tracker.spawn(serve_one(
            stream,
            info,
            limits,
            handler.clone(),
            shutdown.clone(),
            slot,
        ));
    }
}

fn take_slot(
    per_ip: &Arc<PerIp>,
    permit: OwnedSemaphorePermit,
    peer: SocketAddr,
    max_per_ip: usize,
) -> Option<Slot> {
    let ip = peer.ip();
    let mut counts = per_ip
        .counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let count = counts.entry(ip).or_insert(0);
    if *count >= max_per_ip {
        return None;
    }
    *count += 1;
    Some(Slot {
        _global: permit,
        per_ip: per_ip.clone(),
        ip,
    })
}

async fn serve_one<H: RequestHandler + 'static>(
    stream: TcpStream,
    info: ConnectionInfo,
    limits: ServerLimits,
    handler: Arc<H>,
    shutdown: CancellationToken,
    slot: Slot,
) {
    // Responses are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    connection::serve(stream, info, limits.connection, handler, shutdown).await;
    drop(slot);
}
