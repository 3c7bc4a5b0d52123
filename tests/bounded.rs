//! Unauthenticated input is bounded (`docs/security.md`, "Bounded input"):
//! a stream of token-less requests with the longest paths and resources a
//! client can send, through every interface, with the explorer on, grows
//! neither authzd's memory nor its log: paths over 8 KiB are refused,
//! everything a record, the explorer or a span keeps is clipped at 1 KiB.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident set of `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

/// A path of about `len` bytes, different for each `i`.
fn long_path(i: usize, len: usize) -> String {
    let mut p = format!("/public/{i}/");
    while p.len() < len {
        p.push_str("abcdefghij");
    }
    p.truncate(len);
    p
}

/// One unauthenticated request of each interface for `path`; the statuses
/// (or gRPC codes) they answered.
async fn every_interface(
    http: &reqwest::Client,
    base: &str,
    grpc: &str,
    path: &str,
) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    let v: Value = http
        .post(format!("{base}/v1/check"))
        .json(&json!({"method": "GET", "path": path}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    out.push(("json", v["status"].as_i64().unwrap()));
    let v: Value = http
        .post(format!("{base}/v1/check/batch"))
        .json(&json!({"items": [{"resource": path, "action": "GET"}, {"resource": &path[1..], "action": path}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    out.push((
        "json batch",
        v["results"][1]["status"].as_i64().unwrap_or(0),
    ));
    let r = http
        .get(format!("{base}/v1/forward-auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", path)
        .send()
        .await
        .unwrap();
    out.push(("forward auth", i64::from(r.status().as_u16())));
    // A URI is at most 64 KiB in the `http` crate: the longest one it sends.
    let r = http
        .get(format!(
            "{base}/ext_authz{}",
            &path[..path.len().min(60 * 1024)]
        ))
        .send()
        .await
        .unwrap();
    out.push(("envoy http", i64::from(r.status().as_u16())));
    let mut client = authzd::pb::authorizer_client::AuthorizerClient::connect(grpc.to_string())
        .await
        .unwrap();
    let r = client
        .check(authzd::pb::CheckRequest {
            method: "GET".into(),
            path: path.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    out.push(("grpc", i64::from(r.status)));
    let mut envoy = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::connect(grpc.to_string())
        .await
        .unwrap();
    let r = envoy
        .check(envoy_request("GET", path, &[]))
        .await
        .unwrap()
        .into_inner();
    out.push(("envoy grpc", i64::from(r.status.unwrap().code)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_unauthenticated_input_grows_neither_memory_nor_the_log() {
    let (env, _rsa) = rsa_env(DEMO_POLICY, "");
    let (grpc_port, admin_port) = (free_port(), free_port());
    let text = std::fs::read_to_string(env.config()).unwrap().replace(
        "grpc_addr = \"127.0.0.1:0\"",
        &format!("grpc_addr = \"127.0.0.1:{grpc_port}\""),
    );
    env.write(
        "authzd.toml",
        &format!("{text}\n[admin]\naddr = \"127.0.0.1:{admin_port}\"\nrecent = 2000\n"),
    );
    let bin = Binary::start(&env).await;
    let pid = bin.child.id().unwrap();
    let base = bin.url.clone();
    let grpc = format!("http://127.0.0.1:{grpc_port}");
    let http = reqwest::Client::new();
    // Warm up: connection pools, caches, the explorer's first minute.
    for i in 0..20 {
        every_interface(&http, &base, &grpc, &long_path(i, 100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_mib(pid);
    for i in 0..150 {
        // Past the 8 KiB bound: refused, never matched or kept whole.
        for (interface, status) in
            every_interface(&http, &base, &grpc, &long_path(i, 256 * 1024)).await
        {
            // A resource that is no path (the batch's second item) is
            // decided, without a token; every path is refused.
            let refused = matches!(status, 400 | 403 | 3 | 7 | 431 | 414);
            assert!(
                refused || (interface == "json batch" && status == 401),
                "{interface}: {status} for a 256 KiB path"
            );
        }
        // Just under it: decided (no token), and kept clipped.
        for (interface, status) in
            every_interface(&http, &base, &grpc, &long_path(i, 8 * 1024 - 16)).await
        {
            assert!(
                matches!(status, 401 | 16 | 400),
                "{interface}: {status} for an 8 KiB path"
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_mib(pid);
    // 1,800 requests of up to 256 KiB each: before the bound, 300 of them
    // grew the resident set by 197 MiB.
    assert!(
        after - before < 48.0,
        "resident set grew from {before:.1} to {after:.1} MiB"
    );
    // The explorer keeps every value clipped.
    let v: Value = http
        .get(format!(
            "http://127.0.0.1:{admin_port}/api/decisions?limit=500"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = v["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 500);
    let mut clipped = 0;
    for r in &records {
        for field in ["resource", "action", "detail"] {
            let s = r[field].as_str().unwrap_or_default();
            assert!(s.len() <= 1024 + 3, "{field} of {} bytes kept", s.len());
            clipped += usize::from(s.ends_with('…'));
        }
    }
    assert!(clipped > 200, "{clipped} clipped values");
    drop(bin);
    // And so does the log: no line holds a value whole past the bound.
    let log = std::fs::read_to_string(env.dir.path().join("decisions.log")).unwrap();
    let longest = log.lines().map(str::len).max().unwrap();
    assert!(longest < 5 * 1024, "a {longest}-byte log line");
    for line in log.lines().filter(|l| l.len() > 2048) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["resource"].as_str().unwrap().ends_with('…'), "{line}");
    }
}
