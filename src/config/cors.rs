//! `cors_preflight` and `[cors]`: what a CORS preflight gets.

use serde::Deserialize;

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
