//! `shoal-probe [HOST:PORT] [TIMEOUT_MS]`: exits 0 when a Kafka listener answers an ApiVersions
//! request with error code 0 within the timeout, 1 otherwise (with the reason on stderr).
//!
//! Docker runs it as the broker image's health check, so it must work in an image that holds
//! nothing but two static binaries: no shell, no `nc`, no name service beyond the kernel's.
//! ApiVersions v0 is the one request every Kafka broker answers before any other, and an answer
//! means the listener is bound, the broker accepts connections and its request loop runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const DEFAULT_ADDRESS: &str = "127.0.0.1:9092";
const DEFAULT_TIMEOUT_MS: u64 = 3000;
const API_VERSIONS_KEY: i16 = 18;
const CORRELATION_ID: i32 = 0x5348_4f4c;
const CLIENT_ID: &[u8] = b"shoal-probe";
/// An ApiVersions v0 response lists some 90 keys in 6 bytes each; anything far larger is not one.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Debug)]
enum ProbeError {
    Usage(String),
    Resolve(String, std::io::Error),
    Connect(String, std::io::Error),
    Io(std::io::Error),
    Timeout,
    BadResponse(String),
    Refused(i16),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Usage(msg) => write!(f, "{msg}"),
            ProbeError::Resolve(address, e) => write!(f, "cannot resolve {address}: {e}"),
            ProbeError::Connect(address, e) => write!(f, "cannot connect to {address}: {e}"),
            ProbeError::Io(e) => write!(f, "ApiVersions exchange failed: {e}"),
            ProbeError::Timeout => write!(f, "no ApiVersions response within the timeout"),
            ProbeError::BadResponse(why) => write!(f, "not a Kafka ApiVersions response: {why}"),
            ProbeError::Refused(code) => write!(f, "ApiVersions answered with error code {code}"),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(|(address, timeout)| probe(&address, timeout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Result<(String, Duration), ProbeError> {
    if args.len() > 2 || args.iter().any(|a| a.starts_with('-')) {
        return Err(ProbeError::Usage(
            "usage: shoal-probe [HOST:PORT] [TIMEOUT_MS]".to_string(),
        ));
    }
    let address = args.first().map_or(DEFAULT_ADDRESS, String::as_str);
    let timeout_ms = match args.get(1) {
        Some(t) => t.parse::<u64>().ok().filter(|t| *t > 0).ok_or_else(|| {
            ProbeError::Usage(format!(
                "timeout '{t}' is not a positive number of milliseconds"
            ))
        })?,
        None => DEFAULT_TIMEOUT_MS,
    };
    Ok((address.to_string(), Duration::from_millis(timeout_ms)))
}

fn probe(address: &str, timeout: Duration) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    let targets: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| ProbeError::Resolve(address.to_string(), e))?
        .collect();
    let target = targets.first().ok_or_else(|| {
        ProbeError::Resolve(address.to_string(), std::io::ErrorKind::NotFound.into())
    })?;
    let mut stream = TcpStream::connect_timeout(target, remaining(deadline)?)
        .map_err(|e| ProbeError::Connect(address.to_string(), e))?;
    stream.set_nodelay(true).map_err(ProbeError::Io)?;
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(ProbeError::Io)?;
    stream
        .write_all(&api_versions_request())
        .map_err(io_or_timeout)?;

    let mut size = [0u8; 4];
    read_exact_by(&mut stream, &mut size, deadline)?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size)
        .ok()
        .filter(|s| (6..=MAX_RESPONSE_BYTES).contains(s))
        .ok_or_else(|| ProbeError::BadResponse(format!("frame size {size}")))?;
    let mut body = vec![0u8; size];
    read_exact_by(&mut stream, &mut body, deadline)?;
    check_response(&body)
}

/// ApiVersions v0: request header v1 (key, version, correlation id, nullable client id) and an
/// empty body, behind the 4-byte size.
fn api_versions_request() -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + 10 + CLIENT_ID.len());
    let body_len = 2 + 2 + 4 + 2 + CLIENT_ID.len();
    frame.extend_from_slice(&(body_len as i32).to_be_bytes());
    frame.extend_from_slice(&API_VERSIONS_KEY.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    frame.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    frame.extend_from_slice(CLIENT_ID);
    frame
}

/// The response starts with the correlation id (response header v0) and the error code.
fn check_response(body: &[u8]) -> Result<(), ProbeError> {
    let (Some(correlation), Some(code)) = (body.get(0..4), body.get(4..6)) else {
        return Err(ProbeError::BadResponse(format!("{} bytes", body.len())));
    };
    let correlation = i32::from_be_bytes([
        correlation[0],
        correlation[1],
        correlation[2],
        correlation[3],
    ]);
    if correlation != CORRELATION_ID {
        return Err(ProbeError::BadResponse(format!(
            "correlation id {correlation}, expected {CORRELATION_ID}"
        )));
    }
    match i16::from_be_bytes([code[0], code[1]]) {
        0 => Ok(()),
        code => Err(ProbeError::Refused(code)),
    }
}

fn read_exact_by(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), ProbeError> {
    let mut filled = 0;
    while filled < buf.len() {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(ProbeError::Io)?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(ProbeError::BadResponse(
                    "the broker closed the connection".to_string(),
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_or_timeout(e)),
        }
    }
    Ok(())
}

fn remaining(deadline: Instant) -> Result<Duration, ProbeError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(ProbeError::Timeout)
}

fn io_or_timeout(e: std::io::Error) -> ProbeError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ProbeError::Timeout,
        _ => ProbeError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn serve_once(reply: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = vec![0u8; api_versions_request().len()];
            conn.read_exact(&mut request).unwrap();
            assert_eq!(request, api_versions_request());
            conn.write_all(&reply).unwrap();
        });
        address
    }

    fn response(correlation: i32, code: i16) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&correlation.to_be_bytes());
        body.extend_from_slice(&code.to_be_bytes());
        body.extend_from_slice(&0i32.to_be_bytes());
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend(body);
        frame
    }

    #[test]
    fn request_is_api_versions_v0_with_header_v1() {
        let r = api_versions_request();
        assert_eq!(&r[0..4], &((r.len() - 4) as i32).to_be_bytes());
        assert_eq!(&r[4..6], &18i16.to_be_bytes());
        assert_eq!(&r[6..8], &0i16.to_be_bytes());
        assert_eq!(&r[12..14], &(CLIENT_ID.len() as i16).to_be_bytes());
    }

    #[test]
    fn a_broker_answering_without_error_is_healthy() {
        let address = serve_once(response(CORRELATION_ID, 0));
        probe(&address, Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn an_error_code_or_a_foreign_answer_is_unhealthy() {
        let address = serve_once(response(CORRELATION_ID, 35));
        assert!(matches!(
            probe(&address, Duration::from_secs(5)),
            Err(ProbeError::Refused(35))
        ));
        let address = serve_once(response(7, 0));
        assert!(matches!(
            probe(&address, Duration::from_secs(5)),
            Err(ProbeError::BadResponse(_))
        ));
        let address = serve_once(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec());
        assert!(matches!(
            probe(&address, Duration::from_secs(5)),
            Err(ProbeError::BadResponse(_))
        ));
    }

    #[test]
    fn a_silent_listener_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let started = Instant::now();
        assert!(matches!(
            probe(&address, Duration::from_millis(200)),
            Err(ProbeError::Timeout)
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        assert!(matches!(
            probe(&address, Duration::from_secs(5)),
            Err(ProbeError::Connect(..))
        ));
    }

    #[test]
    fn arguments() {
        let parse = |a: &[&str]| parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(parse(&[]).unwrap().0, DEFAULT_ADDRESS);
        assert_eq!(
            parse(&["h:1", "50"]).unwrap(),
            ("h:1".to_string(), Duration::from_millis(50))
        );
        assert!(parse(&["h:1", "0"]).is_err());
        assert!(parse(&["--help"]).is_err());
    }
}
