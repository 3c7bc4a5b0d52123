//! `authzd diff` against a brute-force oracle: for generated pairs of
//! policies (and of route scopes), the requests on which some principal's
//! decision flips, found by deciding every request for every principal of
//! a small universe independently, are exactly the requests `diff` reports;
//! and every flip `diff` reports is one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use authzd::{
    decision::{self, Principal, Request, Target},
    diff,
    policy::snapshot::Snapshot,
};
use proptest::prelude::*;

const ALLOW_MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act\n";
const DENY_MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act\n";

const SUBJECTS: [&str; 4] = ["alice", "bob", "r1", "r2"];
const OBJECTS: [&str; 5] = ["/a", "/b", "/c/:id", "/c/*", "/c/w"];
const ACTS: [&str; 2] = ["GET", "POST"];

type Line = (usize, usize, usize, bool);

fn policy(lines: &[Line], links: &[(usize, usize)], deny: bool) -> String {
    let mut out = String::new();
    for (s, o, a, allow) in lines {
        let eft = if !deny {
            String::new()
        } else if *allow {
            ", allow".into()
        } else {
            ", deny".into()
        };
        out.push_str(&format!(
            "p, {}, {}, {}{eft}\n",
            SUBJECTS[*s], OBJECTS[*o], ACTS[*a]
        ));
    }
    for (from, to) in links {
        out.push_str(&format!(
            "g, {}, {}\n",
            ["alice", "bob", "r1"][*from],
            ["r1", "r2"][*to]
        ));
    }
    out
}

fn write(
    dir: &std::path::Path,
    name: &str,
    model: &str,
    policy: &str,
    scoped: bool,
) -> std::path::PathBuf {
    std::fs::write(dir.join(format!("{name}.conf")), model).unwrap();
    std::fs::write(dir.join(format!("{name}.csv")), policy).unwrap();
    let scopes = if scoped { "scopes = [\"s\"]\n" } else { "" };
    let cfg = format!(
        "[[route]]\nmethod = \"GET\"\npath = \"/a\"\n{scopes}[[route]]\nmethod = \"ANY\"\npath = \"/b\"\n[[route]]\nmethod = \"ANY\"\npath = \"/c/{{proxy+}}\"\n[policy]\nmodel = \"{name}.conf\"\npolicy = \"{name}.csv\"\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).unwrap();
    path
}

fn decide(snap: &Snapshot, p: &Principal, method: &str, path: &str) -> bool {
    let req = Request::bare(Target::Http { method, path });
    decision::decide_for(snap, &req, p).allowed
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn diff_reports_exactly_the_requests_that_flip(
        deny in any::<bool>(),
        before in prop::collection::vec((0..4usize, 0..5usize, 0..2usize, any::<bool>()), 0..6),
        links_before in prop::collection::vec((0..3usize, 0..2usize), 0..3),
        // A mutation: lines dropped, added, or changed; links too; a scope.
        drop in prop::collection::vec(any::<bool>(), 6),
        added in prop::collection::vec((0..4usize, 0..5usize, 0..2usize, any::<bool>()), 0..3),
        links_after in prop::collection::vec((0..3usize, 0..2usize), 0..3),
        scoped in (any::<bool>(), any::<bool>()),
    ) {
        let model = if deny { DENY_MODEL } else { ALLOW_MODEL };
        let after: Vec<Line> = before
            .iter()
            .zip(&drop)
            .filter(|(_, d)| !**d)
            .map(|(l, _)| *l)
            .chain(added.iter().copied())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (policy(&before, &links_before, deny), policy(&after, &links_after, deny));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let a = rt.block_on(Snapshot::load(&write(dir.path(), "a", model, &pa, scoped.0))).unwrap();
        let b = rt.block_on(Snapshot::load(&write(dir.path(), "b", model, &pb, scoped.1))).unwrap();
        let report = diff::diff(&a, model, &pa, &b, model, &pb);

        // The oracle: every subject, every set of claim roles, both scope sets.
        let subjects = ["alice", "bob", "carol", "r1", "r2"];
        let role_sets: [&[&str]; 6] = [&[], &["r1"], &["r2"], &["r1", "r2"], &["alice"], &["alice", "r2"]];
        let mut flipped: BTreeSet<(String, String)> = BTreeSet::new();
        for s in subjects {
            for roles in role_sets {
                for scopes in [vec![], vec!["s".to_string()]] {
                    let p = Principal {
                        subject: s.into(),
                        claim_subject: s.into(),
                        issuer: "i".into(),
                        roles: roles.iter().map(|r| r.to_string()).collect(),
                        scopes,
                        domain: None,
                        attributes: vec![],
                        attribute_missing: None,
                    };
                    for m in ["GET", "POST", "PUT"] {
                        for path in ["/a", "/b", "/c/w", "/c/w/w", "/d"] {
                            if decide(&a, &p, m, path) != decide(&b, &p, m, path) {
                                flipped.insert((m.to_string(), path.to_string()));
                            }
                        }
                    }
                }
            }
        }
        let reported: BTreeSet<(String, String)> = report
            .flips
            .iter()
            .filter(|f| ["GET", "POST", "PUT"].contains(&f.method.as_deref().unwrap()))
            .map(|f| (f.method.clone().unwrap(), f.path.clone().unwrap()))
            .collect();
        prop_assert_eq!(&reported, &flipped, "\nbefore:\n{}\nafter:\n{}\nscoped {:?}", pa, pb, scoped);
        // Every reported flip is one, decided again independently.
        for f in &report.flips {
            let p = Principal {
                subject: f.subject.clone(),
                claim_subject: f.subject.clone(),
                issuer: "i".into(),
                roles: f.roles.clone(),
                scopes: f.scopes.clone(),
                domain: None,
                attributes: vec![],
                attribute_missing: None,
            };
            let (m, path) = (f.method.as_deref().unwrap(), f.path.as_deref().unwrap());
            prop_assert_eq!(decide(&a, &p, m, path), f.before.allowed);
            prop_assert_eq!(decide(&b, &p, m, path), f.after.allowed);
            prop_assert_ne!(f.before.allowed, f.after.allowed);
        }
        // Newly allowed first.
        let firsts: Vec<bool> = report.flips.iter().map(|f| f.after.allowed).collect();
        prop_assert!(firsts.windows(2).all(|w| w[0] >= w[1]), "{:?}", firsts);
    }
}

/// The CLI: Markdown by default, JSON on request; exit 0 without flips, 1 with.
#[test]
fn the_cli_prints_both_formats_and_exits_by_flips() {
    let dir = tempfile::tempdir().unwrap();
    let live = write(dir.path(), "a", ALLOW_MODEL, "p, admin, /a, GET\n", false);
    let cand = write(
        dir.path(),
        "b",
        ALLOW_MODEL,
        "p, admin, /a, GET\np, guest, /a, GET\n",
        false,
    );
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
            .arg("diff")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--config",
        live.to_str().unwrap(),
        "--candidate",
        live.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&[
        "--config",
        live.to_str().unwrap(),
        "--candidate",
        cand.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("**2 newly allowed, 0 newly denied**")
            && text.contains("| **newly allowed** | any user | guest | `GET /a` |"),
        "{text}"
    );
    let out = run(&[
        "--config",
        live.to_str().unwrap(),
        "--candidate",
        cand.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A claim role `guest`, and a user whose subject is `guest`.
    assert_eq!(v["summary"]["newly_allowed"], 2);
    assert_eq!(
        v["flips"][0]["after"]["matched_policy"],
        serde_json::json!(["guest", "/a", "GET"])
    );
    assert_eq!(v["flips"][0]["method"], "GET");
    let out = run(&[
        "--config",
        live.to_str().unwrap(),
        "--candidate",
        "/nonexistent.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
