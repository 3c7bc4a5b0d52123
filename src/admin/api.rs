//! The JSON the pages read: recent decisions (and a stream of new ones as
//! server-sent events), counts, and the policy as it serves. Records are the
//! decision log's own lines, so a page shows exactly what the log holds.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use serde::Deserialize;
use serde_json::json;

use super::Admin;
use crate::explorer::{Filter, unix_ms};

/// How often a live stream looks for new decisions.
const STREAM_EVERY: Duration = Duration::from_millis(300);
/// The most records one answer carries.
const MAX_RECORDS: usize = 500;
/// The most records one stream tick carries: past a few hundred a second,
/// a page shows a live sample (nobody reads faster), and the stream's cost
/// stays flat however busy authzd is.
const MAX_STREAMED: usize = 200;

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// What a page asks besides the [`Filter`] (read from the same query string).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Page {
    pub limit: Option<usize>,
    /// For the stream: the sequence number to start from.
    pub after: Option<u64>,
}

/// `GET /api/decisions`: the newest matching records, newest first, and the
/// sequence number a stream should start from.
pub async fn decisions(
    State(admin): State<Admin>,
    Query(filter): Query<Filter>,
    Query(page): Query<Page>,
) -> Response {
    let limit = page.limit.unwrap_or(200).clamp(1, MAX_RECORDS);
    let (found, next) = admin.explorer.recent(&filter, limit);
    let (held, capacity) = admin.explorer.size();
    let mut body =
        format!("{{\"next\":{next},\"held\":{held},\"capacity\":{capacity},\"records\":[");
    for (i, line) in found.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(line);
    }
    body.push_str("]}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /api/decisions/{id}`: one record, while it is in the ring.
pub async fn decision(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    match admin.explorer.find(&id) {
        Some(o) => ([(header::CONTENT_TYPE, "application/json")], o.to_string()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "no such decision among the recent ones"})),
        )
            .into_response(),
    }
}

/// `GET /api/stream`: matching decisions as they are made, from sequence
/// number `after`: every 0.3 s at most one `event: decisions` whose data is
/// a JSON array of records, oldest first. Ends when authzd shuts down.
pub async fn stream(
    State(admin): State<Admin>,
    Query(filter): Query<Filter>,
    Query(page): Query<Page>,
) -> Response {
    let explorer = admin.explorer.clone();
    let mut stopping = admin.stopping.clone();
    let start = page
        .after
        .unwrap_or_else(|| explorer.recent(&Filter::default(), 1).1);
    let events = async_stream(move |tx| async move {
        let mut next = start;
        let mut tick = tokio::time::interval(STREAM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            let (found, after) = explorer.since(next, &filter, MAX_STREAMED);
            next = after;
            if found.is_empty() {
                continue;
            }
            // One event per tick, not per decision: each event is a write.
            let mut data =
                String::with_capacity(found.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
            data.push('[');
            for (i, line) in found.iter().enumerate() {
                if i > 0 {
                    data.push(',');
                }
                data.push_str(line);
            }
            data.push(']');
            let ev = Event::default().event("decisions").data(data);
            if tx.send(Ok(ev)).await.is_err() {
                return;
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// A stream fed by a task, ending when the task does or the client leaves.
fn async_stream<F, Fut>(run: F) -> tokio_stream::wrappers::ReceiverStream<Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(run(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[derive(Debug, Deserialize)]
pub struct Window {
    #[serde(default)]
    pub window: Option<String>,
}

/// `GET /api/overview?window=5m|1h|24h`: counts for the overview page.
pub async fn overview(State(admin): State<Admin>, Query(w): Query<Window>) -> Response {
    let secs = match w.window.as_deref().unwrap_or("1h") {
        "5m" => 300,
        "1h" => 3600,
        "24h" => 86_400,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": format!("window `{other}` is not 5m, 1h or 24h")})),
            )
                .into_response();
        }
    };
    let o = admin
        .explorer
        .overview(Duration::from_secs(secs), std::time::SystemTime::now());
    Json(o).into_response()
}

/// `GET /api/policy`: what serves, where it came from, and the reloads.
pub async fn policy(State(admin): State<Admin>) -> Response {
    let store = &admin.authorizer.store;
    let snap = store.load();
    let texts = snap.texts.as_ref();
    let routes: Vec<_> = snap
        .config
        .routes
        .iter()
        .map(|r| {
            json!({
                "method": r.method,
                "path": r.path,
                "scopes": r.scopes,
                "public": matches!(r.auth, crate::config::RouteAuth::None),
            })
        })
        .collect();
    let history: Vec<_> = store
        .history()
        .iter()
        .rev()
        .map(|e| {
            json!({
                "at": rfc3339(e.at),
                "at_ms": unix_ms(e.at),
                "result": e.result,
                "revision": &*e.revision,
                "rules": e.rules,
                "error": e.error,
            })
        })
        .collect();
    let store_status = store.store_status().map(|s| {
        let v = s.view();
        json!({
            "kind": s.kind.as_str(),
            "url": &s.url,
            "serving_from": v.origin.as_str(),
            "connected": v.connected,
            "last_sync": v.last_sync.map(rfc3339),
            "unreachable_since": v.failing_since.map(rfc3339),
            "error": v.error,
        })
    });
    let shadow = snap.config.shadow.as_ref().map(|s| {
        let candidate = snap.shadow.as_ref().and_then(|r| r.as_ref().ok());
        json!({
            "model": s.model.display().to_string(),
            "policy": s.policy.display().to_string(),
            "sample": s.sample,
            "revision": candidate.map(|c| c.revision.to_string()),
            "rules": candidate.map(|c| c.policy.rules),
            "error": snap.shadow.as_ref().and_then(|r| r.as_ref().err()).cloned(),
        })
    });
    Json(json!({
        "revision": &*snap.revision,
        "loaded_at": rfc3339(snap.loaded_at),
        "config": snap.config.source.display().to_string(),
        "model_file": snap.config.policy.model.display().to_string(),
        "policy_source": texts.map(|t| t.policy_name.clone()),
        "evaluator": &snap.policy.evaluator,
        "rules": snap.policy.rules,
        "groupings": snap.policy.groupings,
        "model": texts.map(|t| t.model.clone()),
        "policy": texts.and_then(|t| t.policy.clone()),
        "policy_too_large": texts.is_some_and(|t| t.policy.is_none()),
        "routes": routes,
        "history": history,
        "last_error": store.last_error(),
        "restart_required": store.restart_required(),
        "store": store_status,
        "shadow": shadow,
    }))
    .into_response()
}

/// `GET /api/whoami`: the signed-in subject, for the page header.
pub async fn whoami(State(admin): State<Admin>, headers: axum::http::HeaderMap) -> Response {
    let who = super::session::caller(&admin.authorizer, &admin.cfg, &admin.sessions, &headers)
        .await
        .map(|s| s.subject)
        .unwrap_or_default();
    Json(json!({"subject": who, "signs_in": admin.cfg.signs_in()})).into_response()
}
