//! Response encoding (server side) and decoding (client side: tests and tools).
//!
//! The response header version follows the API and version (v1, with tagged fields, for flexible
//! versions), except that ApiVersions always uses header v0: a client that does not yet know
//! which versions the server speaks must be able to read it.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// A response that could not be encoded. This is a server bug (a field set that the negotiated
/// version cannot carry), never a client error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {api_key:?} v{api_version} response: {reason}")]
pub struct ResponseEncodeError {
    /// The API.
    pub api_key: ApiKey,
    /// The version.
    pub api_version: i16,
    /// What the encoder reported.
    pub reason: String,
}

/// Encodes a response frame including its size prefix.
pub fn encode_response(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, ResponseEncodeError> {
    let fail = |reason: String| ResponseEncodeError {
        api_key,
        api_version,
        reason,
    };
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, api_key.response_header_version(api_version))
        .map_err(|e| fail(format!("{e:#}")))?;
    body.encode(&mut buf, api_version)
        .map_err(|e| fail(format!("{e:#}")))?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| fail("response too large".into()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// A response frame that does not decode (client side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {api_key:?} v{api_version} response: {reason}")]
pub struct ResponseDecodeError {
    /// The API.
    pub api_key: ApiKey,
    /// The version.
    pub api_version: i16,
    /// What the decoder reported.
    pub reason: String,
}

/// Decodes a response frame body (without its size prefix) sent for `api_key` at `api_version`.
pub fn decode_response(
    mut frame: Bytes,
    api_key: ApiKey,
    api_version: i16,
) -> Result<(ResponseHeader, ResponseKind), ResponseDecodeError> {
    let fail = |reason: String| ResponseDecodeError {
        api_key,
        api_version,
        reason,
    };
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(api_version))
        .map_err(|e| fail(format!("{e:#}")))?;
    let body = ResponseKind::decode(api_key, &mut frame, api_version)
        .map_err(|e| fail(format!("{e:#}")))?;
    Ok((header, body))
}
