//! `authzd replay`: a log recorded under revision A replays against A with
//! no difference; against B it reports the flips `authzd diff` predicts for
//! the logged requests; broken lines, foreign issuers and token failures
//! are counted as skipped; `.gz` files and stdin read the same.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;

use common::*;
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";

fn replay(config: &std::path::Path, logs: &[&str], stdin: Option<&[u8]>) -> (i32, Value) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args([
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
        ])
        .args(logs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_replays_unchanged_under_its_revision_and_with_the_diffs_flips_under_another() {
    let (env, rsa) = rsa_env(DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    let user = |sub: &str, groups: &[&str]| {
        let mut c = claims(ISS, sub);
        c["cognito:groups"] = json!(groups);
        token(&rsa, &c)
    };
    let (admin, regular) = (user("alice", &["admin"]), user("bob", &["regular"]));
    let mut n = 0;
    for (tok, method, path) in [
        (Some(&admin), "GET", "/AdminUser"),
        (Some(&admin), "GET", "/RegularUser"),
        (Some(&regular), "GET", "/AdminUser"),
        (Some(&regular), "GET", "/RegularUser"),
        (None, "GET", "/wish-list-service"),
        (None, "GET", "/AdminUser"),
        (Some(&regular), "GET", "/a/../AdminUser"),
    ] {
        let mut body = json!({"method": method, "path": path});
        if let Some(t) = tok {
            body["token"] = json!(t);
        }
        srv.check(body).await;
        n += 1;
    }
    srv.check(json!({"method": "GET", "path": "/AdminUser", "token": "not.a.jwt"}))
        .await;
    n += 1;
    srv.stop().await;
    let log = env.dir.path().join("decisions.log");
    assert_eq!(env.log_lines().len(), n);

    // Under the revision that wrote it: nothing changes.
    let (code, r) = replay(&env.config(), &[log.to_str().unwrap()], None);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["read"], n);
    assert_eq!(
        (r["newly_allowed"].as_u64(), r["newly_denied"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        r["skipped"], 2,
        "the rejected path and the malformed token: {r:#}"
    );
    assert_eq!(r["unchanged"], n - 2);

    // A candidate: `regular` may read /AdminUser, and the public route is no longer public.
    let cand_dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(env.config())
        .unwrap()
        .replace(
            "model = \"model.conf\"",
            &format!(
                "model = \"{}\"",
                env.dir.path().join("model.conf").display()
            ),
        )
        .replace(
            "rsa-jwks.json",
            &env.dir.path().join("rsa-jwks.json").display().to_string(),
        )
        .replace("decisions.log", "off")
        .replace("auth = \"none\"\n", "");
    let cand = cand_dir.path().join("authzd.toml");
    std::fs::write(&cand, text).unwrap();
    std::fs::write(
        cand_dir.path().join("policy.csv"),
        format!("{DEMO_POLICY}p, regular, /AdminUser, GET\n"),
    )
    .unwrap();
    let (code, r) = replay(&cand, &[log.to_str().unwrap()], None);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(
        (r["newly_allowed"].as_u64(), r["newly_denied"].as_u64()),
        (Some(1), Some(1)),
        "{r:#}"
    );
    let flips = r["flips"].as_array().unwrap();
    assert_eq!(flips[0]["route"], "GET /AdminUser");
    assert_eq!(flips[0]["subject"], "bob");
    assert_eq!(
        flips[0]["example"]["after"]["matched_policy"],
        json!(["regular", "/AdminUser", "GET"])
    );
    assert_eq!(flips[1]["route"], "GET /wish-list-service");
    assert_eq!(flips[1]["example"]["after"]["reason"], "token_missing");
    // `diff` predicts the same flip for bob's request.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args([
            "diff",
            "--config",
            env.config().to_str().unwrap(),
            "--candidate",
            cand.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let predicted = d["flips"].as_array().unwrap().iter().any(|f| {
        f["method"] == "GET"
            && f["path"] == "/AdminUser"
            && f["roles"] == json!(["regular"])
            && f["after"]["allowed"] == true
    });
    assert!(predicted, "{d:#}");
    let public_predicted = d["flips"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "/wish-list-service" && f["after"]["allowed"] == false);
    assert!(public_predicted, "{d:#}");

    // Broken lines and a foreign issuer are skipped, never fatal; gzip and stdin read alike.
    let text = std::fs::read_to_string(&log).unwrap();
    let foreign = text
        .lines()
        .next()
        .unwrap()
        .replace(ISS, "https://elsewhere.example");
    let messy = format!("{text}not json\n{{\"half\": \n{foreign}\n");
    let gz = cand_dir.path().join("decisions.log.1.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(messy.as_bytes()).unwrap();
    enc.finish().unwrap();
    let (_, r) = replay(&env.config(), &[gz.to_str().unwrap()], None);
    assert_eq!(r["read"], n + 3, "{r:#}");
    assert_eq!(r["skipped"], 5, "{r:#}");
    assert_eq!(
        r["skipped_because"]["issuer not trusted by the candidate"], 1,
        "{r:#}"
    );
    assert_eq!(r["skipped_because"]["not a decision record"], 2, "{r:#}");
    let (_, from_stdin) = replay(&env.config(), &["-"], Some(messy.as_bytes()));
    assert_eq!(from_stdin["read"], r["read"]);
    assert_eq!(from_stdin["unchanged"], r["unchanged"]);
}
