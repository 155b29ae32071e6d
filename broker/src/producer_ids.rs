//! Producer ids for InitProducerId, handed out from blocks the metadata store allocates
//! durably (Kafka's `RPCProducerIdManager` asking the controller's `ProducerIdControlManager`).
//!
//! A block is `[first, first + BLOCK_SIZE)`, recorded by an [`MetadataCommand::AllocateProducerIds`]
//! before any id of it is used, so no id is ever handed out twice, also across restarts (the
//! unused rest of a block is skipped after a restart, as in Kafka). The next block is fetched
//! when 90% of the current one is used, so InitProducerId rarely waits for the store.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::metadata::{ApplyError, MetadataCommand, MetadataError, MetadataStore};

/// Ids per block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const BLOCK_SIZE: i64 = 1000;
/// How often a block allocation that lost a race is retried.
const ALLOCATION_ATTEMPTS: usize = 16;

/// Why no producer id could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    /// Every id below `i64::MAX` is used.
    #[error("producer ids are exhausted")]
    Exhausted,
    /// The metadata store failed.
    #[error("cannot allocate a producer id block: {0}")]
    Store(#[from] MetadataError),
    /// Other brokers kept taking the block this one asked for.
    #[error("lost the race for a producer id block {ALLOCATION_ATTEMPTS} times")]
    Contended,
}

#[derive(Debug, Default)]
struct Blocks {
    /// Next id to hand out and the end of its block.
    current: Option<(i64, i64)>,
    /// A block fetched ahead of time.
    prefetched: Option<(i64, i64)>,
}

/// Hands out producer ids on one broker.
#[derive(Debug)]
pub struct ProducerIdManager {
    node_id: i32,
    metadata: Arc<dyn MetadataStore>,
    blocks: Mutex<Blocks>,
}

impl ProducerIdManager {
    /// A manager for broker `node_id`; it allocates its first block on first use.
    pub fn new(node_id: i32, metadata: Arc<dyn MetadataStore>) -> Self {
        Self {
            node_id,
            metadata,
            blocks: Mutex::new(Blocks::default()),
        }
    }

    /// The next unused producer id.
    pub async fn next_id(&self) -> Result<i64, ProducerIdError> {
        let mut blocks = self.blocks.lock().await;
        loop {
            if let Some((next, end)) = blocks.current
                && next < end
            {
                blocks.current = Some((next + 1, end));
                // Fetch the next block once 90% of this one is used.
                if blocks.prefetched.is_none() && (end - next) * 10 <= BLOCK_SIZE {
                    blocks.prefetched = Some(self.allocate().await?);
                }
                return Ok(next);
            }
            blocks.current = match blocks.prefetched.take() {
                Some(block) => Some(block),
                None => Some(self.allocate().await?),
            };
        }
    }

    /// Records a new block in the metadata store and returns it.
    async fn allocate(&self) -> Result<(i64, i64), ProducerIdError> {
        for _ in 0..ALLOCATION_ATTEMPTS {
            let first = self.metadata.image().next_producer_id();
            let next = first
                .checked_add(BLOCK_SIZE)
                .ok_or(ProducerIdError::Exhausted)?;
            let command = MetadataCommand::AllocateProducerIds {
                node_id: self.node_id,
                first_producer_id: first,
                next_producer_id: next,
            };
            match self.metadata.apply(command).await {
                Ok(_) => {
                    tracing::info!(
                        node_id = self.node_id,
                        first,
                        next,
                        "allocated a producer id block"
                    );
                    return Ok((first, next));
                }
                Err(MetadataError::Rejected(ApplyError::StaleProducerIdBlock { .. })) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ProducerIdError::Contended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::BrokerRegistration;
    use crate::metadata::store::LocalMetadataStore;

    fn open(dir: &std::path::Path) -> Arc<dyn MetadataStore> {
        let register = MetadataCommand::RegisterBroker(BrokerRegistration {
            node_id: 1,
            rack: None,
            endpoints: vec![],
            fenced: false,
        });
        Arc::new(LocalMetadataStore::open(dir, "c", register).unwrap().0)
    }

    #[tokio::test]
    async fn ids_are_unique_and_never_reused_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let a = ProducerIdManager::new(1, store.clone());
        let b = ProducerIdManager::new(1, store.clone());
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1500 {
            assert!(seen.insert(a.next_id().await.unwrap()));
            assert!(seen.insert(b.next_id().await.unwrap()));
        }
        let highest = *seen.last().unwrap();
        drop((a, b, store));

        let store = open(dir.path());
        assert!(store.image().next_producer_id() > highest);
        let c = ProducerIdManager::new(1, store);
        let id = c.next_id().await.unwrap();
        assert!(id > highest, "{id} after {highest}");
    }
}
