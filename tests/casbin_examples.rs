//! Every model in casbin-rs's own `examples/` (copied into
//! `tests/fixtures/casbin-examples/`, Apache-2.0, from casbin-rs 2.20), with
//! its example policy: which evaluator authzd gives it, and, for every one
//! that loads, every request over the values its policy names answered as
//! the reference casbin-rs `Enforcer` answers it (decision and matched line).
//! `docs/pipeline.md` lists the same table for users.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/casbin.rs"]
mod casbin_fixtures;
use casbin_fixtures::{EXAMPLES, decided, fixture};

use std::collections::BTreeSet;

use authzd::policy::{Policy, Query};
use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};

/// Models authzd cannot take, and why.
const OUT_OF_SCOPE: &[(&str, &str, &str)] = &[
    // `r.obj.owner`: request values are structs, not the strings authzd passes.
    ("abac_model.conf", "basic_policy.csv", "`.owner`"),
    // `eft = indeterminate`: Casbin skips such a line, so the text says a
    // rule that never applies; refused at load.
    (
        "priority_model.conf",
        "priority_indeterminate_policy.csv",
        "`eft` is `indeterminate`",
    ),
    // authzd decides over (subject, resource, action): a request definition
    // without one of them would silently ignore it, so it is refused at load.
    (
        "basic_without_resources_model.conf",
        "basic_without_resources_policy.csv",
        "must have `sub`, `obj` and `act`",
    ),
    (
        "basic_without_users_model.conf",
        "basic_without_users_policy.csv",
        "must have `sub`, `obj` and `act`",
    ),
    // `keyMatchCustom` exists only where an application registers it.
    (
        "keymatch_custom_model.conf",
        "keymatch_policy.csv",
        "keyMatchCustom",
    ),
];

/// Every value the policy's lines name, per column, plus one nobody names.
fn columns(policy: &str) -> Vec<BTreeSet<String>> {
    let mut cols: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 6];
    for line in policy.lines() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 2 || fields[0].starts_with('#') {
            continue;
        }
        for (i, f) in fields[1..].iter().enumerate() {
            // Subjects and roles share a namespace: every name can be a subject.
            cols[i].insert(f.to_string());
            cols[0].insert(f.to_string());
        }
    }
    for c in &mut cols {
        c.insert("nobody".into());
    }
    cols
}

#[tokio::test]
async fn casbin_examples_run_on_the_indexed_evaluator_and_answer_as_casbin() {
    for (model_file, policy_file) in EXAMPLES {
        let model = fixture(model_file);
        let policy = fixture(policy_file);
        let loaded = Policy::from_text(&model, model_file, &policy, policy_file).await;
        let ours =
            loaded.unwrap_or_else(|e| panic!("{model_file} + {policy_file} does not load: {e}"));
        assert_eq!(ours.evaluator, "indexed", "{model_file} + {policy_file}");
        let m = DefaultModel::from_str(&model).await.unwrap();
        let reference = Enforcer::new(m, StringAdapter::new(policy.clone()))
            .await
            .unwrap();
        let r_tokens = reference
            .get_model()
            .get_model()
            .get("r")
            .and_then(|r| r.get("r"))
            .map(|a| a.tokens.clone())
            .unwrap();
        let cols = columns(&policy);
        // The policy's columns in `p` order line up with `r` for all these models.
        let sets: Vec<Vec<String>> = r_tokens
            .iter()
            .enumerate()
            .map(|(i, _)| cols[i].iter().cloned().collect())
            .collect();
        let mut n = 0;
        let mut combo = vec![0usize; sets.len()];
        loop {
            let vals: Vec<&str> = combo
                .iter()
                .enumerate()
                .map(|(i, k)| sets[i][*k].as_str())
                .collect();
            let get = |name: &str| {
                r_tokens
                    .iter()
                    .position(|t| t == &format!("r_{name}"))
                    .map_or("", |i| vals[i])
            };
            let got = ours.enforce(&Query {
                subject: get("sub"),
                roles: &[],
                domain: get("dom"),
                resource: get("obj"),
                action: get("act"),
                attributes: &[],
                unfolded: None,
            });
            // casbin-rs panics on some inputs (ipMatch on a non-address).
            let want = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                reference.enforce_ex(vals.clone())
            }));
            let at = || format!("{model_file} + {policy_file}: request {vals:?}");
            match (got, want) {
                (Ok(g), Ok(Ok((allowed, lines)))) => {
                    let line = decided(allowed, lines);
                    assert_eq!((g.allowed, &g.matched), (allowed, &line), "{}", at());
                }
                // Where casbin-rs fails, authzd fails too (and the check denies).
                (Err(_), Err(_) | Ok(Err(_))) => {}
                (g, w) => panic!("{}: authzd {g:?}, casbin-rs {w:?}", at()),
            }
            n += 1;
            // Next combination.
            let mut i = 0;
            loop {
                if i == combo.len() {
                    break;
                }
                combo[i] += 1;
                if combo[i] < sets[i].len() {
                    break;
                }
                combo[i] = 0;
                i += 1;
            }
            if i == combo.len() {
                break;
            }
        }
        assert!(n > 4, "{model_file}: only {n} requests");
    }
}

#[tokio::test]
async fn out_of_scope_examples_say_why() {
    for (model_file, policy_file, why) in OUT_OF_SCOPE {
        let model = fixture(model_file);
        let policy = fixture(policy_file);
        match Policy::from_text(&model, model_file, &policy, policy_file).await {
            Ok(p) => assert!(
                p.evaluator.contains(why),
                "{model_file}: evaluator `{}`",
                p.evaluator
            ),
            Err(e) => assert!(e.to_string().contains(why), "{model_file}: {e}"),
        }
    }
}

/// `ipMatch` rules are indexed only for a request value that is an IP
/// address: anything else fails in casbin-rs, and must fail here too rather
/// than skip every rule (under deny-override, skipping would allow).
#[tokio::test]
async fn ip_match_with_a_bad_address_fails_rather_than_skipping_rules() {
    let model = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[policy_effect]\ne = !some(where (p.eft == deny))\n[matchers]\nm = ipMatch(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n";
    let mut policy = String::new();
    for i in 0..200 {
        policy += &format!("p, 10.{i}.0.0/16, /r{i}, GET, deny\n");
    }
    let ours = Policy::from_text(model, "m", &policy, "p").await.unwrap();
    assert_eq!(ours.evaluator, "indexed");
    let reference = Enforcer::new(
        DefaultModel::from_str(model).await.unwrap(),
        StringAdapter::new(policy.clone()),
    )
    .await
    .unwrap();
    for (sub, obj) in [
        ("10.7.1.1", "/r7"),
        ("10.7.1.1", "/r8"),
        ("192.168.0.1", "/r7"),
        ("::1", "/r1"),
        ("not-an-ip", "/r7"),
        ("not-an-ip", "/nothing"),
        ("10.7.1.1/8", "/r7"),
    ] {
        let got = ours.enforce(&Query {
            subject: sub,
            roles: &[],
            domain: "",
            resource: obj,
            action: "GET",
            attributes: &[],
            unfolded: None,
        });
        let want = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reference.enforce_ex(vec![sub, obj, "GET"])
        }));
        match (got, want) {
            (Ok(g), Ok(Ok((allowed, _)))) => assert_eq!(g.allowed, allowed, "{sub} {obj}"),
            (Err(_), Err(_) | Ok(Err(_))) => {}
            (g, w) => panic!("{sub} {obj}: authzd {g:?}, casbin-rs {w:?}"),
        }
    }
}
