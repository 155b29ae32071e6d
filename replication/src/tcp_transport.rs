//! The inter-broker TCP transport: one connection per node pair carries the requests and
//! responses of every Raft group, in both directions.
//!
//! Frames (big-endian): `length u32 | type u8 | correlation u64 | payload`, where `length`
//! counts everything after itself and is bounded by `max_frame_bytes`. Types: Hello (0) and
//! HelloAck (1) open a connection (payload: magic `SHRL`, version u16, sender node id u64,
//! intended receiver node id u64; the receiver refuses a hello meant for another node, e.g.
//! a stale address), Request (2) and Response (3) carry an [`RpcMessage`] each, matched by
//! correlation id.
//!
//! Either node may dial. When both did, each side keeps the connection dialed by the lower
//! node id and closes the other, so they converge on one. A writer task drains the bounded
//! send queue and writes every queued frame with vectored IO (record bytes are written from
//! their own buffers, many frames per system call); a reader task decodes frames (slicing,
//! not copying, the received buffer), completes waiting requests and runs received requests
//! concurrently, at most `max_inflight_requests` per connection (beyond that it stops
//! reading: TCP backpressure). A dial that fails makes the next attempt wait, doubling from
//! `reconnect_backoff_min_ms` to `reconnect_backoff_max_ms`; meanwhile requests to that node
//! fail at once as unreachable and openraft backs off on its own.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::error::ConfigError;
use crate::transport::{RpcHandler, Transport, TransportError};
use crate::types::NodeId;
use crate::wire::{RemoteFailure, RpcKind, RpcMessage};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const MAGIC: &[u8; 4] = b"SHRL";
const VERSION: u16 = 0;
const FRAME_HELLO: u8 = 0;
const FRAME_HELLO_ACK: u8 = 1;
const FRAME_REQUEST: u8 = 2;
const FRAME_RESPONSE: u8 = 3;
/// `type u8 | correlation u64` after the length.
const FRAME_HEADER: usize = 9;
/// Frames written per system call at most.
const MAX_FRAMES_PER_WRITE: usize = 256;
/// Bytes gathered per system call before writing.
const MAX_BYTES_PER_WRITE: usize = 1 << 20;
/// iovecs per `writev` (below Linux's IOV_MAX of 1024).
const MAX_IOVECS: usize = 512;

/// Settings of the TCP transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TcpTransportConfig {
    /// Largest frame sent or accepted. Default 64 MiB; at least
    /// `ReplicationConfig::largest_frame_bytes` (see [`TcpTransportConfig::validate_for`]).
    pub max_frame_bytes: u64,
    /// Frames queued per connection before senders wait. Default 8192.
    pub send_queue_frames: usize,
    /// Received requests processed concurrently per connection. Default 4096.
    pub max_inflight_requests: usize,
    /// Connections accepted at most. Default 1024.
    pub max_connections: usize,
    /// Time to connect and exchange hellos. Default 3000 ms.
    pub connect_timeout_ms: u64,
    /// First wait after a failed dial; doubles up to the maximum. Defaults 50 ms and 5000 ms.
    pub reconnect_backoff_min_ms: u64,
    pub reconnect_backoff_max_ms: u64,
}

impl Default for TcpTransportConfig {
    fn default() -> Self {
        TcpTransportConfig {
            max_frame_bytes: 64 << 20,
            send_queue_frames: 8192,
            max_inflight_requests: 4096,
            max_connections: 1024,
            connect_timeout_ms: 3000,
            reconnect_backoff_min_ms: 50,
            reconnect_backoff_max_ms: 5000,
        }
    }
}

impl TcpTransportConfig {
    /// [`Self::validate`], and a frame limit that fits what `replication` sends.
    pub fn validate_for(&self, replication: &crate::ReplicationConfig) -> Result<(), ConfigError> {
        self.validate()?;
        let needed = replication.largest_frame_bytes();
        if self.max_frame_bytes < needed {
            return Err(ConfigError(format!(
                "max_frame_bytes ({}) is below the largest replication frame ({needed}): raise it or lower max_entry_bytes / max_append_bytes",
                self.max_frame_bytes
            )));
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > u32::MAX as u64 {
            return err(format!(
                "max_frame_bytes must be in [1024, {}], got {}",
                u32::MAX,
                self.max_frame_bytes
            ));
        }
        if self.send_queue_frames == 0
            || self.max_inflight_requests == 0
            || self.max_connections == 0
        {
            return err(
                "send_queue_frames, max_inflight_requests and max_connections must be >= 1".into(),
            );
        }
        if self.connect_timeout_ms == 0
            || self.reconnect_backoff_min_ms == 0
            || self.reconnect_backoff_min_ms > self.reconnect_backoff_max_ms
        {
            return err(
                "connect_timeout_ms >= 1 and 1 <= reconnect_backoff_min_ms <= reconnect_backoff_max_ms required"
                    .into(),
            );
        }
        Ok(())
    }
}

enum Outgoing {
    Request { corr: u64, message: RpcMessage },
    Response { corr: u64, message: RpcMessage },
}

type Pending = HashMap<u64, oneshot::Sender<Result<RpcMessage, TransportError>>>;

/// One established connection.
struct Connection {
    peer: NodeId,
    /// Who dialed (the tie-break keeps the one dialed by the lower id).
    dialed_by: NodeId,
    out: mpsc::Sender<Outgoing>,
    pending: Mutex<Pending>,
    next_corr: AtomicU64,
    closed: AtomicBool,
    close_tx: watch::Sender<bool>,
}

impl Connection {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
    }

    /// Closes the connection; every waiting request fails.
    fn close(&self, reason: &str) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.close_tx.send(true);
        let pending: Vec<_> = lock(&self.pending).drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Err(TransportError::ConnectionLost {
                node: self.peer,
                reason: reason.to_string(),
            }));
        }
        tracing::debug!(peer = self.peer, %reason, "connection closed");
    }
}

#[derive(Default)]
struct PeerSlot {
    addr: Option<SocketAddr>,
    conn: Option<Arc<Connection>>,
    /// No dial before this instant (after a failure).
    retry_at: Option<Instant>,
    backoff_ms: u64,
    dialing: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// Counters of a transport since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    pub frames_sent: u64,
    pub frames_received: u64,
    pub bytes_sent: u64,
    /// `writev` calls: `frames_sent / writes` is how many frames each call coalesced.
    pub writes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_sent: AtomicU64,
    writes: AtomicU64,
}

struct Inner {
    node: NodeId,
    counters: Arc<Counters>,
    config: TcpTransportConfig,
    local_addr: SocketAddr,
    peers: Mutex<HashMap<NodeId, PeerSlot>>,
    handler: RwLock<Option<Weak<dyn RpcHandler>>>,
    connections: AtomicUsize,
    /// Accepted connections still exchanging hellos.
    handshaking: AtomicUsize,
    shutdown: watch::Sender<bool>,
}

/// See the module documentation.
pub struct TcpTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("node", &self.inner.node)
            .field("local_addr", &self.inner.local_addr)
            .finish()
    }
}

impl TcpTransport {
    /// Listens on `addr` (port 0 picks a free port) for node `node`.
    pub async fn bind(
        node: NodeId,
        addr: SocketAddr,
        config: TcpTransportConfig,
    ) -> Result<Arc<TcpTransport>, crate::ReplicationError> {
        config.validate()?;
        let listener =
            TcpListener::bind(addr)
                .await
                .map_err(|source| crate::ReplicationError::Io {
                    what: format!("listen on {addr}"),
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| crate::ReplicationError::Io {
                what: "listener address".into(),
                source,
            })?;
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            node,
            config,
            local_addr,
            peers: Mutex::new(HashMap::new()),
            handler: RwLock::new(None),
            counters: Arc::new(Counters::default()),
            connections: AtomicUsize::new(0),
            handshaking: AtomicUsize::new(0),
            shutdown,
        });
        tokio::spawn(accept_loop(Arc::clone(&inner), listener));
        Ok(Arc::new(TcpTransport { inner }))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Sets (or changes) the address of another node.
    pub fn set_peer(&self, node: NodeId, addr: SocketAddr) {
        let mut peers = lock(&self.inner.peers);
        let slot = peers.entry(node).or_default();
        if slot.addr != Some(addr) {
            slot.addr = Some(addr);
            slot.retry_at = None;
            slot.backoff_ms = 0;
        }
    }

    pub fn stats(&self) -> TransportStats {
        let c = &self.inner.counters;
        TransportStats {
            frames_sent: c.frames_sent.load(Ordering::Relaxed),
            frames_received: c.frames_received.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
        }
    }

    /// Nodes with an open connection.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = lock(&self.inner.peers)
            .iter()
            .filter(|(_, s)| s.conn.as_ref().is_some_and(|c| c.is_open()))
            .map(|(n, _)| *n)
            .collect();
        v.sort_unstable();
        v
    }

    /// Forgets a node and closes its connection.
    pub fn remove_peer(&self, node: NodeId) {
        if let Some(slot) = lock(&self.inner.peers).remove(&node)
            && let Some(c) = slot.conn
        {
            c.close("peer removed");
        }
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let conns: Vec<Arc<Connection>> = lock(&self.inner.peers)
            .values_mut()
            .filter_map(|s| s.conn.take())
            .collect();
        for c in conns {
            c.close("transport shut down");
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Transport for TcpTransport {
    fn send(
        &self,
        target: NodeId,
        request: RpcMessage,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<RpcMessage, TransportError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let size = FRAME_HEADER + request.len();
            if size as u64 > inner.config.max_frame_bytes {
                return Err(TransportError::TooLarge {
                    size,
                    max: inner.config.max_frame_bytes as usize,
                });
            }
            let deadline = tokio::time::Instant::now() + timeout;
            let conn = tokio::time::timeout_at(deadline, connection(&inner, target))
                .await
                .map_err(|_| TransportError::Timeout {
                    node: target,
                    timeout,
                })??;
            let corr = conn.next_corr.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            lock(&conn.pending).insert(corr, tx);
            let sent = tokio::time::timeout_at(
                deadline,
                conn.out.send(Outgoing::Request {
                    corr,
                    message: request,
                }),
            )
            .await;
            let result = match sent {
                Err(_) => Err(TransportError::QueueFull(target)),
                Ok(Err(_)) => Err(TransportError::ConnectionLost {
                    node: target,
                    reason: "writer stopped".into(),
                }),
                Ok(Ok(())) => match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => Err(TransportError::ConnectionLost {
                        node: target,
                        reason: "connection closed".into(),
                    }),
                    Err(_) => Err(TransportError::Timeout {
                        node: target,
                        timeout,
                    }),
                },
            };
            if result.is_err() {
                lock(&conn.pending).remove(&corr);
            }
            result
        })
    }

    fn attach(&self, handler: Weak<dyn RpcHandler>) {
        *self
            .inner
            .handler
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }
}

/// The open connection to `target`, dialing if there is none (one dial per peer at a time).
async fn connection(inner: &Arc<Inner>, target: NodeId) -> Result<Arc<Connection>, TransportError> {
    let dial_lock = {
        let mut peers = lock(&inner.peers);
        let slot = peers.entry(target).or_default();
        if let Some(c) = &slot.conn
            && c.is_open()
        {
            return Ok(Arc::clone(c));
        }
        Arc::clone(slot.dialing.get_or_insert_with(Default::default))
    };
    let _dialing = dial_lock.lock().await;
    let addr = {
        let mut peers = lock(&inner.peers);
        let slot = peers.entry(target).or_default();
        if let Some(c) = &slot.conn
            && c.is_open()
        {
            return Ok(Arc::clone(c));
        }
        if *inner.shutdown.borrow() {
            return Err(TransportError::Closed);
        }
        if let Some(at) = slot.retry_at
            && Instant::now() < at
        {
            return Err(TransportError::Unreachable {
                node: target,
                reason: "waiting to reconnect".into(),
            });
        }
        slot.addr.ok_or_else(|| TransportError::Unreachable {
            node: target,
            reason: "no known address".into(),
        })?
    };
    match dial(inner, target, addr).await {
        Ok(conn) => {
            let mut peers = lock(&inner.peers);
            let slot = peers.entry(target).or_default();
            slot.retry_at = None;
            slot.backoff_ms = 0;
            Ok(install(slot, conn, inner.node))
        }
        Err(e) => {
            let mut peers = lock(&inner.peers);
            let slot = peers.entry(target).or_default();
            let c = &inner.config;
            slot.backoff_ms = if slot.backoff_ms == 0 {
                c.reconnect_backoff_min_ms
            } else {
                (slot.backoff_ms * 2).min(c.reconnect_backoff_max_ms)
            };
            slot.retry_at = Some(Instant::now() + Duration::from_millis(slot.backoff_ms));
            tracing::debug!(node = inner.node, target, %addr, error = %e, backoff_ms = slot.backoff_ms, "dial failed");
            Err(TransportError::Unreachable {
                node: target,
                reason: e.to_string(),
            })
        }
    }
}

/// Puts `new` in the slot unless an open connection dialed by a lower node id is there;
/// returns the connection kept.
fn install(slot: &mut PeerSlot, new: Arc<Connection>, me: NodeId) -> Arc<Connection> {
    if let Some(old) = &slot.conn
        && old.is_open()
    {
        let keep_old = old.dialed_by < new.dialed_by
            || (old.dialed_by == new.dialed_by && old.dialed_by == me);
        if keep_old {
            new.close("duplicate connection");
            return Arc::clone(old);
        }
        old.close("replaced by a connection dialed by the lower node id");
    }
    slot.conn = Some(Arc::clone(&new));
    new
}

fn hello(kind: u8, from: NodeId, to: NodeId) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + FRAME_HEADER + 22);
    b.put_u32((FRAME_HEADER + 22) as u32);
    b.put_u8(kind);
    b.put_u64(0);
    b.put_slice(MAGIC);
    b.put_u16(VERSION);
    b.put_u64(from);
    b.put_u64(to);
    b.freeze()
}

/// Parses a hello payload: (sender, intended receiver).
fn parse_hello(payload: &[u8]) -> io::Result<(NodeId, NodeId)> {
    if payload.len() != 22 || &payload[..4] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a Shoal raft hello",
        ));
    }
    let version = u16::from_be_bytes([payload[4], payload[5]]);
    if version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unsupported transport version {version}"),
        ));
    }
    let from = u64::from_be_bytes(payload[6..14].try_into().unwrap_or_default());
    let to = u64::from_be_bytes(payload[14..22].try_into().unwrap_or_default());
    Ok((from, to))
}

async fn dial(inner: &Arc<Inner>, target: NodeId, addr: SocketAddr) -> io::Result<Arc<Connection>> {
    let timeout = Duration::from_millis(inner.config.connect_timeout_ms);
    let fut = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::with_capacity(64 * 1024, r);
        w.write_all(&hello(FRAME_HELLO, inner.node, target)).await?;
        let (kind, _, payload) = read_frame(&mut r, inner.config.max_frame_bytes).await?;
        if kind != FRAME_HELLO_ACK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "expected a hello ack",
            ));
        }
        let (from, to) = parse_hello(&payload)?;
        if from != target || to != inner.node {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{addr} is node {from}, not node {target}"),
            ));
        }
        Ok((r, w))
    };
    let (r, w) = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    Ok(start_connection(inner, target, inner.node, r, w))
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let open =
            inner.connections.load(Ordering::SeqCst) + inner.handshaking.load(Ordering::SeqCst);
        if open >= inner.config.max_connections {
            tracing::warn!(%remote, "connection limit reached; refusing");
            continue;
        }
        inner.handshaking.fetch_add(1, Ordering::SeqCst);
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let r = accept_one(&inner, stream).await;
            inner.handshaking.fetch_sub(1, Ordering::SeqCst);
            if let Err(e) = r {
                tracing::warn!(%remote, error = %e, "inbound connection refused");
            }
        });
    }
}

async fn accept_one(inner: &Arc<Inner>, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let timeout = Duration::from_millis(inner.config.connect_timeout_ms);
    let (kind, _, payload) =
        tokio::time::timeout(timeout, read_frame(&mut r, inner.config.max_frame_bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no hello"))??;
    if kind != FRAME_HELLO {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected a hello",
        ));
    }
    let (from, to) = parse_hello(&payload)?;
    if to != inner.node {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("hello for node {to} reached node {}", inner.node),
        ));
    }
    w.write_all(&hello(FRAME_HELLO_ACK, inner.node, from))
        .await?;
    let conn = start_connection(inner, from, from, r, w);
    let mut peers = lock(&inner.peers);
    install(peers.entry(from).or_default(), conn, inner.node);
    Ok(())
}

fn start_connection(
    inner: &Arc<Inner>,
    peer: NodeId,
    dialed_by: NodeId,
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
) -> Arc<Connection> {
    let (out, out_rx) = mpsc::channel(inner.config.send_queue_frames);
    let (close_tx, close_rx) = watch::channel(false);
    let conn = Arc::new(Connection {
        peer,
        dialed_by,
        out,
        pending: Mutex::new(HashMap::new()),
        next_corr: AtomicU64::new(1),
        closed: AtomicBool::new(false),
        close_tx,
    });
    inner.connections.fetch_add(1, Ordering::SeqCst);
    let c = Arc::clone(&conn);
    let mut closed = close_rx.clone();
    let counters = Arc::clone(&inner.counters);
    tokio::spawn(async move {
        let r = tokio::select! {
            r = write_loop(w, out_rx, &counters) => r,
            _ = closed.wait_for(|c| *c) => Ok(()),
        };
        if let Err(e) = r {
            c.close(&format!("write failed: {e}"));
        }
    });
    let c = Arc::clone(&conn);
    let inner2 = Arc::clone(inner);
    let mut closed = close_rx;
    tokio::spawn(async move {
        let r = tokio::select! {
            r = read_loop(&inner2, &c, r) => r,
            _ = closed.wait_for(|c| *c) => Ok(()),
        };
        match r {
            Ok(()) => c.close("closed"),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(peer = c.peer, error = %e, "malformed frame; closing the connection");
                c.close(&format!("malformed frame: {e}"));
            }
            Err(e) => c.close(&format!("read failed: {e}")),
        }
        inner2.connections.fetch_sub(1, Ordering::SeqCst);
    });
    conn
}

/// Reads one frame: (type, correlation, payload).
async fn read_frame(
    r: &mut BufReader<OwnedReadHalf>,
    max_frame: u64,
) -> io::Result<(u8, u64, Bytes)> {
    let len = r.read_u32().await? as u64;
    if len < FRAME_HEADER as u64 || len > max_frame {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes (limit {max_frame})"),
        ));
    }
    let kind = r.read_u8().await?;
    let corr = r.read_u64().await?;
    let body_len = len as usize - FRAME_HEADER;
    let mut body = BytesMut::with_capacity(body_len);
    while body.len() < body_len {
        let want = body_len - body.len();
        let n = r.read_buf(&mut (&mut body).limit(want)).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-frame",
            ));
        }
    }
    Ok((kind, corr, body.freeze()))
}

async fn read_loop(
    inner: &Arc<Inner>,
    conn: &Arc<Connection>,
    mut r: BufReader<OwnedReadHalf>,
) -> io::Result<()> {
    let inflight = Arc::new(Semaphore::new(inner.config.max_inflight_requests));
    loop {
        let (kind, corr, payload) = match read_frame(&mut r, inner.config.max_frame_bytes).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        inner
            .counters
            .frames_received
            .fetch_add(1, Ordering::Relaxed);
        match kind {
            FRAME_RESPONSE => {
                let waiter = lock(&conn.pending).remove(&corr);
                let message = RpcMessage::decode(payload).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("bad response: {e}"))
                })?;
                if let Some(tx) = waiter {
                    let _ = tx.send(Ok(message));
                }
            }
            FRAME_REQUEST => {
                let message = RpcMessage::decode(payload).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("bad request: {e}"))
                })?;
                let permit = Arc::clone(&inflight)
                    .acquire_owned()
                    .await
                    .map_err(|_| io::Error::other("request limiter closed"))?;
                let handler = inner
                    .handler
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .and_then(Weak::upgrade);
                let out = conn.out.clone();
                let from = conn.peer;
                tokio::spawn(async move {
                    let response = match handler {
                        Some(h) => h.handle(from, message).await,
                        None => {
                            let kind = message.kind().unwrap_or(RpcKind::Vote);
                            RpcMessage::error(
                                message.group,
                                kind,
                                &RemoteFailure::GroupStopped("node is starting".into()),
                            )
                        }
                    };
                    // The peer may be gone; its request then times out on its side.
                    let _ = out
                        .send(Outgoing::Response {
                            corr,
                            message: response,
                        })
                        .await;
                    drop(permit);
                });
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected frame type {other}"),
                ));
            }
        }
    }
}

async fn write_loop(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    counters: &Counters,
) -> io::Result<()> {
    let mut parts: Vec<Bytes> = Vec::with_capacity(64);
    while let Some(first) = rx.recv().await {
        parts.clear();
        let mut bytes = push_frame(&mut parts, first);
        let mut frames = 1;
        while frames < MAX_FRAMES_PER_WRITE && bytes < MAX_BYTES_PER_WRITE {
            match rx.try_recv() {
                Ok(next) => {
                    bytes += push_frame(&mut parts, next);
                    frames += 1;
                }
                Err(_) => break,
            }
        }
        let writes = write_all_vectored(&mut w, &mut parts).await?;
        counters
            .frames_sent
            .fetch_add(frames as u64, Ordering::Relaxed);
        counters
            .bytes_sent
            .fetch_add(bytes as u64, Ordering::Relaxed);
        counters.writes.fetch_add(writes, Ordering::Relaxed);
    }
    w.shutdown().await
}

/// Appends one frame's parts; returns its size.
fn push_frame(parts: &mut Vec<Bytes>, item: Outgoing) -> usize {
    let (kind, corr, message) = match item {
        Outgoing::Request { corr, message } => (FRAME_REQUEST, corr, message),
        Outgoing::Response { corr, message } => (FRAME_RESPONSE, corr, message),
    };
    let len = FRAME_HEADER + message.len();
    let mut header = BytesMut::with_capacity(4 + FRAME_HEADER);
    header.put_u32(len as u32);
    header.put_u8(kind);
    header.put_u64(corr);
    parts.push(header.freeze());
    parts.extend(message.wire_parts().filter(|p| !p.is_empty()));
    4 + len
}

/// Writes every part; returns the number of `writev` calls.
async fn write_all_vectored(w: &mut OwnedWriteHalf, parts: &mut [Bytes]) -> io::Result<u64> {
    let mut i = 0;
    let mut calls = 0;
    while i < parts.len() {
        let slices: Vec<IoSlice<'_>> = parts[i..]
            .iter()
            .take(MAX_IOVECS)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut n = w.write_vectored(&slices).await?;
        calls += 1;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed"));
        }
        while n > 0 && i < parts.len() {
            let len = parts[i].len();
            if n >= len {
                n -= len;
                i += 1;
            } else {
                parts[i].advance(n);
                n = 0;
            }
        }
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::GroupId;
    use crate::wire::encode_vote_request;

    struct Echo;

    impl RpcHandler for Echo {
        fn handle(&self, _from: NodeId, request: RpcMessage) -> BoxFuture<'static, RpcMessage> {
            Box::pin(async move { request })
        }
    }

    fn vote_message() -> RpcMessage {
        let req = openraft::raft::VoteRequest::<crate::types::C>::new(
            crate::types::Vote::new(3, 1),
            Some(crate::types::log_id(2, 5)),
        );
        encode_vote_request(GroupId::Controller, RpcKind::Vote, &req)
    }

    async fn pair() -> (Arc<TcpTransport>, Arc<TcpTransport>, Arc<Echo>, Arc<Echo>) {
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let a = TcpTransport::bind(1, local, TcpTransportConfig::default())
            .await
            .unwrap();
        let b = TcpTransport::bind(2, local, TcpTransportConfig::default())
            .await
            .unwrap();
        a.set_peer(2, b.local_addr());
        b.set_peer(1, a.local_addr());
        let (ea, eb) = (Arc::new(Echo), Arc::new(Echo));
        a.attach(Arc::downgrade(&ea) as Weak<dyn RpcHandler>);
        b.attach(Arc::downgrade(&eb) as Weak<dyn RpcHandler>);
        (a, b, ea, eb)
    }

    fn connection_count(t: &TcpTransport) -> usize {
        lock(&t.inner.peers)
            .values()
            .filter(|s| s.conn.as_ref().is_some_and(|c| c.is_open()))
            .count()
    }

    #[tokio::test]
    async fn requests_flow_both_ways_over_one_connection() {
        let (a, b, _ea, _eb) = pair().await;
        let t = Duration::from_secs(5);
        let m = vote_message();
        let r = a.send(2, m.clone(), t).await.unwrap();
        assert_eq!(r.len(), m.len());
        let r = b.send(1, m.clone(), t).await.unwrap();
        assert_eq!(r.len(), m.len());
        // Concurrent requests share the connection.
        let all = futures::future::join_all((0..200).map(|_| a.send(2, vote_message(), t))).await;
        assert!(all.iter().all(|r| r.is_ok()));
        assert_eq!(connection_count(&a), 1);
        assert_eq!(connection_count(&b), 1);
    }

    #[tokio::test]
    async fn simultaneous_dials_converge_on_one_connection() {
        let (a, b, _ea, _eb) = pair().await;
        let t = Duration::from_secs(5);
        let (ra, rb) = tokio::join!(a.send(2, vote_message(), t), b.send(1, vote_message(), t));
        // A request on the connection that lost the tie-break may fail; a retry succeeds.
        if ra.is_err() {
            a.send(2, vote_message(), t).await.unwrap();
        }
        if rb.is_err() {
            b.send(1, vote_message(), t).await.unwrap();
        }
        let deadline = Instant::now() + t;
        loop {
            let kept_a = lock(&a.inner.peers).get(&2).and_then(|s| s.conn.clone());
            let kept_b = lock(&b.inner.peers).get(&1).and_then(|s| s.conn.clone());
            if let (Some(x), Some(y)) = (kept_a, kept_b)
                && x.is_open()
                && y.is_open()
                && x.dialed_by == 1
                && y.dialed_by == 1
            {
                break;
            }
            assert!(Instant::now() < deadline, "no convergence");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn an_unknown_or_dead_peer_is_unreachable_and_retried_after_backoff() {
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let a = TcpTransport::bind(1, local, TcpTransportConfig::default())
            .await
            .unwrap();
        let t = Duration::from_secs(2);
        assert!(matches!(
            a.send(9, vote_message(), t).await,
            Err(TransportError::Unreachable { .. })
        ));
        // A port nobody listens on.
        let dead = TcpListener::bind(local).await.unwrap();
        let addr = dead.local_addr().unwrap();
        drop(dead);
        a.set_peer(3, addr);
        assert!(matches!(
            a.send(3, vote_message(), t).await,
            Err(TransportError::Unreachable { .. })
        ));
        // Within the backoff the next attempt fails at once without dialing.
        let e = a.send(3, vote_message(), t).await.unwrap_err();
        assert!(e.to_string().contains("waiting to reconnect"), "{e}");
        // Once the node listens there, a request after the backoff gets through.
        let b = TcpTransport::bind(3, addr, TcpTransportConfig::default())
            .await
            .unwrap();
        let eb = Arc::new(Echo);
        b.attach(Arc::downgrade(&eb) as Weak<dyn RpcHandler>);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match a.send(3, vote_message(), t).await {
                Ok(_) => break,
                Err(e) => assert!(Instant::now() < deadline, "{e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_wrong_node_at_an_address_is_refused() {
        let (a, b, _ea, _eb) = pair().await;
        // Node 1 believes node 5 lives where node 2 does.
        a.set_peer(5, b.local_addr());
        let e = a
            .send(5, vote_message(), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, TransportError::Unreachable { .. }), "{e}");
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_by_sender_and_receiver() {
        let (a, _b, _ea, _eb) = pair().await;
        let cfg = TcpTransportConfig {
            max_frame_bytes: 1024,
            ..TcpTransportConfig::default()
        };
        let small = TcpTransport::bind(7, "127.0.0.1:0".parse().unwrap(), cfg)
            .await
            .unwrap();
        small.set_peer(2, a.local_addr());
        let big = crate::wire::encode_snapshot_request(
            GroupId::Controller,
            &crate::types::Vote::new(1, 1),
            &crate::types::Snapshot {
                meta: Default::default(),
                snapshot: crate::types::SnapshotData {
                    next_offset: 0,
                    app_state: Bytes::from(vec![0u8; 4096]),
                },
            },
        );
        assert!(matches!(
            small.send(2, big, Duration::from_secs(2)).await,
            Err(TransportError::TooLarge { .. })
        ));
        // A raw client announcing a frame beyond the receiver's limit is disconnected.
        let mut s = TcpStream::connect(small.local_addr()).await.unwrap();
        s.write_all(&hello(FRAME_HELLO, 2, 7)).await.unwrap();
        let mut ack = [0u8; 35];
        s.read_exact(&mut ack).await.unwrap();
        s.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "connection should be closed");
    }

    #[test]
    fn config_validation() {
        TcpTransportConfig::default().validate().unwrap();
        TcpTransportConfig::default()
            .validate_for(&crate::ReplicationConfig::default())
            .unwrap();
        assert!(
            TcpTransportConfig {
                max_frame_bytes: 1 << 20,
                ..TcpTransportConfig::default()
            }
            .validate_for(&crate::ReplicationConfig::default())
            .is_err()
        );
        assert!(
            TcpTransportConfig {
                max_frame_bytes: 10,
                ..TcpTransportConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            TcpTransportConfig {
                reconnect_backoff_min_ms: 10,
                reconnect_backoff_max_ms: 5,
                ..TcpTransportConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}
