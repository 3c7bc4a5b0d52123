//! Connection hygiene on both ports: half-open connections (a partial HTTP/1
//! head, half an HTTP/2 preface, nothing at all), a head dripped a line at a
//! time, and idle keep-alive connections are closed by the server, while real
//! checks keep being answered; the connection cap makes new connections wait.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{net::SocketAddr, time::Duration};

use common::*;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const ISS: &str = "https://rsa.example";

/// A config with the given `[server]` settings on free ports.
fn env(server: &str) -> Env {
    let env = Env::new(
        &file_issuer(ISS, "jwks.json", "\"RS256\"", ""),
        DEMO_POLICY,
        "",
    );
    env.write("jwks.json", &jwks_of(&[&key("rsa.pem")]).to_string());
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write(
        "authzd.toml",
        &text.replace(
            "http_addr = \"127.0.0.1:0\"",
            &format!("http_addr = \"127.0.0.1:0\"\n{server}"),
        ),
    );
    env
}

async fn open(addr: SocketAddr, first: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    if !first.is_empty() {
        s.write_all(first).await.unwrap();
    }
    s
}

/// True when the server closes `s` within `within` (EOF or reset), reading
/// and discarding whatever it sends first.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn real_checks(srv: &Running) {
    let r = srv
        .check(json!({"method": "GET", "path": "/AdminUser"}))
        .await;
    assert_eq!(r["reason"], "token_missing");
    let r = srv
        .grpc_client()
        .await
        .check(authzd::pb::CheckRequest {
            method: "GET".into(),
            path: "/AdminUser".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.reason, "token_missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_while_checks_go_on() {
    let env = env("header_read_timeout_secs = 1\nidle_timeout_secs = 30");
    let srv = Running::start(&env.config()).await;
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(open(srv.http, b"POST /v1/check HTTP/1.1\r\nHost: x\r\n").await);
        held.push(open(srv.http, b"").await);
        held.push(open(srv.grpc, b"PRI * HTTP/2.0\r\n").await);
        held.push(open(srv.grpc, b"").await);
    }
    // The server still answers while 800 connections hold on.
    real_checks(&srv).await;
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(s, Duration::from_secs(10)).await,
            "half-open connection {i} still open"
        );
    }
    real_checks(&srv).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripped_head_and_an_idle_connection_are_closed() {
    let env = env("header_read_timeout_secs = 1\nidle_timeout_secs = 2");
    let srv = Running::start(&env.config()).await;
    // One header line every 200 ms: bytes keep coming, the head never completes.
    let mut drip = open(srv.http, b"GET /healthz HTTP/1.1\r\n").await;
    let dripping = tokio::spawn(async move {
        for i in 0..100 {
            if drip
                .write_all(format!("x-h{i}: v\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    // A complete request, then nothing: kept for the idle timeout, then closed.
    let mut idle = open(srv.http, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(10)).await,
        "idle connection kept"
    );
    assert!(dripping.await.unwrap(), "a dripped head was never cut off");
    // gRPC: a channel that made a call and went quiet is closed too (GOAWAY).
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(srv.grpc).await.unwrap());
    let (mut client, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post("/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ])))
        .unwrap();
    let resp = client.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "idle HTTP/2 connection kept");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_new_connections_until_slots_free() {
    let env = env("header_read_timeout_secs = 1\nmax_connections = 16");
    let srv = Running::start(&env.config()).await;
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(open(srv.http, b"").await);
    }
    // All 16 slots are held; this check waits for the header timeout to free one.
    tokio::time::timeout(Duration::from_secs(10), real_checks(&srv))
        .await
        .expect("a check was never answered");
    for s in &mut held {
        assert!(closed_by_server(s, Duration::from_secs(10)).await);
    }
    srv.stop().await;
}
