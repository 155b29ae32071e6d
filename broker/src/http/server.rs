//! A server for one read-only resource: `GET path` answers with a body rendered per request;
//! `POST` goes to optional [`Actions`] (the test fault endpoints); other paths are 404, other
//! methods 405, malformed requests 400. One request per connection
//! (`Connection: close`), a bounded request head read under a deadline, and a cap on concurrent
//! connections, so a slow or hostile client cannot hold the broker's memory or tasks.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// Largest request head read.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long, and how much, unread input is drained after the response before closing.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// Connections served at once; further ones wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 16;

/// What the resource returns.
pub trait Resource: Send + Sync + 'static {
    /// `Content-Type` of the body.
    fn content_type(&self) -> &'static str;
    /// The body, now.
    fn render(&self) -> String;
}

/// An answer: status and plain-text body.
pub type ActionReply = (u16, String);

/// Operations served with `POST`.
pub trait Actions: Send + Sync + 'static {
    /// Answers `POST path?query` if `path` is one of these actions; `None`: not found.
    fn post(&self, path: &str, query: &str) -> Option<BoxFuture<'static, ActionReply>>;
}

/// Serves `GET path` (and, with `actions`, `POST` to them) on `listener` until `shutdown`
/// fires.
pub async fn serve(
    listener: TcpListener,
    path: String,
    resource: Arc<dyn Resource>,
    actions: Option<Arc<dyn Actions>>,
    shutdown: CancellationToken,
) {
    let path: Arc<str> = path.into();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (path, resource, actions) = (path.clone(), resource.clone(), actions.clone());
        tracker.spawn(async move {
            if let Err(e) = answer(stream, &path, resource.as_ref(), actions.as_deref()).await {
                debug!(error = %e, "metrics request failed");
            }
            drop(permit);
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn answer(
    mut stream: TcpStream,
    path: &str,
    resource: &dyn Resource,
    actions: Option<&dyn Actions>,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return respond(&mut stream, 408, "text/plain", "request timeout\n", true).await,
    };
    let mut header_slots = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut header_slots);
    match request.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return respond(&mut stream, 400, "text/plain", "bad request\n", true).await,
    }
    let method = request.method.unwrap_or_default();
    let target = request.path.unwrap_or_default();
    let (target_path, query) = target.split_once('?').unwrap_or((target, ""));
    let with_body = method != "HEAD";
    if method == "POST"
        && let Some(reply) = actions.and_then(|a| a.post(target_path, query))
    {
        let (status, body) = reply.await;
        return respond(&mut stream, status, "text/plain", &body, true).await;
    }
    match method {
        "GET" | "HEAD" if target_path == path => {
            let body = resource.render();
            respond(&mut stream, 200, resource.content_type(), &body, with_body).await
        }
        "GET" | "HEAD" => respond(&mut stream, 404, "text/plain", "not found\n", with_body).await,
        "POST" if target_path != path => {
            respond(&mut stream, 404, "text/plain", "not found\n", true).await
        }
        _ => respond(&mut stream, 405, "text/plain", "method not allowed\n", true).await,
    }
}

/// The request head (through the blank line), `None` if the client left without sending one.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(buf));
        }
        if buf.len() > MAX_REQUEST_HEAD_BYTES {
            // Let the parser reject it as incomplete: answered with 400.
            return Ok(Some(buf));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok((!buf.is_empty()).then_some(buf));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
    with_body: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Request Timeout",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if with_body {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await?;
    // Closing with unread input would reset the connection and could destroy the response in
    // flight: read (and drop) what the client still sends, briefly and boundedly.
    let mut sink = [0u8; 4096];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER, async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpUrl, client};

    struct Fixed;

    struct Echo;

    impl Actions for Echo {
        fn post(&self, path: &str, query: &str) -> Option<BoxFuture<'static, ActionReply>> {
            let body = format!("{path} {query}");
            (path == "/echo").then(|| Box::pin(async move { (200u16, body) }) as _)
        }
    }

    impl Resource for Fixed {
        fn content_type(&self) -> &'static str {
            "text/plain; version=0.0.4"
        }
        fn render(&self) -> String {
            "answer 42\n".into()
        }
    }

    async fn start() -> (HttpUrl, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = HttpUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            "/metrics".into(),
            Arc::new(Fixed),
            Some(Arc::new(Echo)),
            shutdown.clone(),
        ));
        (url, shutdown, task)
    }

    #[tokio::test]
    async fn serves_the_path_and_refuses_the_rest() {
        let (url, shutdown, task) = start().await;
        let t = Duration::from_secs(10);
        let ok = client::request(&url, "GET", "/metrics?x=1", &[], t)
            .await
            .unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(ok.text().unwrap(), "answer 42");
        assert_eq!(ok.header("content-type"), Some("text/plain; version=0.0.4"));
        assert_eq!(
            client::request(&url, "GET", "/other", &[], t)
                .await
                .unwrap()
                .status,
            404
        );
        assert_eq!(
            client::request(&url, "POST", "/metrics", &[], t)
                .await
                .unwrap()
                .status,
            405
        );
        let echoed = client::request(&url, "POST", "/echo?a=1&b=2", &[], t)
            .await
            .unwrap();
        assert_eq!(echoed.status, 200);
        assert_eq!(echoed.text().unwrap(), "/echo a=1&b=2");
        assert_eq!(
            client::request(&url, "POST", "/nope", &[], t)
                .await
                .unwrap()
                .status,
            404
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn garbage_and_oversized_heads_get_400() {
        let (url, shutdown, task) = start().await;
        for raw in [
            b"\x16\x03\x01 not http\r\n\r\n".to_vec(),
            [b"GET /metrics HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 10_000]].concat(),
        ] {
            let mut s = TcpStream::connect(url.authority()).await.unwrap();
            s.write_all(&raw).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            assert!(
                out.starts_with(b"HTTP/1.1 400"),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
        shutdown.cancel();
        task.await.unwrap();
    }
}
