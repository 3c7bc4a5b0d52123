//! `authzd lambda` against a local Lambda Runtime API (the four endpoints
//! AWS serves a custom runtime), the real binary, a real JWKS over HTTP:
//! every event shape, the answers API Gateway expects, init errors, a warm
//! instance reusing its keys, SIGTERM; and the SAM example against the
//! routes it deploys.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use common::{runtime_api::*, *};
use parking_lot::Mutex;
use serde_json::{Value, json};

const API: &str = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod";

/// The authzd process under test, its stdout (the decision log) collected.
struct Function {
    child: tokio::process::Child,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Function {
    fn start(api: &RuntimeApi, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Function {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let lines = Arc::clone(&stdout);
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut r = tokio::io::BufReader::new(out).lines();
            while let Ok(Some(l)) = r.next_line().await {
                lines.lock().push(l);
            }
        });
        Function { child, stdout }
    }

    /// SIGTERM, then the exit status.
    async fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, self.stdout.lock().clone())
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_authzd");

/// A config like `examples/aws/authzd.toml`, with the issuer from the environment.
fn lambda_env(jwks: &str, lambda: &str, extra: &str) -> Env {
    let env = Env::new("", DEMO_POLICY, "");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/aws/authzd.toml"),
    )
    .unwrap();
    // The test's own model has no `uid` attribute: drop its mapping.
    let example: String = example
        .lines()
        .filter(|l| !l.starts_with("[policy.attributes]") && !l.starts_with("uid = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = example
        .replace("policies/model.conf", "model.conf")
        .replace("policies/policy.csv", "policy.csv")
        .replace("token_use = \"access\"\n", &format!("{jwks}\n"))
        .replace(
            "[lambda]\nresponse = \"iam\"\npolicy_scope = \"routes\"",
            &format!("[lambda]\n{lambda}"),
        );
    env.write("authzd.toml", &format!("{text}\n{extra}"));
    env
}

fn user(k: &SigningKey, iss: &str, sub: &str, groups: &[&str]) -> String {
    let mut c = claims(iss, sub);
    c["cognito:groups"] = json!(groups);
    c["client_id"] = json!("app");
    c.as_object_mut().unwrap().remove("aud");
    token(k, &c)
}

fn v2(method: &str, path: &str, auth: Option<&str>) -> Value {
    let mut headers = serde_json::Map::new();
    if let Some(a) = auth {
        headers.insert("authorization".into(), json!(a));
    }
    json!({
        "version": "2.0", "type": "REQUEST",
        "routeArn": format!("{API}/{method}{path}"),
        "identitySource": [auth.unwrap_or("")],
        "routeKey": format!("{method} {path}"),
        "rawPath": format!("/prod{path}"), "rawQueryString": "",
        "headers": headers,
        "requestContext": {"stage": "prod", "http": {"method": method, "path": format!("/prod{path}")}}
    })
}

fn rest_request(method: &str, path: &str, auth: Option<&str>, version: Option<&str>) -> Value {
    let mut e = json!({
        "type": "REQUEST", "methodArn": format!("{API}/{method}{path}"),
        "resource": path, "path": path, "httpMethod": method,
        "headers": {}, "multiValueHeaders": {},
        "requestContext": {"stage": "prod"}
    });
    if let Some(a) = auth {
        e["headers"]["Authorization"] = json!(a);
        e["multiValueHeaders"]["Authorization"] = json!([a]);
    }
    if let Some(v) = version {
        e["version"] = json!(v);
        e["path"] = json!(format!("/prod{path}"));
    }
    e
}

fn token_event(method: &str, path: &str, auth: &str) -> Value {
    json!({"type": "TOKEN", "authorizationToken": auth, "methodArn": format!("{API}/{method}{path}")})
}

fn answer(p: &Posted) -> &Value {
    match p {
        Posted::Answer(v) => v,
        Posted::Error { error_type, body } => {
            panic!("an error, not an answer: {error_type} {body}")
        }
    }
}

fn statements(v: &Value, effect: &str) -> Vec<String> {
    v["policyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == effect)
        .flat_map(|s| {
            s["Resource"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
        })
        .collect()
}

const ISS: &str = "https://rsa.example";

/// `authzd lambda` on `env` (keys of `rsa` written for it), issuer from the environment.
fn start_with(api: &RuntimeApi, env: &Env, rsa: &SigningKey) -> Function {
    env.write("jwks.json", &jwks_of(&[rsa]).to_string());
    Function::start(
        api,
        Path::new(BIN),
        &["lambda", "--config", env.config().to_str().unwrap()],
        &[("COGNITO_ISSUER", ISS), ("COGNITO_CLIENT_ID", "app")],
    )
}

async fn start_routes() -> (Env, RuntimeApi, Function, SigningKey) {
    let rsa = key("rsa.pem");
    let env = lambda_env(
        "jwks_file = \"jwks.json\"",
        "response = \"iam\"\npolicy_scope = \"routes\"",
        "",
    );
    let api = RuntimeApi::start().await;
    let f = start_with(&api, &env, &rsa);
    (env, api, f, rsa)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_shape_gets_the_answer_api_gateway_expects() {
    let (_env, api, f, rsa) = start_routes().await;
    let admin = format!("Bearer {}", user(&rsa, ISS, "alice", &["admin"]));
    let regular = format!("Bearer {}", user(&rsa, ISS, "bob", &["regular"]));
    let all = |m: &str, p: &str| format!("{API}/{m}/{}", p.trim_start_matches('/'));

    for (shape, event) in [
        ("2.0", v2("GET", "/AdminUser", Some(&admin))),
        (
            "REST REQUEST",
            rest_request("GET", "/AdminUser", Some(&admin), None),
        ),
        (
            "1.0",
            rest_request("GET", "/AdminUser", Some(&admin), Some("1.0")),
        ),
        ("TOKEN", token_event("GET", "/AdminUser", &admin)),
    ] {
        let a = api.invoke(event).await;
        let v = answer(&a);
        assert_eq!(v["principalId"], "alice", "{shape}");
        let allow = statements(v, "Allow");
        // The admin may call both user routes (admin inherits regular) and the public one;
        // POST needs a scope the token lacks.
        for arn in [
            all("GET", "/AdminUser"),
            all("GET", "/RegularUser"),
            all("GET", "/wish-list-service"),
        ] {
            assert!(allow.contains(&arn), "{shape}: {arn} not in {allow:?}");
        }
        assert!(
            !allow.iter().any(|a| a.contains("/POST/")),
            "{shape}: {allow:?}"
        );
        // `context` holds flat strings only.
        let ctx = v["context"].as_object().unwrap();
        assert!(ctx.values().all(Value::is_string), "{shape}: {ctx:?}");
        assert_eq!(
            (
                ctx["subject"].as_str(),
                ctx["roles"].as_str(),
                ctx["reason"].as_str()
            ),
            (Some("alice"), Some("admin"), Some("allowed"))
        );
    }

    // The regular user: denied the admin route now and on replay, allowed their own.
    for event in [
        v2("GET", "/AdminUser", Some(&regular)),
        token_event("GET", "/AdminUser", &regular),
    ] {
        let a = api.invoke(event).await;
        let v = answer(&a);
        assert!(statements(v, "Deny").contains(&all("GET", "/AdminUser")));
        let allow = statements(v, "Allow");
        assert!(
            allow.contains(&all("GET", "/RegularUser"))
                && !allow.contains(&all("GET", "/AdminUser")),
            "{allow:?}"
        );
        assert_eq!(v["context"]["reason"], "policy_denied");
    }

    // A public route is decided before the token is read, but the answer is
    // cached by that token: it must still list the caller's own routes.
    let a = api
        .invoke(v2("GET", "/wish-list-service", Some(&regular)))
        .await;
    let v = answer(&a);
    assert_eq!(v["context"]["reason"], "public_route");
    assert_eq!(v["principalId"], "bob");
    let allow = statements(v, "Allow");
    assert!(allow.contains(&all("GET", "/RegularUser")), "{allow:?}");
    assert!(!allow.contains(&all("GET", "/AdminUser")), "{allow:?}");

    // 401: REST APIs get the `Unauthorized` error (API Gateway answers 401) …
    let expired = {
        let mut c = claims(ISS, "alice");
        c["exp"] = json!(now() - 3600);
        format!("Bearer {}", token(&rsa, &c))
    };
    for event in [
        token_event("GET", "/AdminUser", &expired),
        token_event("GET", "/AdminUser", "Basic dXNlcjpwYXNz"),
        token_event("GET", "/AdminUser", ""),
        rest_request("GET", "/AdminUser", None, None),
    ] {
        match api.invoke(event.clone()).await {
            Posted::Error { error_type, body } => {
                assert_eq!(
                    (error_type.as_str(), body["errorMessage"].as_str()),
                    ("Unauthorized", Some("Unauthorized")),
                    "{event}"
                );
            }
            other => panic!("{event}: {other:?}"),
        }
    }
    // … HTTP APIs a deny that allows only public routes.
    let a = api.invoke(v2("GET", "/AdminUser", None)).await;
    let v = answer(&a);
    assert_eq!(v["principalId"], "anonymous");
    assert_eq!(statements(v, "Allow"), [all("GET", "/wish-list-service")]);
    assert!(statements(v, "Deny").contains(&all("GET", "/AdminUser")));
    assert_eq!(v["context"]["reason"], "token_missing");

    // A path an upstream would resolve elsewhere, and a method override: denied.
    for event in [
        v2("GET", "/RegularUser/../AdminUser", Some(&regular)),
        rest_request("GET", "/RegularUser/%2e%2e/AdminUser", Some(&regular), None),
    ] {
        let arn = event
            .get("routeArn")
            .or(event.get("methodArn"))
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        let a = api.invoke(event).await;
        let v = answer(&a);
        assert_eq!(v["context"]["reason"], "request_rejected");
        // Refused before the token is read: still the caller's routes (a cached
        // answer is replayed for them), and a Deny for itself.
        let allow = statements(v, "Allow");
        assert!(
            allow.contains(&all("GET", "/RegularUser"))
                && !allow.contains(&all("GET", "/AdminUser")),
            "{v}"
        );
        assert!(statements(v, "Deny").contains(&arn), "{v}");
        assert_eq!(v["principalId"], "bob");
    }
    let mut overridden = rest_request("POST", "/RegularUser", Some(&regular), None);
    overridden["headers"]["X-HTTP-Method-Override"] = json!("DELETE");
    let a = api.invoke(overridden).await;
    assert_eq!(answer(&a)["context"]["reason"], "request_rejected");

    let (status, log) = f.stop().await;
    assert!(status.success(), "{status}");
    let records: Vec<Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v.get("decision_id").is_some())
        .collect();
    assert_eq!(records.len(), 15, "one record per invocation");
    assert!(records.iter().all(|r| r["source"] == "lambda"));
    // The token never reaches the log.
    let raw = admin.trim_start_matches("Bearer ");
    assert!(!log.iter().any(|l| l.contains(raw)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_errors_never_allows() {
    let (_env, api, f, rsa) = start_routes().await;
    let admin = format!("Bearer {}", user(&rsa, ISS, "alice", &["admin"]));
    let huge: serde_json::Map<String, Value> = (0..2000)
        .map(|i| (format!("x-h-{i}"), json!("v".repeat(100))))
        .collect();
    let mut big = v2("GET", "/AdminUser", Some(&admin));
    big["headers"].as_object_mut().unwrap().extend(huge);
    let cases = [
        (json!({}), "InvalidEvent", "expected a TOKEN event"),
        (json!("a string"), "InvalidEvent", "not a JSON object"),
        (
            json!({"type": "TOKEN", "methodArn": format!("{API}/GET/x")}),
            "InvalidEvent",
            "authorizationToken",
        ),
        (
            json!({"version": "2.0", "routeArn": format!("{API}/GET/x"), "rawPath": "/x"}),
            "InvalidEvent",
            "requestContext",
        ),
        (
            token_event("GET", "/x", &admin)
                .tap(|e| e["methodArn"] = json!("arn:aws:execute-api:eu:1:abc")),
            "InvalidEvent",
            "ARN",
        ),
        (
            rest_request("POST", "/AdminUser", Some(&admin), None)
                .tap(|e| e["methodArn"] = json!(format!("{API}/GET/AdminUser"))),
            "InvalidEvent",
            "ARN's",
        ),
    ];
    for (event, want_type, needle) in cases {
        match api.invoke(event.clone()).await {
            Posted::Error { error_type, body } => {
                assert_eq!(error_type, want_type, "{event}");
                assert!(
                    body["errorMessage"].as_str().unwrap().contains(needle),
                    "{event}: {body}"
                );
            }
            other => panic!("{event}: {other:?}"),
        }
    }
    // Thousands of headers: still answered, no panic.
    let a = api.invoke(big).await;
    assert_eq!(answer(&a)["principalId"], "alice");
    let (status, _) = f.stop().await;
    assert!(status.success());
}

trait Tap {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_responses_request_scope_and_a_failed_role_lookup() {
    let rsa = key("rsa.pem");
    let api = RuntimeApi::start().await;
    let admin = format!("Bearer {}", user(&rsa, ISS, "alice", &["admin"]));
    // Simple responses (HTTP API 2.0).
    let env = lambda_env("jwks_file = \"jwks.json\"", "response = \"simple\"", "");
    let f = start_with(&api, &env, &rsa);
    let a = api.invoke(v2("GET", "/AdminUser", Some(&admin))).await;
    assert_eq!(answer(&a)["isAuthorized"], true);
    assert_eq!(answer(&a)["context"]["subject"], "alice");
    let a = api.invoke(v2("GET", "/AdminUser", None)).await;
    assert_eq!(answer(&a)["isAuthorized"], false);
    f.stop().await;
    // Request scope: one statement, the current ARN.
    let env = lambda_env(
        "jwks_file = \"jwks.json\"",
        "policy_scope = \"request\"",
        "",
    );
    let f = start_with(&api, &env, &rsa);
    let a = api.invoke(token_event("GET", "/AdminUser", &admin)).await;
    assert_eq!(
        statements(answer(&a), "Allow"),
        [format!("{API}/GET/AdminUser")]
    );
    f.stop().await;
    // A role directory that is down: an invocation error (API Gateway: 500), never an allow.
    let env = lambda_env(
        "jwks_file = \"jwks.json\"",
        "response = \"iam\"",
        "[roles.lookup]\nurl = \"http://127.0.0.1:1/users/{sub}/roles\"\ntimeout_ms = 200\n",
    );
    let f = start_with(&api, &env, &rsa);
    match api.invoke(v2("GET", "/AdminUser", Some(&admin))).await {
        Posted::Error { error_type, .. } => assert_eq!(error_type, "ServiceUnavailable"),
        other => panic!("{other:?}"),
    }
    f.stop().await;
    // An identity provider that is down: the same, never a cached deny or
    // an `Unauthorized` that would send the client to sign in again.
    let env = lambda_env(
        "jwks_uri = \"http://127.0.0.1:1/jwks.json\"\njwks_timeout_ms = 200",
        "response = \"iam\"",
        "",
    );
    let f = start_with(&api, &env, &rsa);
    match api.invoke(v2("GET", "/AdminUser", Some(&admin))).await {
        Posted::Error { error_type, .. } => assert_eq!(error_type, "ServiceUnavailable"),
        other => panic!("{other:?}"),
    }
    f.stop().await;
}

/// A `traceparent` in the event's headers labels the record, and with
/// `[tracing]` the decision's span reaches the collector after the answer,
/// before the sandbox could be frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_is_followed_and_its_span_exported() {
    let collector = common::otlp::Collector::start().await;
    let rsa = key("rsa.pem");
    let api = RuntimeApi::start().await;
    let env = lambda_env(
        "jwks_file = \"jwks.json\"",
        "response = \"simple\"",
        &format!("[tracing]\notlp_endpoint = \"{}\"\n", collector.endpoint()),
    );
    let f = start_with(&api, &env, &rsa);
    let admin = format!("Bearer {}", user(&rsa, ISS, "alice", &["admin"]));
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut event = v2("GET", "/AdminUser", Some(&admin));
    event["headers"]["traceparent"] = json!(format!("00-{trace}-00f067aa0ba902b7-01"));
    let a = api.invoke(event).await;
    assert_eq!(answer(&a)["isAuthorized"], true);
    let spans = collector.wait_for(1).await;
    let (_, log) = f.stop().await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(hex::encode(&spans[0].span.trace_id), trace);
    let record: Value = log
        .iter()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v["source"] == "lambda")
        })
        .unwrap();
    assert_eq!(record["trace_id"], trace);
    assert_eq!(
        record["span_id"].as_str().unwrap(),
        hex::encode(&spans[0].span.span_id)
    );
}

/// A CORS preflight that reaches the authorizer (API Gateway answers them
/// when CORS is configured) is denied in both response forms, never allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_is_denied_never_allowed() {
    let rsa = key("rsa.pem");
    let api = RuntimeApi::start().await;
    let preflight = |mut e: Value| {
        e["headers"]["origin"] = json!("https://app.example.com");
        e["headers"]["access-control-request-method"] = json!("DELETE");
        e
    };
    let env = lambda_env("jwks_file = \"jwks.json\"", "response = \"iam\"", "");
    let f = start_with(&api, &env, &rsa);
    let a = api
        .invoke(preflight(v2("OPTIONS", "/AdminUser", None)))
        .await;
    assert_eq!(answer(&a)["context"]["reason"], "cors_preflight");
    assert!(
        statements(answer(&a), "Allow")
            .iter()
            .all(|arn| !arn.contains("/OPTIONS/")),
        "{a:?}"
    );
    assert!(
        statements(answer(&a), "Deny").contains(&format!("{API}/OPTIONS/AdminUser")),
        "{a:?}"
    );
    f.stop().await;
    let env = lambda_env("jwks_file = \"jwks.json\"", "response = \"simple\"", "");
    let f = start_with(&api, &env, &rsa);
    let a = api
        .invoke(preflight(v2("OPTIONS", "/AdminUser", None)))
        .await;
    assert_eq!(answer(&a)["isAuthorized"], false);
    assert_eq!(answer(&a)["context"]["reason"], "cors_preflight");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_does_not_load_is_an_init_error() {
    let api = RuntimeApi::start().await;
    // The issuer variable is not set: the message names it, as `authzd validate` does.
    let env = lambda_env("jwks_file = \"jwks.json\"", "response = \"iam\"", "");
    let mut f = Function::start(
        &api,
        Path::new(BIN),
        &["lambda", "--config", env.config().to_str().unwrap()],
        &[],
    );
    let err = api.wait_init_error().await;
    assert_eq!(err["errorType"], "ConfigError");
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("COGNITO_ISSUER"),
        "{err}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), f.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    let validate = std::process::Command::new(BIN)
        .args(["validate", "--config", env.config().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&validate.stderr).contains(err["errorMessage"].as_str().unwrap())
    );
    // Routes mode without routes is refused with a clear message.
    let api = RuntimeApi::start().await;
    let env = Env::new(
        &file_issuer(ISS, "jwks.json", "\"RS256\"", ""),
        DEMO_POLICY,
        "",
    );
    let text = std::fs::read_to_string(env.config()).unwrap();
    let no_routes: String = text.split("[[route]]").next().unwrap().to_string()
        + &text[text.find("[policy]").unwrap()..];
    env.write("authzd.toml", &no_routes);
    env.write("jwks.json", &jwks_of(&[&key("rsa.pem")]).to_string());
    let mut f = Function::start(
        &api,
        Path::new(BIN),
        &["lambda", "--config", env.config().to_str().unwrap()],
        &[],
    );
    let err = api.wait_init_error().await;
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("policy_scope"),
        "{err}"
    );
    let _ = tokio::time::timeout(Duration::from_secs(10), f.child.wait())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_instance_fetches_keys_once_and_runs_as_bootstrap() {
    let rsa = key("rsa.pem");
    let idp = Idp::start(&[&rsa]).await;
    let env = lambda_env("", "response = \"iam\"", "");
    let api = RuntimeApi::start().await;
    // The custom-runtime convention: an executable named `bootstrap`, no arguments.
    let bootstrap = env.dir.path().join("bootstrap");
    std::os::unix::fs::symlink(BIN, &bootstrap).unwrap();
    let config = env.config().to_str().unwrap().to_string();
    let f = Function::start(
        &api,
        &bootstrap,
        &[],
        &[
            ("AUTHZD_CONFIG", &config),
            ("COGNITO_ISSUER", &idp.issuer()),
            ("COGNITO_CLIENT_ID", "app"),
        ],
    );
    let tok = format!("Bearer {}", user(&rsa, &idp.issuer(), "alice", &["admin"]));
    let first = api.invoke(v2("GET", "/AdminUser", Some(&tok))).await;
    assert_eq!(answer(&first)["context"]["reason"], "allowed");
    let after_first = idp.hits();
    for i in 0..20 {
        let other = format!(
            "Bearer {}",
            user(&rsa, &idp.issuer(), &format!("u{i}"), &["regular"])
        );
        let a = api.invoke(token_event("GET", "/RegularUser", &other)).await;
        assert_eq!(answer(&a)["context"]["reason"], "allowed");
    }
    assert_eq!(
        idp.hits(),
        after_first,
        "keys were fetched again on a warm instance"
    );
    let (status, _) = f.stop().await;
    assert!(status.success());
}

/// The SAM template deploys the routes the example config decides on, on
/// both APIs, and the demo config has the same routes.
#[test]
fn the_sam_template_routes_match_the_configs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // serde_norway's own Value: CloudFormation's `!Sub` and `!Ref` are YAML tags.
    let template: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(root.join("examples/aws/template.yaml")).unwrap(),
    )
    .unwrap();
    let mut by_api: HashMap<String, Vec<(String, String, bool)>> = HashMap::new();
    for (_, ev) in template["Resources"]["Backend"]["Properties"]["Events"]
        .as_mapping()
        .unwrap()
    {
        let p = &ev["Properties"];
        let public = p
            .get("Auth")
            .is_some_and(|a| a["Authorizer"].as_str() == Some("NONE"));
        by_api
            .entry(ev["Type"].as_str().unwrap().to_string())
            .or_default()
            .push((
                p["Method"].as_str().unwrap().to_uppercase(),
                p["Path"].as_str().unwrap().to_string(),
                public,
            ));
    }
    // The route tables only: the AWS config's paths are relative to its package.
    let routes_of = |file: &str| {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let doc: toml::Value = toml::from_str(&text).unwrap();
        let mut r: Vec<(String, String, bool)> = doc["route"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get("method")
                        .and_then(|m| m.as_str())
                        .unwrap_or("ANY")
                        .to_uppercase(),
                    r["path"].as_str().unwrap().to_string(),
                    r.get("auth").and_then(|a| a.as_str()) == Some("none"),
                )
            })
            .collect();
        r.sort();
        r
    };
    let demo = routes_of("authzd.toml");
    let aws = routes_of("examples/aws/authzd.toml");
    assert_eq!(
        demo, aws,
        "the AWS example and the demo decide on different routes"
    );
    assert_eq!(by_api.len(), 2, "an HTTP API and a REST API");
    for (api, mut routes) in by_api {
        routes.sort();
        assert_eq!(routes, demo, "{api} routes differ from authzd.toml's");
    }
    // Answers are cache-safe, so the TTL is a real one.
    assert_eq!(
        template["Parameters"]["AuthorizerTtl"]["Default"].as_u64(),
        Some(300)
    );
}

/// cfn-lint (PyPI; `.ci/run` installs it) passes the SAM template.
#[test]
fn the_sam_template_passes_cfn_lint() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(out) = std::process::Command::new("cfn-lint")
        .arg(root.join("examples/aws/template.yaml"))
        .output()
    else {
        eprintln!("cfn-lint is not installed: skipping (.ci/run installs it with pip)");
        return;
    };
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A policy CSV served over HTTP with an ETag; counts the full answers.
async fn policy_object(text: &str) -> (String, Arc<Mutex<String>>, Arc<Mutex<usize>>) {
    use axum::{extract::State, http::HeaderMap, response::IntoResponse, routing::get};
    type S = (Arc<Mutex<String>>, Arc<Mutex<usize>>);
    async fn serve(State((body, gets)): State<S>, headers: HeaderMap) -> axum::response::Response {
        let text = body.lock().clone();
        let etag = format!("\"{}-{}\"", text.len(), text.lines().count());
        *gets.lock() += 1;
        if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
            return axum::http::StatusCode::NOT_MODIFIED.into_response();
        }
        ([("etag", etag)], text).into_response()
    }
    let body = Arc::new(Mutex::new(text.to_string()));
    let gets = Arc::new(Mutex::new(0));
    let app = axum::Router::new()
        .route("/policy.csv", get(serve))
        .with_state((Arc::clone(&body), Arc::clone(&gets)));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/policy.csv", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, body, gets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_store_is_checked_on_invocation_at_most_every_poll_secs() {
    let (url, body, gets) = policy_object(DEMO_POLICY).await;
    let rsa = key("rsa.pem");
    let env = lambda_env(
        "jwks_file = \"jwks.json\"",
        "response = \"iam\"\npolicy_scope = \"request\"",
        "",
    );
    let text = std::fs::read_to_string(env.config()).unwrap().replace(
        "policy = \"policy.csv\"",
        &format!("store = \"{url}\"\npoll_secs = 2"),
    );
    assert!(text.contains("store = "), "the example's policy line moved");
    env.write("authzd.toml", &text);
    let api = RuntimeApi::start().await;
    let _f = start_with(&api, &env, &rsa);
    let regular = format!("Bearer {}", user(&rsa, ISS, "bob", &["regular"]));
    let ask = || api.invoke(v2("GET", "/AdminUser", Some(&regular)));
    let a = ask().await;
    assert!(!statements(answer(&a), "Deny").is_empty());
    let at_start = *gets.lock();
    assert!(at_start >= 1);

    *body.lock() = format!("{DEMO_POLICY}p, regular, /AdminUser, GET\n");
    // A frozen instance polls nothing: no invocation, no fetch.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(*gets.lock(), at_start, "fetched without an invocation");
    // The next invocation reads the store first and is decided on the new policy.
    let a = ask().await;
    assert!(!statements(answer(&a), "Allow").is_empty(), "{a:?}");
    assert_eq!(*gets.lock(), at_start + 1);
    // And not again before poll_secs have passed.
    for _ in 0..5 {
        let a = ask().await;
        assert!(!statements(answer(&a), "Allow").is_empty());
    }
    assert_eq!(
        *gets.lock(),
        at_start + 1,
        "checked more often than poll_secs"
    );
}
