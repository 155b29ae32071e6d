//! [`ReplicatedMetadataStore`]: the [`MetadataStore`] of a cluster node, over the controller
//! Raft group.
//!
//! Every node applies every committed [`MetadataCommand`] to its own [`MetadataImage`]
//! ([`MetadataStateMachine`]), so every broker's metadata cache is the same sequence of images.
//! A command proposed on any node is forwarded to the controller leader; `apply` returns once
//! the command is applied on this node too, so a caller sees its own change. Commands travel as
//! JSON (the same encoding as the single-node metadata log); snapshots are the whole image.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use shoal_replication::{Controller, ControllerStateMachine, ProposeError, RestoreError};
use tokio::sync::watch;

use crate::metadata::{
    ApplyError, ImageSnapshot, MetadataCommand, MetadataError, MetadataImage, MetadataStore,
};

/// When each broker was last heard from (heartbeats and registrations applied on this node,
/// by this node's clock). Only the controller leader acts on it (fencing).
pub type Liveness = Arc<Mutex<HashMap<i32, Instant>>>;

/// The broker's state machine of the controller group.
#[derive(Debug)]
pub struct MetadataStateMachine {
    images: watch::Sender<Arc<MetadataImage>>,
    liveness: Liveness,
}

impl MetadataStateMachine {
    /// A state machine publishing every new image to `images`.
    pub fn new(images: watch::Sender<Arc<MetadataImage>>, liveness: Liveness) -> Self {
        Self { images, liveness }
    }
}

fn reply(result: &Result<(), ApplyError>) -> Bytes {
    // Plain data: serialising cannot fail.
    Bytes::from(serde_json::to_vec(result).unwrap_or_default())
}

impl ControllerStateMachine for MetadataStateMachine {
    fn apply(&mut self, _offset: i64, command: &[u8]) -> Bytes {
        let command: MetadataCommand = match serde_json::from_slice(command) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("undecodable metadata command skipped: {e}");
                return reply(&Err(ApplyError::InvalidAssignment(format!(
                    "undecodable metadata command: {e}"
                ))));
            }
        };
        if let MetadataCommand::BrokerHeartbeat { node_id }
        | MetadataCommand::RegisterBroker(crate::metadata::BrokerRegistration {
            node_id,
            ..
        }) = &command
        {
            self.liveness
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(*node_id, Instant::now());
        }
        let current = self.images.borrow().clone();
        if current.is_noop(&command) {
            return reply(&Ok(()));
        }
        match current.apply(&command) {
            Ok(next) => {
                self.images.send_replace(Arc::new(next));
                reply(&Ok(()))
            }
            Err(e) => reply(&Err(e)),
        }
    }

    fn snapshot(&self) -> Bytes {
        let snapshot = self.images.borrow().to_snapshot();
        Bytes::from(serde_json::to_vec(&snapshot).unwrap_or_default())
    }

    fn restore(&mut self, snapshot: Bytes) -> Result<(), RestoreError> {
        let snapshot: ImageSnapshot = serde_json::from_slice(&snapshot)?;
        self.images
            .send_replace(Arc::new(MetadataImage::from_snapshot(snapshot)));
        Ok(())
    }
}

/// The metadata store of a cluster node.
#[derive(Debug)]
pub struct ReplicatedMetadataStore {
    controller: Controller,
    images: watch::Sender<Arc<MetadataImage>>,
    timeout: Duration,
}

impl ReplicatedMetadataStore {
    /// A store proposing through `controller`, whose state machine publishes to `images`;
    /// a command not committed within `timeout` fails as unavailable.
    pub fn new(
        controller: Controller,
        images: watch::Sender<Arc<MetadataImage>>,
        timeout: Duration,
    ) -> Self {
        Self {
            controller,
            images,
            timeout,
        }
    }

    /// The controller group member of this node.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    async fn propose(&self, command: MetadataCommand) -> Result<Arc<MetadataImage>, MetadataError> {
        let bytes = serde_json::to_vec(&command)
            .map_err(|e| MetadataError::Task(format!("encoding a metadata command: {e}")))?;
        let (offset, answer) = self
            .controller
            .propose_forwarded(&bytes, self.timeout)
            .await
            .map_err(|e| match e {
                ProposeError::NotLeader { .. } => MetadataError::Unavailable(format!(
                    "no controller leader answered within {:?}",
                    self.timeout
                )),
                other => MetadataError::Unavailable(other.to_string()),
            })?;
        // Until this node applied the command, its image does not show it.
        let mut applied = self.controller.watch_applied();
        tokio::time::timeout(self.timeout, applied.wait_for(|a| *a > offset))
            .await
            .map_err(|_| {
                MetadataError::Unavailable(format!(
                    "command committed at offset {offset} but not yet applied on this node"
                ))
            })?
            .map_err(|_| MetadataError::Task("the controller group closed".into()))?;
        let result: Result<(), ApplyError> = serde_json::from_slice(&answer)
            .map_err(|e| MetadataError::Task(format!("undecodable controller reply: {e}")))?;
        result?;
        Ok(self.images.borrow().clone())
    }
}

impl MetadataStore for ReplicatedMetadataStore {
    fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    fn apply(
        &self,
        command: MetadataCommand,
    ) -> BoxFuture<'_, Result<Arc<MetadataImage>, MetadataError>> {
        Box::pin(self.propose(command))
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.subscribe()
    }
}
