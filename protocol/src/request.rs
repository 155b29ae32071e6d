//! Request decoding: frame → header → version check → body, zero-copy from `Bytes`.
//!
//! Every string, byte and record field of the decoded body is a slice of the frame (kafka-protocol
//! decodes `Bytes` by `split_to`/`slice`), so a produce request's record batches are never copied
//! here. The version is checked against the registry *before* the body is decoded.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::registry::{ApiRegistry, VersionError};

/// Key (2), version (2) and correlation id (4): the fixed start of every request header.
const FIXED_HEADER_LEN: usize = 8;

/// A decoded request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The API.
    pub api_key: ApiKey,
    /// The version the client chose (already checked against the registry).
    pub api_version: i16,
    /// The request header (correlation id, client id).
    pub header: RequestHeader,
    /// The decoded body.
    pub body: RequestKind,
}

/// What the frame asks for.
#[derive(Debug, Clone)]
pub enum ParsedRequest {
    /// A request at a supported version.
    Request(Box<Request>),
    /// ApiVersions at a version this server does not implement. Kafka (KIP-511) answers it with a
    /// version-0 body carrying `UNSUPPORTED_VERSION` and the ApiVersions range, so that the client
    /// can retry at a version both sides know; the body of the request is not decoded.
    UnsupportedApiVersions {
        /// The request header (the response reuses its correlation id).
        header: RequestHeader,
    },
}

/// A frame that cannot be served. Kafka closes the connection for all of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// Too few bytes for even the fixed part of a request header.
    #[error("request of {len} bytes is shorter than a request header")]
    TooShort {
        /// Frame length.
        len: usize,
    },
    /// An API key that the protocol does not define.
    #[error("unknown API key {key} (correlation id {correlation_id})")]
    UnknownApiKey {
        /// The key as sent.
        key: i16,
        /// The correlation id as sent.
        correlation_id: i32,
    },
    /// An API or version that this server does not implement.
    #[error("{source} (correlation id {correlation_id})")]
    Unsupported {
        /// What is unsupported.
        source: VersionError,
        /// The correlation id as sent.
        correlation_id: i32,
    },
    /// The request header does not decode.
    #[error("malformed {api_key:?} v{api_version} request header: {reason}")]
    MalformedHeader {
        /// The API.
        api_key: ApiKey,
        /// The version.
        api_version: i16,
        /// What the decoder reported.
        reason: String,
    },
    /// The request body does not decode at the announced version.
    #[error(
        "malformed {api_key:?} v{api_version} request body (correlation id {correlation_id}): {reason}"
    )]
    MalformedBody {
        /// The API.
        api_key: ApiKey,
        /// The version.
        api_version: i16,
        /// The correlation id.
        correlation_id: i32,
        /// What the decoder reported.
        reason: String,
    },
}

/// Decodes one request frame (without its size prefix), checking the version against `registry`.
pub fn parse_request(
    mut frame: Bytes,
    registry: &ApiRegistry,
) -> Result<ParsedRequest, RequestError> {
    if frame.len() < FIXED_HEADER_LEN {
        return Err(RequestError::TooShort { len: frame.len() });
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|()| RequestError::UnknownApiKey {
        key: raw_key,
        correlation_id,
    })?;
    let header_version = api_key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| {
        RequestError::MalformedHeader {
            api_key,
            api_version,
            reason: format!("{e:#}"),
        }
    })?;

    if let Err(source) = registry.check(api_key, api_version) {
        if api_key == ApiKey::ApiVersions {
            return Ok(ParsedRequest::UnsupportedApiVersions { header });
        }
        return Err(RequestError::Unsupported {
            source,
            correlation_id,
        });
    }

    let body = RequestKind::decode(api_key, &mut frame, api_version).map_err(|e| {
        RequestError::MalformedBody {
            api_key,
            api_version,
            correlation_id,
            reason: format!("{e:#}"),
        }
    })?;
    Ok(ParsedRequest::Request(Box::new(Request {
        api_key,
        api_version,
        header,
        body,
    })))
}

/// A request that could not be encoded (client side: tests and tools).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {api_key:?} v{api_version} request: {reason}")]
pub struct RequestEncodeError {
    /// The API.
    pub api_key: ApiKey,
    /// The version.
    pub api_version: i16,
    /// What the encoder reported.
    pub reason: String,
}

/// Encodes a request frame including its size prefix (client side: tests and tools).
pub fn encode_request(
    header: &RequestHeader,
    body: &RequestKind,
) -> Result<Bytes, RequestEncodeError> {
    let api_version = header.request_api_version;
    let key = header.request_api_key;
    let api_key = ApiKey::try_from(key).map_err(|()| RequestEncodeError {
        api_key: ApiKey::ApiVersions,
        api_version,
        reason: format!("unknown API key {key}"),
    })?;
    let fail = |reason: String| RequestEncodeError {
        api_key,
        api_version,
        reason,
    };
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(&mut buf, api_key.request_header_version(api_version))
        .map_err(|e| fail(format!("{e:#}")))?;
    body.encode(&mut buf, api_version)
        .map_err(|e| fail(format!("{e:#}")))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| fail("request too large".into()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads the correlation id at the front of a response frame (client side).
pub fn peek_correlation_id(frame: &Bytes) -> Option<i32> {
    let mut peek = frame.clone();
    (peek.remaining() >= 4).then(|| peek.get_i32())
}
