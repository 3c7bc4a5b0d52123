//! W3C trace context in the decision log: a `traceparent` on any interface
//! that carries headers puts the caller's `trace_id`, and a new `span_id`
//! for authzd's decision, into the record; an invalid one labels nothing
//! and changes no decision.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_header_carrying_interface_labels_the_record() {
    let (env, _rsa) = rsa_env(DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let http = reqwest::Client::new();
    // JSON: in the message's headers, and as the call's own header.
    srv.check(json!({"method": "GET", "path": "/AdminUser", "headers": {"traceparent": tp}}))
        .await;
    http.post(srv.url("/v1/check"))
        .header("traceparent", &tp)
        .json(&json!({"method": "GET", "path": "/AdminUser"}))
        .send()
        .await
        .unwrap();
    // authzd.v1 gRPC, as call metadata.
    let mut grpc = srv.grpc_client().await;
    let mut call = tonic::Request::new(authzd::pb::CheckRequest {
        method: "GET".into(),
        path: "/AdminUser".into(),
        ..Default::default()
    });
    call.metadata_mut()
        .insert("traceparent", tp.parse().unwrap());
    grpc.check(call).await.unwrap();
    // Envoy gRPC, Envoy HTTP mode, forward auth.
    envoy_check(
        &srv,
        envoy_request("GET", "/AdminUser", &[("traceparent", &tp)]),
    )
    .await;
    http.get(srv.url("/ext_authz/AdminUser"))
        .header("traceparent", &tp)
        .send()
        .await
        .unwrap();
    http.get(srv.url("/v1/forward-auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/AdminUser")
        .header("traceparent", &tp)
        .send()
        .await
        .unwrap();
    // Invalid: upper case, all-zero trace id, markup. No label, same decision.
    for bad in [
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        format!("00-{}-{PARENT}-01", "0".repeat(32)),
        "00-\"><img src=x>-1-01".to_string(),
    ] {
        let r = srv
            .check(json!({"method": "GET", "path": "/AdminUser", "headers": {"traceparent": bad}}))
            .await;
        assert_eq!(r["reason"], "token_missing");
    }
    srv.stop().await;
    let log = env.log_lines();
    assert_eq!(log.len(), 9);
    let sources: Vec<&str> = log[..6]
        .iter()
        .map(|l| l["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        [
            "http",
            "http",
            "grpc",
            "envoy_grpc",
            "envoy_http",
            "forward_auth"
        ]
    );
    let mut spans = std::collections::HashSet::new();
    for l in &log[..6] {
        assert_eq!(l["trace_id"], TRACE, "{l}");
        let span = l["span_id"].as_str().unwrap();
        assert!(
            span.len() == 16 && span != PARENT && span.bytes().all(|b| b.is_ascii_hexdigit()),
            "{l}"
        );
        spans.insert(span.to_string());
    }
    assert_eq!(spans.len(), 6, "each decision is its own span");
    for l in &log[6..] {
        assert!(l["trace_id"].is_null() && l["span_id"].is_null(), "{l}");
    }
}
