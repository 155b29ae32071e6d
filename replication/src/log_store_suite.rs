//! openraft's own conformance suite for log stores and state machines, run against the
//! partition-log store (with group commit and with page-cache acknowledgements).

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use shoal_storage::{FlushPolicy, LogConfig, RealFs, SystemClock};

use crate::flusher::FlushPool;
use crate::log_store::{GroupStorage, LogStore, StorageOptions};
use crate::state_machine::ReplicaStateMachine;
use crate::types::{C, GroupId};

fn setup_error(e: impl std::fmt::Display) -> StorageError<C> {
    StorageError::from_io_error(
        openraft::ErrorSubject::Store,
        openraft::ErrorVerb::Read,
        std::io::Error::other(e.to_string()),
    )
}

struct Builder {
    policy: FlushPolicy,
}

/// Keeps the directory and the flush threads alive for one suite case.
struct Guard {
    _dir: tempfile::TempDir,
    _pool: Arc<FlushPool>,
}

impl StoreBuilder<C, LogStore, ReplicaStateMachine, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, LogStore, ReplicaStateMachine), StorageError<C>> {
        let dir = tempfile::tempdir().map_err(setup_error)?;
        let pool = FlushPool::new(2).map_err(setup_error)?;
        let config = LogConfig {
            flush_policy: self.policy,
            ..LogConfig::default()
        };
        let loaded = GroupStorage::open(
            StorageOptions {
                group: GroupId::Controller,
                dir: dir.path().to_path_buf(),
                log_config: config,
                fs: RealFs::shared(),
                clock: Arc::new(SystemClock),
                max_read_bytes: 1 << 20,
                observer: None,
            },
            &pool,
        )
        .map_err(setup_error)?;
        let sm = ReplicaStateMachine::new(Arc::clone(&loaded.storage), loaded.checkpoint, None)
            .map_err(setup_error)?;
        Ok((
            Guard {
                _dir: dir,
                _pool: pool,
            },
            LogStore::new(loaded.storage),
            sm,
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_passes_with_group_commit() {
    Suite::test_all(Builder {
        policy: FlushPolicy::GroupCommit,
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_passes_with_page_cache_acks() {
    Suite::test_all(Builder {
        policy: FlushPolicy::Never,
    })
    .await
    .unwrap();
}
