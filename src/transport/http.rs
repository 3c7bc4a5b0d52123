//! HTTP (axum): the JSON check API, health, readiness, policy status and metrics.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{
    answer::check_response,
    ask::{TRACE_HEADERS, batch_items, check_request, header},
};
use crate::{audit::Source, authorizer::Authorizer, pb};

type App = Arc<Authorizer>;

/// A 400 naming what was wrong with the call itself.
pub(super) fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new(bad_request(format!("invalid JSON body: {e}"))))
}

/// The caller's own `Authorization` header stands in for a token the body lacks.
fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub async fn check(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let mut m: pb::CheckRequest = match parse_json(&body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if m.token.is_empty()
        && header(&m.headers, "authorization").is_none()
        && let Some(auth) = authorization(&headers)
    {
        m.headers.insert("authorization".into(), auth);
    }
    // The call's own trace context stands in for one the body lacks.
    if header(&m.headers, "traceparent").is_none() {
        for name in TRACE_HEADERS {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                m.headers.insert(name.into(), v.to_string());
            }
        }
    }
    let req = match check_request(&m) {
        Ok(r) => r,
        Err(e) => return bad_request(e.to_string()),
    };
    let outcome = app.check(&req, Source::Http).await;
    Json(check_response(&outcome)).into_response()
}

pub async fn check_batch(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let m: pb::CheckBatchRequest = match parse_json(&body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let items = match batch_items(&m.items) {
        Ok(i) => i,
        Err(e) => return bad_request(e),
    };
    let caller_auth = authorization(&headers);
    let auth = header(&m.headers, "authorization").or(caller_auth.as_deref());
    let outcomes = app
        .check_batch(
            Some(m.token.as_str()).filter(|t| !t.is_empty()),
            auth,
            Some(m.domain.as_str()).filter(|d| !d.is_empty()),
            &items,
            Source::Http,
        )
        .await;
    Json(pb::CheckBatchResponse {
        results: outcomes.iter().map(|o| check_response(o)).collect(),
    })
    .into_response()
}

/// Ready when the policy is loaded (always, once serving) and every issuer has keys.
pub async fn readyz(State(app): State<App>) -> Response {
    let snap = app.store.load();
    let missing: Vec<&str> = snap
        .config
        .issuers
        .iter()
        .filter(|i| app.jwks.get(&i.issuer).is_none())
        .map(|i| i.issuer.as_str())
        .collect();
    let ready = missing.is_empty() && snap.available;
    let body = json!({"ready": ready, "policy_revision": &*snap.revision, "policy_available": snap.available, "issuers_without_keys": missing});
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub async fn policy(State(app): State<App>) -> Response {
    let snap = app.store.load();
    Json(json!({
        "revision": &*snap.revision,
        "loaded_at": humantime::format_rfc3339_seconds(snap.loaded_at).to_string(),
        "config": snap.config.source.display().to_string(),
        "model": snap.config.policy.model.display().to_string(),
        "policy": snap.config.policy.policy.as_ref().map(|p| p.display().to_string()),
        "available": snap.available,
        "store": app.store.store_status().map(|s| store_json(s)),
        "rules": snap.policy.rules,
        "groupings": snap.policy.groupings,
        "routes": snap.routes.len(),
        "evaluator": &snap.policy.evaluator,
        "update": if snap.incremental { "incremental" } else { "full" },
        "last_error": app.store.last_error(),
        "last_check": app.store.last_check().map(|(at, result)| json!({
            "at": humantime::format_rfc3339_seconds(at).to_string(),
            "result": result,
        })),
        "restart_required": app.store.restart_required(),
        "shadow": snap.config.shadow.as_ref().map(|s| json!({
            "model": s.model.display().to_string(),
            "policy": s.policy.display().to_string(),
            "sample": s.sample,
            "revision": snap.shadow.as_ref().and_then(|r| r.as_ref().ok()).map(|c| c.revision.to_string()),
            "evaluator": snap.shadow.as_ref().and_then(|r| r.as_ref().ok()).map(|c| c.policy.evaluator.clone()),
            "error": snap.shadow.as_ref().and_then(|r| r.as_ref().err()).cloned(),
        })),
    }))
    .into_response()
}

/// The store the policy follows: where, whether it answers, how far behind.
fn store_json(s: &crate::policy::source::StoreStatus) -> serde_json::Value {
    let v = s.view();
    let at = |t: std::time::SystemTime| humantime::format_rfc3339_millis(t).to_string();
    json!({
        "kind": s.kind.as_str(),
        "url": &s.url,
        "serving_from": v.origin.as_str(),
        "connected": v.connected,
        "last_sync": v.last_sync.map(at),
        "lag_seconds": v.last_sync.map(|t| t.elapsed().map_or(0.0, |d| d.as_secs_f64())),
        "unreachable_since": v.failing_since.map(at),
        "error": v.error,
    })
}

pub async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}
