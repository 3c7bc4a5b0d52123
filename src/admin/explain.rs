//! *Explain*: one request through the real pipeline (keys and role lookups
//! fetched as a check would), decided but never logged, counted or kept,
//! and shown step by step. The token is read, never echoed: only its
//! claims are shown, marked unverified when the token failed.

use std::collections::{BTreeSet, HashSet};

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Admin;
use crate::{
    decision::{self, Decision, Request, Target},
    policy::snapshot::Snapshot,
    reason::Reason,
    roles::Principal,
};

/// The most distinct policy subjects tried for "would allow".
const MAX_OTHERS: usize = 500;

#[derive(Debug, Deserialize)]
pub struct Ask {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub token: String,
}

/// `POST /api/explain` with `{"method", "path", "token"}`.
pub async fn explain(State(admin): State<Admin>, Json(ask): Json<Ask>) -> Response {
    if ask.method.is_empty()
        || ask.path.is_empty()
        || ask.method.len() > 32
        || ask.path.len() > 8192
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "give a method and a path (at most 8192 bytes)"})),
        )
            .into_response();
    }
    let token = ask.token.trim();
    let req = Request {
        token: (!token.is_empty()).then_some(token),
        ..Request::bare(Target::Http {
            method: &ask.method,
            path: &ask.path,
        })
    };
    let (snap, d) = admin.authorizer.explain(&req).await;
    Json(steps(&snap, &ask, token, &d)).into_response()
}

/// Where a token check stands for this decision.
fn token_checks(d: &Decision, reached: bool) -> Vec<Value> {
    // In the order the pipeline runs them (`docs/pipeline.md`, step 4).
    let checks: [(&str, &[Reason]); 7] = [
        (
            "present and well formed",
            &[Reason::TokenMissing, Reason::TokenMalformed],
        ),
        ("issuer configured", &[Reason::IssuerUnknown]),
        ("algorithm allowed", &[Reason::AlgorithmNotAllowed]),
        ("key found in the issuer's JWKS", &[Reason::KeyUnknown]),
        ("signature", &[Reason::SignatureInvalid]),
        (
            "exp / nbf",
            &[Reason::TokenExpired, Reason::TokenNotYetValid],
        ),
        (
            "audience and token use",
            &[Reason::AudienceMismatch, Reason::TokenUseMismatch],
        ),
    ];
    let failed_at = checks.iter().position(|(_, rs)| rs.contains(&d.reason));
    checks
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let outcome = match failed_at {
                _ if !reached => "skipped",
                Some(f) if i == f => "failed",
                Some(f) if i > f => "skipped",
                _ => "ok",
            };
            json!({"check": name, "outcome": outcome})
        })
        .collect()
}

/// The payload of a JWT as JSON, unverified (for display only).
fn claims_of(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A policy line as its fields (`p, admin, /x, GET` → `["p","admin","/x","GET"]`).
/// Read by the loader's own CSV reader (quoted fields, commas inside quotes);
/// a line it cannot read has no fields.
fn fields(line: &str) -> Vec<String> {
    crate::policy::source::split_line(line.trim()).unwrap_or_default()
}

/// The subject's roles through `g` lines (any domain), the subject and its
/// direct roles included.
fn closure(policy: &str, start: &[&str]) -> BTreeSet<String> {
    let links: Vec<(String, String)> = policy
        .lines()
        .map(fields)
        .filter(|f| f.first().is_some_and(|t| t.starts_with('g')) && f.len() >= 3)
        .map(|f| (f[1].clone(), f[2].clone()))
        .collect();
    let mut seen: BTreeSet<String> = start.iter().map(|s| s.to_string()).collect();
    let mut todo: Vec<String> = seen.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        for (member, role) in &links {
            if *member == name && seen.insert(role.clone()) {
                todo.push(role.clone());
            }
        }
    }
    seen
}

/// The lines that allow this resource and action to someone else: each
/// other subject of a `p` line asked the same question.
fn would_allow(
    snap: &Snapshot,
    d: &Decision,
    caller: &BTreeSet<String>,
    policy: &str,
) -> (Vec<String>, bool) {
    let subjects: Vec<String> = policy
        .lines()
        .map(fields)
        .filter(|f| f.first().is_some_and(|t| t == "p") && f.len() >= 2)
        .map(|f| f[1].clone())
        .filter(|s| !caller.contains(s))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let truncated = subjects.len() > MAX_OTHERS;
    let mut found = BTreeSet::new();
    for s in subjects.into_iter().take(MAX_OTHERS) {
        let issuer = d.issuer.as_deref().unwrap_or_default();
        let p = Principal {
            scopes: d.scopes.clone(),
            domain: d.domain.clone(),
            attributes: d.attributes.iter().map(|a| a.value.clone()).collect(),
            ..Principal::recorded(&s, issuer, "")
        };
        let (reason, _, matched) =
            decision::authorize(snap, &p, &d.resource, &d.action, d.domain.as_deref());
        if reason == Reason::Allowed && !matched.is_empty() {
            found.insert(format!("p, {}", matched.join(", ")));
        }
    }
    (found.into_iter().collect(), truncated)
}

fn steps(snap: &Snapshot, ask: &Ask, token: &str, d: &Decision) -> Value {
    let r = d.reason;
    let before_token = matches!(
        r,
        Reason::RequestRejected
            | Reason::CorsPreflight
            | Reason::PublicRoute
            | Reason::PolicyUnavailable
    );
    let token_failed = r.is_token_failure();
    let reached_token = !before_token;
    let verified = d.subject.is_some() && !token_failed;
    let route = d
        .route
        .as_ref()
        .and_then(|label| snap.routes.iter().find(|x| &x.label == label));
    let mut steps = Vec::new();
    steps.push(json!({
        "step": "canonical request",
        "outcome": if r == Reason::RequestRejected { "failed" } else { "ok" },
        "summary": if r == Reason::RequestRejected {
            d.detail.clone()
        } else {
            format!("{} {}  →  {} {}", ask.method, ask.path, d.action, d.resource)
        },
    }));
    if r == Reason::RequestRejected {
        return finish(snap, d, steps, None, verified, Vec::new(), None);
    }
    steps.push(json!({
        "step": "route",
        "outcome": if r == Reason::PublicRoute { "decided" } else { "ok" },
        "summary": match (&d.route, route) {
            (Some(label), Some(x)) if x.public => format!("`{label}` is public: allowed without a token"),
            (Some(label), Some(x)) if !x.scopes.is_empty() => format!("`{label}` needs a scope: {}", x.scopes.join(" or ")),
            (Some(label), _) => format!("`{label}`, no scope required"),
            (None, _) => "no route matches: the policy alone decides".to_string(),
        },
    }));
    let claims = if token.is_empty() {
        None
    } else {
        claims_of(token)
    };
    steps.push(json!({
        "step": "token",
        "outcome": if !reached_token { "skipped" } else if token_failed { "failed" } else { "ok" },
        "summary": if !reached_token {
            "not needed".to_string()
        } else if token_failed {
            format!("{}: {}", r.as_str(), d.detail)
        } else {
            format!("valid, issued by {} to {}", d.issuer.as_deref().unwrap_or("?"), d.subject.as_deref().unwrap_or("?"))
        },
        "checks": token_checks(d, reached_token),
    }));
    if !verified {
        return finish(snap, d, steps, claims, verified, Vec::new(), None);
    }
    steps.push(json!({
        "step": "scopes",
        "outcome": if r == Reason::ScopeMissing { "failed" } else { "ok" },
        "summary": if r == Reason::ScopeMissing { d.detail.clone() } else if route.is_some_and(|x| !x.scopes.is_empty()) {
            format!("token scopes: {}", d.scopes.join(" "))
        } else {
            "none required".to_string()
        },
    }));
    let texts = snap.texts.as_ref();
    let policy_text = texts.and_then(|t| t.policy.as_deref());
    let subject = d.subject.clone().unwrap_or_default();
    let mut start: Vec<&str> = vec![&subject];
    start.extend(d.roles.iter().map(String::as_str));
    let all = policy_text.map(|p| closure(p, &start)).unwrap_or_default();
    let through_g: Vec<&String> = all
        .iter()
        .filter(|x| !start.contains(&x.as_str()))
        .collect();
    steps.push(json!({
        "step": "roles",
        "outcome": if r == Reason::RoleLookupFailed { "failed" } else { "ok" },
        "summary": if r == Reason::RoleLookupFailed { d.detail.clone() } else if d.roles.is_empty() && through_g.is_empty() {
            "no roles".to_string()
        } else {
            format!("{} role(s) from the token or lookup, {} more through `g` lines", d.roles.len(), through_g.len())
        },
        "from_token_or_lookup": d.roles,
        "through_grouping": through_g,
        "attributes": d.attributes.iter().map(|a| json!({"name": a.name, "value": if a.log { Some(&a.value) } else { None }})).collect::<Vec<_>>(),
    }));
    let considered: Vec<String> = policy_text
        .map(|p| {
            p.lines()
                .filter(|l| {
                    let f = fields(l);
                    f.first().is_some_and(|t| t == "p") && f.get(1).is_some_and(|s| all.contains(s))
                })
                .map(|l| l.trim().to_string())
                .take(200)
                .collect()
        })
        .unwrap_or_default();
    let others = (r == Reason::PolicyDenied)
        .then(|| policy_text.map(|p| would_allow(snap, d, &all, p)))
        .flatten();
    finish(snap, d, steps, claims, verified, considered, others)
}

fn finish(
    snap: &Snapshot,
    d: &Decision,
    mut steps: Vec<Value>,
    claims: Option<Value>,
    verified: bool,
    considered: Vec<String>,
    others: Option<(Vec<String>, bool)>,
) -> Value {
    let reached_policy = matches!(
        d.reason,
        Reason::Allowed | Reason::PolicyDenied | Reason::AttributeMissing
    );
    if reached_policy {
        steps.push(json!({
            "step": "policy",
            "outcome": if d.allowed { "ok" } else { "failed" },
            "summary": d.detail,
            "considered": considered,
            "matched": (!d.matched_policy.is_empty()).then(|| format!("p, {}", d.matched_policy.join(", "))),
        }));
    }
    let (would, truncated) = others.unwrap_or_default();
    json!({
        "decision": {
            "allowed": d.allowed,
            "status": d.status,
            "reason": d.reason.as_str(),
            "detail": d.detail,
            "subject": d.subject,
            "policy_revision": &*d.revision,
        },
        "steps": steps,
        "claims": claims,
        "claims_verified": verified,
        "would_allow": would,
        "would_allow_truncated": truncated,
        "policy_text_kept": snap.texts.as_ref().is_some_and(|t| t.policy.is_some()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_follows_grouping_lines() {
        let policy = "p, admin, /x, GET\ng, alice, editor\ng, editor, writer\ng, bob, admin\ng2, writer, reader, d1\n";
        let c = closure(policy, &["alice"]);
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            ["alice", "editor", "reader", "writer"]
        );
    }

    #[test]
    fn claims_are_read_without_the_signature() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"a"}"#);
        let c = claims_of(&format!("h.{payload}.s")).unwrap();
        assert_eq!(c["sub"], "a");
        assert!(claims_of("nonsense").is_none());
    }
}
