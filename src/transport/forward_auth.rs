//! nginx `auth_request` and Traefik ForwardAuth: `/v1/forward-auth`, any method.
//!
//! The original method and URI come from `X-Forwarded-Method`/`X-Forwarded-Uri`
//! (Traefik) or `X-Original-Method`/`X-Original-URI` (the nginx convention);
//! the original headers (`Authorization`, `Origin`, …) arrive as the
//! subrequest's own. The answer is §2's status, body and headers; the proxy
//! copies `x-authz-*` from it onto the upstream request.

use std::sync::Arc;

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};

use super::{
    answer::{HttpAnswer, to_http_response},
    ask::check_headers,
};
use crate::{audit::Source, authorizer::Authorizer, decision::Target};

/// The value named by either convention. When both are present they must agree:
/// a proxy that sets one while passing a client's copy of the other would
/// otherwise let the client choose what gets checked.
fn original<'a>(
    headers: &'a HeaderMap,
    traefik: &str,
    nginx: &str,
) -> Result<Option<&'a str>, String> {
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    match (get(traefik), get(nginx)) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "`{traefik}` and `{nginx}` disagree; refusing to guess"
        )),
        (a, b) => Ok(a.or(b)),
    }
}

pub async fn forward_auth(State(app): State<Arc<Authorizer>>, headers: HeaderMap) -> Response {
    let parts = original(&headers, "x-forwarded-method", "x-original-method")
        .and_then(|m| Ok((m, original(&headers, "x-forwarded-uri", "x-original-uri")?)));
    let (method, uri) = match parts {
        Ok((Some(m), Some(u))) => (m, u),
        Ok(_) => {
            return refused(
                "forward auth needs the original method and URI: X-Forwarded-Method and X-Forwarded-Uri (Traefik) or X-Original-Method and X-Original-URI (nginx)",
            );
        }
        Err(e) => return refused(&e),
    };
    let outcome = check_headers(
        &app,
        &headers,
        Target::Http { method, path: uri },
        Source::ForwardAuth,
        false,
        // nginx and Traefik never send the body (docs/security.md).
        None,
    )
    .await;
    to_http_response(HttpAnswer::of(&outcome).for_forward_auth())
}

/// A call that cannot be checked at all: 403 (a 400 would reach the client as
/// nginx's 500), with the reason for the operator in the body and the log.
fn refused(why: &str) -> Response {
    tracing::warn!(why, "forward-auth call refused");
    (
        axum::http::StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({"error": why})),
    )
        .into_response()
}
