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
    let port = free_port();
    let dir = env.dir.path();
    // The example as shipped, pointed at this test's ports, plus what running
    // unprivileged from a temporary prefix needs.
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
    let mut child = tokio::process::Command::new(nginx)
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
    let http = reqwest::Client::new();
    let start = std::time::Instant::now();
    while http
        .get(format!("{base}/wish-list-service"))
        .send()
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
    drop(stop);
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
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
