//! Authorize exactly what the upstream executes (docs/security.md): hostile
//! spellings of a path, method overrides and smuggled role names, through
//! every interface, against two policies — an allowed prefix, and allow-all
//! with deny rules. Never an allow, never a 5xx.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use common::*;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISS: &str = "https://rsa.example";

/// An allowed prefix: regular users may read `/public/*`, admins `/admin/*`.
const PREFIX_POLICY: &str = "p, regular, /public/*, GET
p, admin, /admin/*, GET
";

/// Allow-all with deny rules (deny-override), the shape that a `//` or a
/// trailing `/` escapes when paths are matched as strings.
const DENY_MODEL: &str = "[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act, eft
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))
[matchers]
m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)
";
const DENY_POLICY: &str = "p, regular, /*, (GET)|(POST), allow
p, regular, /admin/*, .*, deny
p, regular, /admin, .*, deny
p, regular, /billing/export, .*, deny
";

/// Case spellings, which only a case-insensitive upstream resolves.
const CASE_HOSTILE: &[&str] = &[
    "/Admin/secret",
    "/ADMIN/SECRET",
    "/Billing/Export",
    "/billing/EXPORT/",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iface {
    JsonHttp,
    JsonResource,
    JsonBatch,
    Grpc,
    GrpcResource,
    GrpcBatch,
    EnvoyGrpc,
    EnvoyHttp,
    ForwardTraefik,
    ForwardNginx,
}

const ALL: [Iface; 10] = [
    Iface::JsonHttp,
    Iface::JsonResource,
    Iface::JsonBatch,
    Iface::Grpc,
    Iface::GrpcResource,
    Iface::GrpcBatch,
    Iface::EnvoyGrpc,
    Iface::EnvoyHttp,
    Iface::ForwardTraefik,
    Iface::ForwardNginx,
];

/// What an interface answered: the HTTP status of the outcome and the reason
/// when the interface reports one.
#[derive(Debug)]
struct Answer {
    status: u16,
    reason: Option<String>,
}

impl Answer {
    fn allowed(&self) -> bool {
        self.status == 200
    }
}

/// One request line sent as is, so nothing on the client side resolves the path.
async fn raw_http(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

struct Target<'a> {
    srv: &'a Running,
    http: reqwest::Client,
    token: String,
}

impl Target<'_> {
    async fn ask(&self, iface: Iface, method: &str, path: &str, extra: &[(&str, &str)]) -> Answer {
        let bearer = format!("Bearer {}", self.token);
        let headers: serde_json::Map<String, Value> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let from_json = |v: &Value| Answer {
            status: v["status"].as_u64().unwrap() as u16,
            reason: v["reason"].as_str().map(String::from),
        };
        match iface {
            Iface::JsonHttp => from_json(
                &self
                    .srv
                    .check(json!({"method": method, "path": path, "token": self.token, "headers": headers}))
                    .await,
            ),
            Iface::JsonResource => from_json(
                &self
                    .srv
                    .check(json!({"resource": path, "action": method, "token": self.token}))
                    .await,
            ),
            Iface::JsonBatch => {
                let resp = self
                    .http
                    .post(self.srv.url("/v1/check/batch"))
                    .json(&json!({"token": self.token, "items": [{"resource": path, "action": method}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                from_json(&resp.json::<Value>().await.unwrap()["results"][0])
            }
            Iface::Grpc | Iface::GrpcResource => {
                let mut m = authzd::pb::CheckRequest {
                    token: self.token.clone(),
                    headers: extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    ..Default::default()
                };
                if iface == Iface::Grpc {
                    (m.method, m.path) = (method.into(), path.into());
                } else {
                    (m.action, m.resource) = (method.into(), path.into());
                }
                let r = self.srv.grpc_client().await.check(m).await.unwrap().into_inner();
                Answer {
                    status: r.status as u16,
                    reason: Some(r.reason),
                }
            }
            Iface::GrpcBatch => {
                let r = self
                    .srv
                    .grpc_client()
                    .await
                    .check_batch(authzd::pb::CheckBatchRequest {
                        token: self.token.clone(),
                        items: vec![authzd::pb::CheckBatchItem {
                            resource: path.into(),
                            action: method.into(),
                        }],
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                Answer {
                    status: r.results[0].status as u16,
                    reason: Some(r.results[0].reason.clone()),
                }
            }
            Iface::EnvoyGrpc => {
                let mut h = vec![("authorization", bearer.as_str())];
                h.extend_from_slice(extra);
                let r = envoy_check(self.srv, envoy_request(method, path, &h)).await;
                let status = match r.http_response {
                    Some(HttpResponse::OkResponse(_)) => 200,
                    Some(HttpResponse::DeniedResponse(d)) => d.status.unwrap().code as u16,
                    other => panic!("{other:?}"),
                };
                let code = r.status.unwrap().code;
                // gRPC code and HTTP status agree (OK only for 200).
                assert_eq!(code == 0, status == 200, "{path}: {code} {status}");
                Answer { status, reason: None }
            }
            Iface::EnvoyHttp => {
                let mut h = vec![("authorization", bearer.as_str())];
                h.extend_from_slice(extra);
                let status =
                    raw_http(self.srv.http, method, &format!("/ext_authz{path}"), &h).await;
                Answer { status, reason: None }
            }
            Iface::ForwardTraefik | Iface::ForwardNginx => {
                let (m, u) = if iface == Iface::ForwardTraefik {
                    ("x-forwarded-method", "x-forwarded-uri")
                } else {
                    ("x-original-method", "x-original-uri")
                };
                let Ok(uri) = reqwest::header::HeaderValue::from_bytes(path.as_bytes()) else {
                    // No proxy can send this URI in a header either.
                    return Answer { status: 403, reason: None };
                };
                let mut req = self
                    .http
                    .get(self.srv.url("/v1/forward-auth"))
                    .header("authorization", &bearer)
                    .header(m, method)
                    .header(u, uri);
                for (k, v) in extra {
                    req = req.header(*k, *v);
                }
                let status = req.send().await.unwrap().status().as_u16();
                // nginx and Traefik understand only 401 and 403 besides 2xx.
                assert!(matches!(status, 200 | 401 | 403), "{path}: {status}");
                Answer { status, reason: None }
            }
        }
    }
}

async fn start(model: Option<&str>, policy: &str, request: &str) -> (Env, Running, SigningKey) {
    let rsa = key("rsa.pem");
    let env = Env::new(
        &file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", ""),
        policy,
        &format!("\n[request]\n{request}"),
    );
    if let Some(m) = model {
        env.write("model.conf", m);
    }
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let srv = Running::start(&env.config()).await;
    (env, srv, rsa)
}

fn user(k: &SigningKey, sub: &str, groups: &[&str]) -> String {
    let mut c = claims(ISS, sub);
    c["cognito:groups"] = json!(groups);
    token(k, &c)
}

/// Every hostile path through every interface: not allowed, not a 5xx; and
/// the canonical spellings still work, so the denials are the paths' doing.
async fn assert_table(srv: &Running, token: String, allowed: &[&str], hostile: &[&str]) {
    let t = Target {
        srv,
        http: reqwest::Client::new(),
        token,
    };
    for iface in ALL {
        for path in allowed {
            let a = t.ask(iface, "GET", path, &[]).await;
            assert!(a.allowed(), "{iface:?} {path}: {a:?}");
        }
        for path in hostile {
            let a = t.ask(iface, "GET", path, &[]).await;
            assert!(!a.allowed(), "BYPASS: {iface:?} {path:?} was allowed");
            assert!(
                a.status < 500 && a.status >= 400,
                "{iface:?} {path:?}: {a:?}"
            );
            if let Some(r) = &a.reason {
                assert!(
                    r == "request_rejected" || r == "policy_denied",
                    "{iface:?} {path:?}: {r}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_never_pass_an_allowed_prefix() {
    let (env, srv, rsa) = start(None, PREFIX_POLICY, "").await;
    let regular = user(&rsa, "bob", &["regular"]);
    let allowed = [
        "/public/hello",
        "/public/my%20file",
        "/public/caf%C3%A9",
        "/public/100%25",
    ];
    assert_table(&srv, regular, &allowed, HOSTILE_PATHS).await;
    // The admin reaches the admin file by its canonical name only.
    let admin = user(&rsa, "alice", &["admin"]);
    assert_table(
        &srv,
        admin,
        &["/admin/secret", "/admin/secret/"],
        &["//admin/secret"],
    )
    .await;
    srv.stop().await;
    // The log names the refusal and keeps the path as sent (without its query).
    let log = env.log_lines();
    let refused = log
        .iter()
        .find(|l| l["resource"] == "/public/../admin/secret" && l["source"] == "http")
        .unwrap();
    assert_eq!(refused["reason"], "request_rejected");
    assert_eq!(refused["status"], 400);
    assert!(
        refused["detail"].as_str().unwrap().contains("`..`"),
        "{refused}"
    );
    // Decoded for the policy, as the upstream decodes it.
    assert!(
        log.iter()
            .any(|l| l["resource"] == "/public/my file" && l["reason"] == "allowed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_never_escape_a_deny_rule() {
    let (_env, srv, rsa) = start(Some(DENY_MODEL), DENY_POLICY, "").await;
    let regular = user(&rsa, "bob", &["regular"]);
    // Case-sensitive upstream (the default): `/Admin/secret` is another resource.
    assert_table(
        &srv,
        regular,
        &["/public/hello", "/Admin/secret", "/billing/exports"],
        HOSTILE_PATHS,
    )
    .await;
    srv.stop().await;
}

/// Every character the Unicode tables give a compatibility form holding
/// ASCII (NFKC: `︰` → `..`, `𝐚` → `a`, `／` → `/`): generated from the
/// normalization data, not a list. Under an allowed prefix, each is
/// refused wherever it stands, through every interface (all of them as a
/// path and as a batch resource, a sample through all ten); a
/// character that stays non-ASCII under NFKC (`é`, `日`) is allowed, so
/// the refusals are the characters' doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatibility_characters_never_reach_an_allow() {
    use unicode_normalization::UnicodeNormalization as _;
    let (_env, srv, rsa) = start(None, PREFIX_POLICY, "").await;
    let t = Target {
        srv: &srv,
        http: reqwest::Client::new(),
        token: user(&rsa, "bob", &["regular"]),
    };
    let encode =
        |c: char| -> String { c.to_string().bytes().map(|b| format!("%{b:02X}")).collect() };
    let lookalikes: Vec<char> = ('\u{a0}'..=char::MAX)
        .filter(|&c| {
            let n: String = c.to_string().nfkc().collect();
            n != c.to_string() && n.chars().any(|d| d.is_ascii())
        })
        .collect();
    assert!(lookalikes.len() > 1500, "{}", lookalikes.len());
    let paths = |c: char| {
        [
            format!("/public/x{}y", encode(c)),
            format!("/public/{}/AdminUser", encode(c)),
        ]
    };
    // Every one as a path (one connection) and as a resource (one batch)…
    let http = reqwest::Client::new();
    for &c in &lookalikes {
        for path in paths(c) {
            let v: Value = http
                .post(srv.url("/v1/check"))
                .json(&json!({"method": "GET", "path": path, "token": t.token}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(v["reason"], "request_rejected", "U+{:04X}: {v}", c as u32);
        }
    }
    let items: Vec<Value> = lookalikes
        .iter()
        .flat_map(|&c| paths(c))
        .map(|p| json!({"resource": p, "action": "GET"}))
        .collect();
    for items in items.chunks(1000) {
        let v: Value = http
            .post(srv.url("/v1/check/batch"))
            .json(&json!({"token": t.token, "items": items}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), items.len());
        for (r, item) in results.iter().zip(items) {
            assert_eq!(r["reason"], "request_rejected", "{item}: {r}");
        }
    }
    // …and a sample through every interface.
    for &c in lookalikes.iter().step_by(40) {
        for iface in ALL {
            for path in paths(c) {
                let a = t.ask(iface, "GET", &path, &[]).await;
                assert!(
                    !a.allowed(),
                    "BYPASS: {iface:?} U+{:04X} in {path}",
                    c as u32
                );
                if let Some(r) = &a.reason {
                    assert_eq!(r, "request_rejected", "{iface:?} U+{:04X}", c as u32);
                }
            }
        }
    }
    for ok in ['é', 'ß', '日', 'Ж', '\u{301}'] {
        for iface in ALL {
            let a = t
                .ask(iface, "GET", &format!("/public/x{}", encode(ok)), &[])
                .await;
            assert!(a.allowed(), "{iface:?} {ok}: {a:?}");
        }
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_insensitive_upstreams_fold_paths_and_patterns() {
    let policy = format!("{DENY_POLICY}p, regular, /Reports/*, GET, allow\n");
    let (_env, srv, rsa) = start(Some(DENY_MODEL), &policy, "path_case = \"insensitive\"").await;
    let regular = user(&rsa, "bob", &["regular"]);
    let hostile: Vec<&str> = HOSTILE_PATHS.iter().chain(CASE_HOSTILE).copied().collect();
    assert_table(
        &srv,
        regular,
        &["/public/hello", "/reports/q3", "/REPORTS/Q3"],
        &hostile,
    )
    .await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normalize_mode_decides_on_the_resolved_path() {
    let (env, srv, rsa) = start(
        Some(DENY_MODEL),
        DENY_POLICY,
        "noncanonical = \"normalize\"",
    )
    .await;
    let t = Target {
        srv: &srv,
        http: reqwest::Client::new(),
        token: user(&rsa, "bob", &["regular"]),
    };
    // Resolved as RFC 3986 does, then denied by the rule on the resolved path.
    for path in [
        "/public/../admin/secret",
        "//admin/secret",
        "/%61dmin/secret",
        "/billing/./export",
    ] {
        let a = t.ask(Iface::JsonHttp, "GET", path, &[]).await;
        assert_eq!(a.reason.as_deref(), Some("policy_denied"), "{path}");
    }
    // What upstreams disagree on stays refused; `%25%32%65` decodes to `%2e`,
    // a dot for a double-decoding upstream (found by fuzz/path).
    for path in [
        "/public%2F..%2Fadmin",
        "/admin;x/secret",
        "/public/..%5Cadmin",
        "/public/%25%32%65%25%32%65/admin/secret",
    ] {
        let a = t.ask(Iface::JsonHttp, "GET", path, &[]).await;
        assert_eq!(a.reason.as_deref(), Some("request_rejected"), "{path}");
    }
    let a = t
        .ask(Iface::JsonHttp, "GET", "/public/x/../hello", &[])
        .await;
    assert!(a.allowed());
    srv.stop().await;
    assert!(
        env.log_lines()
            .iter()
            .any(|l| l["resource"] == "/public/hello" && l["reason"] == "allowed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_overrides_are_refused_in_every_interface_that_sees_headers() {
    let (_env, srv, rsa) = start(Some(DENY_MODEL), DENY_POLICY, "").await;
    let t = Target {
        srv: &srv,
        http: reqwest::Client::new(),
        token: user(&rsa, "bob", &["regular"]),
    };
    let headered = [
        Iface::JsonHttp,
        Iface::Grpc,
        Iface::EnvoyGrpc,
        Iface::EnvoyHttp,
        Iface::ForwardTraefik,
        Iface::ForwardNginx,
    ];
    for iface in headered {
        assert!(
            t.ask(iface, "POST", "/public/x", &[]).await.allowed(),
            "{iface:?}"
        );
        for name in authzd::request::METHOD_OVERRIDE_HEADERS {
            let a = t.ask(iface, "POST", "/public/x", &[(name, "DELETE")]).await;
            assert!(!a.allowed(), "BYPASS: {iface:?} {name}");
            assert!(matches!(a.status, 400 | 403), "{iface:?} {name}: {a:?}");
            if let Some(r) = a.reason {
                assert_eq!(r, "request_rejected");
            }
        }
        let a = t.ask(iface, "POST", "/public/x?_method=DELETE", &[]).await;
        assert!(!a.allowed(), "BYPASS: {iface:?} ?_method=");
        // A lower-case method would escape an upper-case deny rule on upstreams that upper-case it.
        assert!(
            !t.ask(iface, "delete", "/public/x", &[]).await.allowed(),
            "{iface:?}"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_method_overrides_need_both_methods_allowed() {
    let (_env, srv, rsa) = start(
        Some(DENY_MODEL),
        DENY_POLICY,
        "method_override = \"authorize\"",
    )
    .await;
    let t = Target {
        srv: &srv,
        http: reqwest::Client::new(),
        token: user(&rsa, "bob", &["regular"]),
    };
    for iface in [Iface::JsonHttp, Iface::EnvoyGrpc, Iface::ForwardNginx] {
        let h = "x-http-method-override";
        // POST and GET are both allowed on /public: the override passes.
        assert!(
            t.ask(iface, "POST", "/public/x", &[(h, "GET")])
                .await
                .allowed(),
            "{iface:?}"
        );
        // DELETE is not: the POST that would execute as DELETE is denied.
        let a = t.ask(iface, "POST", "/public/x", &[(h, "DELETE")]).await;
        assert!(!a.allowed(), "BYPASS: {iface:?}");
        if let Some(r) = a.reason {
            assert_eq!(r, "policy_denied");
        }
        let a = t.ask(iface, "POST", "/public/x?_method=DELETE", &[]).await;
        assert!(!a.allowed(), "BYPASS: {iface:?} ?_method=");
    }
    srv.stop().await;
}

/// A role named `x,admin` (a writable custom attribute, say) must reach the
/// upstream as one role that is not `admin`, through Envoy and forward auth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_role_names_stay_one_role_upstream() {
    let (_env, srv, rsa) = start(None, "p, regular, /public/*, GET\n", "").await;
    let tok = user(&rsa, "bob", &["regular", "x,admin", " admin", "y;admin"]);
    let bearer = format!("Bearer {tok}");
    let want = "regular,x%2Cadmin,%20admin,y%3Badmin";
    let r = envoy_check(
        &srv,
        envoy_request("GET", "/public/a", &[("authorization", &bearer)]),
    )
    .await;
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not allowed: {r:?}");
    };
    let roles = ok
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == "x-authz-roles")
        .unwrap();
    assert_eq!(roles.value, want);
    for (m, u) in [
        ("x-forwarded-method", "x-forwarded-uri"),
        ("x-original-method", "x-original-uri"),
    ] {
        let resp = reqwest::Client::new()
            .get(srv.url("/v1/forward-auth"))
            .header("authorization", &bearer)
            .header(m, "GET")
            .header(u, "/public/a")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-authz-roles"], want);
        for item in want.split(',') {
            assert_ne!(item.trim(), "admin");
        }
    }
    srv.stop().await;
}

/// The CLI and policy tests run the same step 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_check_and_policy_tests_refuse_hostile_paths() {
    let (env, srv, rsa) = start(None, PREFIX_POLICY, "").await;
    srv.stop().await;
    let bin = env!("CARGO_BIN_EXE_authzd");
    let tok = user(&rsa, "bob", &["regular"]);
    for (path, code, reason) in [
        ("/public/hello", 0, "allowed"),
        ("/public/../admin/secret", 1, "request_rejected"),
        ("/public/%2e%2e/admin/secret", 1, "request_rejected"),
    ] {
        let out = std::process::Command::new(bin)
            .args([
                "check",
                "--config",
                env.config().to_str().unwrap(),
                "--token",
                &tok,
            ])
            .args(["--method", "GET", "--path", path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{path}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["reason"], reason, "{path}");
    }
    let cases = env.write(
        "cases.toml",
        r#"config = "authzd.toml"

[[case]]
name = "dot segments are refused"
subject = "bob"
roles = ["regular"]
method = "GET"
path = "/public/../admin/secret"
expect = "deny"
reason = "request_rejected"

[[case]]
name = "a resource that is a path is refused the same way"
subject = "bob"
roles = ["regular"]
resource = "/public/%2e%2e/admin/secret"
action = "GET"
expect = "deny"
reason = "request_rejected"

[[case]]
name = "the canonical path still works"
subject = "bob"
roles = ["regular"]
method = "GET"
path = "/public/a/"
expect = "allow"
"#,
    );
    let out = std::process::Command::new(bin)
        .args(["test", cases.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Frameworks answer HEAD with the GET handler: a policy that allows HEAD
/// everywhere but denies GET on `/admin/*` must not leak the admin resource's
/// headers through HEAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_must_be_allowed_as_get_too() {
    let policy = "p, regular, /*, (HEAD)|(GET), allow\np, regular, /admin/*, GET, deny\n";
    let (env, srv, rsa) = start(Some(DENY_MODEL), policy, "").await;
    let t = Target {
        srv: &srv,
        http: reqwest::Client::new(),
        token: user(&rsa, "bob", &["regular"]),
    };
    for iface in [
        Iface::JsonHttp,
        Iface::Grpc,
        Iface::EnvoyGrpc,
        Iface::EnvoyHttp,
        Iface::ForwardNginx,
    ] {
        assert!(
            t.ask(iface, "HEAD", "/public/x", &[]).await.allowed(),
            "{iface:?}"
        );
        let a = t.ask(iface, "HEAD", "/admin/secret", &[]).await;
        assert!(!a.allowed(), "BYPASS: {iface:?} HEAD /admin/secret");
        if let Some(r) = a.reason {
            assert_eq!(r, "policy_denied");
        }
    }
    srv.stop().await;
    let log = env.log_lines();
    let head = log
        .iter()
        // The record keeps the method sent; the detail says why `GET` decided.
        .find(|l| {
            l["action"] == "HEAD" && l["resource"] == "/admin/secret" && l["source"] == "http"
        })
        .unwrap();
    assert!(
        head["detail"]
            .as_str()
            .unwrap()
            .contains("`HEAD` runs the `GET` handler"),
        "{head}"
    );
}
