//! `[[issuer]]`: a token issuer, its keys and claims.

use std::path::PathBuf;

use serde::Deserialize;

use crate::token::alg::Alg;

/// One trusted token issuer (`docs/pipeline.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
    /// `aud` must contain one of these; without `aud`, `client_id` must be one.
    /// Empty means the audience is not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    pub jwks_uri: Option<String>,
    pub jwks_file: Option<PathBuf>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_roles_claims")]
    pub roles_claims: Vec<String>,
    #[serde(default = "default_scope_claims")]
    pub scope_claims: Vec<String>,
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    pub token_use: Option<String>,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    #[serde(default = "default_min_refresh")]
    pub jwks_min_refresh_secs: u64,
    #[serde(default = "default_max_stale")]
    pub jwks_max_stale_secs: u64,
    #[serde(default = "default_fetch_timeout_ms")]
    pub jwks_timeout_ms: u64,
    /// Background refresh interval when the JWKS response has no `max-age`.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_secs: u64,
    /// Floor and ceiling applied to `Cache-Control: max-age`.
    #[serde(default = "default_refresh_min")]
    pub jwks_refresh_min_secs: u64,
    #[serde(default = "default_refresh_max")]
    pub jwks_refresh_max_secs: u64,
    /// Parsed `algorithms`, filled by [`Config::validate`].
    #[serde(skip)]
    pub algs: Vec<Alg>,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_roles_claims() -> Vec<String> {
    vec!["/cognito:groups".into()]
}
fn default_scope_claims() -> Vec<String> {
    vec!["/scope".into(), "/scp".into()]
}
fn default_subject_claim() -> String {
    "/sub".into()
}
fn default_leeway() -> u64 {
    60
}
fn default_min_refresh() -> u64 {
    30
}
fn default_max_stale() -> u64 {
    86_400
}
fn default_fetch_timeout_ms() -> u64 {
    5_000
}
fn default_refresh() -> u64 {
    3_600
}
fn default_refresh_min() -> u64 {
    60
}
fn default_refresh_max() -> u64 {
    86_400
}
