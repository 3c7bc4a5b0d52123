//! Fleet benchmark: three real `authzd` replicas (release binary) following
//! one PostgreSQL started for the run, as in `docs/fleet.md`.
//!
//! 1. Change-to-live: 100 single-row inserts, one every 150 ms; for each, the
//!    time from `COMMIT` returning to the new rule answering `allowed` on each
//!    replica (polled every millisecond per replica). Reported per replica and
//!    for the fleet (the slowest replica of each change), p50/p99/max.
//! 2. Reload at size: 10k and 100k rows replaced by one transaction (as
//!    `authzd store import` does); time from `COMMIT` to a marker rule answering
//!    on every replica, and the `rules` count confirmed.
//! 3. Idle cost: CPU time (utime + stime from `/proc`) of each replica over
//!    `IDLE_SECS` (default 20) with no changes, beside a file-backed replica
//!    on the same policy over the same window.
//!
//! Run: `cargo bench --bench fleet` (needs PostgreSQL, as the tests do).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{fleet::*, pg::*};
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `)` of the command name: utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ticks_per_sec() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Polls every replica until `POST path` is allowed for `token`; returns when, per replica.
async fn live_on_all(
    replicas: &[Replica],
    http: &reqwest::Client,
    token: &str,
    path: &str,
) -> Vec<Instant> {
    let tasks: Vec<_> = replicas
        .iter()
        .map(|r| {
            let (url, http, token, path) = (
                r.url("/v1/check"),
                http.clone(),
                token.to_string(),
                path.to_string(),
            );
            tokio::spawn(async move { live_at(url, http, token, path).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn live_at(url: String, http: reqwest::Client, token: String, path: String) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = http
            .post(&url)
            .json(&json!({"method": "POST", "path": path, "token": token}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["allowed"] == true {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{path} never went live");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn bulk_insert_sql(n: usize, marker: &str) -> String {
    format!(
        "BEGIN; DELETE FROM casbin_rule;
         INSERT INTO casbin_rule (ptype, v0, v1, v2)
           SELECT 'p', 'user' || i, '/api/r' || i || '/*', 'GET' FROM generate_series(1, {n}) AS i;
         INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'staff', '{marker}', 'POST');
         COMMIT;"
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let Some(pg) = Pg::start() else {
        panic!("PostgreSQL is needed for this benchmark");
    };
    let url = pg.create_db("bench").await;
    // Notifications only: the poll would hide their latency.
    let fleet = Fleet::new(&url, "poll_secs = 3600");
    assert!(fleet.store_cmd(&["init"]).status.success());
    fleet.import(BASE);
    let replicas = vec![
        Replica::start(&fleet.config()).await,
        Replica::start(&fleet.config()).await,
        Replica::start(&fleet.config()).await,
    ];
    let token = fleet.staff_token();
    let db = pg.client("bench").await;
    let http = reqwest::Client::new();

    // 1. Change-to-live.
    println!("== change-to-live, 3 replicas, 100 changes (one row each, one per 150 ms)");
    let mut per_replica: Vec<Vec<Duration>> = vec![Vec::new(); replicas.len()];
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
        let times = live_on_all(&replicas, &http, &token, &path).await;
        let lat: Vec<Duration> = times.iter().map(|t| *t - committed).collect();
        for (k, l) in lat.iter().enumerate() {
            per_replica[k].push(*l);
        }
        fleet_wide.push(*lat.iter().max().unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for (k, v) in per_replica.iter_mut().enumerate() {
        v.sort();
        println!(
            "replica {k}: p50 {}  p99 {}  max {}",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(*v.last().unwrap())
        );
    }
    fleet_wide.sort();
    println!(
        "fleet (slowest replica per change): p50 {}  p99 {}  max {}",
        ms(percentile(&fleet_wide, 0.5)),
        ms(percentile(&fleet_wide, 0.99)),
        ms(*fleet_wide.last().unwrap())
    );

    // 2. Reload at size.
    for n in [10_000usize, 100_000] {
        let marker = format!("/api/marker{n}");
        let sql = bulk_insert_sql(n, &marker);
        let c = pg.client("bench").await;
        let start = Instant::now();
        c.batch_execute(&sql).await.unwrap();
        let committed = Instant::now();
        let times = live_on_all(&replicas, &http, &token, &marker).await;
        let slowest = times.iter().max().unwrap();
        for r in &replicas {
            assert_eq!(r.policy().await["rules"], n + 1);
        }
        println!(
            "== {n} rows replaced in one transaction ({} to commit): live on all 3 replicas {} after COMMIT",
            ms(committed - start),
            ms(*slowest - committed)
        );
    }

    // 3. Idle cost.
    let idle = Duration::from_secs(
        std::env::var("IDLE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    let file_env = common::Env::new("", "p, reader, /api/*, GET\n", "");
    let file_replica = Replica::start(&file_env.config()).await;
    // Settle after the 100k reload.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids: Vec<u32> = replicas
        .iter()
        .chain(std::iter::once(&file_replica))
        .map(Replica::pid)
        .collect();
    let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    tokio::time::sleep(idle).await;
    let after: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let hz = ticks_per_sec() as f64;
    println!("== idle for {} s, no changes", idle.as_secs());
    for (k, (b, a)) in before.iter().zip(&after).enumerate() {
        let cpu = (a - b) as f64 / hz;
        let label = if k < replicas.len() {
            format!("store replica {k}")
        } else {
            "file replica".to_string()
        };
        println!(
            "{label}: {:.0} ms CPU ({:.3} % of one core)",
            cpu * 1e3,
            cpu / idle.as_secs_f64() * 100.0
        );
    }
}
