//! `[shadow]`: a candidate decides beside the live policy and is never
//! enforced. Records carry its answer, counters add up to the shadowed
//! records, `/v1/policy` shows it, its revision is the one it would have if
//! promoted, a candidate that does not load changes nothing, and under load
//! with both policies hot-reloading every shadow answer equals a fresh
//! decision under the candidate revision it names. One test: the counters
//! are per process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashMap, time::Duration};

use authzd::{
    decision::{self, Principal, Request, Target},
    policy::snapshot::Snapshot,
};
use common::*;
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";
/// The candidate: `regular` may also read /AdminUser; admins lose /RegularUser inheritance.
const CANDIDATE: &str =
    "p, admin, /AdminUser, GET\np, regular, /RegularUser, GET\np, regular, /AdminUser, GET\n";

async fn counter(srv: &Running, result: &str) -> u64 {
    srv.counter("authzd_shadow_decisions_total", result).await
}

/// The candidate's revision as the live one, were its files promoted.
async fn promoted(env: &Env, policy_file: &str) -> Snapshot {
    let text = std::fs::read_to_string(env.config()).unwrap();
    let start = text.find("\n[shadow]").unwrap_or(text.len());
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 1 + i);
    let cfg = format!("{}{}", &text[..start], &text[end..]).replace(
        "policy = \"policy.csv\"",
        &format!("policy = \"{policy_file}\""),
    );
    let path = env.write("promoted.toml", &cfg);
    Snapshot::load(&path).await.unwrap()
}

fn fresh(snap: &Snapshot, record: &Value) -> bool {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let p = Principal {
        subject: record["subject"].as_str().unwrap().into(),
        claim_subject: record["subject"].as_str().unwrap().into(),
        issuer: ISS.into(),
        roles: strings(&record["roles"]),
        scopes: strings(&record["scopes"]),
        domain: None,
        attributes: vec![],
        attribute_missing: None,
    };
    let (action, resource) = (
        record["action"].as_str().unwrap(),
        record["resource"].as_str().unwrap(),
    );
    let req = Request::bare(match record["target"] == "resource" {
        true => Target::Resource { resource, action },
        false => Target::Http {
            method: action,
            path: resource,
        },
    });
    decision::decide_for(snap, &req, &p).allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_candidate_is_recorded_counted_and_never_enforced() {
    let (env, rsa) = rsa_env(DEMO_POLICY, "");
    env.write("candidate.csv", CANDIDATE);
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write(
        "authzd.toml",
        &format!(
            "{text}\n[shadow]\nmodel = \"model.conf\"\npolicy = \"candidate.csv\"\nsample = 1.0\n"
        ),
    );
    let srv = Running::start(&env.config()).await;
    let user = |sub: &str, groups: &[&str]| {
        let mut c = claims(ISS, sub);
        c["cognito:groups"] = json!(groups);
        token(&rsa, &c)
    };
    let (admin, regular) = (user("alice", &["admin"]), user("bob", &["regular"]));

    // The live answers are the live policy's.
    let check = |tok: &str, path: &str| json!({"method": "GET", "path": path, "token": tok});
    let bob_admin = srv.check(check(&regular, "/AdminUser")).await;
    assert_eq!(
        bob_admin["allowed"], false,
        "the candidate never enforces: {bob_admin}"
    );
    let alice_regular = srv.check(check(&admin, "/RegularUser")).await;
    assert_eq!(alice_regular["allowed"], true);
    srv.check(check(&admin, "/AdminUser")).await;
    srv.check(json!({"method": "GET", "path": "/AdminUser"}))
        .await;
    assert_eq!(
        (
            counter(&srv, "newly_allowed").await,
            counter(&srv, "newly_denied").await,
            counter(&srv, "same").await
        ),
        (1, 1, 1)
    );
    // Batch items are shadowed like single checks: the record field and the counter.
    let batch: Value = reqwest::Client::new()
        .post(srv.url("/v1/check/batch"))
        .json(&json!({"token": regular, "items": [
            {"resource": "/AdminUser", "action": "GET"},
            {"resource": "/RegularUser", "action": "GET"},
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        batch["results"][0]["allowed"], false,
        "never enforced: {batch}"
    );
    let mut grpc = srv.grpc_client().await;
    grpc.check_batch(authzd::pb::CheckBatchRequest {
        token: regular.clone(),
        items: vec![authzd::pb::CheckBatchItem {
            resource: "/AdminUser".into(),
            action: "GET".into(),
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        (
            counter(&srv, "newly_allowed").await,
            counter(&srv, "newly_denied").await,
            counter(&srv, "same").await
        ),
        (3, 1, 2)
    );
    let status: Value = reqwest::get(srv.url("/v1/policy"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let candidate = promoted(&env, "candidate.csv").await;
    assert_eq!(
        status["shadow"]["revision"],
        candidate.revision.as_ref(),
        "{status}"
    );
    assert_ne!(status["shadow"]["revision"], status["revision"]);
    assert_eq!(status["shadow"]["error"], Value::Null);

    // A candidate that does not load: the live path is untouched, /v1/policy says why.
    env.write("candidate.csv", "p, admin, /AdminUser\n");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status: Value = reqwest::get(srv.url("/v1/policy"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        status["shadow"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("candidate.csv")),
        "{status}"
    );
    let v = srv.check(check(&admin, "/AdminUser")).await;
    assert_eq!(v["allowed"], true);

    // A sample rate: exactly that fraction of the checks is shadowed.
    env.write("candidate.csv", CANDIDATE);
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write("authzd.toml", &text.replace("sample = 1.0", "sample = 0.5"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let total = async || {
        let mut n = 0;
        for result in ["same", "newly_allowed", "newly_denied"] {
            n += counter(&srv, result).await;
        }
        n
    };
    let before_sampled = total().await;
    for _ in 0..10 {
        srv.check(check(&admin, "/AdminUser")).await;
    }
    assert_eq!(total().await - before_sampled, 5);
    env.write("authzd.toml", &text);

    // Under load, both policies reloading: every shadow answer is the candidate's.
    env.write("alt.csv", DEMO_POLICY);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let load = Load::start(
        &[srv.url("/v1/check"), srv.url("/v1/check")],
        &check(&regular, "/AdminUser"),
    );
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if i % 2 == 0 {
            env.write("candidate.csv", DEMO_POLICY);
            env.write("policy.csv", CANDIDATE);
        } else {
            env.write("candidate.csv", CANDIDATE);
            env.write("policy.csv", DEMO_POLICY);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = promoted(&env, "alt.csv").await; // DEMO_POLICY
    env.write("cand2.csv", CANDIDATE);
    let after = promoted(&env, "cand2.csv").await; // CANDIDATE
    let by_revision: HashMap<String, &Snapshot> = [
        (before.revision.to_string(), &before),
        (after.revision.to_string(), &after),
    ]
    .into();
    let answers = load.finish(&[after.revision.as_ref()]).await;
    assert!(answers > 20, "only {answers} answers");
    let mut counted = 0;
    for result in ["same", "newly_allowed", "newly_denied"] {
        counted += counter(&srv, result).await;
    }
    srv.stop().await;
    let records = env.log_lines();
    let mut shadowed = 0;
    for r in &records {
        let Some(s) = r.get("shadow") else { continue };
        shadowed += 1;
        let rev = s["policy_revision"].as_str().unwrap();
        // The candidate file changed mid-run; a record's candidate revision is one of the two texts.
        let Some(snap) = by_revision.get(rev) else {
            panic!("shadow revision {rev} is neither candidate text: {r}")
        };
        assert_eq!(s["allowed"], fresh(snap, r), "{r}");
        let live = by_revision[r["policy_revision"].as_str().unwrap()];
        assert_eq!(r["allowed"], fresh(live, r), "{r}");
    }
    assert_eq!(
        counted, shadowed,
        "every shadowed record is counted, and only those"
    );
    let batch_items = records
        .iter()
        .filter(|r| r["target"] == "resource" && r.get("shadow").is_some())
        .count();
    assert_eq!(batch_items, 3, "each batch item carries its shadow answer");
    assert!(shadowed > 20);
}
