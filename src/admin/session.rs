//! Who may use the explorer: a token from a configured issuer, verified by
//! authzd's own pipeline, holding one of `[admin] roles`; then a session
//! cookie (`HttpOnly`, `SameSite=Strict`) that names a server-side entry.
//! Neither the cookie nor the entry holds the token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::Engine as _;

use crate::{authorizer::Authorizer, config::AdminConfig};

/// The session cookie's name.
pub const COOKIE: &str = "authzd_session";

/// A signed-in administrator.
#[derive(Debug, Clone)]
pub struct Session {
    pub subject: String,
    pub expires: SystemTime,
}

/// Why a request may not use the explorer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or a session that ended: sign in (401).
    SignIn(String),
    /// A valid token without an admin role (403).
    NotAdmin(String),
}

/// Open sessions, by id.
pub struct Sessions {
    open: moka::sync::Cache<String, Session>,
}

impl Sessions {
    pub fn new(cfg: &AdminConfig) -> Self {
        Self {
            open: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(cfg.session_secs))
                .build(),
        }
    }

    /// A new session for `subject`; returns its id (256 random bits, hex).
    pub fn open(&self, session: Session) -> String {
        let mut id = String::with_capacity(64);
        for _ in 0..2 {
            id.push_str(&hex::encode(uuid::Uuid::new_v4().as_bytes()));
        }
        self.open.insert(id.clone(), session);
        id
    }

    pub fn close(&self, id: &str) {
        self.open.invalidate(id);
    }

    fn get(&self, id: &str, now: SystemTime) -> Option<Session> {
        let s = self.open.get(id)?;
        if s.expires <= now {
            self.open.invalidate(id);
            return None;
        }
        Some(s)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The bearer token of an `Authorization` header, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Verifies `token` and checks its roles; on success, the session it opens
/// (ending at the token's `exp` or after `session_secs`, whichever is first).
pub async fn sign_in(
    authorizer: &Authorizer,
    cfg: &AdminConfig,
    token: &str,
) -> Result<Session, Refusal> {
    let p = authorizer
        .verify(token)
        .await
        .map_err(|(reason, why)| Refusal::SignIn(format!("{}: {why}", reason.as_str())))?;
    let prefix = &authorizer.store.load().config.policy.role_prefix;
    let admin = p.roles.iter().any(|r| {
        let bare = r.strip_prefix(prefix.as_str()).unwrap_or(r);
        cfg.roles.iter().any(|want| want == r || want == bare)
    });
    if !admin {
        return Err(Refusal::NotAdmin(format!(
            "`{}` holds none of the explorer's roles ({})",
            p.subject,
            cfg.roles.join(", ")
        )));
    }
    let now = SystemTime::now();
    let mut expires = now + Duration::from_secs(cfg.session_secs);
    if let Some(exp) = expiry(token) {
        expires = expires.min(exp);
    }
    Ok(Session {
        subject: p.subject,
        expires,
    })
}

/// The `exp` claim of a token already verified.
fn expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    (exp.is_finite() && exp > 0.0).then(|| UNIX_EPOCH + Duration::from_secs_f64(exp))
}

/// Who is asking: a bearer token with an admin role, or an open session.
/// With no `roles` configured (loopback only), everyone on the machine is.
pub async fn caller(
    authorizer: &Authorizer,
    cfg: &AdminConfig,
    sessions: &Sessions,
    headers: &HeaderMap,
) -> Result<Session, Refusal> {
    if !cfg.signs_in() {
        return Ok(Session {
            subject: "local".into(),
            expires: SystemTime::now() + Duration::from_secs(3600),
        });
    }
    if let Some(token) = bearer(headers) {
        return sign_in(authorizer, cfg, token).await;
    }
    match cookie(headers, COOKIE) {
        Some(id) => sessions
            .get(id, SystemTime::now())
            .ok_or_else(|| Refusal::SignIn("the session ended; sign in again".into())),
        None => Err(Refusal::SignIn("sign in with a token".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; authzd_session=abc".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "authzd"), None);
        h.insert("authorization", "bEaReR  t.o.k ".parse().unwrap());
        assert_eq!(bearer(&h), Some("t.o.k"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn session_ids_are_random_and_long() {
        let cfg = AdminConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            roles: vec!["ops".into()],
            recent: 10,
            session_secs: 60,
        };
        let s = Sessions::new(&cfg);
        let session = || Session {
            subject: "a".into(),
            expires: SystemTime::now() + Duration::from_secs(60),
        };
        let (a, b) = (s.open(session()), s.open(session()));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(s.get(&a, SystemTime::now()).is_some());
        assert!(
            s.get(&a, SystemTime::now() + Duration::from_secs(61))
                .is_none()
        );
        s.close(&b);
        assert!(s.get(&b, SystemTime::now()).is_none());
    }
}
