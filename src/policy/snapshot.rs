//! One consistent revision of everything a decision reads: config, routes, policy.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use sha2::{Digest, Sha256};

use super::{Policy, PolicyLoadError};
use crate::{
    config::{Config, ConfigError},
    routes::{RouteError, RouteTable},
};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    #[error(transparent)]
    Route(#[from] RouteError),
}

/// An immutable, fully built revision. Requests hold an `Arc` to the one they
/// started with, so a reload never changes a decision half-way.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub routes: RouteTable,
    pub policy: Policy,
    /// Content hash of config, model and policy (first 12 hex chars of SHA-256).
    pub revision: Arc<str>,
    pub loaded_at: SystemTime,
}

impl Snapshot {
    /// Reads the config at `path` and everything it names, and builds a snapshot.
    pub async fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::build(&text, path).await
    }

    /// Builds from config `text` as if read from `path` (relative paths resolve against it).
    pub async fn build(text: &str, path: &Path) -> Result<Snapshot, SnapshotError> {
        let config = Config::from_toml(text, path)?;
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).map_err(|source| PolicyLoadError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let model = read(&config.policy.model)?;
        let policy_text = read(&config.policy.policy)?;
        let policy = Policy::from_text(
            &model,
            &config.policy.model.display().to_string(),
            &policy_text,
            &config.policy.policy.display().to_string(),
        )
        .await?;
        let routes = RouteTable::compile(&config.routes)?;
        let mut h = Sha256::new();
        for part in [text, &model, &policy_text] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let revision: Arc<str> = Arc::from(&hex::encode(h.finalize())[..12]);
        Ok(Snapshot {
            config,
            routes,
            policy,
            revision,
            loaded_at: SystemTime::now(),
        })
    }

    /// Operator warnings that do not stop loading (SPEC §7).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let p = &self.config.policy;
        if p.subject_prefix.is_empty() && p.role_prefix.is_empty() {
            for s in &self.policy.subjects {
                if self.policy.role_names.contains(s) {
                    out.push(format!(
                        "policy subject `{s}` is also a role name and no `subject_prefix`/`role_prefix` is set: a user whose subject is `{s}` would get that role's permissions"
                    ));
                }
            }
        }
        out
    }
}
