//! One consistent revision of everything a decision reads: config, routes, policy.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::SystemTime};

use sha2::{Digest, Sha256};

use super::{
    Policy, PolicyLoadError,
    change::{Change, Line},
    source::{Fetched, RowChange, StoreStatus, postgres::render, redact},
};
use crate::{
    config::{Config, ConfigError},
    routes::RouteTable,
};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    #[error("building the snapshot did not finish: {0}")]
    Aborted(String),
    #[error(transparent)]
    Store(#[from] super::source::StoreError),
    #[error("model `{model}` and config `{config}` disagree on attribute `{field}`: {message}")]
    Attribute {
        model: String,
        config: String,
        field: String,
        message: String,
    },
}

/// An immutable, fully built revision. Requests hold an `Arc` to the one they
/// started with, so a reload never changes a decision half-way.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub routes: RouteTable,
    pub policy: Policy,
    /// The identity of what decides (first 12 hex chars of SHA-256 over the
    /// deciding part of the config, the model and the policy; see
    /// [`deciding_config`]): replicas that differ only in listen addresses,
    /// connection limits or the decision log report the same revision.
    pub revision: Arc<str>,
    /// Hash of everything read, the whole config text included: any change
    /// to it is a reload (a listen address change must still be noticed),
    /// even when the revision stays.
    pub content: Arc<str>,
    pub loaded_at: SystemTime,
    /// False while a store-backed config has no policy yet (the store was
    /// unreachable at start and no cache file stood in): every check then
    /// answers `policy_unavailable`.
    pub available: bool,
    /// The `[shadow]` candidate, as a snapshot of its own (or why it does
    /// not load); `None` without `[shadow]`.
    pub shadow: Option<Result<Arc<Snapshot>, String>>,
    /// The model and policy text, kept for the explorer's *Policy* page
    /// only with `[admin]` on, and the policy only up to [`KEEP_POLICY_TEXT`].
    pub texts: Option<Texts>,
    /// Hash of everything read but the policy lines: while it stays, a
    /// policy file's change can be applied incrementally.
    pub frame: Arc<str>,
    /// The policy file's text, kept when the policy can be updated
    /// incrementally (the next edit is diffed against it).
    pub policy_text: Option<Arc<String>>,
    /// This revision was made from the one before by an incremental update
    /// (a policy file's changed lines, a store's changed rows), not built whole.
    pub incremental: bool,
    /// Hash of the deciding config and the model: with the policy's digest,
    /// the revision.
    decides: Arc<str>,
    /// A store's rows, as the sum of one hash per row (id and line): the
    /// policy's digest, updated row by row as the change log is applied.
    rows_digest: Option<u128>,
}

/// The largest policy text a snapshot keeps for the explorer.
pub const KEEP_POLICY_TEXT: usize = 4 << 20;

/// What the explorer shows of a snapshot's sources.
#[derive(Debug)]
pub struct Texts {
    pub model: String,
    /// `None` past [`KEEP_POLICY_TEXT`] bytes.
    pub policy: Option<String>,
    /// Where the policy text came from (a file, or a store and table).
    pub policy_name: String,
}

impl Snapshot {
    /// Reads the config at `path` and everything it names, and builds a
    /// snapshot. A config with a `store` reads it once; when the store does not
    /// answer, its `cache_file` stands in, else this fails.
    pub async fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
        let config = Config::load(path)?;
        let Some(status) = StoreStatus::new(&config.policy) else {
            return Sources::read(path, None)?.build().await;
        };
        let _client = super::source::initial(&status, &config.policy).await;
        match status.latest() {
            Some(text) => Sources::read(path, Some(&text))?.build().await,
            None => Err(SnapshotError::Store(super::source::StoreError {
                store: status.url.clone(),
                message: status
                    .view()
                    .error
                    .unwrap_or_else(|| "no policy read".into()),
            })),
        }
    }

    /// Builds from config `text` as if read from `path` (relative paths resolve against it).
    pub async fn build(text: &str, path: &Path) -> Result<Snapshot, SnapshotError> {
        Sources::parse(text, path, None)?.build().await
    }

    /// This snapshot with a store's row changes applied incrementally (the
    /// revision as a full read of the same rows would have it), or why not:
    /// then read the store whole.
    pub fn with_rows(&self, changes: &[RowChange]) -> Result<Snapshot, String> {
        let Some(mut digest) = self.rows_digest.filter(|_| self.available) else {
            return Err("the policy was not read from the store's rows".into());
        };
        // Each row's state before the changes and after them.
        let mut net: BTreeMap<i64, (Option<&RowChange>, Option<&RowChange>)> = BTreeMap::new();
        for c in changes {
            let e = net.entry(c.id).or_insert(((!c.present).then_some(c), None));
            e.1 = c.present.then_some(c);
        }
        let mut change = Change::default();
        let line = |c: &RowChange| -> Result<(u128, Line), String> {
            let order = u64::try_from(c.id)
                .ok()
                .filter(|o| *o > 0)
                .ok_or_else(|| format!("row id {} cannot order a rule", c.id))?;
            let mut text = String::new();
            render(&mut text, &c.ptype, &c.values).map_err(|m| format!("row id {}: {m}", c.id))?;
            let line = Line {
                ptype: c.ptype.clone(),
                values: c.values.clone(),
                order,
            };
            Ok((row_hash(c.id, text.trim_end_matches('\n')), line))
        };
        for (before, after) in net.values() {
            let same = match (before, after) {
                (Some(b), Some(a)) => b.ptype == a.ptype && b.values == a.values,
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some(b) = before {
                let (h, l) = line(b)?;
                digest = digest.wrapping_sub(h);
                change.removed.push(l);
            }
            if let Some(a) = after {
                let (h, l) = line(a)?;
                digest = digest.wrapping_add(h);
                change.added.push(l);
            }
        }
        let policy = self.policy.apply(&change, Arc::from(Vec::new()))?;
        let name = digest_name(digest);
        Ok(Snapshot {
            config: self.config.clone(),
            routes: self.routes.clone(),
            policy,
            revision: hash(&[&self.decides, &name]),
            content: hash(&[&self.frame, &name]),
            loaded_at: SystemTime::now(),
            available: true,
            shadow: self.shadow.clone(),
            // The text is composed on demand; the explorer shows it after the next full read.
            texts: self.texts.as_ref().map(|t| Texts {
                model: t.model.clone(),
                policy: None,
                policy_name: t.policy_name.clone(),
            }),
            frame: Arc::clone(&self.frame),
            policy_text: None,
            decides: Arc::clone(&self.decides),
            rows_digest: Some(digest),
            incremental: true,
        })
    }

    /// Operator warnings that do not stop loading (`docs/pipeline.md`).
    pub fn warnings(&self) -> Vec<Warning> {
        let mut out: Vec<Warning> = self
            .policy
            .slow_warning()
            .map(|message| Warning {
                code: "casbin_rs_evaluator",
                message,
            })
            .into_iter()
            .collect();
        let p = &self.config.policy;
        if p.subject_prefix.is_empty() && p.role_prefix.is_empty() {
            for s in &self.policy.shared_names {
                out.push(Warning {
                    code: "subject_is_role_name",
                    message: format!(
                        "policy subject `{s}` is also a role name and no `subject_prefix`/`role_prefix` is set: a user whose subject is `{s}` would get that role's permissions"
                    ),
                });
            }
        }
        out
    }
}

impl SnapshotError {
    /// Each problem that refused the revision, with a stable code (for
    /// `authzd validate --format json`).
    pub fn problems(&self) -> Vec<Warning> {
        let one = |code: &'static str, e: &dyn std::fmt::Display| Warning {
            code,
            message: e.to_string(),
        };
        match self {
            SnapshotError::Config(e) => vec![one(
                match e {
                    ConfigError::Read { .. } => "config_unreadable",
                    ConfigError::Parse { .. } => "config_syntax",
                    ConfigError::Env { .. } => "config_env_missing",
                    ConfigError::Invalid { .. } => "config_invalid",
                },
                e,
            )],
            SnapshotError::Policy(PolicyLoadError::Several(all)) => {
                all.iter().map(|e| one(load_code(e), e)).collect()
            }
            SnapshotError::Policy(e) => vec![one(load_code(e), e)],
            SnapshotError::Aborted(_) => vec![one("load_aborted", self)],
            SnapshotError::Store(_) => vec![one("store_unavailable", self)],
            SnapshotError::Attribute { .. } => vec![one("attribute_mismatch", self)],
        }
    }
}

fn load_code(e: &PolicyLoadError) -> &'static str {
    match e {
        PolicyLoadError::Read { .. } => "file_unreadable",
        PolicyLoadError::Model { .. } => "model_invalid",
        PolicyLoadError::Line { .. } => "policy_line_invalid",
        PolicyLoadError::Policy { .. } | PolicyLoadError::Several(_) => "policy_invalid",
    }
}

/// Something about a revision worth knowing that does not stop it: cost
/// or taste, never a mistake (a mistake fails the load).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// A stable snake_case identifier.
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The files a snapshot is built from, read and hashed but not yet compiled:
/// cheap enough to tell whether anything changed before building.
pub struct Sources {
    config: Config,
    model: String,
    policy: String,
    /// Where the policy text came from, for error messages.
    policy_name: String,
    /// For store text: the row behind each line.
    rows: Vec<Option<String>>,
    available: bool,
    /// What the snapshot's `revision` will be.
    pub revision: Arc<str>,
    /// What the snapshot's `content` will be.
    pub content: Arc<str>,
    /// What the snapshot's `frame` will be.
    frame: Arc<str>,
    decides: Arc<str>,
    rows_digest: Option<u128>,
    /// `[shadow]`'s model and policy text (or why they could not be read),
    /// and the revision they would have as the live policy.
    shadow: Option<(ShadowTexts, Arc<str>)>,
}

/// A `[shadow]` candidate's model and policy text, or why they could not be read.
type ShadowTexts = Result<(String, String), String>;

impl Sources {
    /// Reads the config at `path` and the model it names, and the policy
    /// file it names or, for a config with a `store`, `store_text` (none yet:
    /// an unavailable snapshot).
    pub fn read(path: &Path, store_text: Option<&Fetched>) -> Result<Sources, SnapshotError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, store_text)
    }

    fn parse(
        text: &str,
        path: &Path,
        store_text: Option<&Fetched>,
    ) -> Result<Sources, SnapshotError> {
        // The revision is the hash of what was decided on: the expanded text.
        let expanded = crate::config::expand_env(text, path)?;
        let text: &str = &expanded;
        let config = Config::from_expanded(text, path)?;
        let read = super::source::file::read;
        let model = read(&config.policy.model)?;
        let (policy, policy_name, rows, available) =
            match (&config.policy.policy, &config.policy.store) {
                (Some(file), _) => (read(file)?, file.display().to_string(), Vec::new(), true),
                (None, store) => {
                    let name = format!(
                        "{} table {}",
                        redact(store.as_deref().unwrap_or_default()),
                        config.policy.table
                    );
                    match store_text {
                        Some(f) => (f.text.clone(), name, f.rows.clone(), true),
                        None => (String::new(), name, Vec::new(), false),
                    }
                }
            };
        let deciding = deciding_config(text);
        let shadow = config.shadow.as_ref().map(|s| {
            let texts = read(&s.model)
                .and_then(|m| Ok((m, read(&s.policy)?)))
                .map_err(|e| e.to_string());
            // As the live revision would be, were the candidate promoted.
            let revision = match &texts {
                Ok((m, p)) => hash(&[
                    &hash(&[&deciding, m]),
                    &hex::encode(Sha256::digest(p.as_bytes())),
                ]),
                Err(_) => Arc::from("none"),
            };
            (texts, revision)
        });
        let shadow_text = match &shadow {
            Some((Ok((m, p)), _)) => format!("{m}\u{0}{p}"),
            Some((Err(e), _)) => e.clone(),
            None => String::new(),
        };
        // The policy is hashed once (it can be a million lines): a file's
        // text whole; a store's rows one by one, so that a row change
        // updates the digest without rereading the rest.
        let rows_digest = rows_digest(&policy, &rows);
        let policy_digest = match rows_digest {
            Some(d) => digest_name(d),
            None => hex::encode(Sha256::digest(policy.as_bytes())),
        };
        let frame = hash(&[text, &model, &shadow_text]);
        let decides = hash(&[&deciding, &model]);
        let content = hash(&[&frame, &policy_digest]);
        let revision: Arc<str> = if available {
            hash(&[&decides, &policy_digest])
        } else {
            Arc::from("none")
        };
        Ok(Sources {
            config,
            model,
            policy,
            policy_name,
            rows,
            available,
            revision,
            content,
            frame,
            decides,
            rows_digest,
            shadow,
        })
    }

    /// `current` with this content by an incremental update, when only the
    /// policy file's lines changed and the policy allows it; else `self`
    /// back, with why not, for a full [`build`](Self::build).
    pub fn apply_to(self, current: &Snapshot) -> Result<Snapshot, (Box<Sources>, String)> {
        let why = match (&current.policy_text, current.policy.line_orders()) {
            _ if self.frame != current.frame => {
                Some("the config, model or [shadow] changed".to_string())
            }
            _ if !self.available || !current.available || !self.rows.is_empty() => {
                Some("the policy does not come from a file".to_string())
            }
            (Some(text), Some(orders)) => match super::delta::diff(text, orders, &self.policy) {
                Ok((change, orders)) => match current.policy.apply(&change, orders.into()) {
                    Ok(policy) => return Ok(self.finish(current, policy, change.len())),
                    Err(why) => Some(why),
                },
                Err(why) => Some(why),
            },
            _ => Some(
                current
                    .policy
                    .built_whole_because()
                    .unwrap_or("the previous text was not kept")
                    .to_string(),
            ),
        };
        Err((Box::new(self), why.unwrap_or_default()))
    }

    /// The snapshot after an incremental update to `policy`.
    fn finish(self, current: &Snapshot, policy: Policy, changed: usize) -> Snapshot {
        tracing::debug!(lines = changed, "policy updated incrementally");
        let policy_text = Arc::new(self.policy);
        let texts = current.texts.as_ref().map(|t| Texts {
            model: t.model.clone(),
            policy: (policy_text.len() <= KEEP_POLICY_TEXT).then(|| policy_text.to_string()),
            policy_name: t.policy_name.clone(),
        });
        Snapshot {
            config: self.config,
            routes: current.routes.clone(),
            policy,
            revision: self.revision,
            content: self.content,
            loaded_at: SystemTime::now(),
            available: true,
            shadow: current.shadow.clone(),
            texts,
            frame: self.frame,
            policy_text: Some(policy_text),
            decides: self.decides,
            rows_digest: None,
            incremental: true,
        }
    }

    /// Compiles the policy and routes: the expensive part.
    pub async fn build(self) -> Result<Snapshot, SnapshotError> {
        let Sources {
            config,
            model,
            policy,
            policy_name,
            rows,
            available,
            revision,
            content,
            frame,
            decides,
            rows_digest,
            shadow,
        } = self;
        let mut opts =
            super::LoadOptions::of(&config).map_err(|message| PolicyLoadError::Model {
                path: config.policy.model.display().to_string(),
                message,
            })?;
        // Routes first: cheap, and a bad route is named before the policy is read.
        let routes = RouteTable::of_config(&config, opts.fold_case)?;
        let policy_text = policy;
        // A store's rows keep their ids as order keys.
        opts.orders = (!rows.is_empty())
            .then(|| rows.iter().map(|r| r.as_deref()?.parse().ok()).collect())
            .flatten();
        let policy = Policy::from_text_for(
            &model,
            &config.policy.model.display().to_string(),
            &policy_text,
            &policy_name,
            opts,
        )
        .await
        .map_err(|e| name_row(e, &rows))?;
        check_attributes(&config, &policy)?;
        let shadow = match shadow {
            None => None,
            Some((texts, shadow_revision)) => Some(
                build_shadow(&config, &routes, texts, shadow_revision)
                    .await
                    .map(Arc::new),
            ),
        };
        if let Some(Err(e)) = &shadow {
            tracing::warn!(error = %e, "the [shadow] candidate does not load; the live policy is unaffected");
        }
        let texts = config.admin.is_some().then(|| Texts {
            policy: (policy_text.len() <= KEEP_POLICY_TEXT).then(|| policy_text.clone()),
            model,
            policy_name,
        });
        let policy_text =
            (policy.line_orders().is_some() && rows.is_empty()).then(|| Arc::new(policy_text));
        Ok(Snapshot {
            frame,
            policy_text,
            decides,
            rows_digest,
            incremental: false,
            config,
            routes,
            policy,
            revision,
            content,
            loaded_at: SystemTime::now(),
            available,
            shadow,
            texts,
        })
    }
}

/// The `[shadow]` candidate as a snapshot of its own: the live config and
/// routes with the candidate's model and policy. Its failure is a message,
/// never the live snapshot's failure.
async fn build_shadow(
    config: &Config,
    routes: &RouteTable,
    texts: ShadowTexts,
    revision: Arc<str>,
) -> Result<Snapshot, String> {
    let (model, policy) = texts?;
    let Some(s) = &config.shadow else {
        return Err("no [shadow]".into());
    };
    let opts = super::LoadOptions::of(config).map_err(|m| format!("{}: {m}", s.model.display()))?;
    let compiled = Policy::from_text_for(
        &model,
        &s.model.display().to_string(),
        &policy,
        &s.policy.display().to_string(),
        opts,
    )
    .await
    .map_err(|e| e.to_string())?;
    if compiled
        .attributes
        .iter()
        .any(|a| !config.policy.attributes.contains_key(a))
    {
        return Err(format!(
            "the candidate model's attribute fields {:?} are not all in [policy.attributes]",
            compiled.attributes
        ));
    }
    let mut shadow_config = config.clone();
    shadow_config.shadow = None;
    shadow_config.policy.model.clone_from(&s.model);
    shadow_config.policy.policy = Some(s.policy.clone());
    Ok(Snapshot {
        config: shadow_config,
        routes: routes.clone(),
        policy: compiled,
        revision,
        content: Arc::from("shadow"),
        loaded_at: SystemTime::now(),
        available: true,
        shadow: None,
        texts: None,
        frame: Arc::from("shadow"),
        policy_text: None,
        decides: Arc::from("shadow"),
        rows_digest: None,
        incremental: false,
    })
}

/// Every attribute field of the model has a `[policy.attributes]` entry,
/// and every entry is a field of the model.
fn check_attributes(config: &Config, policy: &Policy) -> Result<(), SnapshotError> {
    let err = |field: &str, message: &str| SnapshotError::Attribute {
        model: config.policy.model.display().to_string(),
        config: config.source.display().to_string(),
        field: field.to_string(),
        message: message.to_string(),
    };
    let mapped = &config.policy.attributes;
    if let Some(f) = policy.attributes.iter().find(|f| !mapped.contains_key(*f)) {
        return Err(err(
            f,
            "the model's request definition names it, and `[policy.attributes]` does not say which claim fills it",
        ));
    }
    if let Some(f) = mapped.keys().find(|k| !policy.attributes.contains(k)) {
        return Err(err(
            f,
            "`[policy.attributes]` maps it, and the model's request definition has no such field",
        ));
    }
    Ok(())
}

/// One store row's share of the rows' digest: 128 bits of SHA-256 over its
/// id and its line. The digest is their sum, so it does not depend on the
/// order rows were read or changed in (the ids fix the policy order).
fn row_hash(id: i64, line: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(id.to_be_bytes());
    h.update(line.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    u128::from_be_bytes(first)
}

/// The rows' digest of a store's text (`rows`: each line's row id), when
/// every row has an id.
fn rows_digest(text: &str, rows: &[Option<String>]) -> Option<u128> {
    if rows.is_empty() {
        return None;
    }
    let mut sum = 0u128;
    let mut lines = text.lines();
    for id in rows {
        let id: i64 = id.as_deref()?.parse().ok()?;
        sum = sum.wrapping_add(row_hash(id, lines.next()?));
    }
    Some(sum)
}

fn digest_name(d: u128) -> String {
    format!("rows:{d:032x}")
}

/// First 12 hex chars of SHA-256 over `parts`, each length-prefixed.
fn hash(parts: &[&str]) -> Arc<str> {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    Arc::from(&hex::encode(h.finalize())[..12])
}

/// Config keys that never change a decision: where authzd listens and how it
/// treats connections, where its decision log and spans go, and where the policy
/// text is read from and how often (the text itself is hashed on its own).
const NOT_DECIDING: &[&[&str]] = &[
    &["server"],
    &["decision_log"],
    &["tracing"],
    &["shadow"],
    &["admin"],
    &["policy", "model"],
    &["policy", "policy"],
    &["policy", "store"],
    &["policy", "table"],
    &["policy", "channel"],
    &["policy", "poll_secs"],
    &["policy", "cache_file"],
    &["policy", "watch"],
];

/// The part of the (expanded, valid) config text that decides, in one
/// canonical spelling: keys sorted, comments and layout gone, the keys of
/// [`NOT_DECIDING`] removed. A store URL (and its password) is never hashed.
pub fn deciding_config(text: &str) -> String {
    let Ok(mut table) = text.parse::<toml::Table>() else {
        // Unreachable for a config that parsed; hash the text rather than fail.
        return text.to_string();
    };
    for path in NOT_DECIDING {
        match path {
            [key] => {
                table.remove(*key);
            }
            [section, key] => {
                if let Some(toml::Value::Table(t)) = table.get_mut(*section) {
                    t.remove(*key);
                }
            }
            _ => {}
        }
    }
    toml::to_string(&table).unwrap_or_else(|_| text.to_string())
}

/// A store's line numbers mean little to whoever edits the table: name the row.
fn name_row(e: PolicyLoadError, rows: &[Option<String>]) -> PolicyLoadError {
    match e {
        PolicyLoadError::Line {
            path,
            line,
            message,
        } => match rows.get(line.wrapping_sub(1)) {
            Some(Some(id)) => PolicyLoadError::Line {
                path,
                line,
                message: format!("row id {id}: {message}"),
            },
            _ => PolicyLoadError::Line {
                path,
                line,
                message,
            },
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[server]\nhttp_addr = \"127.0.0.1:8181\"\n\n[[route]]\npath = \"/a\"\n\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n";

    #[test]
    fn only_deciding_settings_change_the_revision() {
        let base = deciding_config(BASE);
        for same in [
            BASE.replace("8181", "9191"),
            format!("# a comment\n{BASE}\n[decision_log]\noutput = \"/var/log/authzd.log\"\n"),
            BASE.replace(
                "[server]\n",
                "[server]\nidle_timeout_secs = 5\nmax_connections = 10\n",
            ),
            BASE.replace(
                "policy = \"policy.csv\"",
                "policy = \"/etc/authzd/policy.csv\"\nwatch = false",
            ),
        ] {
            assert_eq!(deciding_config(&same), base, "{same}");
        }
        for differs in [
            BASE.replace("/a", "/b"),
            format!("{BASE}\n[request]\npath_case = \"insensitive\"\n"),
            BASE.replace("[policy]\n", "[policy]\nrole_prefix = \"role:\"\n"),
        ] {
            assert_ne!(deciding_config(&differs), base, "{differs}");
        }
        let stored = BASE.replace(
            "policy = \"policy.csv\"",
            "store = \"postgres://u:s3cret@db/x\"",
        );
        assert!(
            !deciding_config(&stored).contains("s3cret"),
            "a store password is never hashed"
        );
    }
}
