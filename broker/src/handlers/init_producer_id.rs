//! InitProducerId (key 22): a producer id for an idempotent producer.
//!
//! Kafka's `TransactionCoordinator.handleInitProducerId` for a null transactional id: every call
//! gets a fresh producer id with epoch 0, whatever producer id and epoch it carries (KIP-360's
//! epoch bump for idempotent producers happens in the client, which the partitions' producer
//! state accepts at sequence 0). Transactions are not supported: a transactional id gets
//! `NOT_COORDINATOR` (this broker coordinates no transactional id), and the client's
//! FindCoordinator(TRANSACTION) that follows gets `INVALID_REQUEST`, which fails
//! `initTransactions()` at once instead of retrying; an empty transactional id gets
//! `INVALID_REQUEST`, as in Kafka.

use shoal_protocol::error_code::ResponseError;
use shoal_protocol::kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use shoal_protocol::registry::ApiSupport;

use crate::producer_ids::{ProducerIdError, ProducerIdManager};

/// v0-5: v2 is the first flexible version, v3 allows an epoch bump (KIP-360), v4 returns
/// `PRODUCER_FENCED`, v5 adds KIP-890 semantics; none changes the answer to an idempotent
/// producer. v6 (two-phase commit, KIP-939) is not implemented.
pub const SUPPORT: ApiSupport = ApiSupport::new(ApiKey::InitProducerId, 0, 5);

/// Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`.
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

fn error(code: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code.code())
        .with_producer_id(ProducerId(NO_PRODUCER_ID))
        .with_producer_epoch(NO_PRODUCER_EPOCH)
}

/// Answers one InitProducerId request.
pub async fn handle(
    ids: &ProducerIdManager,
    request: &InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    // The current producer id and epoch exist on the wire from v3.
    let (pid, epoch) = if version >= 3 {
        (request.producer_id.0, request.producer_epoch)
    } else {
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
    };
    if (pid == NO_PRODUCER_ID) != (epoch == NO_PRODUCER_EPOCH) {
        return error(ResponseError::InvalidRequest);
    }
    match &request.transactional_id {
        Some(id) if id.is_empty() => return error(ResponseError::InvalidRequest),
        Some(_) => return error(ResponseError::NotCoordinator),
        None => {}
    }
    match ids.next_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::warn!("InitProducerId: {e}");
            error(match e {
                // Retriable for clients, as Kafka's "block not available yet".
                ProducerIdError::Contended => ResponseError::CoordinatorLoadInProgress,
                ProducerIdError::Exhausted | ProducerIdError::Store(_) => {
                    ResponseError::UnknownServerError
                }
            })
        }
    }
}
