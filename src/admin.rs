//! The decision explorer (`docs/explorer.md`): authzd's own pages on their
//! own listener (`[admin]`), never on the decision ports.
//!
//! - [`session`]: sign-in with a token from a configured issuer holding an
//!   admin role, then a `HttpOnly`, `SameSite=Strict` session cookie.
//! - [`api`]: the JSON and server-sent events the pages read.
//! - [`explain`]: one request, step by step, decided but never logged.
//! - [`assets`]: the pages themselves, plain HTML, CSS and JS compiled in.
//!
//! Every response carries a strict Content-Security-Policy and
//! `Cache-Control: no-store`; a request whose `Host` is not this machine
//! (DNS rebinding) is refused on a loopback listener, and a state-changing
//! request from another site is refused everywhere. No response ever holds
//! a raw token.

pub mod api;
pub mod assets;
pub mod explain;
pub mod session;

use std::sync::Arc;

use axum::{
    Form, Router,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use tokio::sync::watch;

use crate::{authorizer::Authorizer, config::AdminConfig, explorer::Explorer};

/// What every handler of the explorer shares.
#[derive(Clone)]
pub struct Admin {
    pub authorizer: Arc<Authorizer>,
    pub explorer: Arc<Explorer>,
    pub sessions: Arc<session::Sessions>,
    /// `[admin]` as read at start (changing it needs a restart).
    pub cfg: Arc<AdminConfig>,
    /// Turns true at shutdown: live streams end.
    pub stopping: watch::Receiver<bool>,
}

/// The Content-Security-Policy of every response: nothing but this origin's
/// own files, no inline script or style, never framed.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The explorer's application; also used directly by tests (`oneshot`).
pub fn router(admin: Admin) -> Router {
    let signed_in = Router::new()
        .route("/", get(assets::live))
        .route("/overview", get(assets::overview))
        .route("/explain", get(assets::explain))
        .route("/policy", get(assets::policy))
        .route("/api/decisions", get(api::decisions))
        .route("/api/decisions/{id}", get(api::decision))
        .route("/api/stream", get(api::stream))
        .route("/api/overview", get(api::overview))
        .route("/api/policy", get(api::policy))
        .route("/api/explain", post(explain::explain))
        .route("/api/whoami", get(api::whoami))
        .route_layer(middleware::from_fn_with_state(admin.clone(), require_admin));
    Router::new()
        .merge(signed_in)
        .route("/login", get(assets::login).post(login))
        .route("/logout", post(logout))
        .route("/assets/{file}", get(assets::file))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(middleware::from_fn_with_state(admin.clone(), guard))
        .with_state(admin)
}

/// Whether `host` (a `Host` header) names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request with these headers comes from a page of another site
/// (`Sec-Fetch-Site`, else `Origin` against `Host`).
fn cross_site(headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (get("origin"), get("host")) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let rest = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            rest != Some(host)
        }
        (Some(_), None) => true,
    }
}

/// Around every request: the Host check, the cross-site check for anything
/// that is not a read, and the security headers on every response.
async fn guard(State(admin): State<Admin>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut resp = if admin.cfg.addr.ip().is_loopback() && !loopback_host(host) {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "the explorer answers only requests addressed to this machine's loopback\n",
        )
            .into_response()
    } else if !matches!(*req.method(), Method::GET | Method::HEAD) && cross_site(req.headers()) {
        tracing::warn!(path = %req.uri().path(), "explorer: cross-site request refused");
        (StatusCode::FORBIDDEN, "cross-site requests are refused\n").into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// Pages and API need an administrator: a browser asking for a page is sent
/// to sign in; anything else gets 401, and a non-administrator 403.
async fn require_admin(State(admin): State<Admin>, req: Request, next: Next) -> Response {
    match session::caller(
        &admin.authorizer,
        &admin.cfg,
        &admin.sessions,
        req.headers(),
    )
    .await
    {
        Ok(_) => next.run(req).await,
        Err(session::Refusal::SignIn(why)) => {
            let page = !req.uri().path().starts_with("/api/");
            if page && req.method() == Method::GET {
                Redirect::to("/login").into_response()
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer realm=\"authzd-admin\"")],
                    axum::Json(serde_json::json!({ "message": why })),
                )
                    .into_response()
            }
        }
        Err(session::Refusal::NotAdmin(why)) => {
            tracing::warn!(reason = %why, "explorer: refused a signed-in caller without an admin role");
            (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({ "message": why })),
            )
                .into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /login`: a token in, a session cookie out (the token is not kept).
async fn login(State(admin): State<Admin>, Form(form): Form<LoginForm>) -> Response {
    if !admin.cfg.signs_in() {
        return Redirect::to("/").into_response();
    }
    match session::sign_in(&admin.authorizer, &admin.cfg, form.token.trim()).await {
        Ok(s) => {
            let secs = s
                .expires
                .duration_since(std::time::SystemTime::now())
                .map_or(0, |d| d.as_secs());
            tracing::info!(subject = %s.subject, "explorer: signed in");
            let id = admin.sessions.open(s);
            let secure = if admin.cfg.addr.ip().is_loopback() {
                ""
            } else {
                "; Secure"
            };
            let cookie = format!(
                "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={secs}{secure}",
                session::COOKIE
            );
            let mut resp = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(refusal) => {
            let (status, why) = match refusal {
                session::Refusal::SignIn(w) => (StatusCode::UNAUTHORIZED, w),
                session::Refusal::NotAdmin(w) => (StatusCode::FORBIDDEN, w),
            };
            tracing::warn!(status = status.as_u16(), reason = %why, "explorer: sign-in refused");
            (status, assets::login_page(Some(&why))).into_response()
        }
    }
}

/// `POST /logout`: ends the session.
async fn logout(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie(&headers, session::COOKIE) {
        admin.sessions.close(id);
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("authzd_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:8182",
            "127.0.0.1:8182",
            "[::1]:8182",
            "[::1]",
            "127.9.9.9",
        ] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "",
            "evil.example",
            "evil.example:8182",
            "10.0.0.1:8182",
            "localhost.evil.example",
            "[::2]:1",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }

    #[test]
    fn cross_site_requests() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert!(!cross_site(&h(&[])));
        assert!(!cross_site(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(cross_site(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&h(&[("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&h(&[
            ("origin", "http://127.0.0.1:8182"),
            ("host", "127.0.0.1:8182")
        ])));
        assert!(cross_site(&h(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8182")
        ])));
        assert!(cross_site(&h(&[
            ("origin", "null"),
            ("host", "127.0.0.1:8182")
        ])));
    }
}
