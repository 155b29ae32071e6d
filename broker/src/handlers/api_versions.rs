//! ApiVersions (key 18): the registry of implemented versions.

use shoal_protocol::api_versions::api_versions_response;
use shoal_protocol::kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use shoal_protocol::registry::{ApiRegistry, ApiSupport};

/// Versions implemented; an unknown version gets the KIP-511 fallback in the connection layer.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::ApiVersions, 0, 4);

/// Answers with every registered API.
pub fn handle(
    registry: &ApiRegistry,
    request: &ApiVersionsRequest,
    version: i16,
) -> ApiVersionsResponse {
    api_versions_response(registry, request, version)
}
