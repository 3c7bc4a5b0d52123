//! A Lambda Runtime API on 127.0.0.1: the four endpoints AWS serves a
//! custom runtime (next invocation, response, error, init error). Shared by
//! tests/lambda.rs and benches/lambda.rs (included there by path).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;

/// What the function posted for one invocation.
#[derive(Debug, Clone)]
pub enum Posted {
    Answer(Value),
    Error { error_type: String, body: Value },
}

#[derive(Default)]
struct Emu {
    queue: VecDeque<(String, Value)>,
    results: HashMap<String, Posted>,
    init_error: Option<Value>,
    next_id: u64,
}

/// A Lambda Runtime API on 127.0.0.1.
#[derive(Clone)]
pub struct RuntimeApi {
    pub addr: SocketAddr,
    emu: Arc<Mutex<Emu>>,
    changed: Arc<Notify>,
}

async fn next(State(api): State<RuntimeApi>) -> impl IntoResponse {
    loop {
        let notified = api.changed.notified();
        if let Some((id, event)) = api.emu.lock().queue.pop_front() {
            let mut h = HeaderMap::new();
            h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            h.insert(
                "lambda-runtime-deadline-ms",
                "9999999999999".parse().unwrap(),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:1:function:authzd"
                    .parse()
                    .unwrap(),
            );
            return (h, Json(event));
        }
        notified.await;
    }
}

async fn response(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    api.emu.lock().results.insert(id, Posted::Answer(body));
    api.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn error(
    State(api): State<RuntimeApi>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    api.emu
        .lock()
        .results
        .insert(id, Posted::Error { error_type, body });
    api.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<RuntimeApi>, Json(body): Json<Value>) -> StatusCode {
    api.emu.lock().init_error = Some(body);
    api.changed.notify_waiters();
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = RuntimeApi {
            addr: l.local_addr().unwrap(),
            emu: Arc::default(),
            changed: Arc::default(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        api
    }

    /// Queues `event` and waits for what the function posts for it.
    pub async fn invoke(&self, event: Value) -> Posted {
        let id = {
            let mut e = self.emu.lock();
            e.next_id += 1;
            let id = format!("req-{}", e.next_id);
            e.queue.push_back((id.clone(), event));
            id
        };
        self.changed.notify_waiters();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let notified = self.changed.notified();
                if let Some(p) = self.emu.lock().results.get(&id) {
                    return p.clone();
                }
                notified.await;
            }
        })
        .await
        .expect("the function never answered")
    }

    pub async fn wait_init_error(&self) -> Value {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let notified = self.changed.notified();
                if let Some(v) = self.emu.lock().init_error.clone() {
                    return v;
                }
                notified.await;
            }
        })
        .await
        .expect("no init error was posted")
    }
}
