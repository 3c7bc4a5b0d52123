//! Scale benchmark: a million policy rows that change all day
//! (`docs/large-policies.md`), with the release binary.
//!
//! 1. File: `SCALE_ROWS` (default 1,000,000) `p` lines, one per document
//!    (`p, user<n>, /docs/<i>, GET`, keyMatch2 matcher) and 1,000 role links.
//!    Start until `/v1/policy` answers, RSS; then `SCALE_CHANGES` (default
//!    100) single appended lines, each timed from the write to the new
//!    revision answering, and the peak RSS over them.
//! 2. PostgreSQL (skipped with `SCALE_PG=0`): the same rows in the Casbin
//!    table, three replicas following it. Start of each; then 100
//!    single-row inserts, one every 150 ms, each timed from `COMMIT` to the
//!    rule answering on every replica (p50/p99/max); then `SCALE_RATE`
//!    (default 100) row changes a second for `SCALE_SECS` (default 20):
//!    replica CPU over the window, the lag of a marker row at the end, and
//!    RSS over time.
//!
//! Run: `cargo bench --bench scale` (PostgreSQL as the tests install it);
//! `SCALE_FILE=0` or `SCALE_PG=0` skips a part.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{fleet::*, pg::*};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `(VmRSS, VmHWM)` in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| -> f64 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

const MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act\n";

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = env_or("SCALE_ROWS", 1_000_000);
    if env_or("SCALE_FILE", 1) == 1 {
        rt.block_on(file(rows));
    }
    if env_or("SCALE_PG", 1) == 1 {
        rt.block_on(postgres(rows));
    }
}

async fn revision(http: &reqwest::Client, base: &str) -> Option<String> {
    let r = http.get(format!("{base}/v1/policy")).send().await.ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    v["revision"].as_str().map(String::from)
}

async fn file(rows: usize) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("model.conf"), MODEL).unwrap();
    std::fs::write(d.join("jwks.json"), r#"{"keys":[]}"#).unwrap();
    let mut policy = String::with_capacity(rows * 32);
    for i in 0..rows {
        policy.push_str(&format!("p, user{}, /docs/{i}, GET\n", i % 50_000));
    }
    for i in 0..1000 {
        policy.push_str(&format!("g, user{i}, team{}\n", i % 50));
    }
    std::fs::write(d.join("policy.csv"), &policy).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        d.join("authzd.toml"),
        format!("[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:{port}\"\n[[issuer]]\nissuer = \"https://x.example\"\njwks_file = \"jwks.json\"\nalgorithms = [\"RS256\"]\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n[decision_log]\noutput = \"off\"\n"),
    )
    .unwrap();
    let started = Instant::now();
    let child = Kill(
        Command::new(env!("CARGO_BIN_EXE_authzd"))
            .args(["serve", "--config"])
            .arg(d.join("authzd.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut rev = loop {
        if let Some(r) = revision(&http, &base).await {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let ready = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (steady, _) = memory(pid);
    let mut lat = Vec::new();
    let mut peak = steady;
    for i in 0..env_or("SCALE_CHANGES", 100) {
        let written = Instant::now();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("policy.csv"))
            .unwrap();
        std::io::Write::write_all(&mut f, format!("p, user7, /extra/{i}, GET\n").as_bytes())
            .unwrap();
        drop(f);
        loop {
            let r = revision(&http, &base).await.unwrap();
            if r != rev {
                rev = r;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lat.push(written.elapsed());
        peak = peak.max(memory(pid).0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, hwm) = memory(pid);
    lat.sort();
    println!("== file, {rows} rule lines + 1,000 links, one process");
    println!("| start → ready | {:.2} s |", ready.as_secs_f64());
    println!("| RSS steady | {steady:.0} MiB |");
    println!(
        "| one appended line → live, {} changes: p50 / p99 / max | {} / {} / {} |",
        lat.len(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
    println!(
        "| RSS during the changes (highest sample; VmHWM since start) | {peak:.0} MiB ({:.2}× steady); {hwm:.0} MiB |",
        peak / steady
    );
}

async fn postgres(rows: usize) {
    let Some(pg) = Pg::start() else {
        panic!("PostgreSQL is needed for the store part (SCALE_PG=0 skips it)");
    };
    let url = pg.create_db("scale").await;
    let fleet = Fleet::new(&url, "poll_secs = 3600");
    assert!(fleet.store_cmd(&["init"]).status.success());
    let db = pg.client("scale").await;
    let t = Instant::now();
    db.batch_execute(&format!(
        "INSERT INTO casbin_rule (ptype, v0, v1, v2)
           SELECT 'p', 'user' || (i % 50000), '/docs/' || i, 'GET' FROM generate_series(1, {rows}) AS i;
         INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'reader', '/api/*', 'GET');"
    ))
    .await
    .unwrap();
    println!(
        "== PostgreSQL, {rows} rows ({:.1} s to insert with the change-log trigger), 3 replicas",
        t.elapsed().as_secs_f64()
    );
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        replicas.push(Replica::start(&fleet.config()).await);
        let r = replicas.last().unwrap();
        while r.policy().await["rules"].as_u64() != Some(rows as u64 + 1) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "| replica start → ready | {:.2} s, RSS {:.0} MiB |",
            t.elapsed().as_secs_f64(),
            memory(r.pid()).0
        );
    }
    let token = fleet.staff_token();
    let http = reqwest::Client::new();

    // One-row changes, each to live on all three.
    let mut fleet_wide = Vec::new();
    for i in 0..100 {
        let path = format!("/api/change{i}");
        db.execute(
            "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'staff', $1, 'POST')",
            &[&path],
        )
        .await
        .unwrap();
        let committed = Instant::now();
        fleet_wide.push(live_everywhere(&replicas, &http, &token, &path).await - committed);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    fleet_wide.sort();
    println!(
        "| one-row change → live on all 3, 100 changes: p50 / p99 / max | {} / {} / {} |",
        ms(pct(&fleet_wide, 0.5)),
        ms(pct(&fleet_wide, 0.99)),
        ms(*fleet_wide.last().unwrap())
    );

    // Sustained changes.
    let rate = env_or("SCALE_RATE", 100);
    let secs = env_or("SCALE_SECS", 20);
    let cpu0: Vec<f64> = replicas.iter().map(|r| cpu_secs(r.pid())).collect();
    let t0 = Instant::now();
    let mut rss_samples: Vec<Vec<f64>> = vec![Vec::new(); replicas.len()];
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let mut n = 0u64;
    let mut last_id: Option<i64> = None;
    let mut writing = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(secs as u64) {
        // Half inserts, half deletes of the row just inserted: the table
        // stays the size it was.
        // The simple query protocol: one round trip a change.
        let sent = Instant::now();
        match last_id.take() {
            None => {
                let out = db
                    .simple_query(&format!(
                        "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'user1', '/shared/{n}', 'GET') RETURNING id"
                    ))
                    .await
                    .unwrap();
                last_id = out.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0)?.parse::<i64>().ok(),
                    _ => None,
                });
            }
            Some(id) => {
                db.batch_execute(&format!("DELETE FROM casbin_rule WHERE id = {id}"))
                    .await
                    .unwrap();
            }
        }
        writing += sent.elapsed();
        n += 1;
        if n.is_multiple_of(rate as u64) {
            for (k, r) in replicas.iter().enumerate() {
                rss_samples[k].push(memory(r.pid()).0);
            }
        }
        let next = t0 + every * n as u32;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
    let window = t0.elapsed().as_secs_f64();
    let marker = "/api/marker-after-load";
    db.execute(
        "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'staff', $1, 'POST')",
        &[&marker],
    )
    .await
    .unwrap();
    let committed = Instant::now();
    let lag = live_everywhere(&replicas, &http, &token, marker).await - committed;
    println!(
        "| {n} row changes at {:.0}/s for {window:.0} s: replica CPU | {} |",
        n as f64 / window,
        replicas
            .iter()
            .zip(&cpu0)
            .map(|(r, c0)| format!("{:.1} %", (cpu_secs(r.pid()) - c0) / window * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| lag after it (a marker row, COMMIT → live on all 3) | {} |",
        ms(lag)
    );
    println!(
        "| the writer's own time per change (one connection, autocommit) | {} |",
        ms(writing / u32::try_from(n.max(1)).unwrap())
    );
    for (k, s) in rss_samples.iter().enumerate() {
        let (lo, hi) = s
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        println!("| replica {k} RSS over the window, one sample a second | {lo:.0}–{hi:.0} MiB |");
    }
}

async fn live_everywhere(
    replicas: &[Replica],
    http: &reqwest::Client,
    token: &str,
    path: &str,
) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Instant::now();
    for r in replicas {
        loop {
            let v: serde_json::Value = http
                .post(r.url("/v1/check"))
                .json(&json!({"method": "POST", "path": path, "token": token}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["allowed"] == true {
                last = last.max(Instant::now());
                break;
            }
            assert!(Instant::now() < deadline, "{path} never went live");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    last
}
