//! The decision log on the real binary: one record per answer, across log
//! rotation (logrotate's `mv` + SIGHUP, and a rename nobody signals), and a
//! SIGHUP that finds nothing to reload still leaves a trace.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use common::*;
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The real binary logging to `decisions.log`, under continuous checks.
struct Rotating {
    env: Env,
    bin: Binary,
    log: PathBuf,
    /// Where the test will move the log.
    rotated: PathBuf,
    stop: Arc<AtomicBool>,
    answers: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Rotating {
    async fn start(rotated: &str) -> Rotating {
        let env = Env::new(
            &file_issuer(ISS, "jwks.json", "\"RS256\"", ""),
            DEMO_POLICY,
            "",
        );
        env.write("jwks.json", &jwks_of(&[&key("rsa.pem")]).to_string());
        let bin = Binary::start(&env).await;
        let (log, rotated) = (
            env.dir.path().join("decisions.log"),
            env.dir.path().join(rotated),
        );
        let (stop, answers) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let task = load(bin.url.clone(), Arc::clone(&stop), Arc::clone(&answers));
        // Some records before the rotation.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Rotating {
            env,
            bin,
            log,
            rotated,
            stop,
            answers,
            task,
        }
    }
}

/// Sends checks until `stop`, counting the answers (each one is a decision).
fn load(
    url: String,
    stop: Arc<AtomicBool>,
    answers: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        while !stop.load(Ordering::Relaxed) {
            let r = http
                .post(format!("{url}/v1/check"))
                .json(&json!({"method": "GET", "path": "/AdminUser"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            answers.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// `authzd_policy_reload_total{result="unchanged"}`.
async fn unchanged(url: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(r#"authzd_policy_reload_total{result="unchanged"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().unwrap())
}

async fn stop_binary(bin: &mut Binary) {
    bin.signal("-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), bin.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logrotate_mv_and_sighup_loses_no_record() {
    let Rotating {
        // Kept to the end: it owns the files.
        env: _env,
        mut bin,
        log,
        rotated,
        stop,
        answers,
        task,
    } = Rotating::start("decisions.log.1").await;
    let unchanged_before = unchanged(&bin.url).await;
    // logrotate: rename, (create,) then postrotate `kill -HUP`, all while checks go on.
    std::fs::rename(&log, &rotated).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    bin.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();
    // SIGHUP found the policy unchanged, and says so.
    let policy: Value = reqwest::get(format!("{}/v1/policy", bin.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(policy["last_check"]["result"], "unchanged", "{policy}");
    assert!(policy["last_check"]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        unchanged(&bin.url).await,
        unchanged_before + 1,
        "SIGHUP is counted"
    );
    stop_binary(&mut bin).await;
    let (before, after) = (lines(&rotated), lines(&log));
    let answered = answers.load(Ordering::Relaxed) as usize;
    assert!(before > 0, "records before the rotation");
    assert!(after > 0, "a new file at the configured path after SIGHUP");
    // The /v1/policy and /metrics calls above are not checks: only checks are logged.
    assert_eq!(
        before + after,
        answered,
        "every answer has exactly one record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_log_is_followed_without_a_signal() {
    let Rotating {
        // Kept to the end: it owns the files.
        env: _env,
        mut bin,
        log,
        rotated,
        stop,
        answers,
        task,
    } = Rotating::start("old.log").await;
    // Renamed, and a new empty file created in its place (logrotate's `create`), no signal.
    std::fs::rename(&log, &rotated).unwrap();
    std::fs::write(&log, "").unwrap();
    let start = std::time::Instant::now();
    while lines(&log) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the writer never reopened the path"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();
    stop_binary(&mut bin).await;
    assert_eq!(
        lines(&rotated) + lines(&log),
        answers.load(Ordering::Relaxed) as usize
    );
}
