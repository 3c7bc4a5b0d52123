//! Memory and reload benchmark: the real `authzd` binary with a large policy
//! and many distinct cached tokens.
//!
//! 1. Starts `authzd serve` on a 100,000-rule policy (`MEMORY_RULES`) and
//!    reads its resident set once it is ready.
//! 2. Sends `MEMORY_TOKENS` (default 100,000) checks, each with a different
//!    Ed25519 token (a different subject and claim role), so each lands in
//!    the verified-token cache; reads the resident set again.
//! 3. Appends a rule to the policy file and times the live reload until
//!    `/v1/policy` names the new revision, while 4 clients keep checking:
//!    their latency shows whether the rebuild stalls the request path.
//!
//! RSS and peak (VmHWM) come from `/proc/<pid>/status` (Linux).
//! Run: `cargo bench --bench memory`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use authzd::devtoken::{Claims, SigningKey, mint};

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

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `POST /v1/check` for `/res{i % 100}/7` with `token`; whether it was allowed.
async fn check(client: &reqwest::Client, base: &str, i: usize, token: &str) -> bool {
    let body = format!(
        r#"{{"method":"GET","path":"/res{}/7","token":"{token}"}}"#,
        i % 100
    );
    let r = client
        .post(format!("{base}/v1/check"))
        .body(body)
        .send()
        .await
        .unwrap();
    let allowed = r.status() == 200;
    r.bytes().await.unwrap();
    allowed
}

fn main() {
    let rules = env_or("MEMORY_RULES", 100_000);
    let tokens = env_or("MEMORY_TOKENS", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pem =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ed25519.pem"))
            .unwrap();
    let key = SigningKey::from_pem(&pem, "ed25519.pem").unwrap();
    std::fs::write(d.join("jwks.json"), key.jwks().to_string()).unwrap();
    std::fs::write(
        d.join("model.conf"),
        "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)\n",
    )
    .unwrap();
    let mut policy = String::with_capacity(rules * 40);
    for i in 0..rules {
        policy.push_str(&format!("p, role{}, /res{i}/:id, (GET)|(POST)\n", i % 100));
    }
    std::fs::write(d.join("policy.csv"), &policy).unwrap();
    let http = free_port();
    let cfg = format!(
        "[server]\ngrpc_addr = \"127.0.0.1:{}\"\nhttp_addr = \"127.0.0.1:{http}\"\n[[issuer]]\nissuer = \"https://bench.example\"\njwks_file = \"jwks.json\"\nalgorithms = [\"EdDSA\"]\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n[decision_log]\noutput = \"off\"\n",
        free_port()
    );
    std::fs::write(d.join("authzd.toml"), cfg).unwrap();

    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args(["serve", "--config"])
        .arg(d.join("authzd.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let child = Kill(child);
    let pid = child.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{http}");
        let revision = || {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let r = client.get(format!("{base}/v1/policy")).send().await.ok()?;
                let v: serde_json::Value = r.json().await.ok()?;
                v["revision"].as_str().map(String::from)
            }
        };
        let first = loop {
            if let Some(r) = revision().await {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let ready = started.elapsed();
        let (rss_loaded, _) = memory(pid);

        // Distinct tokens, minted up front so the timing below is the server's.
        let minted: Vec<String> = (0..tokens)
            .map(|i| {
                let claims = Claims {
                    iss: "https://bench.example".into(),
                    sub: format!("user-{i}"),
                    groups: vec![format!("role{}", i % 100)],
                    ttl: Duration::from_secs(3600),
                    ..Default::default()
                };
                mint(&key, &claims, None, SystemTime::now()).unwrap()
            })
            .collect();
        let minted = Arc::new(minted);
        let sent = Instant::now();
        let conc = 32;
        let tasks: Vec<_> = (0..conc)
            .map(|w| {
                let (client, base, minted) = (client.clone(), base.clone(), Arc::clone(&minted));
                tokio::spawn(async move {
                    let mut allowed = 0usize;
                    for i in (w..minted.len()).step_by(conc) {
                        allowed += usize::from(check(&client, &base, i, &minted[i]).await);
                    }
                    allowed
                })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            allowed += t.await.unwrap();
        }
        let checks = sent.elapsed();
        assert_eq!(allowed, tokens, "every check is an allow");
        let (rss_tokens, peak) = memory(pid);

        // A live reload of the whole policy, timed until it is served, while
        // 4 clients keep checking (cached tokens): their latencies show
        // whether the rebuild stalls the request path.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let probes: Vec<_> = (0..4)
            .map(|w| {
                let (client, base, minted, done) = (
                    client.clone(),
                    base.clone(),
                    Arc::clone(&minted),
                    Arc::clone(&done),
                );
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut i = w;
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let t = Instant::now();
                        let allowed = check(&client, &base, i, &minted[i % minted.len()]).await;
                        assert!(allowed, "an allow during the reload");
                        lat.push(t.elapsed());
                        i += 4;
                    }
                    lat
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let edited = Instant::now();
        policy.push_str("p, role0, /extra, GET\n");
        std::fs::write(d.join("policy.csv"), &policy).unwrap();
        let reloaded = loop {
            if revision().await.is_some_and(|r| r != first) {
                break edited.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut during = Vec::new();
        for p in probes {
            during.extend(p.await.unwrap());
        }
        during.sort_unstable();
        let pct = |p: f64| {
            during[((during.len() as f64 * p) as usize).min(during.len() - 1)].as_secs_f64() * 1e3
        };
        let (rss_after, peak_reload) = memory(pid);
        // mimalloc returns the old snapshot's pages lazily; look again later.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let (rss_later, _) = memory(pid);
        println!("authzd serve, {rules} rules, {tokens} distinct Ed25519 tokens, this machine");
        println!("| measure | value |");
        println!("|---|---|");
        println!(
            "| start until the policy is served | {:.2} s |",
            ready.as_secs_f64()
        );
        println!("| RSS with the policy loaded | {rss_loaded:.1} MiB |");
        println!(
            "| {tokens} checks, each a new token ({:.0}/s) | {:.2} s |",
            tokens as f64 / checks.as_secs_f64(),
            checks.as_secs_f64()
        );
        println!("| RSS with {tokens} cached tokens | {rss_tokens:.1} MiB |");
        println!("| peak RSS so far | {peak:.1} MiB |");
        println!(
            "| live reload, edit until served (includes 150 ms debounce) | {:.2} s |",
            reloaded.as_secs_f64()
        );
        println!(
            "| RSS after the reload / peak during it | {rss_after:.1} / {peak_reload:.1} MiB |"
        );
        println!("| RSS 15 s after the reload | {rss_later:.1} MiB |");
        println!(
            "| {} checks during the reload: p50 / p99 / max | {:.2} / {:.2} / {:.1} ms |",
            during.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    });
    drop(child);
}
