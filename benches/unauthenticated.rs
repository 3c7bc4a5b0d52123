//! Memory under a stream of maximal unauthenticated requests: the real
//! `authzd` binary with the demo's policy, the decision log on (to a file)
//! and the explorer on, fed token-less checks with the longest paths a
//! client can send — just under the 8 KiB bound (decided, kept clipped) and
//! 256 KiB (refused) — through the JSON API, forward auth and Envoy's HTTP
//! mode. Prints the resident set every `UNAUTH_STEP` requests: it should
//! level off once the explorer's ring is full, not grow with the stream.
//!
//! Run: `cargo bench --bench unauthenticated` (`UNAUTH_REQUESTS`, default
//! 60,000; `UNAUTH_STEP`, default 6,000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn path(i: usize, len: usize) -> String {
    let mut p = format!("/x/{i}/");
    while p.len() < len {
        p.push_str("0123456789");
    }
    p.truncate(len);
    p
}

fn main() {
    let total = env_or("UNAUTH_REQUESTS", 60_000);
    let step = env_or("UNAUTH_STEP", 6_000).max(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let (http, admin) = (free_port(), free_port());
    let demo = std::fs::read_to_string(root.join("authzd.toml")).unwrap();
    let cfg = demo
        .replace("127.0.0.1:50051", &format!("127.0.0.1:{}", free_port()))
        .replace("127.0.0.1:8181", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:8182", &format!("127.0.0.1:{admin}"))
        .replace("\"policies/", &format!("\"{}/policies/", root.display()))
        .replace("\"examples/", &format!("\"{}/examples/", root.display()))
        .replace(
            "output = \"stdout\"",
            &format!("output = \"{}/decisions.log\"", dir.path().display()),
        );
    std::fs::write(dir.path().join("authzd.toml"), cfg).unwrap();
    let child = Kill(
        Command::new(env!("CARGO_BIN_EXE_authzd"))
            .args(["serve", "--config"])
            .arg(dir.path().join("authzd.toml"))
            .env("AUTHZD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{http}");
        while client.get(format!("{base}/readyz")).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("requests  RSS MiB  decision log MiB");
        println!("{:>8}  {:>7.1}  {:>16.1}", 0, rss_mib(pid), 0.0);
        let started = Instant::now();
        let mut sent = 0;
        while sent < total {
            let batch: Vec<_> =
                (sent..(sent + step).min(total))
                    .collect::<Vec<_>>()
                    .chunks(step.div_ceil(16))
                    .map(|chunk| {
                        let (client, base, chunk) = (client.clone(), base.clone(), chunk.to_vec());
                        tokio::spawn(async move {
                            for i in chunk {
                                let p = match i % 2 {
                                    0 => path(i, 8 * 1024 - 16),
                                    _ => path(i, 256 * 1024),
                                };
                                let r = match i % 3 {
                                    0 => client
                                        .post(format!("{base}/v1/check"))
                                        .json(&serde_json::json!({"method": "GET", "path": p})),
                                    1 => client
                                        .get(format!("{base}/v1/forward-auth"))
                                        .header("x-forwarded-method", "GET")
                                        .header("x-forwarded-uri", p),
                                    _ => client.get(format!(
                                        "{base}/ext_authz{}",
                                        &p[..p.len().min(60 * 1024)]
                                    )),
                                };
                                let r = r.send().await.unwrap();
                                let status = r.status().as_u16();
                                let body = r.bytes().await.unwrap();
                                // The JSON API answers 200 with the decision in the body.
                                let allowed = match i % 3 {
                                    0 => {
                                        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
                                            ["allowed"]
                                            == true
                                    }
                                    _ => status == 200,
                                };
                                assert!(!allowed && status < 500, "{status}");
                            }
                        })
                    })
                    .collect();
            for t in batch {
                t.await.unwrap();
            }
            sent = (sent + step).min(total);
            let log = std::fs::metadata(dir.path().join("decisions.log"))
                .map(|m| m.len() as f64 / 1048576.0)
                .unwrap_or(0.0);
            println!("{sent:>8}  {:>7.1}  {log:>16.1}", rss_mib(pid));
        }
        let secs = started.elapsed().as_secs_f64();
        let log = std::fs::read_to_string(dir.path().join("decisions.log")).unwrap();
        let longest = log.lines().map(str::len).max().unwrap_or(0);
        println!(
            "{total} requests in {secs:.1} s; longest log line {longest} bytes; {} log lines",
            log.lines().count()
        );
    });
    drop(child);
}
