//! The attacker's test suite: RFC 8725 and the usual JWT attacks, each a
//! crafted token with the 401 reason it must get. None may panic, 500, or allow,
//! through any interface.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";

fn good_claims() -> Value {
    let mut c = claims(ISS, "mallory");
    c["cognito:groups"] = json!(["admin"]);
    c
}

/// A token from a raw header and payload text (not re-serialized), signed by `key`.
fn sign_text(key: &SigningKey, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key.key, key.alg.to_jwt()).unwrap();
    format!("{input}.{sig}")
}

fn unsigned(header: &str, payload: &str, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        b64(header.as_bytes()),
        b64(payload.as_bytes())
    )
}

fn hmac(secret: &[u8], alg: jsonwebtoken::Algorithm, kid: Option<&str>) -> String {
    let header = jsonwebtoken::Header {
        kid: kid.map(String::from),
        ..jsonwebtoken::Header::new(alg)
    };
    jsonwebtoken::encode(
        &header,
        &good_claims(),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// (name, token, expected reason)
fn attacks(k: &SigningKey, attacker: &SigningKey) -> Vec<(String, String, &'static str)> {
    let kid = k.kid().to_string();
    let good = good_claims().to_string();
    let rs = format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#);
    let mut v: Vec<(String, String, &'static str)> = Vec::new();
    let mut add =
        |name: &str, t: String, reason: &'static str| v.push((name.to_string(), t, reason));

    for none in ["none", "None", "NONE", "nOnE"] {
        let h = format!(r#"{{"alg":"{none}"}}"#);
        add(
            &format!("alg {none}, no signature"),
            unsigned(&h, &good, ""),
            "algorithm_not_allowed",
        );
        add(
            &format!("alg {none}, junk signature"),
            unsigned(&h, &good, "AAAA"),
            "algorithm_not_allowed",
        );
        add(
            &format!("alg {none} with our kid"),
            unsigned(
                &format!(r#"{{"alg":"{none}","kid":"{kid}"}}"#),
                &good,
                "e30",
            ),
            "algorithm_not_allowed",
        );
    }
    // Algorithm confusion: HMAC keyed with the public key, in every form an attacker might try.
    let jwk_text = serde_json::to_string(&k.jwk).unwrap();
    let n = serde_json::to_value(&k.jwk).unwrap()["n"]
        .as_str()
        .unwrap()
        .to_string();
    for (label, secret) in [
        ("jwk json", jwk_text.into_bytes()),
        ("modulus", n.into_bytes()),
        ("empty", vec![]),
    ] {
        for alg in [
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::Algorithm::HS384,
            jsonwebtoken::Algorithm::HS512,
        ] {
            add(
                &format!("{alg:?} keyed with {label}"),
                hmac(&secret, alg, Some(&kid)),
                "algorithm_not_allowed",
            );
        }
    }
    // Signatures.
    let t = sign_text(k, &rs, &good);
    let (input, sig) = t.rsplit_once('.').unwrap();
    add("stripped signature", format!("{input}."), "token_malformed");
    let mut flipped = sig.to_string();
    let last = if flipped.ends_with('A') { 'B' } else { 'A' };
    flipped.replace_range(flipped.len() - 2.., &format!("{last}{last}"));
    add(
        "altered signature",
        format!("{input}.{flipped}"),
        "signature_invalid",
    );
    add(
        "signature not base64url",
        format!("{input}.!!!!"),
        "signature_invalid",
    );
    let other = sign_text(
        k,
        &rs,
        &json!({"iss": ISS, "sub": "other", "exp": now() + 60}).to_string(),
    );
    add(
        "signature from another token",
        format!("{input}.{}", other.rsplit_once('.').unwrap().1),
        "signature_invalid",
    );
    let mut evil = good_claims();
    evil["cognito:groups"] = json!(["admin", "root"]);
    add(
        "payload swapped after signing",
        format!(
            "{}.{}.{sig}",
            input.split('.').next().unwrap(),
            b64(evil.to_string().as_bytes())
        ),
        "signature_invalid",
    );
    // Keys named by the token are never fetched or used.
    let ajwk = serde_json::to_value(&attacker.jwk).unwrap();
    let akid = attacker.kid().to_string();
    add(
        "embedded jwk, no kid (checked against our only key)",
        sign_raw(
            attacker,
            &json!({"alg": "RS256", "jwk": ajwk}),
            &good_claims(),
        ),
        "signature_invalid",
    );
    add(
        "embedded jwk with its kid",
        sign_raw(
            attacker,
            &json!({"alg": "RS256", "kid": akid, "jwk": ajwk}),
            &good_claims(),
        ),
        "key_unknown",
    );
    add(
        "embedded jwk with our kid",
        sign_raw(
            attacker,
            &json!({"alg": "RS256", "kid": kid, "jwk": ajwk}),
            &good_claims(),
        ),
        "signature_invalid",
    );
    add(
        "jku to the attacker",
        sign_raw(
            attacker,
            &json!({"alg": "RS256", "kid": akid, "jku": "http://127.0.0.1:1/jwks"}),
            &good_claims(),
        ),
        "key_unknown",
    );
    add(
        "x5u to the attacker",
        sign_raw(
            attacker,
            &json!({"alg": "RS256", "kid": kid, "x5u": "http://127.0.0.1:1/c.pem"}),
            &good_claims(),
        ),
        "signature_invalid",
    );
    add(
        "x5c chain",
        sign_raw(
            attacker,
            &json!({"alg": "RS256", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
            &good_claims(),
        ),
        "signature_invalid",
    );
    // Hostile kids: looked up as opaque strings, never as paths or queries.
    for (label, hostile) in [
        ("path traversal", "../../../../etc/passwd".to_string()),
        ("sql", "' OR '1'='1' --".to_string()),
        ("nul byte", "a\u{0}b".to_string()),
        ("url", "http://127.0.0.1:1/key".to_string()),
        ("10k chars", "k".repeat(10_000)),
    ] {
        add(
            &format!("kid {label}"),
            sign_raw(k, &json!({"alg": "RS256", "kid": hostile}), &good_claims()),
            "key_unknown",
        );
    }
    // crit.
    add(
        "crit b64",
        sign_raw(
            k,
            &json!({"alg": "RS256", "kid": kid, "crit": ["b64"], "b64": false}),
            &good_claims(),
        ),
        "token_malformed",
    );
    add(
        "crit empty",
        sign_raw(
            k,
            &json!({"alg": "RS256", "kid": kid, "crit": []}),
            &good_claims(),
        ),
        "token_malformed",
    );
    // Parser confusion.
    add(
        "duplicate alg in header",
        sign_text(
            k,
            &format!(r#"{{"alg":"RS256","kid":"{kid}","alg":"none"}}"#),
            &good,
        ),
        "token_malformed",
    );
    let dup_payload = good.replacen('{', r#"{"sub":"admin","#, 1);
    add(
        "duplicate sub in payload",
        sign_text(k, &rs, &dup_payload),
        "token_malformed",
    );
    add(
        "payload not JSON",
        sign_text(k, &rs, "not json at all"),
        "token_malformed",
    );
    add(
        "payload a JSON array",
        sign_text(k, &rs, "[1,2,3]"),
        "token_malformed",
    );
    add(
        "header not JSON",
        sign_text(k, "{alg: RS256}", &good),
        "token_malformed",
    );
    let deep = format!(
        r#"{{"iss":"{ISS}","sub":"x","exp":{},"deep":{}{}}}"#,
        now() + 60,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    add(
        "5000-deep nesting",
        sign_text(k, &rs, &deep),
        "token_malformed",
    );
    add(
        "over 16 KiB",
        sign_raw(
            k,
            &header(k),
            &json!({"iss": ISS, "sub": "x", "exp": now() + 60, "pad": "x".repeat(17_000)}),
        ),
        "token_malformed",
    );
    add("JWE shape (5 parts)", format!("{t}.a.b"), "token_malformed");
    add("4 parts", format!("{t}.a"), "token_malformed");
    add(
        "not base64 header",
        "%%%.e30.sig".to_string(),
        "token_malformed",
    );
    // Claims of the wrong type or range.
    for (label, field, value, reason) in [
        (
            "exp as string",
            "exp",
            json!(format!("{}", now() + 3600)),
            "token_malformed",
        ),
        ("exp far beyond 9999", "exp", json!(1e30), "token_malformed"),
        ("exp i64::MAX", "exp", json!(i64::MAX), "token_malformed"),
        ("exp negative", "exp", json!(-1), "token_malformed"),
        ("exp null", "exp", Value::Null, "token_malformed"),
        ("exp past (float)", "exp", json!(1.5e9), "token_expired"),
        ("nbf as string", "nbf", json!("0"), "token_malformed"),
        // API Gateway requires `iat` in the past, and a NumericDate.
        (
            "iat a day in the future",
            "iat",
            json!(now() + 86_400),
            "token_not_yet_valid",
        ),
        (
            "iat beyond the leeway",
            "iat",
            json!(now() + 600),
            "token_not_yet_valid",
        ),
        (
            "iat as a word",
            "iat",
            json!("yesterday"),
            "token_malformed",
        ),
        (
            "iat as a numeric string",
            "iat",
            json!("0"),
            "token_malformed",
        ),
        ("iat null", "iat", Value::Null, "token_malformed"),
        ("iat bool", "iat", json!(true), "token_malformed"),
        (
            "nbf far future",
            "nbf",
            json!(now() + 86_400 * 365),
            "token_not_yet_valid",
        ),
        ("iss as number", "iss", json!(42), "token_malformed"),
        ("iss as array", "iss", json!([ISS]), "token_malformed"),
        (
            "iss with trailing slash",
            "iss",
            json!(format!("{ISS}/")),
            "issuer_unknown",
        ),
        (
            "iss with different case",
            "iss",
            json!(ISS.to_uppercase()),
            "issuer_unknown",
        ),
        ("aud as number", "aud", json!(7), "token_malformed"),
        (
            "aud someone else",
            "aud",
            json!(["other-api"]),
            "audience_mismatch",
        ),
        (
            "sub as object",
            "sub",
            json!({"id": "admin"}),
            "token_malformed",
        ),
        ("sub empty", "sub", json!(""), "token_malformed"),
    ] {
        let mut c = good_claims();
        c[field] = value;
        add(label, token(k, &c), reason);
    }
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("exp");
    add("no exp", token(k, &c), "token_malformed");
    for typ in ["JWE", "logout+jwt", "secevent+jwt", "dpop+jwt"] {
        add(
            &format!("typ {typ}"),
            sign_raw(
                k,
                &json!({"alg": "RS256", "kid": kid, "typ": typ}),
                &good_claims(),
            ),
            "token_malformed",
        );
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_gets_its_401_reason_through_every_interface() {
    let rsa = key("rsa.pem");
    let attacker = key("rsa2.pem");
    let env = Env::new(
        &file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", ""),
        DEMO_POLICY,
        "",
    );
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let srv = Running::start(&env.config()).await;
    let http = reqwest::Client::new();
    // Sanity: the same claims, honestly signed, are allowed — so each denial below is the attack's.
    let r = srv
        .check(json!({"method": "GET", "path": "/AdminUser", "token": token(&rsa, &good_claims())}))
        .await;
    assert_eq!(r["reason"], "allowed");
    let list = attacks(&rsa, &attacker);
    assert!(list.len() > 60, "{}", list.len());
    let mut grpc = srv.grpc_client().await;
    let mut envoy = envoy_client(&srv).await;
    for (name, t, want) in &list {
        // authzd.v1 gRPC, with the token in the field.
        let r = grpc
            .check(authzd::pb::CheckRequest {
                token: t.clone(),
                method: "GET".into(),
                path: "/AdminUser".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (r.reason.as_str(), r.status, r.allowed),
            (*want, 401, false),
            "{name} via gRPC"
        );
        // Envoy ext_authz gRPC, with the token in the header as Envoy sends it.
        let r = envoy
            .check(envoy_request(
                "GET",
                "/AdminUser",
                &[("authorization", &format!("Bearer {t}"))],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status.map(|s| s.code), Some(16), "{name} via Envoy gRPC");
        let r = srv
            .check(json!({"method": "GET", "path": "/AdminUser", "token": t}))
            .await;
        assert_eq!(r["reason"], *want, "{name}: {r}");
        assert_eq!(
            (r["status"].as_u64(), r["allowed"].as_bool()),
            (Some(401), Some(false)),
            "{name}"
        );
        // The same token through the gateway interfaces: 401, never 200 or 500.
        for (path, headers) in [
            ("/ext_authz/AdminUser", vec![]),
            (
                "/v1/forward-auth",
                vec![
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-uri", "/AdminUser"),
                ],
            ),
        ] {
            let mut req = http
                .get(srv.url(path))
                .header("authorization", format!("Bearer {t}"));
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{name} via {path}");
            let challenge = resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert_eq!(
                challenge,
                format!(r#"Bearer error="invalid_token", error_description="{want}""#),
                "{name}"
            );
        }
    }
    srv.stop().await;
    // The decision log never holds a token or a signature, whatever the attack,
    // and attacker-chosen strings (a 10k-char kid) are clipped.
    let log = std::fs::read_to_string(env.dir.path().join("decisions.log")).unwrap();
    assert!(
        log.lines().all(|l| l.len() < 4096),
        "a log line was blown up by attacker input"
    );
    for (name, t, _) in &list {
        if let Some((_, sig)) = t.rsplit_once('.')
            && sig.len() > 8
        {
            assert!(!log.contains(sig), "{name}: signature in the decision log");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_never_500() {
    let rsa = key("rsa.pem");
    let env = Env::new(
        &file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", ""),
        DEMO_POLICY,
        "",
    );
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let srv = Running::start(&env.config()).await;
    let http = reqwest::Client::new();
    // Many headers: the HTTP server refuses politely (431), it does not fall over.
    let mut req = http.get(srv.url("/ext_authz/AdminUser"));
    for i in 0..500 {
        req = req.header(format!("x-h-{i}"), "v");
    }
    let status = req.send().await.unwrap().status();
    assert!(status == 431 || status == 401, "{status}");
    // The same through Envoy's gRPC shape, where the map can be large.
    let mut client = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::connect(
        format!("http://{}", srv.grpc),
    )
    .await
    .unwrap();
    use envoy_types::pb::envoy::service::auth::v3::{
        AttributeContext, CheckRequest, attribute_context,
    };
    let mut headers: std::collections::HashMap<String, String> = (0..5000)
        .map(|i| (format!("x-h-{i}"), "v".repeat(20)))
        .collect();
    headers.insert(
        "authorization".into(),
        format!("Bearer {}", "A".repeat(20_000)),
    );
    let req = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: "GET".into(),
                    path: "/AdminUser".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let resp = client.check(req).await.unwrap().into_inner();
    assert_eq!(resp.status.unwrap().code, 16);
    // Odd but valid-looking requests.
    for body in [
        json!({"method": "GET", "path": "/AdminUser", "token": "\u{0}\u{1}\u{2}"}),
        json!({"method": "GET", "path": "/AdminUser", "headers": {"authorization": "Bearer \u{202e}abc"}}),
        json!({"method": "G E T", "path": "no-leading-slash"}),
        json!({"method": "GET", "path": "/".repeat(10_000)}),
        json!({"resource": "x".repeat(100_000), "action": "GET", "token": "a.b.c"}),
    ] {
        let resp = http
            .post(srv.url("/v1/check"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["allowed"], false, "{v}");
    }
}
