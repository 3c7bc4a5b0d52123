//! The decision pipeline (`docs/pipeline.md`) through the real server: every reason code,
//! over HTTP JSON and gRPC, with real signed tokens.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";

struct Fixture {
    env: Env,
    srv: Running,
    rsa: SigningKey,
}

async fn fixture_with(extra_issuer: &str, policy_extra: &str) -> Fixture {
    let rsa = key("rsa.pem");
    let env = Env::new("", DEMO_POLICY, policy_extra);
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let issuers = file_issuer(ISS, "rsa-jwks.json", "\"RS256\", \"PS256\"", extra_issuer);
    let text = std::fs::read_to_string(env.config()).unwrap().replacen(
        "\n\n",
        &format!("\n\n{issuers}\n"),
        1,
    );
    env.write("authzd.toml", &text);
    let srv = Running::start(&env.config()).await;
    Fixture { env, srv, rsa }
}

async fn fixture() -> Fixture {
    fixture_with("", "").await
}

fn get(path: &str, token: &str) -> Value {
    json!({"method": "GET", "path": path, "token": token})
}

async fn reason_of(f: &Fixture, token: &str) -> (String, u64) {
    let r = f.srv.check(get("/AdminUser", token)).await;
    (
        r["reason"].as_str().unwrap().to_string(),
        r["status"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn admin_group_is_allowed_with_matched_policy_over_http_and_grpc() {
    let f = fixture().await;
    let mut c = claims(ISS, "alice-id");
    c["cognito:groups"] = json!(["admin"]);
    let t = token(&f.rsa, &c);
    let r = f.srv.check(get("/AdminUser?tab=1", &t)).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["reason"], "allowed");
    assert_eq!(r["status"], 200);
    assert_eq!(r["subject"], "alice-id");
    assert_eq!(r["roles"], json!(["admin"]));
    assert_eq!(r["matched_policy"], json!(["admin", "/AdminUser", "GET"]));
    // Inherited through `g, admin, regular`.
    let r = f.srv.check(get("/RegularUser", &t)).await;
    assert_eq!(r["reason"], "allowed");
    assert_eq!(
        r["matched_policy"],
        json!(["regular", "/RegularUser", "GET"])
    );

    let mut client = f.srv.grpc_client().await;
    let resp = client
        .check(authzd::pb::CheckRequest {
            method: "GET".into(),
            path: "/AdminUser".into(),
            headers: [("authorization".to_string(), format!("Bearer {t}"))].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.allowed);
    assert_eq!(resp.reason, "allowed");
    assert_eq!(resp.matched_policy, ["admin", "/AdminUser", "GET"]);
    assert_eq!(resp.policy_revision.len(), 12);
    assert!(!resp.decision_id.is_empty());
}

#[tokio::test]
async fn regular_user_is_denied_the_admin_route() {
    let f = fixture().await;
    let mut c = claims(ISS, "bob");
    c["cognito:groups"] = json!(["regular"]);
    let t = token(&f.rsa, &c);
    let r = f.srv.check(get("/AdminUser", &t)).await;
    assert_eq!(
        (r["reason"].as_str(), r["status"].as_u64()),
        (Some("policy_denied"), Some(403))
    );
    assert_eq!(r["allowed"], false);
    assert_eq!(r["matched_policy"], json!([]));
    let r = f.srv.check(get("/RegularUser", &t)).await;
    assert_eq!(r["reason"], "allowed");
}

#[tokio::test]
async fn resource_action_form_and_subject_rules() {
    let f = fixture().await;
    let t = token(&f.rsa, &claims(ISS, "alice"));
    let r = f
        .srv
        .check(json!({"resource": "/personal", "action": "GET", "token": t}))
        .await;
    assert_eq!(
        r["reason"], "allowed",
        "a policy line naming the subject itself"
    );
    let r = f
        .srv
        .check(json!({"resource": "/personal", "action": "DELETE", "token": t}))
        .await;
    assert_eq!(r["reason"], "policy_denied");
}

#[tokio::test]
async fn cors_preflight_public_route_and_missing_token() {
    let f = fixture().await;
    let pre = json!({"method": "OPTIONS", "path": "/AdminUser", "headers": {"origin": "https://app", "access-control-request-method": "GET"}});
    let r = f.srv.check(pre).await;
    // Refused: the JSON API cannot carry a preflight answer to a browser (tests/cors.rs).
    assert_eq!(
        (
            r["reason"].as_str(),
            r["status"].as_u64(),
            r["allowed"].as_bool()
        ),
        (Some("cors_preflight"), Some(403), Some(false))
    );
    // Without both headers an OPTIONS is an ordinary request.
    let r = f.srv.check(json!({"method": "OPTIONS", "path": "/AdminUser", "headers": {"origin": "https://app"}})).await;
    assert_eq!(r["reason"], "token_missing");
    let r = f
        .srv
        .check(json!({"method": "GET", "path": "/wish-list-service"}))
        .await;
    assert_eq!(
        (r["reason"].as_str(), r["status"].as_u64()),
        (Some("public_route"), Some(200))
    );
    // A garbage token on a public route does not matter.
    let r = f
        .srv
        .check(json!({"method": "GET", "path": "/wish-list-service?x", "token": "garbage"}))
        .await;
    assert_eq!(r["reason"], "public_route");
    let r = f
        .srv
        .check(json!({"method": "GET", "path": "/AdminUser"}))
        .await;
    assert_eq!(
        (r["reason"].as_str(), r["status"].as_u64()),
        (Some("token_missing"), Some(401))
    );
    let r = f.srv.check(json!({"method": "GET", "path": "/AdminUser", "headers": {"authorization": "Basic dXNlcjpwYXNz"}})).await;
    assert_eq!(r["reason"], "token_missing");
}

#[tokio::test]
async fn cors_preflight_can_be_turned_off() {
    let rsa = key("rsa.pem");
    let env = Env::new("", DEMO_POLICY, "");
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write(
        "authzd.toml",
        &format!("cors_preflight = \"check\"\n{text}"),
    );
    let srv = Running::start(&env.config()).await;
    let pre = json!({"method": "OPTIONS", "path": "/AdminUser", "headers": {"origin": "https://app", "access-control-request-method": "GET"}});
    assert_eq!(srv.check(pre).await["reason"], "token_missing");
}

#[tokio::test]
async fn token_sources_bearer_any_case_bare_and_caller_header() {
    let f = fixture().await;
    let mut c = claims(ISS, "alice");
    c["cognito:groups"] = json!(["admin"]);
    let t = token(&f.rsa, &c);
    for auth in [
        format!("Bearer {t}"),
        format!("bearer {t}"),
        format!("BEARER  {t}"),
        t.clone(),
    ] {
        let r = f
            .srv
            .check(
                json!({"method": "GET", "path": "/AdminUser", "headers": {"Authorization": auth}}),
            )
            .await;
        assert_eq!(r["reason"], "allowed", "{auth:.20}");
    }
    // The HTTP caller's own Authorization header.
    let resp = reqwest::Client::new()
        .post(f.srv.url("/v1/check"))
        .bearer_auth(&t)
        .json(&json!({"method": "GET", "path": "/AdminUser"}))
        .send()
        .await
        .unwrap();
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["reason"], "allowed");
}

#[tokio::test]
async fn scopes_gate_routes_before_policy() {
    let f = fixture().await;
    let post = |t: &str| json!({"method": "POST", "path": "/wish-list-service", "token": t});
    let mut c = claims(ISS, "w");
    c["cognito:groups"] = json!(["writer"]);
    let r = f.srv.check(post(&token(&f.rsa, &c))).await;
    assert_eq!(
        (r["reason"].as_str(), r["status"].as_u64()),
        (Some("scope_missing"), Some(403))
    );
    c["scope"] = json!("openid wishlist/write");
    let r = f.srv.check(post(&token(&f.rsa, &c))).await;
    assert_eq!(r["reason"], "allowed");
    // `scp` as an array, and an Auth0-style `permissions` claim.
    c.as_object_mut().unwrap().remove("scope");
    c["scp"] = json!(["wishlist/write"]);
    assert_eq!(
        f.srv.check(post(&token(&f.rsa, &c))).await["reason"],
        "allowed"
    );
    c.as_object_mut().unwrap().remove("scp");
    c["permissions"] = json!(["wishlist/write"]);
    assert_eq!(
        f.srv.check(post(&token(&f.rsa, &c))).await["reason"],
        "allowed"
    );
    // The scope alone is not enough: policy still needs the writer role.
    c["cognito:groups"] = json!(["regular"]);
    assert_eq!(
        f.srv.check(post(&token(&f.rsa, &c))).await["reason"],
        "policy_denied"
    );
}

#[tokio::test]
async fn keycloak_roles_and_greedy_route() {
    let f = fixture().await;
    let mut c = claims(ISS, "kc-user");
    c["realm_access"] = json!({"roles": ["reader"]});
    let t = token(&f.rsa, &c);
    let r = f
        .srv
        .check(json!({"method": "GET", "path": "/api/things/1", "token": t}))
        .await;
    assert_eq!(r["reason"], "allowed", "{r}");
    let r = f
        .srv
        .check(json!({"method": "DELETE", "path": "/api/things/1", "token": t}))
        .await;
    assert_eq!(r["reason"], "policy_denied");
}

#[tokio::test]
async fn every_token_reason_code() {
    let f = fixture_with("token_use = \"access\"\nleeway_secs = 5", "").await;
    let k = &f.rsa;
    let good = || {
        let mut c = claims(ISS, "alice");
        c["cognito:groups"] = json!(["admin"]);
        c["token_use"] = json!("access");
        c
    };
    assert_eq!(reason_of(&f, &token(k, &good())).await.0, "allowed");

    // token_malformed
    for bad in ["x", "a.b.c", "a.b", &format!("{}.e30.", b64(b"{}"))] {
        assert_eq!(
            reason_of(&f, bad).await,
            ("token_malformed".into(), 401),
            "{bad}"
        );
    }
    // issuer_unknown, including a trailing-slash near miss
    let mut c = good();
    c["iss"] = json!("https://evil.example");
    assert_eq!(reason_of(&f, &token(k, &c)).await.0, "issuer_unknown");
    c["iss"] = json!(format!("{ISS}/"));
    assert_eq!(reason_of(&f, &token(k, &c)).await.0, "issuer_unknown");
    // algorithm_not_allowed: none, HS256 keyed with the public key, an RS384 token (not allowed here)
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(good().to_string().as_bytes())
    );
    assert_eq!(
        reason_of(&f, &none).await.0,
        "algorithm_not_allowed",
        "unsigned, empty signature: still named as the algorithm attack it is"
    );
    let none_sig = format!("{none}AAAA");
    assert_eq!(reason_of(&f, &none_sig).await.0, "algorithm_not_allowed");
    let hs_key =
        jsonwebtoken::EncodingKey::from_secret(serde_json::to_string(&k.jwk).unwrap().as_bytes());
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &good(),
        &hs_key,
    )
    .unwrap();
    assert_eq!(reason_of(&f, &hs).await.0, "algorithm_not_allowed");
    let rs384 = sign_raw(k, &json!({"alg": "RS384", "kid": k.kid()}), &good());
    assert_eq!(reason_of(&f, &rs384).await.0, "algorithm_not_allowed");
    // key_unknown
    let unknown = sign_raw(k, &json!({"alg": "RS256", "kid": "nope"}), &good());
    assert_eq!(reason_of(&f, &unknown).await.0, "key_unknown");
    // signature_invalid: payload swapped after signing, and a token from another key with our kid
    let t = token(k, &good());
    let mut parts: Vec<String> = t.split('.').map(String::from).collect();
    let mut evil = good();
    evil["sub"] = json!("root");
    parts[1] = b64(evil.to_string().as_bytes());
    assert_eq!(reason_of(&f, &parts.join(".")).await.0, "signature_invalid");
    let other = key("rsa2.pem");
    let forged = sign_raw(&other, &json!({"alg": "RS256", "kid": k.kid()}), &good());
    assert_eq!(reason_of(&f, &forged).await.0, "signature_invalid");
    // token_expired / token_not_yet_valid (leeway 5 s)
    let mut c = good();
    c["exp"] = json!(now() - 60);
    assert_eq!(
        reason_of(&f, &token(k, &c)).await,
        ("token_expired".into(), 401)
    );
    c["exp"] = json!(now() - 2);
    assert_eq!(
        reason_of(&f, &token(k, &c)).await.0,
        "allowed",
        "within leeway"
    );
    let mut c = good();
    c["nbf"] = json!(now() + 60);
    assert_eq!(reason_of(&f, &token(k, &c)).await.0, "token_not_yet_valid");
    // audience_mismatch, and client_id when there is no aud
    let mut c = good();
    c["aud"] = json!("other-app");
    assert_eq!(reason_of(&f, &token(k, &c)).await.0, "audience_mismatch");
    c.as_object_mut().unwrap().remove("aud");
    c["client_id"] = json!("app");
    assert_eq!(reason_of(&f, &token(k, &c)).await.0, "allowed");
    c["client_id"] = json!("other");
    assert_eq!(reason_of(&f, &token(k, &c)).await.0, "audience_mismatch");
    // token_use_mismatch
    let mut c = good();
    c["token_use"] = json!("id");
    assert_eq!(
        reason_of(&f, &token(k, &c)).await,
        ("token_use_mismatch".into(), 401)
    );
}

#[tokio::test]
async fn keys_never_come_from_the_token_and_crit_rejects() {
    let f = fixture().await;
    let attacker = key("rsa2.pem");
    let mut c = claims(ISS, "mallory");
    c["cognito:groups"] = json!(["admin"]);
    // Embedded jwk / jku / x5u naming the attacker's key, signed with it.
    let jwk = serde_json::to_value(&attacker.jwk).unwrap();
    for h in [
        json!({"alg": "RS256", "jwk": jwk}),
        json!({"alg": "RS256", "kid": attacker.kid(), "jwk": jwk}),
        json!({"alg": "RS256", "kid": attacker.kid(), "jku": "http://127.0.0.1:1/jwks.json"}),
        json!({"alg": "RS256", "kid": f.rsa.kid(), "x5u": "http://127.0.0.1:1/cert.pem"}),
    ] {
        let (reason, status) = reason_of(&f, &sign_raw(&attacker, &h, &c)).await;
        assert_eq!(status, 401, "{h}");
        assert!(
            reason == "key_unknown" || reason == "signature_invalid",
            "{h}: {reason}"
        );
    }
    let crit = sign_raw(
        &f.rsa,
        &json!({"alg": "RS256", "kid": f.rsa.kid(), "crit": ["exp"], "exp": 1}),
        &c,
    );
    assert_eq!(reason_of(&f, &crit).await.0, "token_malformed");
    // A subjectless token is malformed, never anonymous.
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(reason_of(&f, &token(&f.rsa, &c)).await.0, "token_malformed");
}

#[tokio::test]
async fn several_issuers_and_key_types_via_discovery() {
    let ec = key("ec256.pem");
    let ed = key("ed25519.pem");
    let ps = key("rsa2.pem");
    let idp = Idp::start(&[&ec, &ed, &ps]).await;
    let issuer = format!(
        "[[issuer]]\nissuer = \"{}\"\naudiences = [\"app\"]\nalgorithms = [\"ES256\", \"EdDSA\", \"PS256\"]\n",
        idp.issuer()
    );
    let f = fixture_with("", "").await;
    // A second server with the discovery issuer added.
    let text = std::fs::read_to_string(f.env.config()).unwrap().replacen(
        "[[route]]",
        &format!("{issuer}\n[[route]]"),
        1,
    );
    f.env.write("authzd.toml", &text);
    let srv = Running::start(&f.env.config()).await;
    let mut c = claims(&idp.issuer(), "eve");
    c["cognito:groups"] = json!(["admin"]);
    for k in [&ec, &ed] {
        let r = srv.check(get("/AdminUser", &token(k, &c))).await;
        assert_eq!(r["reason"], "allowed", "{:?}: {r}", k.alg);
    }
    let ps256 = sign_as(
        &ps,
        jsonwebtoken::Algorithm::PS256,
        &json!({"alg": "PS256", "kid": ps.kid()}),
        &c,
    );
    // Without an `alg` in the JWK, the RSA key may verify PS256 (allowed for this issuer).
    let mut ps_jwk = serde_json::to_value(&ps.jwk).unwrap();
    ps_jwk.as_object_mut().unwrap().remove("alg");
    *idp.jwks.lock() = json!({"keys": [serde_json::to_value(&ec.jwk).unwrap(), serde_json::to_value(&ed.jwk).unwrap(), ps_jwk]});
    let plain_srv = Running::start(&f.env.config()).await;
    assert_eq!(
        plain_srv.check(get("/AdminUser", &ps256)).await["reason"],
        "allowed"
    );
    *idp.jwks.lock() = jwks_of(&[&ec, &ed, &ps]);
    // The JWK says alg RS256, so the key may not be used for PS256.
    assert_eq!(
        srv.check(get("/AdminUser", &ps256)).await["reason"],
        "algorithm_not_allowed"
    );
    // ES256 claimed over the RSA issuer's key: the key type does not fit.
    let mut rc = claims(ISS, "x");
    rc["cognito:groups"] = json!(["admin"]);
    let confused = sign_raw(&ec, &json!({"alg": "ES256", "kid": f.rsa.kid()}), &rc);
    assert_eq!(
        srv.check(get("/AdminUser", &confused)).await["reason"],
        "algorithm_not_allowed"
    );
    // One discovery per server, however many tokens: `srv`, `plain_srv`, and the
    // fixture's own server, which reloaded the edited config and warmed the new issuer.
    let hits = idp.discovery_hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&hits), "{hits} discoveries");
}

#[tokio::test]
async fn batch_validates_once_and_answers_each() {
    let f = fixture().await;
    let mut c = claims(ISS, "bob");
    c["cognito:groups"] = json!(["regular"]);
    let t = token(&f.rsa, &c);
    let body = json!({"token": t, "items": [
        {"resource": "/RegularUser", "action": "GET"},
        {"resource": "/AdminUser", "action": "GET"},
    ]});
    let r: Value = reqwest::Client::new()
        .post(f.srv.url("/v1/check/batch"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reasons: Vec<_> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("allowed"), json!("policy_denied")]);

    let mut client = f.srv.grpc_client().await;
    let resp = client
        .check_batch(authzd::pb::CheckBatchRequest {
            token: "not-a-jwt".into(),
            items: vec![authzd::pb::CheckBatchItem {
                resource: "/RegularUser".into(),
                action: "GET".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.results[0].reason, "token_malformed");
    assert_eq!(resp.results[0].status, 401);
}

#[tokio::test]
async fn malformed_calls_get_400_or_invalid_argument() {
    let f = fixture().await;
    let http = reqwest::Client::new();
    for (body, needle) in [
        ("{\"method\": \"GET\"", "invalid JSON"),
        ("[]", ""),
        ("\"text\"", "invalid JSON"),
        ("{\"methd\": \"GET\"}", "methd"),
        ("{\"method\": \"GET\"}", "`method` and `path`"),
        ("{}", "either"),
        ("{\"resource\": \"/x\"}", "`resource` and `action`"),
    ] {
        let resp = http
            .post(f.srv.url("/v1/check"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    let resp = http
        .post(f.srv.url("/v1/check/batch"))
        .body("{\"items\": [{}]}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let mut client = f.srv.grpc_client().await;
    let err = client
        .check(authzd::pb::CheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let f = fixture().await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(f.srv.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Keys are fetched in the background at start; readiness follows.
    let mut ready = false;
    for _ in 0..50 {
        if http
            .get(f.srv.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", f.srv.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "authzd.v1.Authorizer".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream_once(req))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"authzd.v1.Authorizer") && names.contains(&"grpc.health.v1.Health"),
        "{names:?}"
    );
    f.srv
        .check(json!({"method": "GET", "path": "/AdminUser"}))
        .await;
    let text = http
        .get(f.srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("authzd_decisions_total{source=\"http\",reason=\"token_missing\"}"),
        "{text}"
    );
    assert!(text.contains("authzd_decision_duration_seconds_bucket"));
}

#[tokio::test]
async fn readiness_waits_for_issuer_keys() {
    let ec = key("ec256.pem");
    let idp = Idp::start(&[&ec]).await;
    *idp.fail.lock() = Some(500);
    let issuer = format!(
        "[[issuer]]\nissuer = \"{}\"\nalgorithms = [\"ES256\"]\n",
        idp.issuer()
    );
    let env = Env::new(&issuer, DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let resp = reqwest::get(srv.url("/readyz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["issuers_without_keys"], json!([idp.issuer()]));
}

#[tokio::test]
async fn decision_log_has_every_field_and_never_the_token() {
    let f = fixture().await;
    let mut c = claims(ISS, "alice");
    c["cognito:groups"] = json!(["admin"]);
    c["scope"] = json!("openid");
    let t = token(&f.rsa, &c);
    let mut expired = c.clone();
    expired["exp"] = json!(now() - 3600);
    let old = token(&f.rsa, &expired);
    let checks = [
        get("/AdminUser?q=1", &t),
        get("/AdminUser", &old),
        get("/AdminUser", "definitely.not.ajwt"),
        json!({"method": "GET", "path": "/wish-list-service"}),
    ];
    let mut ids = Vec::new();
    for body in &checks {
        ids.push(
            f.srv.check(body.clone()).await["decision_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let Fixture { env, srv, .. } = f;
    srv.stop().await;
    let raw = std::fs::read_to_string(env.dir.path().join("decisions.log")).unwrap();
    for secret in [&t, &old] {
        let sig = secret.rsplit('.').next().unwrap();
        assert!(
            !raw.contains(sig),
            "a signature leaked into the decision log"
        );
        assert!(!raw.contains(secret.as_str()));
    }
    let lines = env.log_lines();
    assert_eq!(lines.len(), checks.len(), "exactly one record per check");
    let fields = [
        "time",
        "decision_id",
        "allowed",
        "status",
        "reason",
        "source",
        "subject",
        "issuer",
        "roles",
        "scopes",
        "resource",
        "action",
        "route",
        "policy_revision",
        "matched_policy",
        "latency_us",
        "token_sha256",
        "detail",
    ];
    for (line, id) in lines.iter().zip(&ids) {
        for field in fields {
            assert!(line.get(field).is_some(), "missing `{field}` in {line}");
        }
        assert_eq!(line["decision_id"], json!(id));
        assert_eq!(line["source"], "http");
        assert!(humantime::parse_rfc3339(line["time"].as_str().unwrap()).is_ok());
    }
    assert_eq!(lines[0]["resource"], "/AdminUser", "query removed");
    assert_eq!(lines[0]["scopes"], json!(["openid"]));
    assert_eq!(lines[0]["token_sha256"].as_str().unwrap().len(), 16);
    assert_eq!(lines[1]["reason"], "token_expired");
    assert!(
        lines[1]["detail"].as_str().unwrap().contains("expired 36"),
        "{}",
        lines[1]["detail"]
    );
    assert_eq!(lines[1]["issuer"], ISS);
    assert_eq!(lines[3]["route"], "GET /wish-list-service");
}

#[tokio::test]
async fn prefixes_keep_users_out_of_role_names() {
    let f = fixture_with("", "subject_prefix = \"user:\"\nrole_prefix = \"role:\"").await;
    f.env.write(
        "policy.csv",
        "p, role:admin, /AdminUser, GET\np, user:admin, /personal, GET\n",
    );
    let srv = Running::start(&f.env.config()).await;
    // A user whose subject is literally `admin`, with no groups.
    let t = token(&f.rsa, &claims(ISS, "admin"));
    assert_eq!(
        srv.check(get("/AdminUser", &t)).await["reason"],
        "policy_denied"
    );
    let r = srv.check(get("/personal", &t)).await;
    assert_eq!(r["subject"], "user:admin");
    assert_eq!(r["reason"], "allowed");
    let mut c = claims(ISS, "someone");
    c["cognito:groups"] = json!(["admin"]);
    let r = srv.check(get("/AdminUser", &token(&f.rsa, &c))).await;
    assert_eq!(r["roles"], json!(["role:admin"]));
    assert_eq!(r["reason"], "allowed");
}

fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> {
    tonic::codegen::tokio_stream::iter([item])
}
