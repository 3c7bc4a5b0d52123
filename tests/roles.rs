//! Role lookup (`docs/configuration.md`) against a real local directory service: merged with
//! claim roles, cached, coalesced, scoped by `when_scope`, and failing closed
//! with 503 `role_lookup_failed` on every kind of failure.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
};
use common::*;
use parking_lot::Mutex;
use serde_json::json;

const ISS: &str = "https://rsa.example";

/// A role directory whose answers, status and latency the test controls.
#[derive(Clone, Default)]
struct Directory {
    roles: Arc<Mutex<HashMap<String, String>>>,
    hits: Arc<AtomicUsize>,
    status: Arc<Mutex<Option<u16>>>,
    delay: Arc<Mutex<Duration>>,
    last_auth: Arc<Mutex<Option<String>>>,
    last_sub: Arc<Mutex<Option<String>>>,
}

async fn lookup(
    State(d): State<Directory>,
    Path(sub): Path<String>,
    headers: HeaderMap,
) -> axum::response::Response {
    d.hits.fetch_add(1, Ordering::SeqCst);
    *d.last_sub.lock() = Some(sub.clone());
    *d.last_auth.lock() = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let delay = *d.delay.lock();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = *d.status.lock() {
        return StatusCode::from_u16(code).unwrap().into_response();
    }
    d.roles
        .lock()
        .get(&sub)
        .cloned()
        .unwrap_or_else(|| "[]".into())
        .into_response()
}

async fn directory() -> (Directory, SocketAddr) {
    let d = Directory::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/users/{sub}/roles", get(lookup))
        .with_state(d.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (d, addr)
}

async fn setup(extra_lookup: &str) -> (Directory, Running, SigningKey, Env) {
    let (dir, rsa, env) = setup_files(extra_lookup).await;
    let srv = Running::start(&env.config()).await;
    (dir, srv, rsa, env)
}

async fn setup_files(extra_lookup: &str) -> (Directory, SigningKey, Env) {
    let (dir, addr) = directory().await;
    let rsa = key("rsa.pem");
    let lookup = format!(
        "\n[roles.lookup]\nurl = \"http://{addr}/users/{{sub}}/roles\"\ntimeout_ms = 300\nttl_secs = 60\n{extra_lookup}\n"
    );
    let env = Env::new(
        &file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", ""),
        DEMO_POLICY,
        &lookup,
    );
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    (dir, rsa, env)
}

fn tok(k: &SigningKey, sub: &str, scope: Option<&str>) -> String {
    let mut c = claims(ISS, sub);
    c["cognito:groups"] = json!(["regular"]);
    if let Some(s) = scope {
        c["scope"] = json!(s);
    }
    token(k, &c)
}

async fn admin_check(srv: &Running, t: &str) -> serde_json::Value {
    srv.check(json!({"method": "GET", "path": "/AdminUser", "token": t}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looked_up_roles_merge_with_claim_roles_and_are_cached() {
    let (dir, srv, rsa, _env) = setup("").await;
    dir.roles
        .lock()
        .insert("alice".into(), r#"["admin"]"#.into());
    dir.roles
        .lock()
        .insert("bob".into(), r#"{"roles": ["auditor"]}"#.into());
    let r = admin_check(&srv, &tok(&rsa, "alice", None)).await;
    assert_eq!(r["reason"], "allowed", "{r}");
    assert_eq!(r["roles"], json!(["regular", "admin"]));
    let r = admin_check(&srv, &tok(&rsa, "bob", None)).await;
    assert_eq!(r["reason"], "policy_denied");
    assert_eq!(r["roles"], json!(["regular", "auditor"]));
    assert_eq!(dir.hits.load(Ordering::SeqCst), 2);
    for _ in 0..5 {
        admin_check(&srv, &tok(&rsa, "alice", None)).await;
    }
    assert_eq!(dir.hits.load(Ordering::SeqCst), 2, "answers are cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_subject_make_one_request() {
    let (dir, srv, rsa, _env) = setup("").await;
    dir.roles
        .lock()
        .insert("carol".into(), r#"["admin"]"#.into());
    *dir.delay.lock() = Duration::from_millis(100);
    let t = tok(&rsa, "carol", None);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (url, t) = (srv.url("/v1/check"), t.clone());
            tokio::spawn(async move {
                let r: serde_json::Value = reqwest::Client::new()
                    .post(url)
                    .json(&json!({"method": "GET", "path": "/AdminUser", "token": t}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                r["reason"].as_str().unwrap().to_string()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "allowed");
    }
    assert_eq!(dir.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_is_503_role_lookup_failed_never_an_allow() {
    let (dir, srv, rsa, _env) = setup("").await;
    dir.roles
        .lock()
        .insert("dave".into(), r#"["admin"]"#.into());
    // Non-2xx.
    *dir.status.lock() = Some(500);
    let r = admin_check(&srv, &tok(&rsa, "dave", None)).await;
    assert_eq!(
        (
            r["reason"].as_str(),
            r["status"].as_u64(),
            r["allowed"].as_bool()
        ),
        (Some("role_lookup_failed"), Some(503), Some(false))
    );
    // Bad JSON.
    *dir.status.lock() = None;
    dir.roles
        .lock()
        .insert("erin".into(), r#"{"groups": ["admin"]}"#.into());
    assert_eq!(
        admin_check(&srv, &tok(&rsa, "erin", None)).await["reason"],
        "role_lookup_failed"
    );
    // Timeout (300 ms configured).
    *dir.delay.lock() = Duration::from_millis(1500);
    assert_eq!(
        admin_check(&srv, &tok(&rsa, "frank", None)).await["reason"],
        "role_lookup_failed"
    );
    *dir.delay.lock() = Duration::ZERO;
    // Failures are not cached: the directory recovers, so does the answer.
    assert_eq!(
        admin_check(&srv, &tok(&rsa, "dave", None)).await["reason"],
        "allowed"
    );
    // Envoy sees 503 and UNAVAILABLE.
    *dir.status.lock() = Some(502);
    let resp = reqwest::Client::new()
        .get(srv.url("/ext_authz/AdminUser"))
        .bearer_auth(tok(&rsa, "gina", None))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"message":"Service Unavailable"}"#
    );
    // Batch: every item carries the failure.
    let r: serde_json::Value = reqwest::Client::new()
        .post(srv.url("/v1/check/batch"))
        .json(&json!({"token": tok(&rsa, "hank", None), "items": [{"resource": "/RegularUser", "action": "GET"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["reason"], "role_lookup_failed");
    let metrics = reqwest::get(srv.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("authzd_role_lookup_total{result=\"error\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_scope_limits_lookups_and_subjects_are_encoded() {
    let (dir, srv, rsa, _env) = setup("when_scope = \"roles\"").await;
    dir.roles
        .lock()
        .insert("a/b c".into(), r#"["admin"]"#.into());
    // Without the scope: no lookup, claim roles only.
    let r = admin_check(&srv, &tok(&rsa, "a/b c", None)).await;
    assert_eq!(r["reason"], "policy_denied");
    assert_eq!(dir.hits.load(Ordering::SeqCst), 0);
    let r = admin_check(&srv, &tok(&rsa, "a/b c", Some("openid roles"))).await;
    assert_eq!(r["reason"], "allowed", "{r}");
    // The directory saw one path segment: the subject cannot change the URL's shape.
    assert_eq!(dir.last_sub.lock().as_deref(), Some("a/b c"));
}

/// The directory's bearer token comes from an environment variable (never the
/// config file); the real binary is run with it set, through `authzd check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_credentials_come_from_the_environment() {
    let (dir, rsa, env) = setup_files(
        "bearer_token_env = \"AUTHZD_TEST_DIRECTORY_TOKEN\"\nheaders = { \"x-api-key\" = \"k\" }",
    )
    .await;
    dir.roles.lock().insert("ivy".into(), r#"["admin"]"#.into());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args([
            "check",
            "--method",
            "GET",
            "--path",
            "/AdminUser",
            "--token",
            &tok(&rsa, "ivy", None),
            "--config",
        ])
        .arg(env.config())
        .env("AUTHZD_TEST_DIRECTORY_TOKEN", "s3cret")
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dir.last_auth.lock().as_deref(), Some("Bearer s3cret"));
    // Without the variable the config is rejected, naming it.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args(["validate", "--config"])
        .arg(env.config())
        .env_remove("AUTHZD_TEST_DIRECTORY_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTHZD_TEST_DIRECTORY_TOKEN"));
}

/// SIGTERM: stop accepting, finish the check in flight (held up here by a slow
/// directory), flush the decision log, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_checks_and_flushes_the_log() {
    let (dir, rsa, env) = setup_files("").await;
    dir.roles
        .lock()
        .insert("slow".into(), r#"["admin"]"#.into());
    *dir.delay.lock() = Duration::from_millis(1000);
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write(
        "authzd.toml",
        &text.replace("timeout_ms = 300", "timeout_ms = 5000"),
    );
    let mut bin = Binary::start(&env).await;
    let url = bin.url.clone();
    let t = tok(&rsa, "slow", None);
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/v1/check"))
            .json(&json!({"method": "GET", "path": "/AdminUser", "token": t}))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    // Let the check reach the directory, then ask the server to stop.
    while dir.hits.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bin.signal("-TERM");
    let answer = in_flight.await.unwrap();
    assert_eq!(
        answer["reason"], "allowed",
        "the in-flight check finished: {answer}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), bin.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let log = env.log_lines();
    assert_eq!(log.len(), 1, "the record was flushed before exit");
    assert_eq!(log[0]["decision_id"], answer["decision_id"]);
}
