//! The Lambda authorizer, measured: cold start (exec to first answer through
//! a local Runtime API), warm invocations (p50/p99), RS256 and ES256 at 10
//! and 10,000 rules; the route-set computation at 10, 100 and 1,000 routes;
//! binary size, its newest glibc symbol, and RSS.
//!
//! Run: `cargo bench --bench lambda` (release build; prints tables). The
//! warm latency includes the local Runtime API's own HTTP round trips.

// A benchmark harness: setup failures abort loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/runtime_api.rs"]
mod runtime_api;

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use authzd::{
    decision::Principal,
    devtoken::{Claims, SigningKey, mint},
    policy::snapshot::Snapshot,
    transport::lambda::{answer, event},
};
use runtime_api::{Posted, RuntimeApi};
use serde_json::json;

const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod";
const ISS: &str = "https://bench.example";

// The allocator authzd itself runs with: route sets allocate, and glibc's
// malloc would make them look slower than they are.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn key(name: &str) -> SigningKey {
    let pem = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap();
    SigningKey::from_pem(&pem, name).unwrap()
}

/// Config with the demo's routes plus `routes` more, and `rules` policy lines.
fn write(dir: &Path, key: &SigningKey, rules: usize, routes: usize) -> std::path::PathBuf {
    std::fs::write(dir.join("jwks.json"), key.jwks().to_string()).unwrap();
    std::fs::write(
        dir.join("model.conf"),
        "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)\n",
    )
    .unwrap();
    let mut policy = String::from("p, admin, /AdminUser, GET\n");
    for i in 0..rules {
        policy.push_str(&format!("p, role{}, /res{i}/:id, (GET)|(POST)\n", i % 100));
    }
    std::fs::write(dir.join("policy.csv"), policy).unwrap();
    let mut cfg = format!(
        "[[issuer]]\nissuer = \"{ISS}\"\njwks_file = \"jwks.json\"\nalgorithms = [\"{}\"]\n[[route]]\nmethod = \"GET\"\npath = \"/AdminUser\"\n",
        key.alg.name()
    );
    for i in 0..routes {
        let method = ["GET", "POST", "ANY"][i % 3];
        cfg.push_str(&format!(
            "[[route]]\nmethod = \"{method}\"\npath = \"/res{i}/{{id}}\"\n"
        ));
    }
    cfg.push_str("[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n[decision_log]\noutput = \"stdout\"\n");
    let path = dir.join("authzd.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

async fn invocations(alg_key: &str, rules: usize) {
    let key = key(alg_key);
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), &key, rules, 4);
    let claims = Claims {
        iss: ISS.into(),
        sub: "alice".into(),
        groups: vec!["admin".into()],
        ttl: Duration::from_secs(3600),
        ..Default::default()
    };
    let token = mint(&key, &claims, None, SystemTime::now()).unwrap();
    let event = json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": format!("{ARN}/GET/AdminUser")});
    let api = RuntimeApi::start().await;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args(["lambda", "--config"])
        .arg(&config)
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let first = api.invoke(event.clone()).await;
    let cold = started.elapsed();
    assert!(matches!(first, Posted::Answer(_)), "{first:?}");
    let mut lat = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let t = Instant::now();
        api.invoke(event.clone()).await;
        lat.push(t.elapsed());
    }
    lat.sort_unstable();
    let rss = rss_kib(child.id().unwrap());
    let _ = child.kill().await;
    println!(
        "| {:<6} | {rules:>6} | {:>9.1} | {:>7.0} | {:>7.0} | {:>7.1} |",
        key.alg.name(),
        cold.as_secs_f64() * 1e3,
        us(percentile(&lat, 0.5)),
        us(percentile(&lat, 0.99)),
        rss as f64 / 1024.0,
    );
}

async fn route_sets() {
    let key = key("rsa.pem");
    println!(
        "\n| routes | route set µs, first call (mean of 200) | repeat caller, cached | Allow ARNs |"
    );
    println!("|---|---|---|---|");
    // `LAMBDA_ROUTES=100`: one table size only (for profiling).
    let sizes: Vec<usize> = match std::env::var("LAMBDA_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => vec![n],
        None => vec![10, 100, 1000],
    };
    for routes in sizes {
        let dir = tempfile::tempdir().unwrap();
        let config = write(dir.path(), &key, 10_000, routes);
        let snap = Snapshot::load(&config).await.unwrap();
        let ev = event::parse(&json!({"type": "TOKEN", "authorizationToken": "t", "methodArn": format!("{ARN}/GET/AdminUser")})).unwrap();
        let principal = Principal {
            subject: "alice".into(),
            claim_subject: "alice".into(),
            issuer: ISS.into(),
            roles: vec!["admin".into(), "role1".into(), "role7".into()],
            scopes: vec![],
            domain: None,
            attributes: vec![],
            attribute_missing: None,
        };
        let n: u32 = std::env::var("LAMBDA_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let t = Instant::now();
        let mut allowed = 0;
        for _ in 0..n {
            allowed = std::hint::black_box(answer::route_set(&snap, &ev, Some(&principal)))
                .allow
                .len();
        }
        let first = us(t.elapsed()) / f64::from(n);
        let sets = authzd::transport::lambda::route_cache::RouteSets::default();
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(sets.get(&snap, &ev, Some(&principal)));
        }
        println!(
            "| {routes:>6} | {first:>8.1} | {:>8.1} | {allowed} |",
            us(t.elapsed()) / f64::from(n)
        );
    }
}

fn binary_facts() {
    let bin = env!("CARGO_BIN_EXE_authzd");
    let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    let glibc = std::process::Command::new("objdump")
        .args(["-T", bin])
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut versions: Vec<(u32, u32)> = text
                .split("GLIBC_")
                .skip(1)
                .filter_map(|v| {
                    let v: String = v
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    let mut p = v.split('.');
                    Some((
                        p.next()?.parse().ok()?,
                        p.next().unwrap_or("0").parse().ok()?,
                    ))
                })
                .collect();
            versions.sort_unstable();
            versions.last().map(|(a, b)| format!("GLIBC_{a}.{b}"))
        })
        .unwrap_or_else(|| "(objdump not found)".into());
    println!(
        "\nbinary: {:.1} MiB, newest glibc symbol {glibc} (provided.al2023 has 2.34)",
        size as f64 / 1048576.0
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // `LAMBDA_BENCH=route_sets`: only the route-set table (for profiling).
        if std::env::var("LAMBDA_BENCH").as_deref() == Ok("route_sets") {
            route_sets().await;
            return;
        }
        println!("Lambda authorizer through a local Runtime API, this machine (TOKEN event, cached token)");
        println!("| alg    |  rules |  cold ms | p50 µs | p99 µs | RSS MiB |");
        println!("|---|---|---|---|---|---|");
        for (k, rules) in [("rsa.pem", 10), ("rsa.pem", 10_000), ("ec256.pem", 10), ("ec256.pem", 10_000)] {
            invocations(k, rules).await;
        }
        route_sets().await;
    });
    binary_facts();
}
