//! Shared test harness: real keys, a real JWKS/discovery HTTP server, real
//! config files, and the real server bound to 127.0.0.1:0.
#![allow(dead_code)]

pub mod browser;
pub mod casbin;
pub mod fleet;
pub mod otlp;
pub mod pg;
pub mod reference;
pub mod runtime_api;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, attribute_context,
    authorization_client::AuthorizationClient,
};
use parking_lot::Mutex;
use serde_json::{Value, json};

pub use authzd::devtoken::SigningKey;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn key(name: &str) -> SigningKey {
    let pem = std::fs::read(fixture(name)).unwrap();
    SigningKey::from_pem(&pem, name).unwrap()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs an arbitrary header and payload with `key` using the key's own
/// algorithm (the header's `alg` is not checked: attack tokens need that freedom).
pub fn sign_raw(key: &SigningKey, header: &Value, payload: &Value) -> String {
    sign_as(key, key.alg.to_jwt(), header, payload)
}

/// Like [`sign_raw`] with an explicit signing algorithm (e.g. PS256 with an RSA key).
pub fn sign_as(
    key: &SigningKey,
    alg: jsonwebtoken::Algorithm,
    header: &Value,
    payload: &Value,
) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key.key, alg).unwrap();
    format!("{input}.{sig}")
}

/// A standard header for `key`.
pub fn header(key: &SigningKey) -> Value {
    json!({"alg": key.alg.name(), "typ": "JWT", "kid": key.kid()})
}

/// Valid claims for `iss`, audience `app`, expiring in an hour.
pub fn claims(iss: &str, sub: &str) -> Value {
    let n = now();
    json!({"iss": iss, "sub": sub, "aud": "app", "iat": n, "exp": n + 3600})
}

pub fn token(key: &SigningKey, payload: &Value) -> String {
    sign_raw(key, &header(key), payload)
}

/// A JWKS/discovery server on 127.0.0.1:0 whose documents can change at will.
#[derive(Clone)]
pub struct Idp {
    pub addr: SocketAddr,
    pub jwks: Arc<Mutex<Value>>,
    /// When set, the JWKS endpoint answers this status.
    pub fail: Arc<Mutex<Option<u16>>>,
    pub jwks_hits: Arc<AtomicUsize>,
    pub discovery_hits: Arc<AtomicUsize>,
    pub delay: Arc<Mutex<Duration>>,
    /// When set, the discovery endpoint answers this raw body instead.
    pub discovery_body: Arc<Mutex<Option<String>>>,
    /// `Cache-Control` header of JWKS answers.
    pub cache_control: Arc<Mutex<Option<String>>>,
}

impl Idp {
    pub async fn start(keys: &[&SigningKey]) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let idp = Idp {
            addr,
            jwks: Arc::new(Mutex::new(jwks_of(keys))),
            fail: Arc::new(Mutex::new(None)),
            jwks_hits: Arc::default(),
            discovery_hits: Arc::default(),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
            discovery_body: Arc::new(Mutex::new(None)),
            cache_control: Arc::new(Mutex::new(None)),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(jwks))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        idp
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_keys(&self, keys: &[&SigningKey]) {
        *self.jwks.lock() = jwks_of(keys);
    }

    pub fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
}

pub fn jwks_of(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| serde_json::to_value(&k.jwk).unwrap()).collect::<Vec<_>>()})
}

async fn discovery(State(idp): State<Idp>) -> axum::response::Response {
    idp.discovery_hits.fetch_add(1, Ordering::SeqCst);
    if let Some(body) = idp.discovery_body.lock().clone() {
        return body.into_response();
    }
    Json(json!({"issuer": idp.issuer(), "jwks_uri": format!("{}/jwks.json", idp.issuer())}))
        .into_response()
}

async fn jwks(State(idp): State<Idp>) -> axum::response::Response {
    idp.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let delay = *idp.delay.lock();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = *idp.fail.lock() {
        return (StatusCode::from_u16(code).unwrap(), "down").into_response();
    }
    let body = idp.jwks.lock().clone();
    let mut resp = Json(body).into_response();
    if let Some(cc) = idp.cache_control.lock().clone() {
        resp.headers_mut()
            .insert("cache-control", cc.parse().unwrap());
    }
    resp
}

/// Spellings of `/admin/secret` and `/billing/export` that upstreams resolve
/// to them (or that some upstream might), sent by a `regular` user.
pub const HOSTILE_PATHS: &[&str] = &[
    "/public/../admin/secret",
    "/public/%2e%2e/admin/secret",
    "/public/%2E%2E/admin/secret",
    "/public/.%2e/admin/secret",
    "/public/%2e./admin/secret",
    "/public/./../admin/secret",
    "/public/../admin/secret?x=1",
    "/public/..%2Fadmin/secret",
    "/public%2F..%2Fadmin%2Fsecret",
    "/public/..%5Cadmin/secret",
    "/public/..%5cadmin%5csecret",
    "/public/..\\admin/secret",
    "/public/..;/admin/secret",
    "/public;x/../admin/secret",
    "/public/%252e%252e/admin/secret",
    "/public/%25%32%65%25%32%65/admin/secret",
    "/public/%c0%ae%c0%ae/admin/secret",
    "/public/%EF%BC%8E%EF%BC%8E/admin/secret",
    "/public/.../admin/secret",
    "/public/%2e%2e%2fadmin/secret",
    "/public/..%00/admin/secret",
    "/public/%0a/../admin/secret",
    "/public/%/../admin/secret",
    "//admin/secret",
    "/admin//secret",
    "/./admin/secret",
    "/%61dmin/secret",
    "/admin;/secret",
    "/admin./secret",
    "/admin%20/secret",
    "/billing/export/",
    "/billing//export",
    "/billing/./export",
    "/billing/export;.css",
    "/billing/export%2F",
    "/billing/%65xport",
    "/billing/export/.",
    "/billing/export/x/..",
    "/billing\\export",
];

/// A config directory with model, policy and `authzd.toml`.
pub struct Env {
    pub dir: tempfile::TempDir,
}

pub const RBAC_MODEL: &str = "[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)
";

pub const DEMO_POLICY: &str = "p, admin, /AdminUser, GET
p, regular, /RegularUser, GET
g, admin, regular
p, writer, /wish-list-service, POST
p, reader, /api/*, GET
p, alice, /personal, GET
";

impl Env {
    /// Writes `issuers` (TOML `[[issuer]]` blocks), demo routes, the RBAC model and `policy`.
    pub fn new(issuers: &str, policy: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.conf"), RBAC_MODEL).unwrap();
        std::fs::write(dir.path().join("policy.csv"), policy).unwrap();
        let text = format!(
            r#"[server]
grpc_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"

{issuers}

[[route]]
method = "GET"
path = "/wish-list-service"
auth = "none"

[[route]]
method = "POST"
path = "/wish-list-service"
scopes = ["wishlist/write"]

[[route]]
method = "ANY"
path = "/api/{{proxy+}}"

[policy]
model = "model.conf"
policy = "policy.csv"
{extra}

[decision_log]
output = "decisions.log"
"#
        );
        std::fs::write(dir.path().join("authzd.toml"), text).unwrap();
        Env { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("authzd.toml")
    }

    /// Appends `tables` (top-level TOML tables: `[admin]`, `[shadow]`…) to `authzd.toml`.
    pub fn append_config(&self, tables: &str) {
        let cfg = std::fs::read_to_string(self.config()).unwrap();
        self.write("authzd.toml", &format!("{cfg}\n{tables}"));
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("decisions.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// An [`Env`] trusting one issuer, `https://rsa.example`, whose JWKS file
/// holds `rsa.pem`'s public key; returns the key to sign with.
pub fn rsa_env(policy: &str, extra: &str) -> (Env, SigningKey) {
    let rsa = key("rsa.pem");
    let env = Env::new(
        &file_issuer("https://rsa.example", "rsa-jwks.json", "\"RS256\"", ""),
        policy,
        extra,
    );
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    (env, rsa)
}

/// An `[[issuer]]` block using a JWKS file written into `env`.
pub fn file_issuer(iss: &str, jwks_file: &str, algs: &str, extra: &str) -> String {
    format!(
        "[[issuer]]\nissuer = \"{iss}\"\naudiences = [\"app\"]\njwks_file = \"{jwks_file}\"\nalgorithms = [{algs}]\nroles_claims = [\"/cognito:groups\", \"/realm_access/roles\"]\nscope_claims = [\"/scope\", \"/scp\", \"/permissions\"]\n{extra}\n"
    )
}

/// A running server.
pub struct Running {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// The explorer's listener, with `[admin]`.
    pub admin: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn start(config: &Path) -> Running {
        // `AUTHZD_TEST_LOG=debug cargo test …` shows the server's logs.
        if let Ok(filter) = std::env::var("AUTHZD_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let server = authzd::server::Server::bind(config).await.unwrap();
        let grpc = server.grpc_addr().unwrap();
        let http = server.http_addr().unwrap();
        let admin = server.admin_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Running {
            grpc,
            http,
            admin,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Stops serving and waits until the decision log is flushed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub async fn grpc_client(
        &self,
    ) -> authzd::pb::authorizer_client::AuthorizerClient<tonic::transport::Channel> {
        authzd::pb::authorizer_client::AuthorizerClient::connect(format!("http://{}", self.grpc))
            .await
            .unwrap()
    }

    /// A counter of `/metrics` with the label `result="{result}"` (0 when absent).
    pub async fn counter(&self, name: &str, result: &str) -> u64 {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let key = format!("{name}{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    /// `POST /v1/check` with a JSON body; returns the parsed response.
    pub async fn check(&self, body: Value) -> Value {
        let resp = reqwest::Client::new()
            .post(self.url("/v1/check"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "the check itself must succeed");
        resp.json().await.unwrap()
    }
}

/// The real `authzd serve` binary on a free HTTP port, for signal tests.
pub struct Binary {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:<port>`
    pub url: String,
}

impl Binary {
    /// Rewrites `env`'s config to a free HTTP port, starts the binary, waits for `/healthz`.
    pub async fn start(env: &Env) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let text = std::fs::read_to_string(env.config()).unwrap();
        env.write(
            "authzd.toml",
            &text.replace(
                "http_addr = \"127.0.0.1:0\"",
                &format!("http_addr = \"127.0.0.1:{port}\""),
            ),
        );
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
            .args(["serve", "--config"])
            .arg(env.config())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let start = std::time::Instant::now();
        while reqwest::get(format!("{url}/healthz")).await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "server never came up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Binary { child, url }
    }

    /// Sends `signal` (e.g. `-HUP`, `-TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

/// An Envoy ext_authz v3 client on the server's gRPC port.
pub async fn envoy_client(srv: &Running) -> AuthorizationClient<tonic::transport::Channel> {
    AuthorizationClient::connect(format!("http://{}", srv.grpc))
        .await
        .unwrap()
}

/// A CheckRequest as Envoy builds it: lower-case header keys, pseudo-headers,
/// `host` from `:authority`, the path with its query.
pub fn envoy_request(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: HashMap<String, String> = [
        (":authority", "api.example.com"),
        (":method", method),
        (":path", path),
        (":scheme", "https"),
        ("user-agent", "curl/8.5.0"),
        ("x-request-id", "5b8e5d8a-1234"),
        ("x-forwarded-proto", "https"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in headers {
        map.insert(k.to_string(), v.to_string());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    id: "12345".into(),
                    method: method.into(),
                    headers: map,
                    path: path.into(),
                    host: "api.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/2".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

pub async fn envoy_check(srv: &Running, req: CheckRequest) -> CheckResponse {
    let mut client = AuthorizationClient::connect(format!("http://{}", srv.grpc))
        .await
        .unwrap();
    client.check(req).await.unwrap().into_inner()
}

/// Sends `POST /v1/check` with `body` continuously, one client per URL,
/// until finished; every answer is recorded with the revision it names.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    seen: Arc<Mutex<Vec<(String, bool)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `urls` are `…/v1/check` endpoints (the same one several times for more clients).
    pub fn start(urls: &[String], body: &Value) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tasks = urls
            .iter()
            .map(|url| {
                let (stop, seen, url, body) = (
                    Arc::clone(&stop),
                    Arc::clone(&seen),
                    url.clone(),
                    body.clone(),
                );
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let resp = http
                            .post(&url)
                            .json(&body)
                            .send()
                            .await
                            .expect("no check may fail while policy changes");
                        assert_eq!(resp.status(), 200, "no check may fail while policy changes");
                        let v: Value = resp.json().await.unwrap();
                        seen.lock().push((
                            v["policy_revision"].as_str().unwrap().to_string(),
                            v["allowed"] == true,
                        ));
                    }
                })
            })
            .collect();
        Load { stop, seen, tasks }
    }

    /// Stops, and checks that every answer allowed exactly under the
    /// revisions in `allowing`. Returns how many answers there were.
    pub async fn finish(self, allowing: &[&str]) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let seen = self.seen.lock();
        for (rev, allowed) in seen.iter() {
            assert_eq!(
                *allowed,
                allowing.contains(&rev.as_str()),
                "revision {rev} answered allowed={allowed}"
            );
        }
        seen.len()
    }
}
