//! Typed configuration (`authzd.toml`) and its validation.
//!
//! This module owns parsing and checking the file; it never touches the
//! network or builds runtime objects. Paths in the file are relative to the
//! file's own directory and are resolved here, once.

use std::collections::BTreeMap;
use std::{
    borrow::Cow,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::token::alg::Alg;

mod admin;
pub use admin::AdminConfig;

/// Everything wrong with a configuration file, each naming file, key and value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "invalid config `{path}` line {line}: environment variable `{name}` is not set (written `${{{name}}}`)"
    )]
    Env {
        path: PathBuf,
        line: usize,
        name: String,
    },
    #[error("invalid config `{path}`: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// What a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`, never a token) gets: see [`CorsPreflight`].
    #[serde(default)]
    pub cors_preflight: CorsPreflight,
    /// The CORS answer authzd gives where it answers preflights itself.
    #[serde(default)]
    pub cors: CorsConfig,
    #[serde(default, rename = "issuer")]
    pub issuers: Vec<IssuerConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    pub policy: PolicyConfig,
    #[serde(default)]
    pub roles: RolesConfig,
    #[serde(default)]
    pub decision_log: DecisionLogConfig,
    /// How requests are put in canonical form (`docs/security.md`).
    #[serde(default)]
    pub request: RequestConfig,
    /// How `authzd lambda` answers API Gateway.
    #[serde(default)]
    pub lambda: LambdaConfig,
    /// Exporting a span per decision (OpenTelemetry, OTLP over gRPC).
    #[serde(default)]
    pub tracing: TracingConfig,
    /// A candidate model and policy decided beside the live one, never enforced.
    #[serde(default)]
    pub shadow: Option<ShadowConfig>,
    /// The decision explorer's own listener (off when absent).
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The file this was read from; relative paths were resolved against its directory.
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_grpc_addr")]
    pub grpc_addr: SocketAddr,
    #[serde(default = "default_http_addr")]
    pub http_addr: SocketAddr,
    /// Path prefix of the Envoy ext_authz HTTP service mode (Envoy's `path_prefix`).
    #[serde(default = "default_ext_authz_prefix")]
    pub ext_authz_prefix: String,
    /// A connection must send a complete request head within this time of
    /// being accepted (and, on HTTP/1, of starting a new head), or it is closed.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// A connection with no request in flight is closed this long after its last one.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Open connections per port; past this, new ones wait to be accepted.
    /// Keep it below the process's descriptor limit (`ulimit -n`).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams (requests) per connection.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: default_grpc_addr(),
            http_addr: default_http_addr(),
            ext_authz_prefix: default_ext_authz_prefix(),
            header_read_timeout_secs: default_header_read_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_concurrent_streams: default_max_concurrent_streams(),
        }
    }
}

fn default_header_read_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_concurrent_streams() -> u32 {
    256
}

fn default_grpc_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}

fn default_http_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8181))
}

fn default_ext_authz_prefix() -> String {
    "/ext_authz".into()
}

/// `[lambda]`: the Lambda authorizer's answers (`docs/lambda.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    #[serde(default)]
    pub response: LambdaResponse,
    #[serde(default)]
    pub policy_scope: LambdaPolicyScope,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaResponse {
    /// An IAM policy document.
    #[default]
    Iam,
    /// `{"isAuthorized": …}` (HTTP API with simple responses enabled).
    Simple,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaPolicyScope {
    /// Every route of the route table this principal may call: safe to cache.
    #[default]
    Routes,
    /// The current route only: needs an authorizer TTL of 0, or the route
    /// among the identity sources.
    Request,
}

/// `[request]`: what the upstream treats as the same request. Secure defaults;
/// see [`crate::request`] for what each setting does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// A path or method that is not in canonical form: refused, or normalized.
    #[serde(default)]
    pub noncanonical: Noncanonical,
    /// `X-HTTP-Method-Override` and friends: refused, or authorized as well.
    #[serde(default)]
    pub method_override: MethodOverride,
    /// Whether the upstream matches paths case-insensitively.
    #[serde(default)]
    pub path_case: PathCase,
    /// Whether the upstream routes `/a/` and `/a` differently.
    #[serde(default)]
    pub trailing_slash: TrailingSlash,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Noncanonical {
    #[default]
    Reject,
    /// Only where the gateway forwards the normalized path to the upstream.
    Normalize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodOverride {
    #[default]
    Reject,
    /// The overridden method must be allowed too.
    Authorize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathCase {
    #[default]
    Sensitive,
    /// Request paths, route paths and policy object patterns are lower-cased.
    Insensitive,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailingSlash {
    /// `/a/` is decided as `/a`.
    #[default]
    Same,
    Distinct,
}

/// What a CORS preflight gets (`docs/security.md`, "CORS preflights"). A
/// preflight carries no token, so forwarding it lets anyone reach upstream
/// handlers that run for every method: no mode but `allow` ever does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorsPreflight {
    /// Answered by authzd from `[cors]` where the interface can carry an
    /// answer to the client (Envoy gRPC and HTTP mode); refused elsewhere.
    #[default]
    Answer,
    /// Refused on every interface: the gateway is expected to answer preflights.
    Deny,
    /// Decided like any request (a browser's preflight has no token: 401).
    Check,
    /// Forwarded to the upstream without a token. Only for upstreams known to
    /// answer preflights without running any handler.
    Allow,
}

/// `[cors]`: the answer to an allowed preflight (`cors_preflight = "answer"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), subdomain patterns
    /// (`https://*.example.com`), or `*` (any origin, without credentials).
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default = "default_cors_methods")]
    pub allow_methods: Vec<String>,
    #[serde(default = "default_cors_headers")]
    pub allow_headers: Vec<String>,
    /// `Access-Control-Max-Age`: how long a browser may cache the answer.
    #[serde(default = "default_cors_max_age")]
    pub max_age_secs: u64,
    /// `Access-Control-Allow-Credentials: true` (never with origin `*`).
    #[serde(default)]
    pub allow_credentials: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allow_origins: Vec::new(),
            allow_methods: default_cors_methods(),
            allow_headers: default_cors_headers(),
            max_age_secs: default_cors_max_age(),
            allow_credentials: false,
        }
    }
}

fn default_cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}
fn default_cors_headers() -> Vec<String> {
    vec!["authorization".into(), "content-type".into()]
}
fn default_cors_max_age() -> u64 {
    600
}

/// Why an `[cors] allow_origins` entry is not an origin authzd can match
/// exactly: `*`, `null`, `scheme://host[:port]`, or `scheme://*.host[:port]`
/// (the `*` stands for one or more whole leading DNS labels).
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" || origin == "null" {
        return Ok(());
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err(format!(
            "`{origin}` is not an origin like `https://app.example.com`"
        ));
    };
    let rest = rest.strip_prefix("*.").unwrap_or(rest);
    let host = match rest.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => rest,
    };
    let label =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        || host.is_empty()
        || !host.split('.').all(label)
        || origin.bytes().any(|b| b.is_ascii_uppercase())
    {
        return Err(format!(
            "`{origin}` is not an origin: `scheme://host[:port]` in lower case, no path, `*` only as `scheme://*.domain`"
        ));
    }
    Ok(())
}

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

/// One row of the route table (`docs/configuration.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub auth: RouteAuth,
}

fn default_method() -> String {
    "ANY".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    #[default]
    Jwt,
    None,
}

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
fn plain_identifier(s: &str) -> bool {
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
    pub headers: std::collections::BTreeMap<String, String>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// `stdout`, `off`, or a file path (appended to).
    #[serde(default = "default_log_output")]
    pub output: String,
    /// Records buffered between the request path and the writer task.
    #[serde(default = "default_log_buffer")]
    pub buffer: usize,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            output: default_log_output(),
            buffer: default_log_buffer(),
        }
    }
}

/// `[shadow]`: a candidate model and policy (same routes, issuers and
/// settings) that decides beside the live one; its answers are recorded and
/// counted, never enforced (`docs/policy-changes.md`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    pub model: PathBuf,
    pub policy: PathBuf,
    /// The fraction of decisions the candidate also decides, 0.0 to 1.0.
    #[serde(default = "default_sample")]
    pub sample: f64,
}

fn default_sample() -> f64 {
    1.0
}

/// `[tracing]`: with `otlp_endpoint` set, one span per decision is exported
/// over OTLP/gRPC, off the request path. Nothing here changes a decision.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector, `http://host:port` or `https://host:port` (OTLP gRPC, usually port 4317).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute of every span.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Spans waiting for export; past this, new spans are dropped and counted.
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// How long one export may take before its spans are dropped and counted.
    #[serde(default)]
    pub export_timeout_ms: Option<u64>,
}

impl TracingConfig {
    pub const DEFAULT_SERVICE_NAME: &str = "authzd";
    pub const DEFAULT_QUEUE_SIZE: usize = 4096;
    pub const DEFAULT_EXPORT_TIMEOUT_MS: u64 = 5000;
}

fn default_log_output() -> String {
    "stdout".into()
}
fn default_log_buffer() -> usize {
    16_384
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses `text` as if read from `path` (relative paths resolve against its
    /// directory), after replacing `${NAME}` with the environment variable.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let text = expand_env(text, path)?;
        Self::from_expanded(&text, path)
    }

    /// Parses text whose `${NAME}`s were already replaced ([`expand_env`]).
    pub fn from_expanded(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.source = path.to_owned();
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        config.resolve_paths(&base);
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.policy.model);
        if let Some(p) = self.policy.policy.as_mut() {
            resolve(p);
        }
        if let Some(p) = self.policy.cache_file.as_mut() {
            resolve(p);
        }
        if let Some(s) = self.shadow.as_mut() {
            resolve(&mut s.model);
            resolve(&mut s.policy);
        }
        for issuer in &mut self.issuers {
            if let Some(file) = issuer.jwks_file.as_mut() {
                resolve(file);
            }
        }
        if !matches!(self.decision_log.output.as_str(), "stdout" | "off") {
            let mut p = PathBuf::from(&self.decision_log.output);
            resolve(&mut p);
            self.decision_log.output = p.to_string_lossy().into_owned();
        }
    }

    /// An error about `key` of this file (for checks made where the value is used).
    pub fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let p = &self.policy;
        match (&p.policy, &p.store) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(
                    "policy.store",
                    "set either `policy` (a file) or `store`, not both",
                ));
            }
            (None, None) => {
                return Err(self.invalid(
                    "policy.policy",
                    "missing: set `policy` (a CSV file) or `store` (a shared store)",
                ));
            }
            _ => {}
        }
        if let Some(url) = &p.store
            && crate::policy::source::url::StoreKind::of(url).is_none()
        {
            return Err(self.invalid(
                "policy.store",
                format!(
                    "`{}` is not a store URL: use postgres://, postgresql://, http:// or https://",
                    crate::policy::source::url::redact(url)
                ),
            ));
        }
        if !plain_identifier(&p.table) {
            return Err(self.invalid(
                "policy.table",
                format!(
                    "`{}` must be a plain SQL name (letters, digits, `_`, optionally `schema.`)",
                    p.table
                ),
            ));
        }
        if !plain_identifier(&p.channel) || p.channel.contains('.') {
            return Err(self.invalid(
                "policy.channel",
                format!(
                    "`{}` must be a plain SQL name (letters, digits, `_`)",
                    p.channel
                ),
            ));
        }
        if p.poll_secs == 0 {
            return Err(self.invalid("policy.poll_secs", "must be at least 1"));
        }
        match p.max_staleness_secs {
            Some(0) => return Err(self.invalid("policy.max_staleness_secs", "must be at least 1")),
            Some(_) if p.store.is_none() => {
                return Err(self.invalid(
                    "policy.max_staleness_secs",
                    "bounds how long a shared store may be unreachable: set `store` too",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks everything that can be checked without the network.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for i in 0..self.issuers.len() {
            self.validate_issuer(i)?;
            if !seen.insert(self.issuers[i].issuer.clone()) {
                return Err(self.invalid(
                    format!("issuer[{i}].issuer"),
                    format!("issuer `{}` is configured twice", self.issuers[i].issuer),
                ));
            }
        }
        let files = [
            Some(("policy.model", &self.policy.model)),
            self.policy.policy.as_ref().map(|p| ("policy.policy", p)),
        ];
        for (key, file) in files.into_iter().flatten() {
            if !file.is_file() {
                return Err(self.invalid(key, format!("file `{}` does not exist", file.display())));
            }
        }
        self.validate_store()?;
        for (name, a) in &self.policy.attributes {
            let key = format!("policy.attributes.{name}");
            let is_ident = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !is_ident || ["sub", "obj", "act", "dom"].contains(&name.as_str()) {
                return Err(self.invalid(
                    key,
                    "an attribute is a request field name of the model (letters, digits, `_`), not `sub`, `obj`, `act` or `dom`",
                ));
            }
            check_pointer(&a.claim).map_err(|m| self.invalid(format!("{key}.claim"), m))?;
            if a.default.as_deref() == Some("") {
                return Err(self.invalid(
                    format!("{key}.default"),
                    "must not be empty: an empty value would equal a path value that did not match",
                ));
            }
        }
        if let Some(ptr) = &self.policy.domain_claim {
            check_pointer(ptr).map_err(|m| self.invalid("policy.domain_claim", m))?;
        }
        let prefix = &self.server.ext_authz_prefix;
        let reserved = ["/v1", "/healthz", "/readyz", "/metrics"];
        if !prefix.starts_with('/')
            || prefix.len() < 2
            || prefix.ends_with('/')
            || prefix.contains(['{', '}', '*', '?', '#'])
            || reserved
                .iter()
                .any(|r| prefix == r || prefix.starts_with(&format!("{r}/")))
        {
            return Err(self.invalid(
                "server.ext_authz_prefix",
                format!("`{prefix}` must be a path like `/ext_authz`: leading `/`, no trailing `/`, no `{{` `}}` `*` `?` `#`, not under `/v1`, `/healthz`, `/readyz` or `/metrics`"),
            ));
        }
        if let Some(l) = &self.roles.lookup {
            if !(l.url.starts_with("http://") || l.url.starts_with("https://"))
                || !l.url.contains("{sub}")
            {
                return Err(self.invalid(
                    "roles.lookup.url",
                    format!("`{}` must be an http(s) URL containing `{{sub}}`", l.url),
                ));
            }
            if l.timeout_ms == 0 || l.max_entries == 0 {
                return Err(self.invalid(
                    "roles.lookup",
                    "`timeout_ms` and `max_entries` must be at least 1",
                ));
            }
            if let Some(var) = &l.bearer_token_env
                && std::env::var(var).is_err()
            {
                return Err(self.invalid(
                    "roles.lookup.bearer_token_env",
                    format!("environment variable `{var}` is not set"),
                ));
            }
            for (k, v) in &l.headers {
                if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(v).is_err()
                {
                    return Err(self.invalid(
                        format!("roles.lookup.headers.{k}"),
                        "not a valid HTTP header",
                    ));
                }
            }
        }
        let s = &self.server;
        for (key, value) in [
            (
                "server.header_read_timeout_secs",
                s.header_read_timeout_secs,
            ),
            ("server.idle_timeout_secs", s.idle_timeout_secs),
            ("server.max_connections", s.max_connections as u64),
            (
                "server.max_concurrent_streams",
                u64::from(s.max_concurrent_streams),
            ),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1"));
            }
        }
        if self.decision_log.buffer == 0 {
            return Err(self.invalid("decision_log.buffer", "must be at least 1"));
        }
        self.validate_tracing()?;
        if let Some(a) = &self.admin {
            let ports = [self.server.grpc_addr, self.server.http_addr];
            a.check(&ports).map_err(|(key, m)| self.invalid(key, m))?;
        }
        if let Some(s) = &self.shadow
            && !(0.0..=1.0).contains(&s.sample)
        {
            return Err(self.invalid("shadow.sample", "must be between 0.0 and 1.0"));
        }
        self.validate_cors()
    }

    fn validate_tracing(&self) -> Result<(), ConfigError> {
        let t = &self.tracing;
        if let Some(e) = &t.otlp_endpoint {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            match rest {
                Some(hp) if !hp.is_empty() && !hp.contains(['/', '?', '#', ' ', '@']) => {}
                _ => {
                    return Err(self.invalid(
                        "tracing.otlp_endpoint",
                        format!(
                            "`{e}` is not `http://host:port` or `https://host:port` (OTLP over gRPC has no path)"
                        ),
                    ));
                }
            }
        }
        if t.queue_size == Some(0) {
            return Err(self.invalid("tracing.queue_size", "must be at least 1"));
        }
        if t.export_timeout_ms == Some(0) {
            return Err(self.invalid("tracing.export_timeout_ms", "must be at least 1"));
        }
        if t.otlp_endpoint.is_none()
            && (t.service_name.is_some() || t.queue_size.is_some() || t.export_timeout_ms.is_some())
        {
            return Err(self.invalid(
                "tracing",
                "has settings but no `otlp_endpoint`: nothing would be exported",
            ));
        }
        Ok(())
    }

    fn validate_cors(&self) -> Result<(), ConfigError> {
        let c = &self.cors;
        for o in &c.allow_origins {
            check_origin(o).map_err(|m| self.invalid("cors.allow_origins", m))?;
        }
        if c.allow_credentials && c.allow_origins.iter().any(|o| o == "*") {
            return Err(self.invalid(
                "cors.allow_credentials",
                "cannot be true with origin `*`: any site could make credentialed requests",
            ));
        }
        for (key, list) in [
            ("cors.allow_methods", &c.allow_methods),
            ("cors.allow_headers", &c.allow_headers),
        ] {
            if let Some(bad) = list
                .iter()
                .find(|v| v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic() && b != b','))
            {
                return Err(self.invalid(key, format!("`{bad}` is not an HTTP token")));
            }
        }
        if let Some(m) = c
            .allow_methods
            .iter()
            .find(|m| m.bytes().any(|b| b.is_ascii_lowercase()))
        {
            return Err(self.invalid(
                "cors.allow_methods",
                format!("`{m}` must be upper case (methods are case-sensitive)"),
            ));
        }
        Ok(())
    }

    fn validate_issuer(&mut self, i: usize) -> Result<(), ConfigError> {
        let key = |k: &str| format!("issuer[{i}].{k}");
        let iss = &self.issuers[i];
        if iss.issuer.is_empty() {
            return Err(self.invalid(key("issuer"), "must not be empty"));
        }
        if iss.jwks_uri.is_some() && iss.jwks_file.is_some() {
            return Err(self.invalid(
                key("jwks_file"),
                "set either `jwks_uri` or `jwks_file`, not both",
            ));
        }
        if let Some(file) = &iss.jwks_file
            && !file.is_file()
        {
            return Err(self.invalid(
                key("jwks_file"),
                format!("file `{}` does not exist", file.display()),
            ));
        }
        if iss.jwks_file.is_none() {
            let url = iss.jwks_uri.as_deref().unwrap_or(&iss.issuer);
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(self.invalid(
                    key(if iss.jwks_uri.is_some() {
                        "jwks_uri"
                    } else {
                        "issuer"
                    }),
                    format!("`{url}` is not an http(s) URL, and no `jwks_file` is set"),
                ));
            }
        }
        if iss.algorithms.is_empty() {
            return Err(self.invalid(key("algorithms"), "must list at least one algorithm"));
        }
        let mut algs = Vec::new();
        for name in &iss.algorithms {
            let alg = Alg::parse(name).ok_or_else(|| {
                self.invalid(
                    key("algorithms"),
                    format!(
                        "`{name}` is not an accepted algorithm (RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA; `none` and HMAC are never accepted)"
                    ),
                )
            })?;
            algs.push(alg);
        }
        for (field, ptrs) in [
            ("roles_claims", &iss.roles_claims),
            ("scope_claims", &iss.scope_claims),
        ] {
            for p in ptrs {
                check_pointer(p).map_err(|m| self.invalid(key(field), m))?;
            }
        }
        check_pointer(&iss.subject_claim).map_err(|m| self.invalid(key("subject_claim"), m))?;
        if let Some(use_) = &iss.token_use
            && use_ != "access"
            && use_ != "id"
        {
            return Err(self.invalid(
                key("token_use"),
                format!("`{use_}` must be `access` or `id`"),
            ));
        }
        if iss.jwks_refresh_min_secs == 0 || iss.jwks_refresh_min_secs > iss.jwks_refresh_max_secs {
            return Err(self.invalid(
                key("jwks_refresh_min_secs"),
                "must be at least 1 and at most `jwks_refresh_max_secs`",
            ));
        }
        if iss.jwks_timeout_ms == 0 {
            return Err(self.invalid(key("jwks_timeout_ms"), "must be at least 1"));
        }
        self.issuers[i].algs = algs;
        Ok(())
    }
}

/// Replaces each `${NAME}` (letters, digits, `_`) with the environment
/// variable's value, as is; `$${` writes a literal `${`. An unset variable is
/// an error naming it and its line. Lets one file serve several deployments
/// (the Lambda example takes its Cognito issuer from the function's
/// environment).
pub fn expand_env<'t>(text: &'t str, path: &Path) -> Result<Cow<'t, str>, ConfigError> {
    if !text.contains("${") {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').filter(|&e| {
            e > 0
                && after[..e]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        let Some(end) = end else {
            // Not a variable reference: keep it as written.
            out.push_str("${");
            rest = after;
            continue;
        };
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| ConfigError::Env {
            path: path.to_owned(),
            line: text[..text.len() - rest.len() + at].lines().count().max(1),
            name: name.to_string(),
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// RFC 6901: empty (whole document) is not useful here; otherwise it starts with `/`
/// and `~` is only followed by `0` or `1`.
fn check_pointer(ptr: &str) -> Result<(), String> {
    if !ptr.starts_with('/') {
        return Err(format!(
            "`{ptr}` is not a JSON Pointer (RFC 6901): it must start with `/`"
        ));
    }
    let mut chars = ptr.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "`{ptr}` is not a JSON Pointer (RFC 6901): `~` must be followed by `0` or `1`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn base(dir: &Path) -> String {
        write(dir, "model.conf", "");
        write(dir, "policy.csv", "");
        "[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n".to_string()
    }

    fn err(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{}{text}", base(dir.path()));
        let path = write(dir.path(), "authzd.toml", &text);
        Config::load(&path).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let text = base(dir.path());
        let path = write(dir.path(), "authzd.toml", &text);
        let c = Config::load(&path).unwrap();
        assert_eq!(c.policy.model, dir.path().join("model.conf"));
        assert_eq!(c.server.grpc_addr.port(), 50051);
        assert_eq!(c.cors_preflight, CorsPreflight::Answer);
        assert!(
            c.cors.allow_origins.is_empty(),
            "no origin is allowed by default"
        );
    }

    #[test]
    fn cors_origins_are_checked() {
        for ok in [
            "*",
            "null",
            "https://app.example.com",
            "http://localhost:3000",
            "https://*.example.com",
        ] {
            assert_eq!(check_origin(ok), Ok(()), "{ok}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://*example.com",
            "https://a.*.example.com",
            "https://App.example.com",
            "https://",
            "https://a b",
            "*.example.com",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
        let e = err("[cors]\nallow_origins = [\"https://x.example/app\"]\n");
        assert!(
            e.contains("cors.allow_origins") && e.contains("x.example/app"),
            "{e}"
        );
        let e = err("[cors]\nallow_origins = [\"*\"]\nallow_credentials = true\n");
        assert!(e.contains("cors.allow_credentials"), "{e}");
        let e = err("[cors]\nallow_methods = [\"get\"]\n");
        assert!(e.contains("cors.allow_methods"), "{e}");
        // max_staleness_secs bounds a store; with a file it is a mistake.
        let e = err("max_staleness_secs = 5\n");
        assert!(
            e.contains("policy.max_staleness_secs") && e.contains("store"),
            "{e}"
        );
    }

    #[test]
    fn tracing_settings_are_checked() {
        for bad in [
            "localhost:4317",
            "http://collector:4317/v1/traces",
            "grpc://collector:4317",
            "http://",
        ] {
            let e = err(&format!("[tracing]\notlp_endpoint = \"{bad}\"\n"));
            assert!(
                e.contains("tracing.otlp_endpoint") && e.contains(bad),
                "{e}"
            );
        }
        let e = err("[tracing]\notlp_endpoint = \"http://c:4317\"\nqueue_size = 0\n");
        assert!(e.contains("tracing.queue_size"), "{e}");
        let e = err("[tracing]\nservice_name = \"api\"\n");
        assert!(e.contains("otlp_endpoint"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err("[server]\ngrpc_adr = \"127.0.0.1:1\"\n");
        assert!(e.contains("grpc_adr"), "{e}");
        assert!(e.contains("authzd.toml"), "{e}");
    }

    #[test]
    fn bad_algorithm_is_named_with_key() {
        let e = err("[[issuer]]\nissuer = \"https://idp\"\nalgorithms = [\"HS256\"]\n");
        assert!(
            e.contains("issuer[0].algorithms") && e.contains("HS256"),
            "{e}"
        );
        let e = err("[[issuer]]\nissuer = \"https://idp\"\nalgorithms = [\"none\"]\n");
        assert!(e.contains("`none`"), "{e}");
    }

    #[test]
    fn bad_pointer_is_named() {
        let e = err("[[issuer]]\nissuer = \"https://idp\"\nroles_claims = [\"cognito:groups\"]\n");
        assert!(
            e.contains("issuer[0].roles_claims") && e.contains("JSON Pointer"),
            "{e}"
        );
        let e = err("[[issuer]]\nissuer = \"https://idp\"\nsubject_claim = \"/a~2b\"\n");
        assert!(e.contains("subject_claim"), "{e}");
    }

    #[test]
    fn missing_files_are_named() {
        let e = err("[[issuer]]\nissuer = \"https://idp\"\njwks_file = \"nope.json\"\n");
        assert!(
            e.contains("issuer[0].jwks_file") && e.contains("nope.json"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "a.toml",
            "[policy]\nmodel = \"m.conf\"\npolicy = \"p.csv\"\n",
        );
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("policy.model") && e.contains("m.conf"), "{e}");
    }

    #[test]
    fn duplicate_issuer_and_non_url_issuer_rejected() {
        let e = err("[[issuer]]\nissuer = \"https://a\"\n[[issuer]]\nissuer = \"https://a\"\n");
        assert!(e.contains("configured twice"), "{e}");
        let e = err("[[issuer]]\nissuer = \"demo\"\n");
        assert!(
            e.contains("issuer[0].issuer") && e.contains("not an http(s) URL"),
            "{e}"
        );
    }

    #[test]
    fn environment_variables_are_expanded() {
        // Setting a variable needs `unsafe` in this edition: the set case runs
        // through the binary with its own environment (tests/lambda.rs).
        let var = "AUTHZD_TEST_EXPAND_ISSUER";
        let p = Path::new("a.toml");
        assert_eq!(expand_env("x = 1", p).unwrap(), "x = 1");
        let e = expand_env("a = 1\nissuer = \"${AUTHZD_TEST_UNSET_VARIABLE}\"", p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AUTHZD_TEST_UNSET_VARIABLE") && e.contains("line 2"),
            "{e}"
        );
        assert_eq!(
            expand_env("a = \"$${HOME}\" b = \"${ no}\"", p).unwrap(),
            "a = \"${HOME}\" b = \"${ no}\""
        );
        if std::env::var(var).is_ok() {
            return;
        }
        // Unset, through a real file: the load fails naming it.
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}[[issuer]]\nissuer = \"${{{var}}}\"\njwks_file = \"policy.csv\"\n",
            base(dir.path())
        );
        let path = write(dir.path(), "authzd.toml", &text);
        assert!(Config::load(&path).unwrap_err().to_string().contains(var));
    }

    #[test]
    fn syntax_error_is_reported_not_panicked() {
        let e = err("[[route]\n");
        assert!(e.contains("invalid config"), "{e}");
    }
}
