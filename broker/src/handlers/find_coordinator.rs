//! FindCoordinator (key 10): which broker coordinates a group (Kafka's `getCoordinator`).
//!
//! GROUP keys are answered from `__consumer_offsets` (created on first use; until it exists the
//! answer is `COORDINATOR_NOT_AVAILABLE` and clients retry). Shoal runs no transaction or share
//! coordinator: TRANSACTION and SHARE keys get `INVALID_REQUEST`, Kafka's answer for a
//! coordinator type the broker does not run (as for SHARE without a share coordinator). The Java
//! transactional producer then fails `initTransactions()` at once with a `KafkaException`
//! instead of retrying until `max.block.ms`.

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use shoal_protocol::registry::ApiSupport;

use super::s;
use crate::group::GroupCoordinator;
use crate::group::coordinator::CoordinatorLocation;

/// v0-6: v1 key types, v3 flexible, v4 batched keys (KIP-699), v5 TRANSACTION_ABORTABLE, v6
/// share groups.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::FindCoordinator, 0, 6);

/// `FindCoordinatorRequest.CoordinatorType`.
const GROUP: i8 = 0;

/// The text Kafka puts next to an error (`Errors.message()`); "NONE" for success.
fn message(error: Option<ResponseError>) -> &'static str {
    match error {
        None => "NONE",
        Some(ResponseError::CoordinatorNotAvailable) => "The coordinator is not available.",
        Some(ResponseError::NotCoordinator) => "This is not the correct coordinator.",
        Some(ResponseError::InvalidRequest) => {
            "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details."
        }
        Some(_) => "",
    }
}

fn locate(
    groups: &std::sync::Arc<GroupCoordinator>,
    key_type: i8,
    key: &str,
    listener: &str,
) -> Result<CoordinatorLocation, ResponseError> {
    match key_type {
        GROUP => groups.find_coordinator(key, listener),
        _ => Err(ResponseError::InvalidRequest),
    }
}

/// Answers a FindCoordinator request arriving on `listener`.
pub fn handle(
    groups: &std::sync::Arc<GroupCoordinator>,
    listener: &str,
    request: &FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let found = locate(groups, request.key_type, key, listener);
                let mut c = Coordinator::default().with_key(key.clone());
                match found {
                    Ok(loc) => {
                        c.node_id = BrokerId(loc.node_id);
                        c.host = s(loc.host);
                        c.port = loc.port;
                    }
                    Err(e) => {
                        c.error_code = e.code();
                        c.node_id = BrokerId(-1);
                        c.port = -1;
                    }
                }
                c
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let key_type = if version >= 1 {
        request.key_type
    } else {
        GROUP
    };
    let mut response = FindCoordinatorResponse::default();
    let error = match locate(groups, key_type, &request.key, listener) {
        Ok(loc) => {
            response.node_id = BrokerId(loc.node_id);
            response.host = s(loc.host);
            response.port = loc.port;
            None
        }
        Err(e) => {
            response.node_id = BrokerId(-1);
            response.port = -1;
            Some(e)
        }
    };
    response.error_code = error.map_or(0, |e| e.code());
    if version >= 1 {
        response.error_message = Some(s(message(error)));
    }
    response
}
