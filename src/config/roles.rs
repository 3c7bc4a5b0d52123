//! `[roles]`: roles looked up by subject.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Where roles come from besides token claims (`docs/configuration.md`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    pub lookup: Option<LookupConfig>,
}

/// An HTTP role directory: `GET url` with `{sub}` replaced by the
/// percent-encoded subject; the answer is a JSON array of strings or `{"roles": [...]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    pub url: String,
    /// Look up only for tokens carrying this scope.
    pub when_scope: Option<String>,
    #[serde(default = "default_lookup_ttl")]
    pub ttl_secs: u64,
    #[serde(default = "default_lookup_timeout")]
    pub timeout_ms: u64,
    /// Most subjects kept in the cache.
    #[serde(default = "default_lookup_entries")]
    pub max_entries: u64,
    /// Name of an environment variable holding a bearer token for the directory
    /// (secrets stay out of the config file).
    pub bearer_token_env: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_lookup_ttl() -> u64 {
    60
}
fn default_lookup_timeout() -> u64 {
    500
}
fn default_lookup_entries() -> u64 {
    100_000
}
