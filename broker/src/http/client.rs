//! One HTTP/1.1 request per connection, with a deadline over the whole exchange (connect, send,
//! receive) and a bound on the response size.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::HttpUrl;

/// Largest response accepted (instance-metadata answers are a few hundred bytes).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No complete response within the deadline.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Connecting, sending or receiving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The response is not valid HTTP/1.x, or is larger than [`MAX_RESPONSE_BYTES`].
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// A received response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower-cased) and values.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as trimmed UTF-8 text.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body)
            .map(str::trim)
            .map_err(|_| HttpError::Malformed("the body is not UTF-8".into()))
    }
}

/// Sends `method path` (path may hold a query) to `server` with `headers` and an empty body.
pub async fn request(
    server: &HttpUrl,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    tokio::time::timeout(timeout, exchange(server, method, path, headers))
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
}

async fn exchange(
    server: &HttpUrl,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, HttpError> {
    let mut stream = TcpStream::connect((server.host.as_str(), server.port)).await?;
    let _ = stream.set_nodelay(true);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: */*\r\n",
        server.authority()
    );
    if method != "GET" {
        head.push_str("Content-Length: 0\r\n");
    }
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;

    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(response) = parse_response(&buf, false)? {
            return Ok(response);
        }
        if buf.len() >= MAX_RESPONSE_BYTES {
            return Err(HttpError::Malformed(format!(
                "larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return parse_response(&buf, true)?
                .ok_or_else(|| HttpError::Malformed("connection closed mid-response".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A complete response in `buf`, `None` if more bytes are needed. At `eof`, a response without
/// a length ends with the data.
fn parse_response(buf: &[u8], eof: bool) -> Result<Option<HttpResponse>, HttpError> {
    let mut header_slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut header_slots);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let status = parsed.code.unwrap_or(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let rest = &buf[head_len..];
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        match dechunk(rest)? {
            Some(body) => body,
            None if eof => return Err(HttpError::Malformed("truncated chunked body".into())),
            None => return Ok(None),
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| HttpError::Malformed(format!("Content-Length {length}")))?;
        if length > MAX_RESPONSE_BYTES {
            return Err(HttpError::Malformed(format!(
                "Content-Length {length} exceeds {MAX_RESPONSE_BYTES}"
            )));
        }
        if rest.len() < length {
            if eof {
                return Err(HttpError::Malformed(
                    "body shorter than Content-Length".into(),
                ));
            }
            return Ok(None);
        }
        rest[..length].to_vec()
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if eof {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(HttpResponse {
        status,
        headers,
        body,
    }))
}

/// Decodes a chunked body; `None` until the last chunk has arrived.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..line_end])
            .map_err(|_| HttpError::Malformed("chunk size is not text".into()))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size '{size_text}'")))?;
        if size > MAX_RESPONSE_BYTES {
            return Err(HttpError::Malformed(format!("chunk of {size} bytes")));
        }
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err(HttpError::Malformed("chunk not followed by CRLF".into()));
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &str) -> HttpResponse {
        parse_response(raw.as_bytes(), false).unwrap().unwrap()
    }

    #[test]
    fn content_length_bodies() {
        let r = complete("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-A: b\r\n\r\nuse1-az1");
        assert_eq!(r.status, 200);
        assert_eq!(r.text().unwrap(), "use1-az1");
        assert_eq!(r.header("x-a"), Some("b"));
        assert_eq!(r.header("X-A"), Some("b"));
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nuse1", false)
                .unwrap()
                .is_none()
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nuse1", true).is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Le", false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn chunked_bodies() {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\neuro\r\n9\r\npe-west1-\r\n1\r\nb\r\n0\r\n\r\n";
        assert_eq!(complete(raw).text().unwrap(), "europe-west1-b");
        let partial = &raw[..raw.len() - 10];
        assert!(parse_response(partial.as_bytes(), false).unwrap().is_none());
        assert!(parse_response(partial.as_bytes(), true).is_err());
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false
            )
            .is_err()
        );
    }

    #[test]
    fn unframed_bodies_end_at_eof() {
        let raw = b"HTTP/1.0 200 OK\r\n\r\nzone";
        assert!(parse_response(raw, false).unwrap().is_none());
        assert_eq!(parse_response(raw, true).unwrap().unwrap().body, b"zone");
        assert!(complete("HTTP/1.1 204 No Content\r\n\r\n").body.is_empty());
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
                false
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = HttpUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let accept = tokio::spawn(async move { listener.accept().await });
        let err = request(&url, "GET", "/", &[], Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Timeout(_)), "{err}");
        drop(accept);
    }

    #[tokio::test]
    async fn sends_method_path_and_headers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = HttpUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let response = request(
            &url,
            "PUT",
            "/latest/api/token",
            &[("X-Test", "1")],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(response.text().unwrap(), "ok");
        let head = server.await.unwrap();
        assert!(
            head.starts_with("PUT /latest/api/token HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nX-Test: 1\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Length: 0\r\n"), "{head}");
    }
}
