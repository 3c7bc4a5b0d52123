//! Typed configuration (`authzd.toml`) and its validation. Each table's
//! type is in its own file under `config/` (`server`, `issuer`, `route`,
//! `policy`, `roles`, `request`, `cors`, `lambda`, `log`, `tracing`,
//! `shadow`, `admin`); this file holds the whole [`Config`], loading, and
//! the checks that read more than one table.
//!
//! This module owns parsing and checking the file; it never touches the
//! network or builds runtime objects. Paths in the file are relative to the
//! file's own directory and are resolved here, once.

use std::{
    borrow::Cow,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::token::alg::Alg;

mod admin;
mod cors;
mod issuer;
mod lambda;
mod log;
mod policy;
mod request;
mod roles;
mod route;
mod server;
mod shadow;
mod tracing;
pub use self::{
    cors::{CorsConfig, CorsPreflight, check_origin},
    issuer::IssuerConfig,
    lambda::{LambdaConfig, LambdaPolicyScope, LambdaResponse},
    log::DecisionLogConfig,
    policy::{AttributeConfig, Fallback, PolicyConfig},
    request::{MethodOverride, Noncanonical, PathCase, RequestConfig, TrailingSlash},
    roles::{LookupConfig, RolesConfig},
    route::{RouteAuth, RouteConfig},
    server::ServerConfig,
    shadow::ShadowConfig,
    tracing::TracingConfig,
};
pub use admin::AdminConfig;
use policy::plain_identifier;

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
