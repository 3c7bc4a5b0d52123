//! JWKS behaviour over real HTTP (`docs/pipeline.md`): discovery, coalesced fetches,
//! rotation without restart, rate-limited refresh under a flood of unknown
//! `kid`s, last good keys while the IdP is down, unusable keys skipped.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{sync::Arc, time::Duration};

use authzd::{config::Config, token::jwks::Jwks};
use common::*;
use serde_json::json;

fn issuer_block(idp: &Idp, min_refresh: u64) -> String {
    format!(
        "[[issuer]]\nissuer = \"{}\"\naudiences = [\"app\"]\nalgorithms = [\"RS256\", \"ES256\"]\njwks_min_refresh_secs = {min_refresh}\njwks_timeout_ms = 1000\n",
        idp.issuer()
    )
}

fn admin_claims(idp: &Idp) -> serde_json::Value {
    let mut c = claims(&idp.issuer(), "alice");
    c["cognito:groups"] = json!(["admin"]);
    c
}

async fn reason(srv: &Running, t: &str) -> String {
    let r = srv
        .check(json!({"method": "GET", "path": "/AdminUser", "token": t}))
        .await;
    r["reason"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn concurrent_misses_make_one_fetch() {
    let rsa = key("rsa.pem");
    let idp = Idp::start(&[&rsa]).await;
    *idp.delay.lock() = Duration::from_millis(200);
    let env = Env::new(&issuer_block(&idp, 30), DEMO_POLICY, "");
    let config = Config::load(&env.config()).unwrap();
    let jwks = Arc::new(Jwks::new());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let jwks = Arc::clone(&jwks);
            let cfg = config.issuers[0].clone();
            tokio::spawn(async move { jwks.fetch(&cfg).await.map(|k| k.keys.len()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 1);
    }
    assert_eq!(idp.hits(), 1, "20 concurrent misses, one fetch");
    assert_eq!(
        idp.discovery_hits.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn rotation_works_without_restart() {
    let old = key("rsa.pem");
    let new = key("rsa2.pem");
    let idp = Idp::start(&[&old]).await;
    let env = Env::new(&issuer_block(&idp, 0), DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    assert_eq!(
        reason(&srv, &token(&old, &admin_claims(&idp))).await,
        "allowed"
    );
    // The IdP rotates: the new key is published, the old one withdrawn.
    idp.set_keys(&[&new]);
    assert_eq!(
        reason(&srv, &token(&new, &admin_claims(&idp))).await,
        "allowed"
    );
    assert_eq!(
        reason(&srv, &token(&old, &admin_claims(&idp))).await,
        "key_unknown"
    );
}

#[tokio::test]
async fn unknown_kid_flood_refreshes_at_most_once_per_window() {
    let rsa = key("rsa.pem");
    let idp = Idp::start(&[&rsa]).await;
    let env = Env::new(&issuer_block(&idp, 30), DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    assert_eq!(
        reason(&srv, &token(&rsa, &admin_claims(&idp))).await,
        "allowed"
    );
    let before = idp.hits();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let t = sign_raw(
            &rsa,
            &json!({"alg": "RS256", "kid": format!("random-{i}")}),
            &admin_claims(&idp),
        );
        let url = srv.url("/v1/check");
        tasks.push(tokio::spawn(async move {
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
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "key_unknown");
    }
    assert!(
        idp.hits() - before <= 1,
        "{} refetches for 60 unknown kids",
        idp.hits() - before
    );
    // Known keys keep working throughout.
    assert_eq!(
        reason(&srv, &token(&rsa, &admin_claims(&idp))).await,
        "allowed"
    );
}

#[tokio::test]
async fn last_good_keys_serve_while_the_idp_is_down() {
    let rsa = key("rsa.pem");
    let idp = Idp::start(&[&rsa]).await;
    let env = Env::new(&issuer_block(&idp, 0), DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    assert_eq!(
        reason(&srv, &token(&rsa, &admin_claims(&idp))).await,
        "allowed"
    );
    *idp.fail.lock() = Some(503);
    // An unknown kid forces a refresh attempt, which fails: an outage is not
    // a bad token, so the answer is 503 `issuer_unavailable` (retry), not
    // 401 `key_unknown` (sign in again)...
    let stray = sign_raw(
        &rsa,
        &json!({"alg": "RS256", "kid": "stray"}),
        &admin_claims(&idp),
    );
    assert_eq!(reason(&srv, &stray).await, "issuer_unavailable");
    // ...and the cached keys still verify.
    assert_eq!(
        reason(&srv, &token(&rsa, &admin_claims(&idp))).await,
        "allowed"
    );
    // Garbage from the IdP is no better than an outage.
    *idp.fail.lock() = None;
    *idp.jwks.lock() = json!({"not": "a jwks"});
    assert_eq!(reason(&srv, &stray).await, "issuer_unavailable");
    assert_eq!(
        reason(&srv, &token(&rsa, &admin_claims(&idp))).await,
        "allowed"
    );
}

#[tokio::test]
async fn unusable_keys_are_skipped_not_fatal() {
    let rsa = key("rsa.pem");
    let ec = key("ec256.pem");
    let idp = Idp::start(&[]).await;
    let mut keys = vec![
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        json!({"kty": "EC", "crv": "secp256k1", "kid": "k1", "x": "AA", "y": "AA"}),
        json!({"kty": "FOO", "kid": "weird"}),
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
    ];
    keys.push(serde_json::to_value(&rsa.jwk).unwrap());
    keys.push(serde_json::to_value(&ec.jwk).unwrap());
    *idp.jwks.lock() = json!({ "keys": keys });
    let env = Env::new(&issuer_block(&idp, 0), DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    assert_eq!(
        reason(&srv, &token(&rsa, &admin_claims(&idp))).await,
        "allowed"
    );
    assert_eq!(
        reason(&srv, &token(&ec, &admin_claims(&idp))).await,
        "allowed"
    );
    // The symmetric key in the JWKS is never usable, whatever the token says.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("hmac".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &admin_claims(&idp),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert_eq!(reason(&srv, &hs).await, "algorithm_not_allowed");
}

/// An identity provider that cannot be reached is an outage, on every
/// interface: 503 `issuer_unavailable`, never a 401 that tells clients to
/// sign in again (`key_unknown` means a key set was fetched and lacks the kid).
#[tokio::test]
async fn unreachable_idp_fails_closed_with_issuer_unavailable() {
    let rsa = key("rsa.pem");
    let env = Env::new(
        "[[issuer]]\nissuer = \"http://127.0.0.1:9\"\nalgorithms = [\"RS256\"]\njwks_timeout_ms = 300\n",
        DEMO_POLICY,
        "",
    );
    let srv = Running::start(&env.config()).await;
    let mut c = claims("http://127.0.0.1:9", "alice");
    c["cognito:groups"] = json!(["admin"]);
    let t = token(&rsa, &c);
    let r = srv
        .check(json!({"method": "GET", "path": "/AdminUser", "token": t}))
        .await;
    assert_eq!(r["reason"], "issuer_unavailable");
    assert_eq!(r["status"], 503);
    assert_eq!(r["allowed"], false);
    // Forward auth and Envoy's HTTP mode answer the status itself.
    let http = reqwest::Client::new();
    let fa = http
        .get(srv.url("/v1/forward-auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/AdminUser")
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(fa.status(), 503);
    assert!(fa.headers().get("www-authenticate").is_none());
    let envoy = http
        .get(srv.url("/ext_authz/AdminUser"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(envoy.status(), 503);
    assert_eq!(
        envoy.text().await.unwrap(),
        r#"{"message":"Service Unavailable"}"#
    );
}

/// The key set was fetched, then the IdP goes down during a rotation: a
/// token signed with the new key is an outage (503), an old one still
/// verifies, and once the IdP is back the new key works and a `kid` it
/// does not publish is `key_unknown` again.
#[tokio::test]
async fn a_rotation_during_an_outage_is_unavailable_not_unknown() {
    let old = key("rsa.pem");
    let new = key("rsa2.pem");
    let idp = Idp::start(&[&old]).await;
    let env = Env::new(&issuer_block(&idp, 0), DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    assert_eq!(
        reason(&srv, &token(&old, &admin_claims(&idp))).await,
        "allowed"
    );
    *idp.fail.lock() = Some(500);
    idp.set_keys(&[&old, &new]);
    assert_eq!(
        reason(&srv, &token(&new, &admin_claims(&idp))).await,
        "issuer_unavailable"
    );
    assert_eq!(
        reason(&srv, &token(&old, &admin_claims(&idp))).await,
        "allowed"
    );
    *idp.fail.lock() = None;
    assert_eq!(
        reason(&srv, &token(&new, &admin_claims(&idp))).await,
        "allowed"
    );
    let stray = sign_raw(
        &old,
        &json!({"alg": "RS256", "kid": "stray"}),
        &admin_claims(&idp),
    );
    assert_eq!(reason(&srv, &stray).await, "key_unknown");
}

#[tokio::test]
async fn keys_refresh_in_the_background_per_cache_control() {
    let old = key("rsa.pem");
    let new = key("rsa2.pem");
    let idp = Idp::start(&[&old]).await;
    *idp.cache_control.lock() = Some("public, max-age=1".into());
    // max-age=1 with a one-second floor: the refresher fetches every second or
    // so with no request asking for it.
    let issuer = format!(
        "{}jwks_refresh_min_secs = 1\njwks_min_refresh_secs = 1\n",
        issuer_block(&idp, 3600).replace("jwks_min_refresh_secs = 3600\n", "")
    );
    let env = Env::new(&issuer, DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    assert_eq!(
        reason(&srv, &token(&old, &admin_claims(&idp))).await,
        "allowed"
    );
    idp.set_keys(&[&old, &new]);
    let start = std::time::Instant::now();
    // Fetches happen while no check is running: only the refresher makes them.
    while idp.hits() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no background refresh ({} fetches)",
            idp.hits()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new key is already known: no request had to wait for a fetch.
    let before = idp.hits();
    assert_eq!(
        reason(&srv, &token(&new, &admin_claims(&idp))).await,
        "allowed"
    );
    assert!(idp.hits() <= before + 1);
}

#[tokio::test]
async fn a_cached_token_still_expires() {
    let rsa = key("rsa.pem");
    let idp = Idp::start(&[&rsa]).await;
    let env = Env::new(
        &format!("{}leeway_secs = 0\n", issuer_block(&idp, 30)),
        DEMO_POLICY,
        "",
    );
    let srv = Running::start(&env.config()).await;
    let mut c = admin_claims(&idp);
    c["exp"] = json!(now() + 2);
    let t = token(&rsa, &c);
    assert_eq!(reason(&srv, &t).await, "allowed");
    assert_eq!(reason(&srv, &t).await, "allowed");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(reason(&srv, &t).await, "token_expired");
}
