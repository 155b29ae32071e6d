//! One client connection: frames in, responses out, in request order.
//!
//! The reader splits frames, decodes each request and runs its handler up to the point where the
//! handler returns a [`Reply`]; a reply may be immediate or deferred (a produce waiting for its
//! commit, a fetch parked on `max_wait_ms`). Replies enter a bounded queue in request order and a
//! writer task sends them in that order, so handlers run their ordered part (the append) one
//! request at a time while waiting parts overlap. When `queued.max.requests` replies are pending
//! the reader stops reading: backpressure instead of unbounded memory.
//!
//! A frame over the size limit, an undecodable request, an unknown API key or an unsupported
//! version closes the connection with a log line, after the replies queued before it are sent.
//! acks=0 produce requests get no reply; if one fails, the connection closes (as in Kafka) so the
//! client notices.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use shoal_protocol::ResponseKind;
use shoal_protocol::api_versions;
use shoal_protocol::frame::FrameDecoder;
use shoal_protocol::kafka_protocol::messages::ApiKey;
use shoal_protocol::registry::ApiRegistry;
use shoal_protocol::request::{ParsedRequest, Request, parse_request};
use shoal_protocol::response::encode_response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// What a handler wants sent back.
pub enum Reply {
    /// This response, now.
    Respond(Box<ResponseKind>),
    /// This response, when the future completes (responses still leave in request order).
    Defer(BoxFuture<'static, ResponseKind>),
    /// No response (acks=0 produce).
    NoResponse,
    /// Close the connection after earlier responses are sent (acks=0 produce that failed).
    Close(String),
}

impl Reply {
    /// An immediate response.
    pub fn now(body: ResponseKind) -> Self {
        Reply::Respond(Box::new(body))
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Respond(_) => f.write_str("Respond"),
            Reply::Defer(_) => f.write_str("Defer"),
            Reply::NoResponse => f.write_str("NoResponse"),
            Reply::Close(reason) => write!(f, "Close({reason})"),
        }
    }
}

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Connection number, for log lines.
    pub id: u64,
    /// Client address.
    pub peer: SocketAddr,
    /// Listener the client connected to (Metadata answers with that listener's endpoints).
    pub listener: Arc<str>,
}

/// Serves decoded requests.
pub trait RequestHandler: Send + Sync {
    /// The implemented APIs and versions.
    fn registry(&self) -> &ApiRegistry;

    /// Runs the ordered part of `request` and says what to send back.
    fn handle<'a>(
        &'a self,
        connection: &'a ConnectionInfo,
        request: Request,
    ) -> BoxFuture<'a, Reply>;
}

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// `socket.request.max.bytes`.
    pub max_frame_bytes: usize,
    /// `queued.max.requests`: replies pending before reading pauses.
    pub max_queued_requests: usize,
    /// `connections.max.idle.ms`.
    pub idle_timeout: Duration,
}

enum Body {
    Ready(Box<ResponseKind>),
    Pending(BoxFuture<'static, ResponseKind>),
}

enum Outgoing {
    Response {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        body: Body,
    },
    Close(String),
}

/// Why the reader stopped.
enum Stop {
    PeerClosed,
    Shutdown,
    Close(String),
}

/// Serves one connection until the peer leaves, a fatal frame arrives, it idles out, or `shutdown`
/// fires.
pub async fn serve<S, H>(
    stream: S,
    info: ConnectionInfo,
    limits: ConnectionLimits,
    handler: Arc<H>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: RequestHandler + ?Sized + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(limits.max_queued_requests.max(1));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let writer_done = CancellationToken::new();
    // Fires when the peer is gone: replies still waiting (a parked fetch) are then abandoned.
    let peer_gone = CancellationToken::new();
    let writer_task = tokio::spawn(write_loop(
        writer,
        rx,
        info.clone(),
        in_flight.clone(),
        writer_done.clone(),
        peer_gone.clone(),
    ));

    let decoder = FrameDecoder::new(limits.max_frame_bytes);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let stop = 'read: loop {
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => break 'read Stop::Close(e.to_string()),
            };
            let outgoing = match parse_request(frame, handler.registry()) {
                Ok(ParsedRequest::Request(request)) => {
                    let (api_key, api_version, correlation_id) = (
                        request.api_key,
                        request.api_version,
                        request.header.correlation_id,
                    );
                    match handler.handle(&info, *request).await {
                        Reply::Respond(body) => Some(response(
                            api_key,
                            api_version,
                            correlation_id,
                            Body::Ready(body),
                        )),
                        Reply::Defer(future) => Some(response(
                            api_key,
                            api_version,
                            correlation_id,
                            Body::Pending(future),
                        )),
                        Reply::NoResponse => None,
                        Reply::Close(reason) => {
                            let _ = tx.send(Outgoing::Close(reason.clone())).await;
                            break 'read Stop::Close(reason);
                        }
                    }
                }
                Ok(ParsedRequest::UnsupportedApiVersions { header }) => {
                    debug!(
                        connection = info.id,
                        version = header.request_api_version,
                        "ApiVersions at an unsupported version: answering with the v0 fallback"
                    );
                    let body = ResponseKind::ApiVersions(
                        api_versions::unsupported_version_response(handler.registry()),
                    );
                    Some(response(
                        ApiKey::ApiVersions,
                        api_versions::FALLBACK_VERSION,
                        header.correlation_id,
                        Body::Ready(Box::new(body)),
                    ))
                }
                Err(e) => break 'read Stop::Close(e.to_string()),
            };
            if let Some(outgoing) = outgoing {
                in_flight.fetch_add(1, Ordering::SeqCst);
                if tx.send(outgoing).await.is_err() {
                    break 'read Stop::PeerClosed;
                }
            }
        }

        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8 * 1024);
        }
        tokio::select! {
            () = shutdown.cancelled() => break Stop::Shutdown,
            () = writer_done.cancelled() => break Stop::PeerClosed,
            read = tokio::time::timeout(limits.idle_timeout, reader.read_buf(&mut buf)) => match read {
                Err(_elapsed) => {
                    if in_flight.load(Ordering::SeqCst) == 0 {
                        break Stop::Close(format!("idle for {} ms (connections.max.idle.ms)", limits.idle_timeout.as_millis()));
                    }
                }
                Ok(Ok(0)) => {
                    if !buf.is_empty() {
                        warn!(connection = info.id, peer = %info.peer, bytes = buf.len(), "connection closed in the middle of a request frame");
                    }
                    break Stop::PeerClosed;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    debug!(connection = info.id, peer = %info.peer, error = %e, "read failed");
                    break Stop::PeerClosed;
                }
            },
        }
    };

    match &stop {
        Stop::Close(reason) => {
            warn!(connection = info.id, peer = %info.peer, listener = %info.listener, "closing connection: {reason}")
        }
        Stop::Shutdown => debug!(connection = info.id, "closing connection for shutdown"),
        Stop::PeerClosed => debug!(connection = info.id, "connection closed by peer"),
    }
    if matches!(stop, Stop::PeerClosed) {
        peer_gone.cancel();
    }
    // Dropping the sender lets the writer send what is queued and then stop.
    drop(tx);
    let _ = writer_task.await;
}

fn response(api_key: ApiKey, api_version: i16, correlation_id: i32, body: Body) -> Outgoing {
    Outgoing::Response {
        api_key,
        api_version,
        correlation_id,
        body,
    }
}

async fn write_loop<W: AsyncWrite + Unpin + Send>(
    writer: W,
    mut rx: mpsc::Receiver<Outgoing>,
    info: ConnectionInfo,
    in_flight: Arc<AtomicUsize>,
    done: CancellationToken,
    peer_gone: CancellationToken,
) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(outgoing) = rx.recv().await {
        let (api_key, api_version, correlation_id, body) = match outgoing {
            Outgoing::Response {
                api_key,
                api_version,
                correlation_id,
                body,
            } => (api_key, api_version, correlation_id, body),
            Outgoing::Close(reason) => {
                debug!(
                    connection = info.id,
                    "queued responses sent; closing: {reason}"
                );
                break;
            }
        };
        let body = match body {
            Body::Ready(body) => body,
            Body::Pending(future) => tokio::select! {
                body = future => Box::new(body),
                () = peer_gone.cancelled() => break,
            },
        };
        let frame = match encode_response(api_key, api_version, correlation_id, &body) {
            Ok(frame) => frame,
            Err(e) => {
                // A response the negotiated version cannot carry is a bug here, not the client's.
                tracing::error!(connection = info.id, "{e}; closing the connection");
                break;
            }
        };
        if writer.write_all(&frame).await.is_err() {
            break;
        }
        in_flight.fetch_sub(1, Ordering::SeqCst);
        if rx.is_empty() && writer.flush().await.is_err() {
            break;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
    debug!(connection = info.id, peer = %info.peer, "connection closed");
    done.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::RequestKind;
    use shoal_protocol::kafka_protocol::messages::{
        ApiVersionsRequest, MetadataRequest, MetadataResponse, RequestHeader,
    };
    use shoal_protocol::registry::ApiSupport;
    use shoal_protocol::request::encode_request;
    use shoal_protocol::response::decode_response;
    use tokio::io::DuplexStream;
    use tokio::sync::Notify;

    static APIS: [ApiSupport; 2] = [
        ApiSupport::new(ApiKey::ApiVersions, 0, 4),
        ApiSupport::new(ApiKey::Metadata, 1, 12),
    ];
    const REGISTRY: ApiRegistry = ApiRegistry::new(&APIS);

    /// Metadata with correlation id 1 is deferred until `release` is notified; correlation id 99
    /// gets no response; 98 closes the connection.
    struct TestHandler {
        release: Arc<Notify>,
    }

    impl RequestHandler for TestHandler {
        fn registry(&self) -> &ApiRegistry {
            &REGISTRY
        }

        fn handle<'a>(&'a self, _: &'a ConnectionInfo, request: Request) -> BoxFuture<'a, Reply> {
            let correlation = request.header.correlation_id;
            let release = self.release.clone();
            Box::pin(async move {
                match (correlation, request.body) {
                    (99, _) => Reply::NoResponse,
                    (98, _) => Reply::Close("test close".into()),
                    (97, _) => Reply::Defer(Box::pin(std::future::pending())),
                    (1, RequestKind::Metadata(_)) => Reply::Defer(Box::pin(async move {
                        release.notified().await;
                        ResponseKind::Metadata(
                            MetadataResponse::default().with_controller_id(1.into()),
                        )
                    })),
                    (_, RequestKind::Metadata(_)) => Reply::now(ResponseKind::Metadata(
                        MetadataResponse::default().with_controller_id(2.into()),
                    )),
                    (_, RequestKind::ApiVersions(req)) => Reply::now(ResponseKind::ApiVersions(
                        api_versions::api_versions_response(&REGISTRY, &req, 3),
                    )),
                    _ => Reply::Close("unexpected".into()),
                }
            })
        }
    }

    fn start(limits: ConnectionLimits) -> (DuplexStream, Arc<Notify>, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let release = Arc::new(Notify::new());
        let handler = Arc::new(TestHandler {
            release: release.clone(),
        });
        let info = ConnectionInfo {
            id: 1,
            peer: "127.0.0.1:1".parse().unwrap(),
            listener: "PLAINTEXT".into(),
        };
        let task = tokio::spawn(serve(
            server,
            info,
            limits,
            handler,
            CancellationToken::new(),
        ));
        (client, release, task)
    }

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_frame_bytes: 1024,
            max_queued_requests: 8,
            idle_timeout: Duration::from_secs(30),
        }
    }

    fn metadata_request(correlation_id: i32) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(correlation_id);
        encode_request(&header, &RequestKind::Metadata(MetadataRequest::default()))
            .unwrap()
            .to_vec()
    }

    async fn read_frame(client: &mut DuplexStream) -> Option<bytes::Bytes> {
        let mut len = [0u8; 4];
        client.read_exact(&mut len).await.ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        client.read_exact(&mut body).await.ok()?;
        Some(body.into())
    }

    fn controller_id(frame: bytes::Bytes) -> (i32, i32) {
        let (header, body) = decode_response(frame, ApiKey::Metadata, 12).unwrap();
        let ResponseKind::Metadata(body) = body else {
            panic!("not metadata")
        };
        (header.correlation_id, *body.controller_id)
    }

    #[tokio::test]
    async fn responses_leave_in_request_order_and_acks0_gets_none() {
        let (mut client, release, task) = start(limits());
        let mut wire = metadata_request(1);
        wire.extend(metadata_request(99));
        wire.extend(metadata_request(2));
        client.write_all(&wire).await.unwrap();
        // Request 2 is answered immediately but must wait behind the deferred request 1.
        tokio::task::yield_now().await;
        release.notify_one();
        assert_eq!(
            controller_id(read_frame(&mut client).await.unwrap()),
            (1, 1)
        );
        assert_eq!(
            controller_id(read_frame(&mut client).await.unwrap()),
            (2, 2)
        );
        drop(client);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn unknown_api_key_closes_after_earlier_responses() {
        let (mut client, _release, task) = start(limits());
        let mut wire = metadata_request(2);
        let mut bogus = metadata_request(3);
        bogus[4..6].copy_from_slice(&(-7i16).to_be_bytes());
        wire.extend(bogus);
        client.write_all(&wire).await.unwrap();
        assert_eq!(
            controller_id(read_frame(&mut client).await.unwrap()),
            (2, 2)
        );
        assert!(
            read_frame(&mut client).await.is_none(),
            "connection must close"
        );
        task.await.unwrap();
    }

    #[tokio::test]
    async fn oversized_and_unsupported_frames_close_the_connection() {
        let (mut client, _release, task) = start(limits());
        client.write_all(&5000i32.to_be_bytes()).await.unwrap();
        assert!(read_frame(&mut client).await.is_none());
        task.await.unwrap();

        let (mut client, _release, task) = start(limits());
        let mut old = metadata_request(4);
        old[6..8].copy_from_slice(&0i16.to_be_bytes()); // Metadata v0 is not implemented
        client.write_all(&old).await.unwrap();
        assert!(read_frame(&mut client).await.is_none());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn api_versions_fallback_and_close_reply() {
        let (mut client, _release, task) = start(limits());
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(4)
            .with_correlation_id(5);
        let mut wire = encode_request(
            &header,
            &RequestKind::ApiVersions(ApiVersionsRequest::default()),
        )
        .unwrap()
        .to_vec();
        wire[6..8].copy_from_slice(&77i16.to_be_bytes());
        wire.extend(metadata_request(98));
        client.write_all(&wire).await.unwrap();
        let (header, body) = decode_response(
            read_frame(&mut client).await.unwrap(),
            ApiKey::ApiVersions,
            0,
        )
        .unwrap();
        assert_eq!(header.correlation_id, 5);
        let ResponseKind::ApiVersions(body) = body else {
            panic!("not ApiVersions")
        };
        assert_eq!(body.error_code, 35);
        assert_eq!(body.api_keys.len(), 1);
        assert!(read_frame(&mut client).await.is_none());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_departed_peer_abandons_parked_replies() {
        let (mut client, _release, task) = start(limits());
        client.write_all(&metadata_request(97)).await.unwrap();
        tokio::task::yield_now().await;
        drop(client);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the connection task must end when the peer leaves")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_are_closed() {
        let (mut client, _release, task) = start(ConnectionLimits {
            idle_timeout: Duration::from_millis(500),
            ..limits()
        });
        assert!(read_frame(&mut client).await.is_none());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn truncated_frame_then_eof_ends_quietly() {
        let (mut client, _release, task) = start(limits());
        let wire = metadata_request(2);
        client.write_all(&wire[..wire.len() - 3]).await.unwrap();
        client.shutdown().await.unwrap();
        assert!(read_frame(&mut client).await.is_none());
        task.await.unwrap();
    }
}
