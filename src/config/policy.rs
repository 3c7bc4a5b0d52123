//! `[policy]`: the model, where policy text comes from, prefixes, attributes.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

/// Casbin model and policy (`docs/pipeline.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub model: PathBuf,
    /// The policy CSV file; exactly one of `policy` and `store` is set.
    pub policy: Option<PathBuf>,
    /// A shared policy store every replica follows (`docs/fleet.md`):
    /// `postgres://…` (the Casbin adapter table) or `http(s)://…` (a CSV object).
    pub store: Option<String>,
    /// The Casbin adapter table (`ptype, v0..v5`), optionally schema-qualified.
    #[serde(default = "default_table")]
    pub table: String,
    /// The LISTEN/NOTIFY channel `authzd store init`'s trigger notifies.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// How often the store is checked when no notification came (the HTTP
    /// store's only trigger; in Lambda, at most this often, on invocation).
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
    /// The last good policy from the store, written on every change and
    /// served at a start while the store is unreachable.
    pub cache_file: Option<PathBuf>,
    /// A bound on serving an old revision: once reads of the store have
    /// failed this long, every check answers 503 `policy_unavailable`
    /// (unset: the last good revision serves for as long as it takes).
    pub max_staleness_secs: Option<u64>,
    /// Prepended to the subject before enforcement (e.g. `user:`).
    #[serde(default)]
    pub subject_prefix: String,
    /// Prepended to every claim role before enforcement (e.g. `role:`).
    #[serde(default)]
    pub role_prefix: String,
    /// JSON Pointer of the claim giving the domain for four-field models,
    /// used when the request carries no `domain`.
    pub domain_claim: Option<String>,
    /// Reload when the config, model or policy file changes (`false`: only on SIGHUP).
    #[serde(default = "default_true")]
    pub watch: bool,
    /// A model outside the indexed evaluator's subset: evaluate it with
    /// casbin-rs (slower, and slower still as the policy grows), or refuse it.
    #[serde(default)]
    pub fallback: Fallback,
    /// Role definitions whose names are patterns, and the function that
    /// matches them (`{ g2 = "keyMatch2" }`), as Go Casbin's `AddNamedMatchingFunc`.
    #[serde(default)]
    pub role_matching: BTreeMap<String, String>,
    /// Role definitions whose domains are patterns (`{ g = "keyMatch" }`),
    /// as Go Casbin's `AddNamedDomainMatchingFunc`.
    #[serde(default)]
    pub domain_matching: BTreeMap<String, String>,
    /// The model's attribute fields (`r = sub, obj, act, tenant`), each
    /// taken from a claim of the verified token.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeConfig>,
}

/// One `[policy.attributes]` entry: `tenant = { claim = "/custom:tenant" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    /// JSON Pointer into the verified token's claims.
    pub claim: String,
    /// Used when the claim is absent, empty or of another type (else the
    /// check is denied with `attribute_missing`).
    pub default: Option<String>,
    /// `false` keeps the value out of the decision log (an email, a name).
    #[serde(default = "default_true")]
    pub log: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    #[default]
    Casbin,
    /// Refuse to load (a reload is rejected, the previous revision serves).
    Refuse,
}

fn default_true() -> bool {
    true
}

fn default_table() -> String {
    "casbin_rule".into()
}

fn default_channel() -> String {
    "authzd_policy".into()
}

fn default_poll_secs() -> u64 {
    30
}

/// A SQL identifier we interpolate: letters, digits, `_`, one optional `schema.` part.
pub(super) fn plain_identifier(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !p.as_bytes()[0].is_ascii_digit()
    };
    match s.split_once('.') {
        Some((schema, name)) => part(schema) && part(name),
        None => part(s),
    }
}
