//! W3C trace context in the decision log: a `traceparent` on any interface
//! that carries headers puts the caller's `trace_id`, and a new `span_id`
//! for authzd's decision, into the record; an invalid one labels nothing
//! and changes no decision. With `[tracing] otlp_endpoint`, each decision is
//! a span at a real OTLP/gRPC collector the test runs, and a collector that
//! is gone costs spans (counted), never decisions.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{otlp::Collector, *};
use serde_json::{Value, json};

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

/// `env`'s config with a `[tracing]` table appended.
fn with_tracing(env: &Env, table: &str) {
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write("authzd.toml", &format!("{text}\n[tracing]\n{table}\n"));
}

async fn metric(srv: &Running, result: &str) -> u64 {
    srv.counter("authzd_trace_spans_total", result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_decision_is_a_span_at_the_collector() {
    let collector = Collector::start().await;
    let (env, rsa) = rsa_env(DEMO_POLICY, "");
    with_tracing(
        &env,
        &format!(
            "otlp_endpoint = \"{}\"\nservice_name = \"authzd-test\"",
            collector.endpoint()
        ),
    );
    let srv = Running::start(&env.config()).await;
    let mut c = claims("https://rsa.example", "alice");
    c["cognito:groups"] = json!(["reader"]);
    let bearer = format!("Bearer {}", token(&rsa, &c));
    // A caller's trace (with its tracestate), through JSON and Envoy gRPC.
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let allowed = srv
        .check(json!({"method": "GET", "path": "/api/items", "headers": {
            "traceparent": tp, "tracestate": "vendor=opaque-1", "authorization": bearer}}))
        .await;
    assert_eq!(allowed["allowed"], true);
    envoy_check(
        &srv,
        envoy_request("GET", "/RegularUser", &[("traceparent", &tp)]),
    )
    .await;
    // No trace sent: authzd starts one, so the record still joins a span.
    srv.check(
        json!({"method": "DELETE", "path": "/AdminUser", "headers": {"authorization": bearer}}),
    )
    .await;
    // Not sampled by the caller: labelled, not exported.
    srv.check(json!({"method": "GET", "path": "/AdminUser",
        "headers": {"traceparent": format!("00-{TRACE}-{PARENT}-00")}}))
        .await;
    let spans = collector.wait_for(3).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(metric(&srv, "exported").await >= 3);
    srv.stop().await;
    let spans_after = collector.received();
    assert_eq!(
        spans_after.len(),
        3,
        "the unsampled decision is not exported: {spans:?}"
    );
    let log = env.log_lines();
    assert_eq!(log.len(), 4);
    for (record, got) in log[..3].iter().zip(&spans_after) {
        let s = &got.span;
        assert_eq!(got.service, "authzd-test");
        assert_eq!(
            hex::encode(&s.trace_id),
            record["trace_id"].as_str().unwrap()
        );
        assert_eq!(hex::encode(&s.span_id), record["span_id"].as_str().unwrap());
        assert_eq!(s.name, "authzd.check");
        let a = |k: &str| otlp::attr(&s.attributes, k);
        assert_eq!(
            a("authzd.decision_id").as_deref(),
            record["decision_id"].as_str()
        );
        assert_eq!(a("authzd.reason").as_deref(), record["reason"].as_str());
        assert_eq!(
            a("authzd.policy_revision").as_deref(),
            record["policy_revision"].as_str()
        );
        assert_eq!(a("authzd.source").as_deref(), record["source"].as_str());
        assert_eq!(
            a("http.response.status_code"),
            Some(record["status"].to_string())
        );
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
        let events: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(events.last(), Some(&"decision"), "{events:?}");
    }
    // The caller's span is the parent; its tracestate is passed on.
    let first = &spans_after[0].span;
    assert_eq!(hex::encode(&first.parent_span_id), PARENT);
    assert_eq!(first.trace_state, "vendor=opaque-1");
    assert_eq!(
        otlp::attr(&first.attributes, "enduser.id").as_deref(),
        Some("alice")
    );
    let events: Vec<&str> = first.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        events,
        ["route", "token", "principal", "policy", "decision"]
    );
    let policy = &first.events[3];
    assert_eq!(
        otlp::attr(&policy.attributes, "authzd.matched_policy").as_deref(),
        Some("reader, /api/*, GET")
    );
    assert_eq!(log[0]["trace_id"], TRACE);
    assert_eq!(log[1]["trace_id"], TRACE);
    // The started trace is new, and its span has no parent.
    let root = &spans_after[2].span;
    assert_ne!(hex::encode(&root.trace_id), TRACE);
    assert!(root.parent_span_id.is_empty());
    // A denial is not an error; the unsampled record keeps its label.
    assert_eq!(spans_after[1].span.status.as_ref().map_or(0, |s| s.code), 0);
    assert_eq!(log[3]["trace_id"], TRACE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_gone_costs_spans_not_decisions() {
    // A port nothing listens on, a short export timeout, a queue of two.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (env, rsa) = rsa_env(DEMO_POLICY, "");
    with_tracing(
        &env,
        &format!("otlp_endpoint = \"{endpoint}\"\nexport_timeout_ms = 300\nqueue_size = 2"),
    );
    let srv = Running::start(&env.config()).await;
    let mut c = claims("https://rsa.example", "alice");
    c["cognito:groups"] = json!(["regular"]);
    let bearer = format!("Bearer {}", token(&rsa, &c));
    let started = std::time::Instant::now();
    let mut n = 0u64;
    // Checks for two seconds: every one still decided as without tracing.
    while started.elapsed() < std::time::Duration::from_secs(2) {
        let allowed: Value = srv
            .check(json!({"method": "GET", "path": "/RegularUser", "headers": {"authorization": bearer}}))
            .await;
        assert_eq!(allowed["allowed"], true, "{allowed}");
        let denied = srv
            .check(json!({"method": "GET", "path": "/AdminUser", "headers": {"authorization": bearer}}))
            .await;
        assert_eq!(denied["reason"], "policy_denied", "{denied}");
        n += 2;
    }
    // Spans end up dropped, by a failed export or a full queue, and counted.
    let mut failed = 0;
    for _ in 0..100 {
        failed = metric(&srv, "dropped_export_failed").await;
        if failed > 0 && failed + metric(&srv, "dropped_queue_full").await >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let full = metric(&srv, "dropped_queue_full").await;
    assert!(failed > 0, "no failed export counted");
    assert!(full > 0, "a queue of two must overflow in {n} checks");
    srv.stop().await;
    assert_eq!(env.log_lines().len() as u64, n, "every decision is logged");
}
