//! DescribeCluster (key 60): cluster id, controller and brokers.

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use shoal_protocol::registry::ApiSupport;

use super::{cluster_authorized_operations, s};
use crate::metadata::MetadataImage;

/// v2 (fenced brokers) is not implemented.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::DescribeCluster, 0, 1);

/// `EndpointType.BROKER`.
const BROKER_ENDPOINT: i8 = 1;
/// `EndpointType.CONTROLLER`.
const CONTROLLER_ENDPOINT: i8 = 2;

/// Answers with the brokers reachable on `listener`.
pub fn handle(
    image: &MetadataImage,
    listener: &str,
    node_id: i32,
    request: &DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default().with_cluster_id(s(image.cluster_id()));
    if version >= 1 {
        response.endpoint_type = BROKER_ENDPOINT;
        // Kafka's `computeDescribeClusterResponse`.
        if request.endpoint_type != BROKER_ENDPOINT {
            let (error, message) = if request.endpoint_type == CONTROLLER_ENDPOINT {
                (
                    ResponseError::MismatchedEndpointType,
                    "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
                )
            } else {
                (
                    ResponseError::UnsupportedEndpointType,
                    "Unsupported endpoint type",
                )
            };
            return response
                .with_error_code(error.code())
                .with_error_message(Some(s(message)));
        }
    }
    response.controller_id = BrokerId(node_id);
    response.brokers = image
        .brokers()
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let endpoint = b.endpoint(listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.node_id))
                    .with_host(s(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.clone().map(s)),
            )
        })
        .collect();
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = cluster_authorized_operations();
    }
    response
}
