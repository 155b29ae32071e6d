//! The metadata seam: handlers read an immutable [`MetadataImage`] and change it only through
//! [`MetadataStore::apply`].
//!
//! On a single node, [`LocalMetadataStore`] persists each command in a [`MetadataLog`] (fsynced)
//! before publishing the next image. A replicated controller can implement the same trait by
//! committing commands through a Raft group and publishing images as they are applied.

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::image::{ApplyError, MetadataCommand, MetadataImage};
use super::log::{MetadataLog, MetadataLogError};

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The command contradicts the current metadata.
    #[error(transparent)]
    Rejected(#[from] ApplyError),
    /// The command could not be made durable; the store accepts no more commands.
    #[error(transparent)]
    Log(#[from] MetadataLogError),
    /// The blocking task that persists commands died.
    #[error("metadata writer task failed: {0}")]
    Task(String),
    /// Cluster mode: the controller quorum did not commit the command in time (no leader, no
    /// majority); retriable.
    #[error("the controller quorum is unavailable: {0}")]
    Unavailable(String),
}

/// Read the current metadata, change it, watch it change.
pub trait MetadataStore: Send + Sync + std::fmt::Debug {
    /// The current image.
    fn image(&self) -> Arc<MetadataImage>;

    /// Applies `command` durably and returns the image that includes it.
    fn apply(
        &self,
        command: MetadataCommand,
    ) -> BoxFuture<'_, Result<Arc<MetadataImage>, MetadataError>>;

    /// A receiver that sees every new image.
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;
}

/// Commands worth persisting: broker registrations describe the running process and are made
/// afresh at every start.
fn is_durable(command: &MetadataCommand) -> bool {
    !matches!(command, MetadataCommand::RegisterBroker(_))
}

/// Compact the log when it holds this many more records than the image needs.
const COMPACT_SLACK_RECORDS: usize = 1000;

/// A single node's metadata, persisted in a local log.
#[derive(Debug)]
pub struct LocalMetadataStore {
    log: Arc<Mutex<MetadataLog>>,
    images: watch::Sender<Arc<MetadataImage>>,
}

/// What opening the store found, for the startup log.
#[derive(Debug, Clone, Copy)]
pub struct OpenReport {
    /// Commands replayed.
    pub replayed: usize,
    /// Bytes of a torn final record removed.
    pub truncated_bytes: u64,
    /// Whether the log was compacted.
    pub compacted: bool,
}

impl LocalMetadataStore {
    /// Opens the log in `dir`, registers `registration`'s broker, and replays every command.
    pub fn open(
        dir: &Path,
        cluster_id: &str,
        registration: MetadataCommand,
    ) -> Result<(Self, OpenReport), MetadataError> {
        let (mut log, recovered) = MetadataLog::open(dir)?;
        let mut image = MetadataImage::empty(cluster_id).apply(&registration)?;
        for command in &recovered.commands {
            image = image
                .apply(command)
                .map_err(|e| MetadataLogError::Corrupt {
                    path: dir.to_path_buf(),
                    position: 0,
                    reason: format!("replaying {command:?}: {e}"),
                })?;
        }
        let needed = super::log::commands_for(&image).len();
        let compacted = log.records() > needed + COMPACT_SLACK_RECORDS;
        if compacted {
            log.compact(&image)?;
        }
        let report = OpenReport {
            replayed: recovered.commands.len(),
            truncated_bytes: recovered.truncated_bytes,
            compacted,
        };
        let (images, _) = watch::channel(Arc::new(image));
        Ok((
            Self {
                log: Arc::new(Mutex::new(log)),
                images,
            },
            report,
        ))
    }

    fn apply_blocking(
        log: &Mutex<MetadataLog>,
        images: &watch::Sender<Arc<MetadataImage>>,
        command: &MetadataCommand,
    ) -> Result<Arc<MetadataImage>, MetadataError> {
        // The lock serialises appliers: compute, persist and publish happen as one step.
        let mut log = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = Arc::new(images.borrow().apply(command)?);
        if is_durable(command) {
            log.append(command)?;
        }
        images.send_replace(next.clone());
        Ok(next)
    }
}

impl MetadataStore for LocalMetadataStore {
    fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    fn apply(
        &self,
        command: MetadataCommand,
    ) -> BoxFuture<'_, Result<Arc<MetadataImage>, MetadataError>> {
        let log = self.log.clone();
        let images = self.images.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::apply_blocking(&log, &images, &command))
                .await
                .map_err(|e| MetadataError::Task(e.to_string()))?
        })
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::BrokerRegistration;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn register() -> MetadataCommand {
        MetadataCommand::RegisterBroker(BrokerRegistration {
            node_id: 1,
            rack: Some("r1".into()),
            endpoints: vec![],
            fenced: false,
        })
    }

    #[tokio::test]
    async fn applied_commands_survive_restart_and_rejected_ones_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, report) = LocalMetadataStore::open(dir.path(), "c1", register()).unwrap();
        assert_eq!(report.replayed, 0);
        let watcher = store.subscribe();
        let create = MetadataCommand::CreateTopic {
            id: Uuid::from_u128(7),
            name: "orders".into(),
            assignments: vec![vec![1], vec![1]],
            configs: BTreeMap::new(),
        };
        let image = store.apply(create.clone()).await.unwrap();
        assert_eq!(image.topic_by_name("orders").unwrap().partitions.len(), 2);
        assert!(watcher.has_changed().unwrap());
        assert!(matches!(
            store.apply(create).await,
            Err(MetadataError::Rejected(ApplyError::TopicExists(_)))
        ));
        drop(store);

        let (store, report) = LocalMetadataStore::open(dir.path(), "c1", register()).unwrap();
        assert_eq!(report.replayed, 1);
        let image = store.image();
        assert_eq!(
            image.topic_by_id(&Uuid::from_u128(7)).unwrap().name,
            "orders"
        );
        assert_eq!(image.brokers()[&1].rack.as_deref(), Some("r1"));
    }
}
