//! `authzd diff` against a brute-force oracle: for generated pairs of
//! configs — policies, route scopes, ownership models whose attribute reads
//! one claim or another, quoted policy fields, `[request]` settings — the
//! requests on which some principal's decision flips, found by deciding
//! every request for every principal of a larger universe independently,
//! are the requests `diff` reports (compared by shape: a path value is a
//! value, whichever one), and every flip `diff` reports is one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use authzd::{
    decision::{self, Principal, Request, Target},
    diff,
    policy::{cases, snapshot::Snapshot},
};
use proptest::prelude::*;

const ALLOW_MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act\n";
const DENY_MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act\n";
/// Ownership: `self` lines hold where the path's `:id` is the caller's `uid`.
const OWNER_MODEL: &str = "[request_definition]\nr = sub, obj, act, uid\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = ((p.sub == \"self\" && keyGet2(r.obj, p.obj, \"id\") == r.uid) || (p.sub != \"self\" && g(r.sub, p.sub))) && keyMatch2(r.obj, p.obj) && r.act == p.act\n";
/// The same with the ownership check removed (every user may write every record).
const OWNER_REMOVED: &str = "[request_definition]\nr = sub, obj, act, uid\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = ((p.sub == \"self\" && r.uid != \"\") || (p.sub != \"self\" && g(r.sub, p.sub))) && keyMatch2(r.obj, p.obj) && r.act == p.act\n";

const SUBJECTS: [&str; 5] = ["alice", "bob", "r1", "r2", "self"];
/// `"/q,1"` is a quoted field: one object holding a comma.
const OBJECTS: [&str; 7] = ["/a", "/b", "/c/:id", "/c/*", "/c/w", "\"/q,1\"", "/A"];
const ACTS: [&str; 2] = ["GET", "POST"];

type Line = (usize, usize, usize, bool);

/// One side of a generated pair.
#[derive(Debug, Clone)]
struct Side {
    model: usize,
    lines: Vec<Line>,
    links: Vec<(usize, usize)>,
    scoped: bool,
    /// The claim `uid` reads (ownership models).
    claim: usize,
    insensitive: bool,
    trailing_distinct: bool,
    normalize: bool,
}

const MODELS: [&str; 4] = [ALLOW_MODEL, DENY_MODEL, OWNER_MODEL, OWNER_REMOVED];
const CLAIMS: [&str; 2] = ["/sub", "/custom:uid"];

fn policy(side: &Side) -> String {
    let deny = side.model == 1;
    let mut out = String::new();
    for (s, o, a, allow) in &side.lines {
        let eft = match (deny, allow) {
            (false, _) => "",
            (true, true) => ", allow",
            (true, false) => ", deny",
        };
        out.push_str(&format!(
            "p, {}, {}, {}{eft}\n",
            SUBJECTS[*s], OBJECTS[*o], ACTS[*a]
        ));
    }
    for (from, to) in &side.links {
        out.push_str(&format!(
            "g, {}, {}\n",
            ["alice", "bob", "r1"][*from],
            ["r1", "r2"][*to]
        ));
    }
    out
}

fn write(dir: &std::path::Path, name: &str, side: &Side) -> (std::path::PathBuf, String, String) {
    let model = MODELS[side.model];
    let policy = policy(side);
    std::fs::write(dir.join(format!("{name}.conf")), model).unwrap();
    std::fs::write(dir.join(format!("{name}.csv")), &policy).unwrap();
    let scopes = if side.scoped {
        "scopes = [\"s\"]\n"
    } else {
        ""
    };
    let attributes = match side.model >= 2 {
        true => format!(
            "[policy.attributes]\nuid = {{ claim = \"{}\" }}\n",
            CLAIMS[side.claim]
        ),
        false => String::new(),
    };
    let request = format!(
        "[request]\npath_case = \"{}\"\ntrailing_slash = \"{}\"\nnoncanonical = \"{}\"\n",
        if side.insensitive {
            "insensitive"
        } else {
            "sensitive"
        },
        if side.trailing_distinct {
            "distinct"
        } else {
            "same"
        },
        if side.normalize {
            "normalize"
        } else {
            "reject"
        },
    );
    let cfg = format!(
        "[[route]]\nmethod = \"GET\"\npath = \"/a\"\n{scopes}[[route]]\nmethod = \"ANY\"\npath = \"/b\"\n[[route]]\nmethod = \"ANY\"\npath = \"/c/{{proxy+}}\"\n[policy]\nmodel = \"{name}.conf\"\npolicy = \"{name}.csv\"\n{attributes}{request}"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).unwrap();
    (path, model.to_string(), policy)
}

fn decide(snap: &Snapshot, p: &Principal, method: &str, path: &str) -> bool {
    let req = Request::bare(Target::Http { method, path });
    decision::decide_for(snap, &req, p).allowed
}

/// A principal as both sides read it: subject, claim roles, scopes, claims.
fn principal(
    snap: &Snapshot,
    subject: &str,
    roles: &[String],
    scopes: &[String],
    claims: &BTreeMap<String, String>,
) -> Principal {
    let mut map = serde_json::Map::new();
    for (k, v) in claims {
        map.insert(k.trim_start_matches('/').to_string(), v.clone().into());
    }
    cases::stated(snap, subject, roles, scopes, map)
}

/// Path values, whichever: what a request's shape abstracts away.
const VALUES: [&str; 10] = [
    "w",
    "w2",
    "zz",
    "alice",
    "bob",
    "r1",
    "r2",
    "self",
    "authzd-nobody",
    "id",
];

/// `(method, path as side a decides it, path as side b decides it)`, with
/// every value segment as `*`: two spellings both sides decide as the same
/// canonical path (`/a/` and `/a` by default) are one request.
fn shape(a: &Snapshot, b: &Snapshot, method: &str, path: &str) -> (String, String, String) {
    let abstracted =
        |snap: &Snapshot| match authzd::request::canonical_path(path, &snap.config.request) {
            Err(_) => "(refused)".to_string(),
            Ok(c) => c
                .split('/')
                .map(|s| match VALUES.contains(&s.to_lowercase().as_str()) {
                    true => "*",
                    false => s,
                })
                .collect::<Vec<_>>()
                .join("/"),
        };
    (method.to_string(), abstracted(a), abstracted(b))
}

fn side() -> impl Strategy<Value = Side> {
    (
        0..4usize,
        prop::collection::vec((0..5usize, 0..7usize, 0..2usize, any::<bool>()), 0..6),
        prop::collection::vec((0..3usize, 0..2usize), 0..3),
        any::<bool>(),
        0..2usize,
        prop::sample::select(vec![
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (false, false, true),
        ]),
    )
        .prop_map(
            |(model, lines, links, scoped, claim, (insensitive, trailing_distinct, normalize))| {
                Side {
                    model,
                    lines,
                    links,
                    scoped,
                    claim,
                    insensitive,
                    trailing_distinct,
                    normalize,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn diff_reports_exactly_the_requests_that_flip(
        before in side(),
        // A mutation of `before`: lines dropped and added, links, and —
        // sometimes — the model, the claim, a scope, a request setting.
        drop in prop::collection::vec(any::<bool>(), 6),
        added in prop::collection::vec((0..5usize, 0..7usize, 0..2usize, any::<bool>()), 0..3),
        other in side(),
        change in prop::sample::select(vec!["lines", "lines", "model", "claim", "settings", "scope"]),
    ) {
        let mut after = before.clone();
        after.lines = before.lines.iter().zip(&drop).filter(|(_, d)| !**d).map(|(l, _)| *l).chain(added.iter().copied()).collect();
        after.links = other.links.clone();
        match change {
            // Within the same family, so the two sides stay comparable.
            "model" => after.model = (before.model / 2) * 2 + (other.model % 2),
            "claim" => after.claim = other.claim,
            "settings" => (after.insensitive, after.trailing_distinct, after.normalize) = (other.insensitive, other.trailing_distinct, other.normalize),
            "scope" => after.scoped = other.scoped,
            _ => {}
        }
        if before.model >= 2 { after.model = after.model.max(2); } else { after.model = after.model.min(1); }
        let dir = tempfile::tempdir().unwrap();
        let (ca, ma, pa) = write(dir.path(), "a", &before);
        let (cb, mb, pb) = write(dir.path(), "b", &after);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let a = rt.block_on(Snapshot::load(&ca));
        let b = rt.block_on(Snapshot::load(&cb));
        // A generated side the loader refuses (a route-syntax object, say)
        // is no pair to compare.
        let (Ok(a), Ok(b)) = (a, b) else { return Ok(()) };
        let report = diff::diff(&a, &ma, &pa, &b, &mb, &pb);

        // The oracle: more subjects, role sets, claim values and path
        // spellings than `diff` tries, each decided on its own.
        // Every name the policies use, as a subject and as a claim role, and one they do not.
        let subjects = ["alice", "bob", "carol", "r1", "r2", "self"];
        let role_sets: [&[&str]; 7] = [&[], &["alice"], &["bob"], &["r1"], &["r2"], &["r1", "r2"], &["self"]];
        // Claims matter only to the ownership models, scopes only to a scoped route.
        let uids: &[Option<&str>] = match before.model >= 2 {
            true => &[None, Some("alice"), Some("zz")],
            false => &[None],
        };
        let scope_sets: Vec<Vec<String>> = match before.scoped || after.scoped {
            true => vec![vec![], vec!["s".to_string()]],
            false => vec![vec![]],
        };
        // Each path in every spelling `[request]` settings tell apart.
        let paths: Vec<String> = ["/a", "/A", "/b", "/c/w", "/c/alice", "/c/zz", "/c/w/w", "/d", "/q,1"]
            .iter()
            .flat_map(|p| {
                [
                    p.to_string(),
                    p.to_uppercase(),
                    format!("{p}/"),
                    format!("/{p}"),
                    format!("/%{:02X}{}", p.as_bytes()[1], &p[2..]),
                ]
            })
            .collect();
        let mut universe = BTreeSet::new();
        let mut flipped = BTreeSet::new();
        for s in subjects {
            for roles in role_sets {
                let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
                for scopes in &scope_sets {
                    for uid in uids {
                        let claims: BTreeMap<String, String> = uid
                            .map(|v| ("/custom:uid".to_string(), v.to_string()))
                            .into_iter()
                            .collect();
                        let (p, q) = (
                            principal(&a, s, &roles, scopes, &claims),
                            principal(&b, s, &roles, scopes, &claims),
                        );
                        for m in ["GET", "POST"] {
                            for path in &paths {
                                universe.insert(shape(&a, &b, m, path));
                                if decide(&a, &p, m, path) != decide(&b, &q, m, path) {
                                    flipped.insert(shape(&a, &b, m, path));
                                }
                            }
                        }
                    }
                }
            }
        }
        let reported: BTreeSet<(String, String, String)> = report
            .flips
            .iter()
            .filter_map(|f| Some(shape(&a, &b, f.method.as_deref()?, f.path.as_deref()?)))
            .filter(|s| universe.contains(s))
            .collect();
        prop_assert_eq!(&reported, &flipped, "\nbefore {:?}:\n{}\nafter {:?}:\n{}", before, pa, after, pb);
        // Every reported flip is one, decided again independently.
        for f in &report.flips {
            let (p, q) = (
                principal(&a, &f.subject, &f.roles, &f.scopes, &f.claims),
                principal(&b, &f.subject, &f.roles, &f.scopes, &f.claims),
            );
            let (m, path) = (f.method.as_deref().unwrap(), f.path.as_deref().unwrap());
            prop_assert_eq!(decide(&a, &p, m, path), f.before.allowed, "{:?}", f);
            prop_assert_eq!(decide(&b, &q, m, path), f.after.allowed, "{:?}", f);
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
    let plain = Side {
        model: 0,
        lines: vec![],
        links: vec![],
        scoped: false,
        claim: 0,
        insensitive: false,
        trailing_distinct: false,
        normalize: false,
    };
    let live = write(dir.path(), "a", &plain).0;
    std::fs::write(dir.path().join("a.csv"), "p, admin, /a, GET\n").unwrap();
    let cand = write(dir.path(), "b", &plain).0;
    std::fs::write(
        dir.path().join("b.csv"),
        "p, admin, /a, GET\np, guest, /a, GET\n",
    )
    .unwrap();
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
            && text.contains("| **newly allowed** | any user | guest | GET /a |"),
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

/// The changes a reviewer would try on the shipped configs, each of which
/// `diff` once called "No decision changes": every one now flips, and the
/// unchanged config does not.
#[test]
fn the_changes_that_used_to_pass_unseen_flip() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // A copy of a shipped config's directory, with `edit` applied to one file.
    let copy = |dir: &str, config: &str, edits: &[(&str, &str, &str)]| {
        let tmp = tempfile::tempdir().unwrap();
        let src = root.join(dir);
        for f in [config, "model.conf", "policy.csv"] {
            let from = match f {
                "model.conf" | "policy.csv" if dir.is_empty() => root.join("policies").join(f),
                _ => src.join(f),
            };
            let mut text = std::fs::read_to_string(from).unwrap();
            for (file, a, b) in edits {
                if *file == f {
                    assert!(text.contains(a), "{a}");
                    text = text.replacen(a, b, 1);
                }
            }
            let text = text
                .replace("policies/", "")
                .replace(
                    "\"examples/demo/jwks.json\"",
                    &format!("\"{}\"", root.join("examples/demo/jwks.json").display()),
                )
                .replace(
                    "\"../../demo/jwks.json\"",
                    &format!("\"{}\"", root.join("examples/demo/jwks.json").display()),
                );
            std::fs::write(tmp.path().join(f), text).unwrap();
        }
        tmp
    };
    let diff = |a: &std::path::Path, b: &std::path::Path| -> (i32, serde_json::Value) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
            .args([
                "diff",
                "--config",
                a.to_str().unwrap(),
                "--candidate",
                b.to_str().unwrap(),
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap(), v)
    };
    let demo = copy("", "authzd.toml", &[]);
    let live = demo.path().join("authzd.toml");
    assert_eq!(diff(&live, &live).0, 0);
    for (name, edits, newly_allowed) in [
        (
            "the ownership check removed",
            &[(
                "model.conf",
                "keyGet2(r.obj, p.obj, \"id\") == r.uid",
                "r.uid != \"\"",
            )][..],
            true,
        ),
        (
            "a quoted field with a comma",
            &[(
                "policy.csv",
                "p, admin, /users/:id, GET",
                "p, admin, /users/:id, GET\np, regular, \"/internal/*\", DELETE",
            )],
            true,
        ),
        (
            "paths folded to lower case",
            &[(
                "authzd.toml",
                "[decision_log]",
                "[request]\npath_case = \"insensitive\"\n\n[decision_log]",
            )],
            true,
        ),
        (
            "the attribute read from another claim",
            &[(
                "authzd.toml",
                "uid = { claim = \"/sub\" }",
                "uid = { claim = \"/email\" }",
            )],
            true,
        ),
    ] {
        let cand = copy("", "authzd.toml", edits);
        let (code, v) = diff(&live, &cand.path().join("authzd.toml"));
        assert_eq!(code, 1, "{name}: {v:#}");
        if newly_allowed {
            assert!(
                v["summary"]["newly_allowed"].as_u64().unwrap() > 0,
                "{name}: {v:#}"
            );
        }
    }
    // The tenant example: the path's tenant compared with `org_id` instead.
    let tenants = copy("examples/attributes/tenants", "authzd.toml", &[]);
    let cand = copy(
        "examples/attributes/tenants",
        "authzd.toml",
        &[(
            "authzd.toml",
            "tenant = { claim = \"/custom:tenant\" }",
            "tenant = { claim = \"/org_id\" }",
        )],
    );
    let (code, v) = diff(
        &tenants.path().join("authzd.toml"),
        &cand.path().join("authzd.toml"),
    );
    assert_eq!(code, 1, "{v:#}");
    let flip = &v["flips"][0];
    assert!(
        flip["claims"].is_object(),
        "a flip names the claims it held: {flip:#}"
    );
    // The Markdown of a hostile line cannot forge a row.
    let hostile = copy(
        "",
        "authzd.toml",
        &[(
            "policy.csv",
            "p, admin, /users/:id, GET",
            "p, admin, /users/:id, GET\np, x | newly denied | ok `y`, /AdminUser, GET",
        )],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args([
            "diff",
            "--config",
            live.to_str().unwrap(),
            "--candidate",
            hostile.path().join("authzd.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let md = String::from_utf8(out.stdout).unwrap();
    for row in md.lines().filter(|l| l.starts_with("| **newly")) {
        // Six cells: seven unescaped pipes.
        let pipes = row
            .match_indices('|')
            .filter(|(i, _)| *i == 0 || row.as_bytes()[i - 1] != b'\\')
            .count();
        assert_eq!(pipes, 7, "{row}");
    }
}
