//! Live policy (`docs/pipeline.md`): edits in place, by rename and by a Kubernetes-style
//! symlink swap take effect while checks keep flowing; a bad edit is rejected
//! whole; SIGHUP forces a reload; revisions follow content.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";
/// Generous: the product promise is 2 s, but these machines are noisy and a
/// test must not flake. The measured time is printed.
const DEADLINE: Duration = Duration::from_secs(10);

fn regular_token(k: &SigningKey) -> String {
    let mut c = claims(ISS, "bob");
    c["cognito:groups"] = json!(["regular"]);
    token(k, &c)
}

async fn env_and_server(policy: &str, extra: &str) -> (Env, Running, SigningKey) {
    let rsa = key("rsa.pem");
    let env = Env::new(
        &file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", ""),
        policy,
        extra,
    );
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let srv = Running::start(&env.config()).await;
    (env, srv, rsa)
}

/// Checks `GET /AdminUser` until it is allowed; returns how long that took.
async fn wait_allowed(srv: &Running, t: &str) -> Duration {
    let start = Instant::now();
    loop {
        let r = srv
            .check(json!({"method": "GET", "path": "/AdminUser", "token": t}))
            .await;
        if r["allowed"] == true {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the edit never took effect: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three clients checking `GET /AdminUser` with `t` continuously.
fn load(srv: &Running, t: &str) -> Load {
    let url = srv.url("/v1/check");
    Load::start(
        &[url.clone(), url.clone(), url],
        &json!({"method": "GET", "path": "/AdminUser", "token": t}),
    )
}

async fn revision(srv: &Running) -> Value {
    reqwest::get(srv.url("/v1/policy"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const GRANT: &str = "p, regular, /AdminUser, GET\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_edit_under_load() {
    let (env, srv, rsa) = env_and_server(DEMO_POLICY, "").await;
    let t = regular_token(&rsa);
    let before = revision(&srv).await["revision"]
        .as_str()
        .unwrap()
        .to_string();
    let load = load(&srv, &t);
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.write("policy.csv", &format!("{DEMO_POLICY}{GRANT}"));
    let took = wait_allowed(&srv, &t).await;
    eprintln!("in-place edit took effect after {took:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = revision(&srv).await;
    let after_rev = after["revision"].as_str().unwrap().to_string();
    assert_ne!(before, after_rev);
    let n = load.finish(&[&after_rev]).await;
    assert!(n > 10, "the load kept flowing ({n} checks)");
    assert_eq!(
        (after["rules"].as_u64(), after["groupings"].as_u64()),
        (Some(6), Some(1))
    );
    srv.stop().await;
    // Every decision log record names the revision it was decided under.
    let revs: std::collections::HashSet<String> = env
        .log_lines()
        .iter()
        .map(|l| l["policy_revision"].as_str().unwrap().to_string())
        .collect();
    assert!(
        revs.contains(&before) && revs.contains(&after_rev),
        "{revs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_style_rename_is_seen() {
    let (env, srv, rsa) = env_and_server(DEMO_POLICY, "").await;
    let t = regular_token(&rsa);
    let load = load(&srv, &t);
    let tmp = env.write(".policy.csv.swp", &format!("{DEMO_POLICY}{GRANT}"));
    std::fs::rename(&tmp, env.dir.path().join("policy.csv")).unwrap();
    eprintln!(
        "rename took effect after {:?}",
        wait_allowed(&srv, &t).await
    );
    let rev = revision(&srv).await["revision"]
        .as_str()
        .unwrap()
        .to_string();
    load.finish(&[&rev]).await;
}

/// The layout Kubernetes gives a ConfigMap volume: files are symlinks through `..data`,
/// which is swapped atomically to a new timestamped directory.
struct ConfigMap {
    dir: tempfile::TempDir,
    rsa: SigningKey,
}

impl ConfigMap {
    fn new(policy: &str) -> ConfigMap {
        let cm = ConfigMap {
            dir: tempfile::tempdir().unwrap(),
            rsa: key("rsa.pem"),
        };
        cm.version("..2026_11_24_v1", policy);
        let root = cm.dir.path();
        std::os::unix::fs::symlink("..2026_11_24_v1", root.join("..data")).unwrap();
        for f in ["authzd.toml", "model.conf", "policy.csv", "jwks.json"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), root.join(f)).unwrap();
        }
        cm
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("authzd.toml")
    }

    fn version(&self, name: &str, policy: &str) {
        let v = self.dir.path().join(name);
        std::fs::create_dir(&v).unwrap();
        std::fs::write(v.join("model.conf"), RBAC_MODEL).unwrap();
        std::fs::write(v.join("policy.csv"), policy).unwrap();
        std::fs::write(v.join("jwks.json"), jwks_of(&[&self.rsa]).to_string()).unwrap();
        let cfg = format!(
            "[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n{}\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n[decision_log]\noutput = \"off\"\n",
            file_issuer(ISS, "jwks.json", "\"RS256\"", "")
        );
        std::fs::write(v.join("authzd.toml"), cfg).unwrap();
    }

    /// What the kubelet does: new directory `to`, new `..data_tmp` link,
    /// rename over `..data`, old directory `from` removed.
    fn swap(&self, from: &str, to: &str, policy: &str) {
        let root = self.dir.path();
        self.version(to, policy);
        std::os::unix::fs::symlink(to, root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        std::fs::remove_dir_all(root.join(from)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_is_seen() {
    let cm = ConfigMap::new(DEMO_POLICY);
    let srv = Running::start(&cm.config()).await;
    let t = regular_token(&cm.rsa);
    let load = load(&srv, &t);
    cm.swap(
        "..2026_11_24_v1",
        "..2026_11_24_v2",
        &format!("{DEMO_POLICY}{GRANT}"),
    );
    eprintln!(
        "symlink swap took effect after {:?}",
        wait_allowed(&srv, &t).await
    );
    let rev = revision(&srv).await["revision"]
        .as_str()
        .unwrap()
        .to_string();
    load.finish(&[&rev]).await;
}

/// A ConfigMap swap that changes nothing still moves the files to a new
/// directory: the watcher follows them there, so a later in-place edit of
/// the new version (through the symlink) is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_follows_an_unchanged_configmap_swap() {
    use authzd::policy::{reload, snapshot::Snapshot};
    let cm = ConfigMap::new(DEMO_POLICY);
    let snap = Snapshot::load(&cm.config()).await.unwrap();
    let before = snap.revision.to_string();
    let store = std::sync::Arc::new(reload::PolicyStore::new(snap, &cm.config()));
    let _watcher = reload::watch(std::sync::Arc::clone(&store), |_| {}).unwrap();
    // The watcher's first look, then the swap and its look (both unchanged).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let swapped = std::time::SystemTime::now();
    cm.swap("..2026_11_24_v1", "..2026_11_24_v2", DEMO_POLICY);
    let start = Instant::now();
    while !store
        .last_check()
        .is_some_and(|(at, result)| at > swapped && result == "unchanged")
    {
        assert!(start.elapsed() < DEADLINE, "the swap was never looked at");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*store.load().revision, *before);
    // An edit through the symlink lands in the new version's directory.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(cm.dir.path().join("policy.csv"))
        .unwrap();
    std::io::Write::write_all(&mut f, GRANT.as_bytes()).unwrap();
    drop(f);
    let start = Instant::now();
    while *store.load().revision == *before {
        assert!(
            start.elapsed() < DEADLINE,
            "the edit in the new directory was never seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_edit_is_rejected_whole_and_the_fix_recovers() {
    let (env, srv, rsa) = env_and_server(DEMO_POLICY, "").await;
    let t = regular_token(&rsa);
    let good = revision(&srv).await["revision"]
        .as_str()
        .unwrap()
        .to_string();
    let load = load(&srv, &t);
    // A grant on line 1 followed by a broken line: nothing of it may apply.
    env.write(
        "policy.csv",
        &format!("{GRANT}p, regular, /x\n{DEMO_POLICY}"),
    );
    let start = Instant::now();
    let status = loop {
        let s = revision(&srv).await;
        if !s["last_error"].is_null() {
            break s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the bad edit was never reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let err = status["last_error"].as_str().unwrap();
    assert!(
        err.contains("policy.csv") && err.contains("line 2"),
        "{err}"
    );
    assert_eq!(
        status["revision"],
        good.as_str(),
        "the old revision keeps serving"
    );
    let metrics = reqwest::get(srv.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("authzd_policy_reload_total{result=\"error\"}"),
        "{metrics}"
    );
    // A broken model is rejected the same way.
    env.write("model.conf", "[request_definition]\nr = sub, obj, act\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(revision(&srv).await["revision"], good.as_str());
    // The fix.
    env.write("model.conf", RBAC_MODEL);
    env.write("policy.csv", &format!("{DEMO_POLICY}{GRANT}"));
    wait_allowed(&srv, &t).await;
    let status = revision(&srv).await;
    assert!(status["last_error"].is_null(), "{status}");
    load.finish(&[status["revision"].as_str().unwrap()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edits_reload_and_listen_changes_need_a_restart() {
    let (env, srv, rsa) = env_and_server(DEMO_POLICY, "").await;
    let t = regular_token(&rsa);
    let text = std::fs::read_to_string(env.config()).unwrap();
    // A route change in the config: /AdminUser becomes public.
    let edited = text.replacen(
        "[[route]]",
        "[[route]]\nmethod = \"GET\"\npath = \"/AdminUser\"\nauth = \"none\"\n\n[[route]]",
        1,
    );
    env.write("authzd.toml", &edited);
    wait_allowed(&srv, &t).await;
    assert_eq!(
        srv.check(json!({"method": "GET", "path": "/AdminUser"}))
            .await["reason"],
        "public_route"
    );
    assert!(revision(&srv).await["restart_required"].is_null());
    env.write(
        "authzd.toml",
        &edited.replace("http_addr = \"127.0.0.1:0\"", "http_addr = \"127.0.0.1:1\""),
    );
    let start = Instant::now();
    loop {
        let s = revision(&srv).await;
        if let Some(msg) = s["restart_required"].as_str() {
            assert!(msg.contains("restart"), "{msg}");
            break;
        }
        assert!(start.elapsed() < DEADLINE, "listen change never reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `watch = false` leaves reloads to SIGHUP; the real binary, a real signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_forces_a_reload() {
    let rsa = key("rsa.pem");
    let env = Env::new(
        &file_issuer(ISS, "rsa-jwks.json", "\"RS256\"", ""),
        DEMO_POLICY,
        "watch = false",
    );
    env.write("rsa-jwks.json", &jwks_of(&[&rsa]).to_string());
    let mut bin = Binary::start(&env).await;
    let url = format!("{}/v1/check", bin.url);
    let t = regular_token(&rsa);
    let check = || async {
        let start = Instant::now();
        loop {
            if let Ok(r) = reqwest::Client::new()
                .post(&url)
                .json(&json!({"method": "GET", "path": "/AdminUser", "token": t}))
                .send()
                .await
            {
                return r.json::<Value>().await.unwrap()["allowed"] == true;
            }
            assert!(start.elapsed() < DEADLINE, "server never came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(!check().await);
    env.write("policy.csv", &format!("{DEMO_POLICY}{GRANT}"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !check().await,
        "with watch = false, an edit alone does not reload"
    );
    bin.signal("-HUP");
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < DEADLINE, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bin.child.kill().await.unwrap();
}

/// Three real `authzd serve` processes on the same policy, differing only in
/// listen addresses, connection settings, comments and the decision log
/// path, report one revision; a fourth with another route reports another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_differing_only_in_serving_settings_report_one_revision() {
    let variants = [
        "",
        "idle_timeout_secs = 7\nmax_connections = 100\n",
        "header_read_timeout_secs = 3\n# a replica-specific comment\n",
    ];
    let mut revisions = Vec::new();
    let mut replicas = Vec::new();
    for (i, server) in variants.iter().enumerate() {
        let env = Env::new("", DEMO_POLICY, "");
        let text = std::fs::read_to_string(env.config()).unwrap();
        let text = text
            .replace("[server]\n", &format!("[server]\n{server}"))
            .replace(
                "output = \"decisions.log\"",
                &format!("output = \"replica-{i}.log\""),
            );
        env.write("authzd.toml", &text);
        let bin = Binary::start(&env).await;
        let v: Value = reqwest::get(format!("{}/v1/policy", bin.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        revisions.push(v["revision"].as_str().unwrap().to_string());
        replicas.push((env, bin));
    }
    assert!(
        revisions.iter().all(|r| *r == revisions[0]),
        "{revisions:?}"
    );
    let env = Env::new("", DEMO_POLICY, "");
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write(
        "authzd.toml",
        &text.replacen("path = \"/wish-list-service\"", "path = \"/wishlist\"", 1),
    );
    let other = Binary::start(&env).await;
    let v: Value = reqwest::get(format!("{}/v1/policy", other.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(
        v["revision"].as_str().unwrap(),
        revisions[0],
        "a route change is a new revision"
    );
}
