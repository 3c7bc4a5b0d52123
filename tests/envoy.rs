//! Gateways (docs/interfaces.md): Envoy ext_authz gRPC v3 with the real Envoy protos,
//! Envoy's HTTP service mode, and nginx/Traefik forward auth — requests shaped
//! as those proxies send them.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::*;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, check_response::HttpResponse,
};
use serde_json::json;

const ISS: &str = "https://rsa.example";

async fn start() -> (Env, Running, SigningKey) {
    let rsa = key("rsa.pem");
    let issuer = file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", "");
    let env = Env::new(&issuer, DEMO_POLICY, "");
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let srv = Running::start(&env.config()).await;
    (env, srv, rsa)
}

fn admin_token(k: &SigningKey) -> String {
    let mut c = claims(ISS, "alice");
    c["cognito:groups"] = json!(["admin", "regular"]);
    token(k, &c)
}

fn ok_headers(resp: &CheckResponse) -> (HashMap<String, String>, Vec<String>) {
    match &resp.http_response {
        Some(HttpResponse::OkResponse(ok)) => (
            ok.headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect(),
            ok.headers_to_remove.clone(),
        ),
        other => panic!("expected OkResponse, got {other:?}"),
    }
}

fn denied(resp: &CheckResponse) -> (i32, String, HashMap<String, String>) {
    match &resp.http_response {
        Some(HttpResponse::DeniedResponse(d)) => (
            d.status.as_ref().unwrap().code,
            d.body.clone(),
            d.headers
                .iter()
                .map(|h| {
                    let h = h.header.as_ref().unwrap();
                    (h.key.clone(), h.value.clone())
                })
                .collect(),
        ),
        other => panic!("expected DeniedResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn envoy_grpc_allow_sets_upstream_headers_and_strips_spoofed_ones() {
    let (env, srv, rsa) = start().await;
    let t = admin_token(&rsa);
    let auth = format!("Bearer {t}");
    let req = envoy_request(
        "GET",
        "/AdminUser?tab=settings",
        &[
            ("authorization", &auth),
            ("x-authz-subject", "root"),
            ("x-authz-admin", "true"),
        ],
    );
    let resp = envoy_check(&srv, req).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 0);
    let (headers, remove) = ok_headers(&resp);
    assert_eq!(headers["x-authz-subject"], "alice");
    assert_eq!(headers["x-authz-roles"], "admin,regular");
    assert!(!headers["x-authz-decision-id"].is_empty());
    assert_eq!(
        remove,
        ["x-authz-admin"],
        "x-authz-subject is overwritten, the other spoofed header removed"
    );
    if let Some(HttpResponse::OkResponse(ok)) = &resp.http_response {
        for h in &ok.headers {
            assert_eq!(h.append_action, 2, "OVERWRITE_IF_EXISTS_OR_ADD");
        }
    }
    srv.stop().await;
    let log = env.log_lines();
    assert_eq!(log[0]["source"], "envoy_grpc");
    assert_eq!(log[0]["resource"], "/AdminUser", "query removed for policy");
}

#[tokio::test]
async fn envoy_grpc_denials_carry_status_body_and_challenge() {
    let (_env, srv, rsa) = start().await;
    // 401 without a token: plain challenge, gRPC UNAUTHENTICATED.
    let resp = envoy_check(&srv, envoy_request("GET", "/AdminUser", &[])).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 16);
    let (code, body, headers) = denied(&resp);
    assert_eq!(
        (code, body.as_str()),
        (401, r#"{"message":"Unauthorized"}"#)
    );
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(headers["content-type"], "application/json");
    // 401 with a bad token: RFC 6750 error attributes naming the reason.
    let mut c = claims(ISS, "alice");
    c["exp"] = json!(now() - 3600);
    let expired = format!("Bearer {}", token(&rsa, &c));
    let resp = envoy_check(
        &srv,
        envoy_request("GET", "/AdminUser", &[("authorization", &expired)]),
    )
    .await;
    let (_, _, headers) = denied(&resp);
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer error="invalid_token", error_description="token_expired""#
    );
    // 403: PERMISSION_DENIED and API Gateway's body, no challenge.
    let mut c = claims(ISS, "bob");
    c["cognito:groups"] = json!(["regular"]);
    let regular = format!("Bearer {}", token(&rsa, &c));
    let resp = envoy_check(
        &srv,
        envoy_request("GET", "/AdminUser", &[("authorization", &regular)]),
    )
    .await;
    assert_eq!(resp.status.as_ref().unwrap().code, 7);
    let (code, body, headers) = denied(&resp);
    assert_eq!((code, body.as_str()), (403, r#"{"message":"Forbidden"}"#));
    assert!(!headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn envoy_grpc_public_route_preflight_and_proxy_route() {
    let (_env, srv, rsa) = start().await;
    let resp = envoy_check(
        &srv,
        envoy_request(
            "GET",
            "/wish-list-service?page=2",
            &[("x-authz-subject", "root")],
        ),
    )
    .await;
    assert_eq!(resp.status.as_ref().unwrap().code, 0);
    let (headers, remove) = ok_headers(&resp);
    assert!(!headers.contains_key("x-authz-subject"));
    assert_eq!(
        remove,
        ["x-authz-subject"],
        "a public route must not pass a spoofed subject upstream"
    );
    let pre = envoy_request(
        "OPTIONS",
        "/AdminUser",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "DELETE"),
        ],
    );
    // Never forwarded: without `[cors]` origins, refused (tests/cors.rs).
    assert_eq!(envoy_check(&srv, pre).await.status.unwrap().code, 7);
    let mut c = claims(ISS, "kc");
    c["realm_access"] = json!({"roles": ["reader"]});
    let auth = format!("Bearer {}", token(&rsa, &c));
    let resp = envoy_check(
        &srv,
        envoy_request("GET", "/api/v2/things/9?x=1", &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(
        resp.status.unwrap().code,
        0,
        "{{proxy+}} route, keyMatch2 policy"
    );
}

#[tokio::test]
async fn envoy_grpc_malformed_requests_are_denied_not_errors() {
    let (_env, srv, rsa) = start().await;
    let resp = envoy_check(&srv, CheckRequest::default()).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 3);
    assert_eq!(denied(&resp).0, 403);
    // Empty method/path fields fall back to the pseudo-headers.
    let auth = format!("Bearer {}", admin_token(&rsa));
    let mut req = envoy_request("GET", "/AdminUser", &[("authorization", &auth)]);
    if let Some(http) = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.method.clear();
        http.path.clear();
    }
    assert_eq!(envoy_check(&srv, req).await.status.unwrap().code, 0);
    // A non-ASCII header name with a multi-byte character across the `x-authz-`
    // prefix length once panicked the spoofing filter (found by fuzzing).
    let resp = envoy_check(
        &srv,
        envoy_request(
            "OPTIONS",
            "/items/1",
            &[
                ("origcc\u{fffd}ss-x", "v"),
                ("origin", "https://x"),
                ("access-control-request-method", "POST"),
            ],
        ),
    )
    .await;
    // An answer, not a gRPC error (the preflight itself is refused: tests/cors.rs).
    assert_eq!(resp.status.unwrap().code, 7);
    // Raw header_map with two Authorization headers: never silently pick one.
    let mut req = envoy_request("GET", "/AdminUser", &[]);
    if let Some(http) = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
        let h = |v: &str| HeaderValue {
            key: "authorization".into(),
            raw_value: v.as_bytes().to_vec(),
            ..Default::default()
        };
        http.header_map = Some(HeaderMap {
            headers: vec![h(&auth), h("Bearer other")],
        });
    }
    let resp = envoy_check(&srv, req).await;
    assert_eq!(resp.status.unwrap().code, 16);
}

#[tokio::test]
async fn envoy_http_mode_answers_with_status_body_and_headers() {
    let (env, srv, rsa) = start().await;
    let http = reqwest::Client::new();
    let t = admin_token(&rsa);
    let resp = http
        .get(srv.url("/ext_authz/AdminUser?tab=1"))
        .bearer_auth(&t)
        .header("x-authz-roles", "superuser")
        .header("x-authz-extra", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-authz-subject"], "alice");
    assert_eq!(resp.headers()["x-authz-roles"], "admin,regular");
    assert_eq!(
        resp.headers()["x-envoy-auth-headers-to-remove"],
        "x-authz-extra"
    );
    let resp = http
        .delete(srv.url("/ext_authz/AdminUser"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.text().await.unwrap(), r#"{"message":"Forbidden"}"#);
    let resp = http
        .post(srv.url("/ext_authz/wish-list-service"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), r#"{"message":"Unauthorized"}"#);
    let resp = http
        .get(srv.url("/ext_authz/wish-list-service"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "public route");
    let resp = http
        .request(reqwest::Method::OPTIONS, srv.url("/ext_authz/AdminUser"))
        .header("origin", "https://app")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "preflight: never forwarded");
    srv.stop().await;
    assert!(env.log_lines().iter().all(|l| l["source"] == "envoy_http"));
    assert_eq!(env.log_lines()[0]["resource"], "/AdminUser");
}

#[tokio::test]
async fn forward_auth_for_traefik_and_nginx() {
    let (env, srv, rsa) = start().await;
    let http = reqwest::Client::new();
    let t = admin_token(&rsa);
    // Traefik ForwardAuth.
    let resp = http
        .get(srv.url("/v1/forward-auth"))
        .bearer_auth(&t)
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/AdminUser?x=1")
        .header("x-forwarded-host", "api.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-authz-subject"], "alice");
    // nginx auth_request (the subrequest is a GET; the original method is in the header).
    let resp = http
        .get(srv.url("/v1/forward-auth"))
        .bearer_auth(&t)
        .header("x-original-method", "DELETE")
        .header("x-original-uri", "/AdminUser")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = http
        .get(srv.url("/v1/forward-auth"))
        .header("x-original-method", "GET")
        .header("x-original-uri", "/RegularUser")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let resp = http
        .get(srv.url("/v1/forward-auth"))
        .header("x-forwarded-method", "OPTIONS")
        .header("x-forwarded-uri", "/AdminUser")
        .header("origin", "https://app")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "preflight: never forwarded");
    let resp = http.get(srv.url("/v1/forward-auth")).send().await.unwrap();
    // nginx and Traefik understand only 401/403: a call that cannot be checked is a 403.
    assert_eq!(resp.status(), 403, "no original method/URI");
    // A client-supplied X-Forwarded-Uri naming a public route, next to the proxy's real URI.
    let resp = http
        .get(srv.url("/v1/forward-auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/wish-list-service")
        .header("x-original-method", "GET")
        .header("x-original-uri", "/AdminUser")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "conventions disagree: never guess");
    srv.stop().await;
    assert!(
        env.log_lines()
            .iter()
            .all(|l| l["source"] == "forward_auth")
    );
}

#[tokio::test]
async fn spoofed_subject_cannot_reach_upstream_via_header_injection() {
    let (_env, srv, rsa) = start().await;
    let mut c = claims(ISS, "eve\r\nx-authz-roles: admin");
    c["cognito:groups"] = json!(["regular"]);
    let auth = format!("Bearer {}", token(&rsa, &c));
    let resp = envoy_check(
        &srv,
        envoy_request("GET", "/RegularUser", &[("authorization", &auth)]),
    )
    .await;
    let (headers, _) = ok_headers(&resp);
    assert_eq!(
        headers["x-authz-subject"],
        "eve%0D%0Ax-authz-roles:%20admin"
    );
    assert_eq!(headers["x-authz-roles"], "regular");
}
