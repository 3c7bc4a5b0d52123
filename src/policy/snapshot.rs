//! One consistent revision of everything a decision reads: config, routes, policy.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use sha2::{Digest, Sha256};

use super::{Policy, PolicyLoadError};
use crate::{
    config::{Config, ConfigError, Fallback, PathCase},
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
    #[error("building the snapshot did not finish: {0}")]
    Aborted(String),
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
        Sources::read(path)?.build().await
    }

    /// Builds from config `text` as if read from `path` (relative paths resolve against it).
    pub async fn build(text: &str, path: &Path) -> Result<Snapshot, SnapshotError> {
        Sources::parse(text, path)?.build().await
    }

    /// Operator warnings that do not stop loading (`docs/pipeline.md`).
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.policy.slow_warning().into_iter().collect();
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

/// The files a snapshot is built from, read and hashed but not yet compiled:
/// cheap enough to tell whether anything changed before building.
pub struct Sources {
    config: Config,
    model: String,
    policy: String,
    /// What the snapshot's `revision` will be.
    pub revision: Arc<str>,
}

impl Sources {
    /// Reads the config at `path` and the model and policy it names.
    pub fn read(path: &Path) -> Result<Sources, SnapshotError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Sources, SnapshotError> {
        // The revision is the hash of what was decided on: the expanded text.
        let expanded = crate::config::expand_env(text, path)?;
        let text: &str = &expanded;
        let config = Config::from_expanded(text, path)?;
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).map_err(|source| PolicyLoadError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let model = read(&config.policy.model)?;
        let policy = read(&config.policy.policy)?;
        let mut h = Sha256::new();
        for part in [text, &model, &policy] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let revision: Arc<str> = Arc::from(&hex::encode(h.finalize())[..12]);
        Ok(Sources {
            config,
            model,
            policy,
            revision,
        })
    }

    /// Compiles the policy and routes: the expensive part.
    pub async fn build(self) -> Result<Snapshot, SnapshotError> {
        let Sources {
            config,
            model,
            policy,
            revision,
        } = self;
        let fold_case = config.request.path_case == PathCase::Insensitive;
        let opts = super::LoadOptions {
            fold_case,
            refuse_fallback: config.policy.fallback == Fallback::Refuse,
        };
        let policy = Policy::from_text_for(
            &model,
            &config.policy.model.display().to_string(),
            &policy,
            &config.policy.policy.display().to_string(),
            opts,
        )
        .await?;
        let routes = RouteTable::compile_folded(&config.routes, fold_case)?;
        Ok(Snapshot {
            config,
            routes,
            policy,
            revision,
            loaded_at: SystemTime::now(),
        })
    }
}
