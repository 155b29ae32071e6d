//! Round-trip properties of framing and request/response headers.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use shoal_protocol::frame::{FrameDecoder, encode_frame};
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, RequestHeader, RequestKind,
};
use shoal_protocol::kafka_protocol::protocol::StrBytes;
use shoal_protocol::registry::{ApiRegistry, ApiSupport};
use shoal_protocol::request::{ParsedRequest, encode_request, parse_request};

static APIS: [ApiSupport; 2] = [
    ApiSupport::new(ApiKey::ApiVersions, 0, 4),
    ApiSupport::new(ApiKey::Metadata, 1, 12),
];
const REGISTRY: ApiRegistry = ApiRegistry::new(&APIS);

proptest! {
    /// Frames split into arbitrary chunks come out whole, in order, and nothing else comes out.
    #[test]
    fn frames_survive_arbitrary_chunking(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        chunk in 1usize..64,
    ) {
        let mut wire = Vec::new();
        for body in &bodies {
            wire.extend_from_slice(&encode_frame(body).unwrap());
        }
        let decoder = FrameDecoder::new(300);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                out.push(frame.to_vec());
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, bodies);
    }

    /// A request header encodes and decodes to itself at both header versions.
    #[test]
    fn request_headers_round_trip(
        version in 1i16..=12,
        correlation_id in any::<i32>(),
        client_id in prop::option::of("[ -~]{0,40}"),
    ) {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(client_id.map(StrBytes::from_string));
        let body = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![])));
        let frame = encode_request(&header, &body).unwrap();
        let frame = FrameDecoder::new(1 << 20).decode(&mut BytesMut::from(&frame[..])).unwrap().unwrap();
        match parse_request(frame, &REGISTRY).unwrap() {
            ParsedRequest::Request(request) => {
                prop_assert_eq!(request.header, header);
                prop_assert_eq!(request.api_version, version);
                prop_assert_eq!(request.body, body);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

#[test]
fn unknown_api_versions_version_is_not_an_error() {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(4)
        .with_correlation_id(7);
    let frame = encode_request(
        &header,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    )
    .unwrap();
    let mut body = frame.slice(4..).to_vec();
    // Pretend a future client sent version 9 with a body we cannot know.
    body[3] = 9;
    body.extend_from_slice(&[0xde, 0xad]);
    match parse_request(Bytes::from(body), &REGISTRY).unwrap() {
        ParsedRequest::UnsupportedApiVersions { header } => assert_eq!(header.correlation_id, 7),
        other => panic!("unexpected {other:?}"),
    }
}
