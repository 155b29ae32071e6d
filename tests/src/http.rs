//! A minimal HTTP/1.1 client for the broker's `metrics.listener` (metrics, test fault
//! endpoints), and where a broker says that listener is.

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::RESPONSE_DEADLINE;

/// An HTTP response: the status line's code and text, and the body.
#[derive(Debug)]
pub struct Response {
    /// e.g. 200.
    pub status: u16,
    /// The whole status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    pub body: String,
}

/// host:port of the metrics listener a broker printed in `output` (its `shoal metrics: URL`
/// line).
pub fn metrics_authority(output: &str) -> anyhow::Result<String> {
    let url = output
        .lines()
        .find_map(|l| l.strip_prefix("shoal metrics: http://"))
        .context("no metrics line printed")?;
    Ok(url.trim().split('/').next().unwrap_or_default().to_string())
}

/// Sends `method path` (no body) to `authority` (host:port) on a new connection and reads the
/// whole response, within [`RESPONSE_DEADLINE`].
pub async fn request(authority: &str, method: &str, path: &str) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect(authority).await?;
    stream
        .write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(RESPONSE_DEADLINE, stream.read_to_end(&mut response))
        .await
        .context("no HTTP response in time")??;
    let text = String::from_utf8(response)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of head")?;
    let status_line = head.lines().next().unwrap_or_default().to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok(Response {
        status,
        status_line,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_metrics_authority_is_read_from_the_broker_output() {
        let output = "shoal ready: ...\nshoal metrics: http://127.0.0.1:4321/metrics\n";
        assert_eq!(super::metrics_authority(output).unwrap(), "127.0.0.1:4321");
        assert!(super::metrics_authority("shoal ready").is_err());
    }
}
