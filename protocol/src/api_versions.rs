//! ApiVersions, built from the registry, including the KIP-511 fallback.
//!
//! A client opens every connection with ApiVersions at its own latest version. If the server does
//! not know that version it answers with a version-0 body (header v0 as always), error
//! `UNSUPPORTED_VERSION` and the ApiVersions range only; the client retries at the highest version
//! in that range (`ApiVersionsRequest.getErrorResponse` and `NetworkClient` in Kafka).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use crate::registry::{ApiRegistry, ApiSupport};

/// The version used to encode the fallback response.
pub const FALLBACK_VERSION: i16 = 0;

fn api_version(api: &ApiSupport) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(api.key as i16)
        .with_min_version(api.min_version)
        .with_max_version(api.max_version)
}

/// The answer to an ApiVersions request at a supported `version`.
///
/// From v3 the client names its software; Kafka rejects names and versions that do not match
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?` with `INVALID_REQUEST` and no API list.
pub fn api_versions_response(
    registry: &ApiRegistry,
    request: &ApiVersionsRequest,
    version: i16,
) -> ApiVersionsResponse {
    if version >= 3
        && !(is_valid_software_token(&request.client_software_name)
            && is_valid_software_token(&request.client_software_version))
    {
        return ApiVersionsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_finalized_features_epoch(-1);
    }
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(registry.apis().iter().map(api_version).collect())
        .with_finalized_features_epoch(-1)
}

/// The KIP-511 answer to an ApiVersions request at a version this server does not implement; to be
/// encoded at [`FALLBACK_VERSION`].
pub fn unsupported_version_response(registry: &ApiRegistry) -> ApiVersionsResponse {
    let api_keys = registry
        .get(ApiKey::ApiVersions)
        .map(|api| vec![api_version(&api)])
        .unwrap_or_default();
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys)
}

/// Kafka's `ApiVersionsRequest.SOFTWARE_NAME_VERSION_PATTERN`.
pub fn is_valid_software_token(token: &str) -> bool {
    let bytes = token.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    static APIS: [ApiSupport; 2] = [
        ApiSupport::new(ApiKey::ApiVersions, 0, 4),
        ApiSupport::new(ApiKey::Produce, 3, 12),
    ];
    const REGISTRY: ApiRegistry = ApiRegistry::new(&APIS);

    #[test]
    fn lists_every_registered_api() {
        let response = api_versions_response(&REGISTRY, &ApiVersionsRequest::default(), 2);
        assert_eq!(response.error_code, 0);
        let keys: Vec<_> = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        assert_eq!(keys, vec![(18, 0, 4), (0, 3, 12)]);
    }

    #[test]
    fn fallback_carries_only_the_api_versions_range() {
        let response = unsupported_version_response(&REGISTRY);
        assert_eq!(response.error_code, 35);
        assert_eq!(response.api_keys.len(), 1);
        assert_eq!(response.api_keys[0].api_key, 18);
        assert_eq!(response.api_keys[0].max_version, 4);
    }

    #[test]
    fn v3_rejects_invalid_software_names() {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("bad name"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let response = api_versions_response(&REGISTRY, &request, 3);
        assert_eq!(response.error_code, 42);
        assert!(response.api_keys.is_empty());
        let request =
            request.with_client_software_name(StrBytes::from_static_str("apache-kafka-java"));
        assert_eq!(api_versions_response(&REGISTRY, &request, 3).error_code, 0);
    }

    #[test]
    fn software_token_pattern() {
        for ok in ["a", "librdkafka", "apache-kafka-java", "4.1.0", "2.3.0-RC1"] {
            assert!(is_valid_software_token(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "a_b", "é", "1.0."] {
            assert!(!is_valid_software_token(bad), "{bad}");
        }
    }
}
