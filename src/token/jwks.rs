//! Issuer key sets: parsing a JWKS, and the shared cache that fetches them.
//!
//! The cache is read synchronously on the request path ([`Jwks::get`]) and
//! filled asynchronously ([`Jwks::fetch`]). Fetches for one issuer are
//! serialized behind a gate and rate-limited to one per
//! `jwks_min_refresh_secs`, so concurrent misses make one request and a flood
//! of unknown `kid`s cannot make authzd hammer the identity provider. A failed
//! refresh never removes the last good keys; they expire only after
//! `jwks_max_stale_secs`.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use jsonwebtoken::{
    DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};
use parking_lot::Mutex;
use serde::Deserialize;

use super::Alg;
use crate::config::IssuerConfig;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read JWKS file `{path}`: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot fetch `{url}`: {message}")]
    Fetch { url: String, message: String },
    #[error("`{url}` answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("`{source_name}` is not a JWKS: {message}")]
    NotJwks {
        source_name: String,
        message: String,
    },
    #[error("`{url}` is not an OpenID discovery document: {message}")]
    NotDiscovery { url: String, message: String },
    #[error("`{source_name}` holds no usable keys ({skipped} skipped)")]
    NoKeys { source_name: String, skipped: usize },
    #[error(
        "key fetch for `{issuer}` skipped: the last attempt was under {min_refresh_secs} s ago"
    )]
    RateLimited {
        issuer: String,
        min_refresh_secs: u64,
    },
}

/// The key families authzd verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// One usable public key.
pub struct Key {
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The JWK's own `alg`, when it names one: then only that algorithm may use it.
    pub alg: Option<Alg>,
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Whether `alg` may be verified with this key (type, curve, and the JWK's own `alg`).
    pub fn fits(&self, alg: Alg) -> bool {
        let family = match alg {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                self.kind == KeyKind::Rsa
            }
            Alg::ES256 => self.kind == KeyKind::P256,
            Alg::ES384 => self.kind == KeyKind::P384,
            Alg::EdDSA => self.kind == KeyKind::Ed25519,
        };
        family && self.alg.is_none_or(|a| a == alg)
    }
}

/// A parsed key set. Keys that are not usable signature keys are skipped, not fatal.
#[derive(Debug)]
pub struct KeySet {
    pub keys: Vec<Key>,
    /// Keys present in the document but unusable (`kty`, curve, `use` or `alg` not supported).
    pub skipped: Vec<String>,
    pub fetched_at: SystemTime,
    /// How long these keys may be used for: `jwks_max_stale_secs`.
    pub max_stale: Duration,
    /// When to refetch in the background: `Cache-Control: max-age` clamped to
    /// `[jwks_refresh_min_secs, jwks_refresh_max_secs]`, else `jwks_refresh_secs`.
    pub refresh_after: Duration,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS document; `source_name` is used in errors.
    pub fn from_json(
        bytes: &[u8],
        source_name: &str,
        max_stale: Duration,
    ) -> Result<KeySet, JwksError> {
        let raw: RawSet = serde_json::from_slice(bytes).map_err(|e| JwksError::NotJwks {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for value in raw.keys {
            let label = value
                .get("kid")
                .and_then(|k| k.as_str())
                .unwrap_or("(no kid)")
                .to_string();
            match serde_json::from_value::<Jwk>(value)
                .map_err(|e| e.to_string())
                .and_then(|jwk| key_from_jwk(&jwk))
            {
                Ok(key) => keys.push(key),
                Err(why) => skipped.push(format!("{label}: {why}")),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoKeys {
                source_name: source_name.to_string(),
                skipped: skipped.len(),
            });
        }
        Ok(KeySet {
            keys,
            skipped,
            fetched_at: SystemTime::now(),
            max_stale,
            refresh_after: Duration::from_secs(3600),
        })
    }

    /// The key for `kid`; without a `kid`, the only key that fits `alg`.
    pub fn find(&self, kid: Option<&str>, alg: Alg) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Some(k),
                    _ => None,
                }
            }
        }
    }
}

fn key_from_jwk(jwk: &Jwk) -> Result<Key, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("`use` is `enc`".into());
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyKind::P256,
            EllipticCurve::P384 => KeyKind::P384,
            _ => return Err("curve not supported".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            KeyKind::Ed25519
        }
        AlgorithmParameters::OctetKeyPair(_) => return Err("curve not supported".into()),
        // Symmetric keys in a JWKS would let anyone holding them mint tokens.
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (`oct`) keys are never used".into());
        }
        _ => return Err("key type not supported".into()),
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => Some(alg_of(ka).ok_or_else(|| format!("`alg` {ka:?} is not accepted"))?),
    };
    let decoding = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key material: {e}"))?;
    let key = Key {
        kid: jwk.common.key_id.clone(),
        kind,
        alg,
        decoding,
    };
    if let Some(a) = alg
        && !key.fits(a)
    {
        return Err(format!("`alg` {} does not fit the key type", a.name()));
    }
    Ok(key)
}

fn alg_of(ka: KeyAlgorithm) -> Option<Alg> {
    Some(match ka {
        KeyAlgorithm::RS256 => Alg::RS256,
        KeyAlgorithm::RS384 => Alg::RS384,
        KeyAlgorithm::RS512 => Alg::RS512,
        KeyAlgorithm::PS256 => Alg::PS256,
        KeyAlgorithm::PS384 => Alg::PS384,
        KeyAlgorithm::PS512 => Alg::PS512,
        KeyAlgorithm::ES256 => Alg::ES256,
        KeyAlgorithm::ES384 => Alg::ES384,
        KeyAlgorithm::EdDSA => Alg::EdDSA,
        _ => return None,
    })
}

/// Per-issuer fetch bookkeeping. Never held across the request path.
#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// `jwks_uri` learned from discovery.
    discovered_uri: Option<String>,
}

/// Expire each key set after its own `max_stale`.
struct StaleAfter;

impl moka::Expiry<Arc<str>, Arc<KeySet>> for StaleAfter {
    fn expire_after_create(
        &self,
        _: &Arc<str>,
        v: &Arc<KeySet>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(v.max_stale)
    }
    fn expire_after_update(
        &self,
        _: &Arc<str>,
        v: &Arc<KeySet>,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.max_stale)
    }
}

/// Shared key cache for every issuer; survives policy reloads (keyed by issuer URL).
pub struct Jwks {
    cache: moka::sync::Cache<Arc<str>, Arc<KeySet>>,
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<FetchState>>>>,
    /// Per issuer, why its most recent fetch failed; cleared by a success.
    /// Read only when a token's key is missing, never on the usual path.
    failures: Mutex<HashMap<String, String>>,
    http: reqwest::Client,
}

impl Default for Jwks {
    fn default() -> Self {
        Self::new()
    }
}

impl Jwks {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("authzd/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(1024)
                .expire_after(StaleAfter)
                .build(),
            gates: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            http,
        }
    }

    /// The cached keys of `issuer`, if any. Synchronous and cheap: the request path.
    pub fn get(&self, issuer: &str) -> Option<Arc<KeySet>> {
        self.cache.get(issuer)
    }

    /// Why `issuer`'s most recent key fetch failed, if it did.
    pub fn last_failure(&self, issuer: &str) -> Option<String> {
        self.failures.lock().get(issuer).cloned()
    }

    fn gate(&self, issuer: &str) -> Arc<tokio::sync::Mutex<FetchState>> {
        let mut gates = self.gates.lock();
        Arc::clone(gates.entry(issuer.to_string()).or_default())
    }

    /// Fetches `cfg`'s keys unless another fetch for it ran within
    /// `jwks_min_refresh_secs`. Concurrent callers wait for one fetch.
    pub async fn fetch(&self, cfg: &IssuerConfig) -> Result<Arc<KeySet>, JwksError> {
        let gate = self.gate(&cfg.issuer);
        let mut state = gate.lock().await;
        let window = Duration::from_secs(cfg.jwks_min_refresh_secs);
        if let Some(last) = state.last_attempt
            && last.elapsed() < window
        {
            return match self.get(&cfg.issuer) {
                // Someone fetched while we waited (or just before): use theirs.
                Some(keys) => Ok(keys),
                None => Err(JwksError::RateLimited {
                    issuer: cfg.issuer.clone(),
                    min_refresh_secs: cfg.jwks_min_refresh_secs,
                }),
            };
        }
        state.last_attempt = Some(Instant::now());
        let result = self.fetch_now(cfg, &mut state).await;
        crate::metrics::jwks_fetched(&cfg.issuer, result.is_ok());
        match result {
            Ok(keys) => {
                let keys = Arc::new(keys);
                for s in &keys.skipped {
                    tracing::warn!(issuer = %cfg.issuer, key = %s, "skipped unusable JWKS key");
                }
                tracing::info!(issuer = %cfg.issuer, keys = keys.keys.len(), "fetched issuer keys");
                self.cache
                    .insert(Arc::from(cfg.issuer.as_str()), Arc::clone(&keys));
                self.failures.lock().remove(&cfg.issuer);
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(issuer = %cfg.issuer, error = %e, "key fetch failed; last good keys (if any) keep serving");
                self.failures
                    .lock()
                    .insert(cfg.issuer.clone(), e.to_string());
                Err(e)
            }
        }
    }

    async fn fetch_now(
        &self,
        cfg: &IssuerConfig,
        state: &mut FetchState,
    ) -> Result<KeySet, JwksError> {
        let max_stale = Duration::from_secs(cfg.jwks_max_stale_secs);
        if let Some(path) = &cfg.jwks_file {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|source| JwksError::File {
                    path: path.clone(),
                    source,
                })?;
            let mut keys = KeySet::from_json(&bytes, &path.display().to_string(), max_stale)?;
            keys.refresh_after = refresh_interval(cfg, None);
            return Ok(keys);
        }
        let timeout = Duration::from_millis(cfg.jwks_timeout_ms);
        let uri = match (&cfg.jwks_uri, &state.discovered_uri) {
            (Some(uri), _) | (None, Some(uri)) => uri.clone(),
            (None, None) => {
                let doc = discover(&self.http, &cfg.issuer, timeout).await?;
                state.discovered_uri = Some(doc.jwks_uri.clone());
                doc.jwks_uri
            }
        };
        let doc = get_document(&self.http, &uri, timeout).await?;
        let mut keys = KeySet::from_json(&doc.bytes, &uri, max_stale)?;
        keys.refresh_after = refresh_interval(cfg, doc.max_age);
        Ok(keys)
    }

    /// Whether `cfg`'s keys are missing or past their refresh time. The
    /// background refresher fetches these, so requests never wait once warm.
    pub fn due(&self, cfg: &IssuerConfig) -> bool {
        self.get(&cfg.issuer).is_none_or(|k| {
            k.fetched_at
                .elapsed()
                .map_or(true, |age| age >= k.refresh_after)
        })
    }
}

/// The background refresh interval for a document with `max_age`.
pub fn refresh_interval(cfg: &IssuerConfig, max_age: Option<Duration>) -> Duration {
    let floor = Duration::from_secs(cfg.jwks_refresh_min_secs);
    let ceiling = Duration::from_secs(cfg.jwks_refresh_max_secs).max(floor);
    max_age
        .unwrap_or(Duration::from_secs(cfg.jwks_refresh_secs))
        .clamp(floor, ceiling)
}

/// `max-age` of a `Cache-Control` value; `no-cache`/`no-store` mean zero (the floor applies).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            found = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

/// The fields of an OpenID Provider discovery document authzd uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
}

/// `{issuer}/.well-known/openid-configuration`.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

pub async fn discover(
    http: &reqwest::Client,
    issuer: &str,
    timeout: Duration,
) -> Result<Discovery, JwksError> {
    let url = discovery_url(issuer);
    let doc = get_document(http, &url, timeout).await?;
    serde_json::from_slice(&doc.bytes).map_err(|e| JwksError::NotDiscovery {
        url,
        message: e.to_string(),
    })
}

/// Documents larger than this are not key sets.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A fetched document and its `Cache-Control: max-age`.
pub struct Document {
    pub bytes: Vec<u8>,
    pub max_age: Option<Duration>,
}

pub async fn get_document(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Document, JwksError> {
    let fetch_err = |e: reqwest::Error| JwksError::Fetch {
        url: url.to_string(),
        message: e.to_string(),
    };
    let resp = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(fetch_err)?;
    if !resp.status().is_success() {
        return Err(JwksError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let max_age = resp
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let bytes = resp.bytes().await.map_err(fetch_err)?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(JwksError::Fetch {
            url: url.to_string(),
            message: format!(
                "document is {} bytes, over {MAX_DOCUMENT_BYTES}",
                bytes.len()
            ),
        });
    }
    Ok(Document {
        bytes: bytes.to_vec(),
        max_age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            max_age("Max-Age=\"30\", must-revalidate"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
