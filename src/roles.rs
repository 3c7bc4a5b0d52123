//! Looked-up roles (`docs/configuration.md`): an HTTP role directory behind a moka cache.
//!
//! The request path reads the cache synchronously ([`RoleSource::lookup`]);
//! a miss makes the pipeline return [`crate::decision::Step::NeedRoles`] and
//! the driver calls [`RoleLookup::fetch`], which coalesces concurrent misses
//! for one subject into one request. Failures are never cached and never
//! allow: the check ends 503 `role_lookup_failed`.

use std::{sync::Arc, time::Duration};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::config::LookupConfig;

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Subject with `subject_prefix` applied.
    pub subject: String,
    /// The subject claim as the token has it (for role lookups).
    pub claim_subject: String,
    pub issuer: String,
    /// Claim roles with `role_prefix` applied.
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// Domain from `domain_claim`, if configured and present.
    pub domain: Option<String>,
    /// The model's attribute values, in its request definition's order
    /// (`[policy.attributes]`); never empty strings.
    pub attributes: Vec<String>,
    /// The first attribute the token cannot fill, and why (naming the field
    /// and claim, never a value): a check that reaches the policy is denied
    /// with `attribute_missing`.
    pub attribute_missing: Option<String>,
}

impl Principal {
    /// The principal a record names: its subject as decided (with
    /// `subject_prefix`, which is taken off again for the claim subject) and
    /// issuer; roles, scopes, domain and attributes empty, for the caller to fill.
    pub fn recorded(subject: &str, issuer: &str, subject_prefix: &str) -> Principal {
        Principal {
            subject: subject.to_string(),
            claim_subject: subject
                .strip_prefix(subject_prefix)
                .unwrap_or(subject)
                .to_string(),
            issuer: issuer.to_string(),
            roles: Vec::new(),
            scopes: Vec::new(),
            domain: None,
            attributes: Vec::new(),
            attribute_missing: None,
        }
    }
}

/// The attribute values `claims` give the model's attribute fields `names`
/// (in order), by `[policy.attributes]`: a string, number or boolean, as
/// text. Absent, `null`, `""`, an array or an object is no value: the
/// field's `default`, else the first such field is reported missing.
pub fn attributes_from_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
    names: &[String],
    mapped: &std::collections::BTreeMap<String, crate::config::AttributeConfig>,
) -> (Vec<String>, Option<String>) {
    use serde_json::Value;
    let mut values = Vec::with_capacity(names.len());
    let mut missing = None;
    for name in names {
        let Some(cfg) = mapped.get(name) else {
            // The snapshot refuses such a model; fail closed anyway.
            missing.get_or_insert_with(|| format!("attribute `{name}` has no claim mapped"));
            values.push(String::new());
            continue;
        };
        let found = match crate::token::claims::at(claims, &cfg.claim) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            None | Some(Value::Null) => Err("absent"),
            Some(Value::String(_)) => Err("empty"),
            Some(Value::Array(_)) => Err("an array (attributes take one value)"),
            Some(Value::Object(_)) => Err("an object"),
        };
        match (found, &cfg.default) {
            (Ok(v), _) => values.push(v),
            (Err(_), Some(d)) => values.push(d.clone()),
            (Err(why), None) => {
                missing.get_or_insert_with(|| {
                    format!("attribute `{name}`: claim `{}` is {why}", cfg.claim)
                });
                values.push(String::new());
            }
        }
    }
    (values, missing)
}

/// What the cache knows about a subject's looked-up roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(Arc<Vec<String>>),
    Miss,
    Failed(String),
}

/// Read access to looked-up roles, without I/O.
pub trait RoleSource {
    fn lookup(&self, subject: &str) -> Lookup;
}

/// The source for configs without a lookup, and for tests.
pub struct NoLookup;

impl RoleSource for NoLookup {
    fn lookup(&self, _: &str) -> Lookup {
        Lookup::Hit(Arc::default())
    }
}

/// A source that answers one failure, for the pipeline's second run after a failed fetch.
pub struct FailedLookup(pub String);

impl RoleSource for FailedLookup {
    fn lookup(&self, _: &str) -> Lookup {
        Lookup::Failed(self.0.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("role lookup `{url}` failed: {message}")]
    Fetch { url: String, message: String },
    #[error("role lookup `{url}` answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(
        "role lookup `{url}` answered neither a JSON array of strings nor {{\"roles\": [...]}}: {message}"
    )]
    Body { url: String, message: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Answer {
    List(Vec<String>),
    Object { roles: Vec<String> },
}

/// RFC 3986 unreserved characters stay; everything else in `{sub}` is encoded,
/// so a subject can never change the directory URL's path or query.
const SUB: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Most bytes a directory answer may have.
const MAX_ANSWER: usize = 256 * 1024;

/// Looked-up roles by subject.
type RoleCache = moka::future::Cache<String, Arc<Vec<String>>>;

/// The role directory client and its cache. Lives across policy reloads;
/// [`RoleLookup::configure`] resets it when the lookup settings change.
pub struct RoleLookup {
    http: reqwest::Client,
    state: parking_lot::RwLock<Option<(LookupConfig, RoleCache)>>,
}

impl Default for RoleLookup {
    fn default() -> Self {
        Self::new()
    }
}

impl RoleLookup {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            state: parking_lot::RwLock::new(None),
        }
    }

    /// Applies `cfg` (from a new snapshot). A changed configuration starts with an empty cache.
    pub fn configure(&self, cfg: Option<&LookupConfig>) {
        let mut state = self.state.write();
        if state.as_ref().map(|(c, _)| c) == cfg {
            return;
        }
        *state = cfg.map(|c| {
            let cache = moka::future::Cache::builder()
                .max_capacity(c.max_entries)
                .time_to_live(Duration::from_secs(c.ttl_secs.max(1)))
                .build();
            (c.clone(), cache)
        });
    }

    /// Whether a token with `scopes` needs a lookup under the current settings.
    pub fn applies(cfg: &LookupConfig, scopes: &[String]) -> bool {
        cfg.when_scope.as_ref().is_none_or(|s| scopes.contains(s))
    }

    /// Fetches (or joins a fetch in progress for) `subject`'s roles and caches them.
    pub async fn fetch(&self, subject: &str) -> Result<Arc<Vec<String>>, Arc<LookupError>> {
        let Some((cfg, cache)) = self.state.read().clone() else {
            return Ok(Arc::default());
        };
        let result = cache
            .try_get_with(subject.to_string(), self.request(&cfg, subject))
            .await;
        crate::metrics::role_lookup(if result.is_ok() { "ok" } else { "error" });
        result
    }

    async fn request(
        &self,
        cfg: &LookupConfig,
        subject: &str,
    ) -> Result<Arc<Vec<String>>, LookupError> {
        let url = cfg
            .url
            .replace("{sub}", &utf8_percent_encode(subject, SUB).to_string());
        let fetch = |e: reqwest::Error| LookupError::Fetch {
            url: url.clone(),
            message: e.to_string(),
        };
        let mut req = self
            .http
            .get(&url)
            .timeout(Duration::from_millis(cfg.timeout_ms));
        if let Some(var) = &cfg.bearer_token_env
            && let Ok(token) = std::env::var(var)
        {
            req = req.bearer_auth(token);
        }
        for (k, v) in &cfg.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(fetch)?;
        if !resp.status().is_success() {
            return Err(LookupError::Status {
                url,
                status: resp.status().as_u16(),
            });
        }
        let bytes = resp.bytes().await.map_err(fetch)?;
        if bytes.len() > MAX_ANSWER {
            return Err(LookupError::Body {
                url,
                message: format!("{} bytes is too large", bytes.len()),
            });
        }
        let roles = match serde_json::from_slice::<Answer>(&bytes) {
            Ok(Answer::List(r) | Answer::Object { roles: r }) => r,
            Err(e) => {
                return Err(LookupError::Body {
                    url,
                    message: e.to_string(),
                });
            }
        };
        Ok(Arc::new(
            roles.into_iter().filter(|r| !r.is_empty()).collect(),
        ))
    }
}

impl RoleSource for RoleLookup {
    fn lookup(&self, subject: &str) -> Lookup {
        let state = self.state.read();
        let Some((_, cache)) = state.as_ref() else {
            return Lookup::Hit(Arc::default());
        };
        // moka's future cache has no synchronous get; `get` on a ready entry does not wait.
        match ready_get(cache, subject) {
            Some(roles) => Lookup::Hit(roles),
            None => Lookup::Miss,
        }
    }
}

/// A non-blocking read of moka's future cache, which has no synchronous `get`.
/// `get` only awaits when it stops to run cache housekeeping; polling it once
/// answers almost always, and when it does not we report a miss, the driver
/// takes the async path, and `try_get_with` there finds the cached entry
/// without a request. moka's futures are cancellation-safe, so dropping the
/// pending one is fine.
fn ready_get(
    cache: &moka::future::Cache<String, Arc<Vec<String>>>,
    key: &str,
) -> Option<Arc<Vec<String>>> {
    let fut = cache.get(key);
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_cannot_escape_the_path() {
        assert_eq!(
            utf8_percent_encode("a/b c?x=1#f", SUB).to_string(),
            "a%2Fb%20c%3Fx%3D1%23f"
        );
        assert_eq!(
            utf8_percent_encode("user-1_a.b~c", SUB).to_string(),
            "user-1_a.b~c"
        );
        assert_eq!(
            utf8_percent_encode("../admin", SUB).to_string(),
            "..%2Fadmin"
        );
    }

    #[test]
    fn both_answer_shapes_parse() {
        assert!(
            matches!(serde_json::from_str::<Answer>(r#"["a","b"]"#), Ok(Answer::List(v)) if v.len() == 2)
        );
        assert!(
            matches!(serde_json::from_str::<Answer>(r#"{"roles":["a"]}"#), Ok(Answer::Object { roles }) if roles == ["a"])
        );
        assert!(serde_json::from_str::<Answer>(r#"{"groups":["a"]}"#).is_err());
        assert!(serde_json::from_str::<Answer>(r#"[1,2]"#).is_err());
    }
}
