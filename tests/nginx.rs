//! The nginx example, run by a real nginx in front of a real upstream, with
//! authzd answering its `auth_request` subrequests. `.ci/run` installs nginx;
//! where it is missing (a fresh machine running `cargo test`), this test says
//! so and returns.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{net::SocketAddr, path::Path, time::Duration};

use axum::{Json, Router, http::HeaderMap, routing::any};
use common::*;
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";

fn nginx_binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// An upstream that answers with the `x-authz-*` headers it received.
async fn upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = Router::new().fallback(any(|headers: HeaderMap| async move {
        let seen: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-authz-"))
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
            .collect();
        Json(Value::Object(seen))
    }));
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

/// Stops nginx with SIGTERM (the master then stops its workers), even when a
/// test assertion fails; SIGKILL would orphan the workers on the port.
struct Stop(u32);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.to_string()])
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The nginx example as shipped, pointed at this test's authzd and upstream,
/// plus what running unprivileged from a temporary prefix needs.
struct Nginx {
    base: String,
    child: tokio::process::Child,
    stop: Stop,
}

impl Nginx {
    async fn start(nginx: &str, env: &Env, srv: &Running, up: SocketAddr) -> Nginx {
        let port = free_port();
        let dir = env.dir.path();
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx/nginx.conf"),
        )
        .unwrap();
        let conf = example
            .replace("http://127.0.0.1:8181/", &format!("http://{}/", srv.http))
            .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
            .replace("server 127.0.0.1:9000;", &format!("server {up};"))
            .replace(
                "http {",
                &format!(
                    "http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n",
                    d = dir.display()
                ),
            );
        assert_ne!(
            conf, example,
            "the example's ports changed; update this test"
        );
        let conf = format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\n{conf}",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = tokio::process::Command::new(nginx)
            .args([
                "-p",
                dir.to_str().unwrap(),
                "-c",
                dir.join("nginx.conf").to_str().unwrap(),
                "-g",
                "daemon off;",
            ])
            .spawn()
            .unwrap();
        let stop = Stop(child.id().unwrap());
        let base = format!("http://127.0.0.1:{port}");
        let start = std::time::Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx never came up: {:?}",
                std::fs::read_to_string(dir.join("error.log"))
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Nginx { base, child, stop }
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    async fn stop(mut self) {
        drop(self.stop);
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_example_enforces_authzd_decisions() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("nginx is not installed: skipping (.ci/run installs it)");
        return;
    };
    let rsa = key("rsa.pem");
    let env = Env::new(
        &file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", ""),
        DEMO_POLICY,
        "",
    );
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let srv = Running::start(&env.config()).await;
    let up = upstream().await;
    let nginx = Nginx::start(nginx, &env, &srv, up).await;
    let base = nginx.base.clone();
    let http = reqwest::Client::new();
    let mut c = claims(ISS, "alice");
    c["cognito:groups"] = json!(["admin"]);
    let admin = token(&rsa, &c);
    // Allowed: the upstream sees authzd's headers, not the client's.
    let resp = http
        .get(format!("{base}/AdminUser?tab=1"))
        .bearer_auth(&admin)
        .header("x-authz-subject", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["x-authz-subject"], "alice");
    assert_eq!(seen["x-authz-roles"], "admin");
    assert!(
        seen["x-authz-decision-id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    // No token: 401 with API Gateway's body and the challenge.
    let resp = http.get(format!("{base}/AdminUser")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(resp.text().await.unwrap(), r#"{"message":"Unauthorized"}"#);
    // Wrong group: 403.
    let mut c = claims(ISS, "bob");
    c["cognito:groups"] = json!(["regular"]);
    let resp = http
        .delete(format!("{base}/AdminUser"))
        .bearer_auth(token(&rsa, &c))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.text().await.unwrap(), r#"{"message":"Forbidden"}"#);
    // Public route: no token needed, and a spoofed subject does not get through.
    let resp = http
        .get(format!("{base}/wish-list-service"))
        .header("x-authz-subject", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert!(seen.get("x-authz-subject").is_none(), "{seen}");
    // A client-supplied X-Forwarded-Uri naming the public route cannot redirect the check.
    let resp = http
        .get(format!("{base}/AdminUser"))
        .header("x-forwarded-uri", "/wish-list-service")
        .header("x-forwarded-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    nginx.stop().await;
    srv.stop().await;
    let log = env.log_lines();
    assert!(log.iter().all(|l| l["source"] == "forward_auth"));
    // The spoofing attempt was checked against the real URI.
    let last = log.last().unwrap();
    assert_eq!(
        (last["resource"].as_str(), last["reason"].as_str()),
        (Some("/AdminUser"), Some("token_missing"))
    );
}

/// How permissive upstream servers resolve a request path, all at once:
/// percent-decoding (twice, as a double-decoding server does), `\` as `/`,
/// `;` parameters stripped (Tomcat, Spring), `.`/`..` and empty segments
/// resolved, and case folded (Express, ASP.NET Core, Windows file systems).
fn resolve_like_upstreams(target: &str) -> String {
    let path = target.split('?').next().unwrap_or(target);
    let once = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let twice = percent_encoding::percent_decode_str(&once)
        .decode_utf8_lossy()
        .replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in twice.split('/') {
        match seg
            .split(';')
            .next()
            .unwrap_or("")
            .trim_end_matches(['.', ' '])
        {
            "" if seg.starts_with("..") => {
                out.pop();
            }
            "" => {}
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/")).to_lowercase()
}

/// A static file server that resolves paths as above and serves two files.
async fn resolving_upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = Router::new().fallback(any(|uri: axum::http::Uri| async move {
        let raw = uri.path_and_query().map_or("/", |p| p.as_str());
        match resolve_like_upstreams(raw).as_str() {
            "/admin/secret" => (axum::http::StatusCode::OK, "ADMIN SECRET"),
            "/public/hello" => (axum::http::StatusCode::OK, "PUBLIC HELLO"),
            _ => (axum::http::StatusCode::NOT_FOUND, "not found"),
        }
    }));
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

/// One request sent byte for byte (no client-side path resolution); the whole response.
async fn raw_get(port: u16, target: &str, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!(
        "GET {target} HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// The reported bypass, end to end: a real nginx with the shipped example, a
/// real upstream that resolves paths, and every spelling of the admin file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_reaches_a_denied_file_through_nginx() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("nginx is not installed: skipping (.ci/run installs it)");
        return;
    };
    assert_eq!(
        resolve_like_upstreams("/public/%252e%252e/Admin;x/secret"),
        "/admin/secret"
    );
    let rsa = key("rsa.pem");
    let mut c = claims(ISS, "bob");
    c["cognito:groups"] = json!(["regular"]);
    let regular = token(&rsa, &c);
    let mut c = claims(ISS, "alice");
    c["cognito:groups"] = json!(["admin"]);
    let admin = token(&rsa, &c);
    let up = resolving_upstream().await;
    // An allowed prefix; then allow-all with a deny rule, on a case-folding
    // upstream, as its operator must declare it.
    let deny_model = RBAC_MODEL
        .replace("p = sub, obj, act", "p = sub, obj, act, eft")
        .replace(
            "e = some(where (p.eft == allow))",
            "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
        );
    let setups = [
        (
            None,
            "p, regular, /public/*, GET\np, admin, /admin/*, GET\n",
            "",
        ),
        (
            Some(deny_model.as_str()),
            "p, regular, /*, GET, allow\np, admin, /*, GET, allow\np, regular, /admin/*, GET, deny\n",
            "[request]\npath_case = \"insensitive\"\n",
        ),
    ];
    let hostile: Vec<&str> = HOSTILE_PATHS
        .iter()
        .copied()
        .chain(["/Admin/secret", "/ADMIN/SECRET", "/admin/SECRET/"])
        .collect();
    for (model, policy, extra) in setups {
        let env = Env::new(
            &file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", ""),
            policy,
            extra,
        );
        if let Some(m) = model {
            env.write("model.conf", m);
        }
        env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
        let srv = Running::start(&env.config()).await;
        let nginx = Nginx::start(nginx, &env, &srv, up).await;
        let port = nginx.port();
        // The controls: the files are reachable by their canonical names.
        assert!(
            raw_get(port, "/public/hello", &regular)
                .await
                .ends_with("PUBLIC HELLO")
        );
        assert!(
            raw_get(port, "/admin/secret", &admin)
                .await
                .ends_with("ADMIN SECRET")
        );
        let direct = raw_get(port, "/admin/secret", &regular).await;
        assert!(direct.starts_with("HTTP/1.1 403"), "{direct}");
        let mut reached = Vec::new();
        for path in &hostile {
            let resp = raw_get(port, path, &regular).await;
            assert!(!resp.starts_with("HTTP/1.1 5"), "{path}: {resp}");
            if resp.contains("ADMIN SECRET") {
                reached.push(*path);
            }
        }
        assert!(
            reached.is_empty(),
            "BYPASS through nginx ({policy:?}): {reached:?}"
        );
        nginx.stop().await;
        srv.stop().await;
    }
}

/// An upstream that records every request it receives (method and URI) and
/// has a handler for every method on every path, as `app.all('/admin/*')` does.
async fn recording_upstream() -> (SocketAddr, std::sync::Arc<parking_lot::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log = std::sync::Arc::clone(&seen);
    let app = Router::new().fallback(any(move |req: axum::extract::Request| {
        let log = std::sync::Arc::clone(&log);
        async move {
            log.lock().push(format!("{} {}", req.method(), req.uri()));
            "handled"
        }
    }));
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, seen)
}

/// The shipped example answers CORS preflights in nginx: an allowed origin
/// gets the CORS answer, a foreign one gets none, and the upstream (which
/// would run a handler for any method) records nothing; a real request with
/// a token still reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_by_nginx_and_never_reach_the_upstream() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED: nginx is not installed (.ci/run installs it)");
        return;
    };
    let rsa = key("rsa.pem");
    let env = Env::new(
        &file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", ""),
        &format!("{DEMO_POLICY}p, admin, /admin/*, GET\n"),
        "",
    );
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let srv = Running::start(&env.config()).await;
    let (up, seen) = recording_upstream().await;
    let nginx = Nginx::start(nginx, &env, &srv, up).await;
    let base = nginx.base.clone();
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str, method: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{base}/admin/users/1"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization")
            .send()
    };
    for origin in ["https://app.example.com", "https://eu.app.example.com"] {
        let resp = preflight(origin, "DELETE").await.unwrap();
        assert_eq!(resp.status(), 204, "{origin}");
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], origin);
        assert_eq!(
            h["access-control-allow-methods"],
            "GET, HEAD, POST, PUT, PATCH, DELETE"
        );
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization, content-type"
        );
        assert_eq!(h["access-control-max-age"], "600");
    }
    for origin in [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "null",
    ] {
        let resp = preflight(origin, "DELETE").await.unwrap();
        assert_eq!(resp.status(), 204, "{origin}");
        assert!(
            !resp
                .headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{origin}: {:?}",
            resp.headers()
        );
    }
    assert!(
        seen.lock().is_empty(),
        "a preflight reached the upstream: {:?}",
        seen.lock()
    );
    // A real request with a token still works, and carries the CORS header for its origin.
    let mut c = claims(ISS, "alice");
    c["cognito:groups"] = json!(["admin"]);
    let resp = http
        .get(format!("{base}/admin/users/1"))
        .bearer_auth(token(&rsa, &c))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // An OPTIONS that is not a preflight is an ordinary request: authzd decides it.
    let resp = http
        .request(reqwest::Method::OPTIONS, format!("{base}/admin/users/1"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(*seen.lock(), ["GET /admin/users/1"]);
    nginx.stop().await;
    srv.stop().await;
    assert!(
        env.log_lines()
            .iter()
            .all(|l| l["reason"] != "cors_preflight"),
        "no preflight reached authzd"
    );
}
