//! Fuzz-style properties: no byte sequence makes the decoders panic or abort.
//!
//! The array-length check matters here: without it a few random bytes can announce billions of
//! elements and the allocation alone aborts the process.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use shoal_protocol::frame::FrameDecoder;
use shoal_protocol::kafka_protocol::messages::{ApiKey, RequestKind};
use shoal_protocol::registry::{ApiRegistry, ApiSupport};
use shoal_protocol::request::parse_request;

/// Every API at every version the schemas define: the decoder must survive them all.
fn every_api() -> &'static [ApiSupport] {
    let apis: Vec<ApiSupport> = ApiKey::iter()
        .map(|key| {
            let range = key.valid_versions();
            ApiSupport::new(key, range.min, range.max)
        })
        .collect();
    Vec::leak(apis)
}

fn any_api_and_version() -> impl Strategy<Value = (ApiKey, i16)> {
    let keys: Vec<ApiKey> = ApiKey::iter().collect();
    prop::sample::select(keys).prop_flat_map(|key| {
        let range = key.valid_versions();
        (Just(key), range.min..=range.max)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Random frames through header parsing and body decoding.
    #[test]
    fn random_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let registry = ApiRegistry::new(every_api());
        let _ = parse_request(Bytes::from(bytes), &registry);
    }

    /// A valid header for a real API and version, followed by random body bytes.
    #[test]
    fn random_bodies_never_panic(
        (key, version) in any_api_and_version(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = body.clone();
        let _ = RequestKind::decode(key, &mut Bytes::from(bytes.clone()), version);
        // Also through the full path with a header in front.
        let mut frame = Vec::new();
        frame.extend_from_slice(&(key as i16).to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&1i32.to_be_bytes());
        frame.extend_from_slice(&(-1i16).to_be_bytes());
        if key.request_header_version(version) >= 2 {
            frame.push(0);
        }
        frame.append(&mut bytes);
        let registry = ApiRegistry::new(every_api());
        let _ = parse_request(Bytes::from(frame), &registry);
    }

    /// Random bytes through the frame splitter.
    #[test]
    fn random_streams_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let decoder = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    }
}

/// The eight-byte frame from kafka-protocol-rs pull request 152: Metadata v0 announcing 54 million
/// topics. Upstream 0.18.0 tries to allocate gigabytes for it.
#[test]
fn huge_array_length_is_rejected_without_allocating() {
    let frame = Bytes::from_static(&[0x03, 0x3c, 0x0c, 0x00, 0xb6]);
    assert!(RequestKind::decode(ApiKey::Metadata, &mut frame.clone(), 1).is_err());
    let mut body = Vec::new();
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(RequestKind::decode(ApiKey::Metadata, &mut Bytes::from(body.clone()), 1).is_err());
    assert!(RequestKind::decode(ApiKey::Produce, &mut Bytes::from(body), 3).is_err());
}
