//! What every transport shares on the way in: header lookup, the
//! `authzd.v1` request message as a pipeline request, batch items, and a
//! check from an HTTP request's headers (Envoy HTTP mode, forward auth).

use std::{collections::HashMap, sync::Arc};

use axum::http::{HeaderMap, header};

use crate::{
    audit::{Outcome, Source},
    authorizer::{Authorizer, BatchItem},
    decision::{Request, Target},
    pb,
    request::{METHOD_OVERRIDE_HEADERS, Overrides, body::Body},
};

/// Case-insensitive header lookup in a plain map (gRPC and JSON callers).
/// W3C Trace Context headers: the call's own (gRPC metadata, HTTP headers)
/// stand in for those a check message's `headers` lack, as a pair.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

pub fn header<'a>(headers: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .or_else(|| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .map(String::as_str)
}

/// Why a check request could not be run at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadRequest {
    #[error("give either `resource` and `action`, or `method` and `path`")]
    NoTarget,
    #[error("`resource` and `action` must be given together")]
    HalfResource,
    #[error("`method` and `path` must be given together")]
    HalfHttp,
}

/// Maps an `authzd.v1.CheckRequest` (gRPC or JSON) to a pipeline request.
pub fn check_request(m: &pb::CheckRequest) -> Result<Request<'_>, BadRequest> {
    let target = match (
        m.resource.is_empty(),
        m.action.is_empty(),
        m.method.is_empty(),
        m.path.is_empty(),
    ) {
        (false, false, _, _) => Target::Resource {
            resource: &m.resource,
            action: &m.action,
        },
        (true, true, false, false) => Target::Http {
            method: &m.method,
            path: &m.path,
        },
        (true, true, true, true) => return Err(BadRequest::NoTarget),
        (false, true, _, _) | (true, false, _, _) => return Err(BadRequest::HalfResource),
        _ => return Err(BadRequest::HalfHttp),
    };
    Ok(Request {
        target,
        token: Some(m.token.as_str()).filter(|t| !t.is_empty()),
        authorization: header(&m.headers, "authorization"),
        origin: header(&m.headers, "origin"),
        access_control_request_method: header(&m.headers, "access-control-request-method"),
        answers_preflight: false,
        domain: Some(m.domain.as_str()).filter(|d| !d.is_empty()),
        method_overrides: method_overrides(|name| header(&m.headers, name)),
        body: None,
        traceparent: header(&m.headers, "traceparent"),
        tracestate: header(&m.headers, "tracestate"),
    })
}

/// The method-override headers a request carries, looked up by lower-case name.
pub fn method_overrides<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Overrides<'a> {
    METHOD_OVERRIDE_HEADERS.map(get)
}

/// Most items one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// Validates batch items (shared with the JSON API).
pub fn batch_items(items: &[pb::CheckBatchItem]) -> Result<Vec<BatchItem>, String> {
    if items.len() > MAX_BATCH {
        return Err(format!(
            "a batch holds at most {MAX_BATCH} items, this one has {}",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            if it.resource.is_empty() || it.action.is_empty() {
                Err(format!(
                    "items[{i}]: `resource` and `action` are both required"
                ))
            } else {
                Ok(BatchItem {
                    resource: it.resource.clone(),
                    action: it.action.clone(),
                })
            }
        })
        .collect()
}

/// Runs a check for an HTTP request whose credentials and CORS headers are
/// `headers`; `answers_preflight`: the caller can send authzd's answer to a
/// CORS preflight to the client (Envoy HTTP mode, not forward auth); `body`:
/// the request body where the gateway forwards it.
pub async fn check_headers(
    app: &Authorizer,
    headers: &HeaderMap,
    target: Target<'_>,
    source: Source,
    answers_preflight: bool,
    body: Option<Body<'_>>,
) -> Arc<Outcome> {
    let get = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let req = Request {
        target,
        token: None,
        authorization: get(header::AUTHORIZATION),
        origin: get(header::ORIGIN),
        access_control_request_method: get(header::ACCESS_CONTROL_REQUEST_METHOD),
        answers_preflight,
        domain: None,
        method_overrides: method_overrides(|name| headers.get(name).and_then(|v| v.to_str().ok())),
        body,
        traceparent: headers.get("traceparent").and_then(|v| v.to_str().ok()),
        tracestate: headers.get("tracestate").and_then(|v| v.to_str().ok()),
    };
    app.check(&req, source).await
}
