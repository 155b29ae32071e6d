//! Kafka's wire protocol as Shoal speaks it, on top of the `kafka-protocol` crate. No IO.
//!
//! What this crate owns:
//! - [`frame`]: the `i32` size prefix of every request and response, with the maximum frame
//!   size (`socket.request.max.bytes`) enforced before anything is allocated for the body.
//! - [`request`]: frame → request header (v1 or v2 by API and version) → version check against
//!   the [`registry`] → body, decoded zero-copy from [`bytes::Bytes`] (record batches stay opaque
//!   slices of the frame). ApiVersions at an unknown version becomes
//!   [`request::ParsedRequest::UnsupportedApiVersions`] instead of an error (KIP-511).
//! - [`response`]: body → response header (v0 or v1; ApiVersions always v0) → frame.
//! - [`registry`]: the (API, version range) pairs a server implements, which both gate decoding
//!   and feed ApiVersions; [`api_versions`] builds that response and its KIP-511 fallback.
//! - [`error_code`]: Kafka error codes for response fields.
//!
//! Data flow on a server: socket bytes → [`frame::FrameDecoder`] → [`request::parse_request`] →
//! handler → [`response::encode_response`] → socket. The client-side mirror images
//! ([`request::encode_request`], [`response::decode_response`]) serve tests and tools.
//!
//! The record batch format is not handled here: the storage crate owns it.

pub mod api_versions;
pub mod error_code;
pub mod frame;
pub mod registry;
pub mod request;
pub mod response;

pub use kafka_protocol;
pub use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
