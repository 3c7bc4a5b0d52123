//! CORS preflights (docs/security.md, "CORS preflights"): a preflight carries
//! no token, so no interface may answer it "allowed, forward it" by default.
//! Envoy (gRPC, with the protos as Envoy sends them, and HTTP mode) gets
//! authzd's own answer from `[cors]`; every other interface refuses.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::*;
use envoy_types::pb::envoy::service::auth::v3::{CheckResponse, check_response::HttpResponse};
use serde_json::json;

const APP: &str = "https://app.example.com";

/// A server on the demo routes with `top` (top-level keys) and `tail` (tables) added.
async fn start(top: &str, tail: &str) -> (Env, Running) {
    let (env, _rsa) = rsa_env(DEMO_POLICY, "");
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write("authzd.toml", &format!("{top}\n{text}\n{tail}\n"));
    let srv = Running::start(&env.config()).await;
    (env, srv)
}

const CORS: &str = r#"[cors]
allow_origins = ["https://app.example.com", "https://*.partner.example"]
allow_methods = ["GET", "POST", "DELETE"]
allow_headers = ["authorization", "content-type", "x-request-id"]
max_age_secs = 300
allow_credentials = true
"#;

/// The status Envoy's client would see and the response headers, or `None` for "forward it".
fn envoy_outcome(resp: &CheckResponse) -> Option<(i32, String, HashMap<String, String>)> {
    match &resp.http_response {
        Some(HttpResponse::OkResponse(_)) => {
            assert_eq!(resp.status.as_ref().unwrap().code, 0);
            None
        }
        Some(HttpResponse::DeniedResponse(d)) => {
            assert_ne!(
                resp.status.as_ref().unwrap().code,
                0,
                "a denied response needs a non-OK code"
            );
            let headers = d
                .headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect();
            Some((d.status.as_ref().unwrap().code, d.body.clone(), headers))
        }
        other => panic!("no http_response: {other:?}"),
    }
}

fn preflight_headers(origin: &str, method: &str) -> Vec<(&'static str, String)> {
    vec![
        ("origin", origin.to_string()),
        ("access-control-request-method", method.to_string()),
        (
            "access-control-request-headers",
            "authorization".to_string(),
        ),
    ]
}

/// Every interface, default settings, a protected route, a public route, and
/// a `{proxy+}` route: a preflight is never "allowed, forward it".
#[tokio::test]
async fn no_interface_forwards_a_preflight_by_default() {
    let (env, srv) = start("", "").await;
    let http = reqwest::Client::new();
    for path in ["/AdminUser", "/wish-list-service", "/api/anything/deeper"] {
        // JSON API.
        let r = srv
            .check(json!({"method": "OPTIONS", "path": path, "headers": {"origin": "https://evil.example", "access-control-request-method": "DELETE"}}))
            .await;
        assert_eq!(
            (
                r["allowed"].as_bool(),
                r["status"].as_u64(),
                r["reason"].as_str()
            ),
            (Some(false), Some(403), Some("cors_preflight")),
            "{path}: {r}"
        );
        // authzd.v1 gRPC.
        let mut grpc = srv.grpc_client().await;
        let r = grpc
            .check(authzd::pb::CheckRequest {
                method: "OPTIONS".into(),
                path: path.into(),
                headers: [("Origin", APP), ("Access-Control-Request-Method", "GET")]
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            !r.allowed && r.status == 403 && r.reason == "cors_preflight",
            "{path}: {r:?}"
        );
        // Envoy gRPC: without `[cors]` origins, even an app origin is refused, with no CORS headers.
        for origin in [APP, "https://evil.example"] {
            let h = preflight_headers(origin, "DELETE");
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let resp = envoy_check(&srv, envoy_request("OPTIONS", path, &h)).await;
            let (status, body, headers) = envoy_outcome(&resp).expect("never forwarded");
            assert_eq!(
                (status, body.as_str()),
                (403, r#"{"message":"Forbidden"}"#),
                "{path}"
            );
            assert!(
                !headers.keys().any(|k| k.starts_with("access-control-")),
                "{headers:?}"
            );
        }
        // Envoy HTTP mode.
        let resp = http
            .request(
                reqwest::Method::OPTIONS,
                srv.url(&format!("/ext_authz{path}")),
            )
            .header("origin", APP)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        // Forward auth, both conventions (the reported request).
        for (m, u) in [
            ("x-forwarded-method", "x-forwarded-uri"),
            ("x-original-method", "x-original-uri"),
        ] {
            let resp = http
                .get(srv.url("/v1/forward-auth"))
                .header(m, "OPTIONS")
                .header(u, path)
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "DELETE")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 403, "{path} via {m}");
            assert!(resp.headers().get("x-authz-subject").is_none());
        }
    }
    srv.stop().await;
    let log = env.log_lines();
    assert!(!log.is_empty());
    for l in &log {
        assert_eq!(
            (l["reason"].as_str(), l["allowed"].as_bool()),
            (Some("cors_preflight"), Some(false)),
            "{l}"
        );
    }
    // The refusal says what to do.
    assert!(log.iter().any(|l| {
        l["detail"]
            .as_str()
            .unwrap()
            .contains("answer preflights at the gateway")
    }));
}

/// `cors_preflight = "answer"` with `[cors]`: Envoy gRPC gets a denied
/// response with status 204 and exactly the configured CORS headers; a
/// foreign origin or method gets a 403 with none.
#[tokio::test]
async fn envoy_grpc_preflights_are_answered_from_the_cors_table() {
    let (env, srv) = start("", CORS).await;
    for (origin, path) in [
        (APP, "/AdminUser"),
        ("https://a.b.partner.example", "/wish-list-service"),
    ] {
        let h = preflight_headers(origin, "DELETE");
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = envoy_check(&srv, envoy_request("OPTIONS", path, &h)).await;
        let (status, body, headers) = envoy_outcome(&resp).expect("answered, not forwarded");
        assert_eq!((status, body.as_str()), (204, ""));
        let expected: HashMap<String, String> = [
            ("access-control-allow-origin", origin),
            ("access-control-allow-methods", "GET, POST, DELETE"),
            (
                "access-control-allow-headers",
                "authorization, content-type, x-request-id",
            ),
            ("access-control-max-age", "300"),
            ("access-control-allow-credentials", "true"),
            ("vary", "Origin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        assert_eq!(headers, expected, "exactly the configured CORS headers");
    }
    for (origin, method) in [
        ("https://evil.example", "GET"),
        ("https://app.example.com.evil.example", "GET"),
        ("https://partner.example", "GET"),
        ("null", "GET"),
        (APP, "PUT"),
    ] {
        let h = preflight_headers(origin, method);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = envoy_check(&srv, envoy_request("OPTIONS", "/AdminUser", &h)).await;
        let (status, _, headers) = envoy_outcome(&resp).expect("never forwarded");
        assert_eq!(status, 403, "{origin} {method}");
        assert!(
            !headers.keys().any(|k| k.starts_with("access-control-")),
            "{origin}: {headers:?}"
        );
    }
    srv.stop().await;
    let log = env.log_lines();
    assert_eq!(log[0]["status"], 204);
    assert_eq!(log[0]["reason"], "cors_preflight");
    assert_eq!(log[0]["allowed"], false);
}

#[tokio::test]
async fn envoy_http_mode_answers_preflights_itself() {
    let (_env, srv) = start("", CORS).await;
    let http = reqwest::Client::new();
    let resp = http
        .request(reqwest::Method::OPTIONS, srv.url("/ext_authz/AdminUser"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-allow-methods"], "GET, POST, DELETE");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["vary"], "Origin");
    assert!(h.get("x-authz-subject").is_none());
    assert_eq!(resp.text().await.unwrap(), "");
    let resp = http
        .request(reqwest::Method::OPTIONS, srv.url("/ext_authz/AdminUser"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Forward auth cannot carry an answer (any 2xx means "forward it"): refused even for an allowed origin.
    let resp = http
        .get(srv.url("/v1/forward-auth"))
        .header("x-forwarded-method", "OPTIONS")
        .header("x-forwarded-uri", "/AdminUser")
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    srv.stop().await;
}

/// The other modes: `deny` refuses everywhere, `check` decides like any
/// request (no token: 401), and only `allow` forwards (the documented risk).
#[tokio::test]
async fn deny_check_and_allow_modes() {
    for (mode, envoy_status, json_status) in [
        ("deny", Some(403), 403),
        ("check", Some(401), 401),
        ("allow", None, 200),
    ] {
        let (_env, srv) = start(&format!("cors_preflight = \"{mode}\""), CORS).await;
        let h = preflight_headers(APP, "GET");
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = envoy_check(&srv, envoy_request("OPTIONS", "/AdminUser", &h)).await;
        assert_eq!(envoy_outcome(&resp).map(|o| o.0), envoy_status, "{mode}");
        let r = srv
            .check(json!({"method": "OPTIONS", "path": "/AdminUser", "headers": {"origin": APP, "access-control-request-method": "GET"}}))
            .await;
        assert_eq!(r["status"].as_u64(), Some(json_status), "{mode}: {r}");
        let reason = if mode == "check" {
            "token_missing"
        } else {
            "cors_preflight"
        };
        assert_eq!(r["reason"], reason, "{mode}");
        srv.stop().await;
    }
}

/// An `OPTIONS` without both CORS headers is no preflight: an ordinary
/// request that needs a token, in every mode.
#[tokio::test]
async fn an_options_request_without_both_headers_needs_a_token() {
    let (_env, srv) = start("", CORS).await;
    for headers in [
        json!({"origin": APP}),
        json!({"access-control-request-method": "GET"}),
        json!({}),
    ] {
        let r = srv
            .check(json!({"method": "OPTIONS", "path": "/AdminUser", "headers": headers}))
            .await;
        assert_eq!(r["reason"], "token_missing", "{headers}");
    }
    srv.stop().await;
}
