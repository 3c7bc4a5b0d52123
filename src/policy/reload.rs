//! Publishing snapshots: build a complete new one off the request path, then
//! swap it in atomically. Requests never wait for a reload.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::snapshot::{Snapshot, SnapshotError};

/// The live snapshot plus what the last reload attempt said.
pub struct PolicyStore {
    current: ArcSwap<Snapshot>,
    config_path: PathBuf,
    last_error: Mutex<Option<String>>,
}

impl PolicyStore {
    pub fn new(snapshot: Snapshot, config_path: &Path) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
            config_path: config_path.to_owned(),
            last_error: Mutex::new(None),
        }
    }

    /// The snapshot a new request should use. Wait-free.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The error of the last failed reload, cleared by a successful one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Rebuilds from disk; on failure the current snapshot keeps serving.
    pub async fn reload(&self) -> Result<Arc<Snapshot>, SnapshotError> {
        match Snapshot::load(&self.config_path).await {
            Ok(next) => {
                let next = Arc::new(next);
                let old = self.current.swap(Arc::clone(&next));
                *self.last_error.lock() = None;
                crate::metrics::policy_reloaded(true, &next.revision);
                tracing::info!(from = %old.revision, to = %next.revision, rules = next.policy.rules, "policy reloaded");
                Ok(next)
            }
            Err(e) => {
                *self.last_error.lock() = Some(e.to_string());
                crate::metrics::policy_reloaded(false, &self.load().revision);
                tracing::error!(error = %e, "policy reload rejected; previous revision keeps serving");
                Err(e)
            }
        }
    }
}
