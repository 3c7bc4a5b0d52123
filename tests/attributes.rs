//! Ownership and tenant rules (`docs/attributes.md`), on the two shipped
//! examples: the same answer through every interface, attribute values
//! only from the verified token, missing values denied, hostile claim
//! values and path spellings that widen nothing, the decision log, and
//! cached Lambda answers that list only the caller's own resources.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{runtime_api::RuntimeApi, *};
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";

/// `examples/attributes/<name>` copied into a temporary directory, trusting
/// the test key instead of the demo's, on free ports, logging to a file.
fn example(name: &str, extra: &str) -> (tempfile::TempDir, std::path::PathBuf, SigningKey) {
    let rsa = key("rsa.pem");
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/attributes")
        .join(name);
    for f in ["model.conf", "policy.csv", "tests.toml"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("jwks.json"), jwks_of(&[&rsa]).to_string()).unwrap();
    let text = std::fs::read_to_string(src.join("authzd.toml"))
        .unwrap()
        .replace("https://demo.authzd.example", ISS)
        .replace("authzd-demo", "app")
        .replace("../../demo/jwks.json", "jwks.json")
        .replace("127.0.0.1:50051", "127.0.0.1:0")
        .replace("127.0.0.1:8181", "127.0.0.1:0")
        .replace("output = \"stdout\"", "output = \"decisions.log\"");
    let config = dir.path().join("authzd.toml");
    std::fs::write(&config, format!("{text}\n{extra}")).unwrap();
    (dir, config, rsa)
}

fn bearer(rsa: &SigningKey, sub: &str, extra: Value) -> String {
    let mut c = claims(ISS, sub);
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    token(rsa, &c)
}

fn log(dir: &tempfile::TempDir) -> Vec<Value> {
    std::fs::read_to_string(dir.path().join("decisions.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every interface's answer for one request: (interface, allowed).
async fn every_interface(
    srv: &Running,
    tok: &str,
    method: &str,
    path: &str,
) -> Vec<(String, bool)> {
    let http = reqwest::Client::new();
    let auth = format!("Bearer {tok}");
    let mut out = Vec::new();
    let v = srv
        .check(json!({"method": method, "path": path, "token": tok}))
        .await;
    out.push(("json".into(), v["allowed"] == true));
    let v: Value = http
        .post(srv.url("/v1/check/batch"))
        .json(&json!({"token": tok, "items": [{"resource": path, "action": method}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    out.push(("json batch".into(), v["results"][0]["allowed"] == true));
    let mut grpc = srv.grpc_client().await;
    let r = grpc
        .check(authzd::pb::CheckRequest {
            method: method.into(),
            path: path.into(),
            token: tok.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    out.push(("grpc".into(), r.allowed));
    let r = grpc
        .check_batch(authzd::pb::CheckBatchRequest {
            token: tok.into(),
            items: vec![authzd::pb::CheckBatchItem {
                resource: path.into(),
                action: method.into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    out.push(("grpc batch".into(), r.results[0].allowed));
    let r = envoy_check(
        srv,
        envoy_request(method, path, &[("authorization", &auth)]),
    )
    .await;
    out.push(("envoy grpc".into(), r.status.unwrap().code == 0));
    let r = http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            srv.url(&format!("/ext_authz{path}")),
        )
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    out.push(("envoy http".into(), r.status() == 200));
    let r = http
        .get(srv.url("/v1/forward-auth"))
        .header("x-forwarded-method", method)
        .header("x-forwarded-uri", path)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    out.push(("forward auth".into(), r.status() == 200));
    out
}

/// `authzd check` on `config`: allowed or not.
fn cli_check(config: &Path, tok: &str, method: &str, path: &str) -> bool {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args([
            "check",
            "--config",
            config.to_str().unwrap(),
            "--token",
            tok,
        ])
        .args(["--method", method, "--path", path])
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!(
            "authzd check: {other:?} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_reaches_her_own_record_and_not_bobs_through_every_interface() {
    let (dir, config, rsa) = example("ownership", "");
    let srv = Running::start(&config).await;
    let alice = bearer(&rsa, "alice", json!({}));
    let admin = bearer(&rsa, "root", json!({"cognito:groups": ["admin"]}));
    let self_group = bearer(&rsa, "mallory", json!({"cognito:groups": ["self"]}));
    for (who, tok, method, path, want) in [
        ("alice", &alice, "PUT", "/users/alice", true),
        ("alice", &alice, "GET", "/users/alice", true),
        ("alice", &alice, "PUT", "/users/bob", false),
        ("alice", &alice, "GET", "/users/bob", false),
        ("alice", &alice, "PUT", "/users/alicex", false),
        ("alice", &alice, "PUT", "/users/ALICE", false),
        ("admin", &admin, "GET", "/users/bob", true),
        ("admin", &admin, "PUT", "/users/bob", false),
        ("group `self`", &self_group, "PUT", "/users/bob", false),
    ] {
        for (interface, allowed) in every_interface(&srv, tok, method, path).await {
            assert_eq!(allowed, want, "{who} {method} {path} via {interface}");
        }
        assert_eq!(
            cli_check(&config, tok, method, path),
            want,
            "{who} {method} {path} via authzd check"
        );
    }
    // Dot segments and encoded slashes never reach the getter.
    for path in [
        "/users/bob/../alice",
        "/users/alice/../bob",
        "/users/alice%2F..%2Fbob",
    ] {
        let v = srv
            .check(json!({"method": "PUT", "path": path, "token": alice}))
            .await;
        assert_eq!(v["reason"], "request_rejected", "{path}: {v}");
    }
    srv.stop().await;
    let first = &log(&dir)[0];
    assert_eq!(first["attributes"], json!({"uid": "alice"}), "{first}");
    // The example's policy tests pass as shipped.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args(["test", dir.path().join("tests.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `path_case = "insensitive"` folds case to match routes and patterns, but
/// an identity read out of the path is compared as the upstream handler
/// receives it: a lower-case `alice` does not own `/users/ALICE`, and a
/// mixed-case Okta id owns exactly its own spelling, on every interface,
/// the CLI and cached Lambda answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_keep_their_case_when_paths_are_case_insensitive() {
    let (_dir, config, rsa) = example(
        "ownership",
        "[request]\npath_case = \"insensitive\"\n[lambda]\nresponse = \"iam\"\npolicy_scope = \"routes\"\n",
    );
    let srv = Running::start(&config).await;
    const OKTA: &str = "00ub0oNGTS8Ao9nJy5d7";
    let alice = bearer(&rsa, "alice", json!({}));
    let okta = bearer(&rsa, OKTA, json!({}));
    let upper = bearer(&rsa, "ALICE", json!({}));
    for (who, tok, path, want) in [
        ("alice", &alice, "/users/alice".to_string(), true),
        ("alice", &alice, "/USERS/alice".to_string(), true),
        ("alice", &alice, "/users/ALICE".to_string(), false),
        ("alice", &alice, "/users/Alice".to_string(), false),
        ("ALICE", &upper, "/users/alice".to_string(), false),
        ("ALICE", &upper, "/users/ALICE".to_string(), true),
        ("okta", &okta, format!("/users/{OKTA}"), true),
        ("okta", &okta, format!("/Users/{OKTA}"), true),
        (
            "okta",
            &okta,
            format!("/users/{}", OKTA.to_lowercase()),
            false,
        ),
        (
            "okta",
            &okta,
            format!("/users/{}", OKTA.to_uppercase()),
            false,
        ),
    ] {
        for (interface, allowed) in every_interface(&srv, tok, "PUT", &path).await {
            assert_eq!(allowed, want, "{who} PUT {path} via {interface}");
        }
        assert_eq!(
            cli_check(&config, tok, "PUT", &path),
            want,
            "{who} PUT {path} via authzd check"
        );
    }
    srv.stop().await;
    // A cached Lambda answer lists the caller's own record in its own case.
    let (api, mut child) = lambda(&config).await;
    let posted = api.invoke(token_event("PUT", "/users/bob", &okta)).await;
    let common::runtime_api::Posted::Answer(answer) = posted else {
        panic!("{posted:?}")
    };
    let allow = arns(&answer, "Allow");
    assert!(
        allow.contains(&format!("{API}/PUT/users/{OKTA}")),
        "{answer:#}"
    );
    assert!(
        !allow.iter().any(|a| a.contains(&OKTA.to_lowercase())),
        "{answer:#}"
    );
    let _ = child.kill().await;
}

const API: &str = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod";

/// `authzd lambda` on `config`, served by a Runtime API of the test's own.
async fn lambda(config: &Path) -> (RuntimeApi, tokio::process::Child) {
    let api = RuntimeApi::start().await;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args(["lambda", "--config", config.to_str().unwrap()])
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (api, child)
}

/// A REST API `TOKEN` authorizer event.
fn token_event(method: &str, path: &str, tok: &str) -> Value {
    json!({
        "type": "TOKEN",
        "authorizationToken": format!("Bearer {tok}"),
        "methodArn": format!("{API}/{method}{path}"),
    })
}

/// The ARNs of an IAM answer's statements with `effect`.
fn arns(answer: &Value, effect: &str) -> Vec<String> {
    answer["policyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == effect)
        .flat_map(|s| s["Resource"].as_array().unwrap().clone())
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_reach_another_by_any_spelling() {
    let (dir, config, rsa) = example("tenants", "");
    let srv = Running::start(&config).await;
    let member = |tenant: Value| {
        bearer(
            &rsa,
            "alice",
            json!({"cognito:groups": ["member"], "custom:tenant": tenant}),
        )
    };
    let acme = member(json!("acme"));
    for (interface, allowed) in every_interface(&srv, &acme, "GET", "/tenants/acme/projects").await
    {
        assert!(allowed, "own tenant via {interface}");
    }
    for (interface, allowed) in
        every_interface(&srv, &acme, "GET", "/tenants/globex/projects").await
    {
        assert!(!allowed, "other tenant via {interface}");
    }
    for path in [
        "/tenants/acme/../globex/projects",
        "/tenants/acme/%2E%2E/globex/projects",
        "/tenants/acme%2F..%2Fglobex/projects",
        "/tenants//globex/projects",
        "/tenants/acme/projects/../../globex/projects",
    ] {
        let v = srv
            .check(json!({"method": "GET", "path": path, "token": acme}))
            .await;
        assert_eq!(v["reason"], "request_rejected", "{path}: {v}");
    }
    for path in [
        "/tenants/ACME/projects",
        "/tenants/acme%20/projects",
        "/tenants/globex/projects?tenant=acme",
    ] {
        let v = srv
            .check(json!({"method": "GET", "path": path, "token": acme}))
            .await;
        assert_eq!(v["allowed"], false, "{path}: {v}");
    }
    // A hostile claim value is one whole string: it matches no other tenant.
    for hostile in [
        "acme/../globex",
        "*",
        "..",
        "%2F",
        ".*",
        "globex|acme",
        "acme,globex",
        "globex/*",
        "(.*)",
        ":tenant",
    ] {
        let tok = member(json!(hostile));
        for path in ["/tenants/globex/projects", "/tenants/acme/projects"] {
            let v = srv
                .check(json!({"method": "GET", "path": path, "token": tok}))
                .await;
            assert_eq!(v["allowed"], false, "claim {hostile:?} on {path}: {v}");
        }
    }
    // Attribute values come from the token only: nothing a caller sends counts.
    let v = srv
        .check(
            json!({"method": "GET", "path": "/tenants/globex/projects", "token": acme,
            "headers": {"custom:tenant": "globex", "tenant": "globex"}, "domain": "globex"}),
        )
        .await;
    assert_eq!(v["allowed"], false, "{v}");
    // A number is its decimal text.
    let numeric = member(json!(42));
    let v = srv
        .check(json!({"method": "GET", "path": "/tenants/42/projects", "token": numeric}))
        .await;
    assert_eq!(v["allowed"], true, "{v}");
    // Absent, empty, null, an array, an object: 403 attribute_missing, naming the field, not the value.
    let without = bearer(&rsa, "alice", json!({"cognito:groups": ["member"]}));
    let mut missing = vec![without];
    for bad in [
        json!(""),
        json!(null),
        json!(["acme"]),
        json!({"id": "acme"}),
    ] {
        missing.push(member(bad));
    }
    for tok in &missing {
        for (interface, allowed) in
            every_interface(&srv, tok, "GET", "/tenants/acme/projects").await
        {
            assert!(!allowed, "a missing tenant via {interface}");
        }
        let v = srv
            .check(json!({"method": "GET", "path": "/tenants/acme/projects", "token": tok}))
            .await;
        assert_eq!(
            (v["status"].as_u64(), v["reason"].as_str()),
            (Some(403), Some("attribute_missing")),
            "{v}"
        );
    }
    srv.stop().await;
    let records = log(&dir);
    let m = records
        .iter()
        .find(|r| r["reason"] == "attribute_missing")
        .unwrap();
    let detail = m["detail"].as_str().unwrap();
    assert!(
        detail.contains("tenant") && detail.contains("/custom:tenant"),
        "{detail}"
    );
    assert!(!detail.contains("acme"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_and_unlogged_values() {
    // The tenant example with a second attribute: a default, kept out of the log.
    let (dir, config, rsa) = example("tenants", "");
    let model = std::fs::read_to_string(dir.path().join("model.conf"))
        .unwrap()
        .replace(
            "r = sub, obj, act, tenant",
            "r = sub, obj, act, tenant, email",
        );
    // A field the matcher never reads is refused: compare it with something.
    let model: String = model
        .lines()
        .map(|l| match l.starts_with("m = ") {
            true => format!("{l} && r.email != \"nobody\"\n"),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(dir.path().join("model.conf"), model).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "tenant = { claim = \"/custom:tenant\" }",
        "tenant = { claim = \"/custom:tenant\", default = \"public\" }\nemail = { claim = \"/email\", log = false }",
    );
    std::fs::write(&config, text).unwrap();
    let srv = Running::start(&config).await;
    let tok = bearer(
        &rsa,
        "alice",
        json!({"cognito:groups": ["member"], "email": "alice@secret.example"}),
    );
    let v = srv
        .check(json!({"method": "GET", "path": "/tenants/public/projects", "token": tok}))
        .await;
    assert_eq!(v["allowed"], true, "the default stands in: {v}");
    srv.stop().await;
    let line = std::fs::read_to_string(dir.path().join("decisions.log")).unwrap();
    assert!(!line.contains("alice@secret.example"), "{line}");
    let record: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(record["attributes"], json!({"tenant": "public"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatch_between_model_and_config_fails_the_load() {
    let (dir, config, _) = example("ownership", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("uid = { claim = \"/sub\" }\n", "")).unwrap();
    let e = authzd::policy::snapshot::Snapshot::load(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.conf") && e.contains("authzd.toml") && e.contains("`uid`"),
        "{e}"
    );
    std::fs::write(
        &config,
        text.replace(
            "uid = { claim = \"/sub\" }",
            "uid = { claim = \"/sub\" }\norg = { claim = \"/org\" }",
        ),
    )
    .unwrap();
    let e = authzd::policy::snapshot::Snapshot::load(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("`org`") && e.contains("no such field"), "{e}");
    drop(dir);
}

/// The Lambda authorizer's cached answer for ownership routes: the
/// caller's own ARNs, never a wildcard either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_lambda_answers_list_only_the_callers_own_records() {
    let (_dir, config, rsa) = example(
        "ownership",
        "[lambda]\nresponse = \"iam\"\npolicy_scope = \"routes\"\n",
    );
    let (api, mut child) = lambda(&config).await;
    let event = token_event;
    let statements = arns;
    let alice = bearer(&rsa, "alice", json!({}));
    // Alice asks for bob's record: denied, and the cached answer still lets her at her own.
    let posted = api.invoke(event("PUT", "/users/bob", &alice)).await;
    let common::runtime_api::Posted::Answer(answer) = posted else {
        panic!("{posted:?}")
    };
    let (allow, deny) = (statements(&answer, "Allow"), statements(&answer, "Deny"));
    assert!(
        allow.contains(&format!("{API}/PUT/users/alice")),
        "{answer:#}"
    );
    assert!(
        allow.contains(&format!("{API}/GET/users/alice")),
        "{answer:#}"
    );
    assert!(deny.contains(&format!("{API}/PUT/users/bob")), "{answer:#}");
    for arn in allow.iter().chain(&deny) {
        assert!(
            !arn.contains('*'),
            "a wildcard for an ownership route: {arn}"
        );
    }
    // An admin may GET every record: that route is the same for every path.
    let admin = bearer(&rsa, "root", json!({"cognito:groups": ["admin"]}));
    let posted = api.invoke(event("GET", "/users/bob", &admin)).await;
    let common::runtime_api::Posted::Answer(answer) = posted else {
        panic!("{posted:?}")
    };
    let allow = statements(&answer, "Allow");
    assert!(allow.contains(&format!("{API}/GET/users/*")), "{answer:#}");
    assert!(
        allow.contains(&format!("{API}/PUT/users/root")),
        "{answer:#}"
    );
    assert!(!allow.contains(&format!("{API}/PUT/users/*")), "{answer:#}");
    let _ = child.kill().await;
}
