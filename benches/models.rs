//! The policy step for each casbin-rs example model, scaled to 10k and 100k
//! rules (criterion). RBAC also runs with role chains of depth 1, 5 and 10
//! and principals holding 1, 10 and 300 claim roles. Every benchmarked
//! query's answer is asserted first; the evaluator each model gets is printed.
//!
//! Run: `cargo bench --bench models` (add `-- --quick` for a fast pass).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/casbin.rs"]
mod casbin_fixtures;
use casbin_fixtures::fixture as example;

use std::{fmt::Write as _, hint::black_box, time::Duration};

use std::collections::BTreeMap;

use authzd::policy::{LoadOptions, Policy, Query, indexed::Matching};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// (label, subject, claim roles, domain, object, action, allowed).
type Case = (
    &'static str,
    String,
    Vec<String>,
    String,
    String,
    &'static str,
    bool,
);

/// A scaled policy and the queries to time: (label, subject, claim roles, domain, object, action, allowed).
struct Scaled {
    policy: String,
    queries: Vec<Case>,
}

fn q(
    label: &'static str,
    sub: impl Into<String>,
    roles: Vec<String>,
    dom: &str,
    obj: impl Into<String>,
    act: &'static str,
    allowed: bool,
) -> Case {
    (
        label,
        sub.into(),
        roles,
        dom.to_string(),
        obj.into(),
        act,
        allowed,
    )
}

/// `n` rules for the model in `file`.
fn scaled(file: &str, n: usize) -> Scaled {
    let mut p = String::new();
    let last = n - 1;
    let queries = match file {
        "basic_model.conf" | "basic_with_root_model.conf" => {
            for i in 0..n {
                writeln!(p, "p, user{i}, /res{i}, GET").unwrap();
            }
            let mut v = vec![
                q(
                    "allow",
                    format!("user{last}"),
                    vec![],
                    "",
                    format!("/res{last}"),
                    "GET",
                    true,
                ),
                q(
                    "deny",
                    format!("user{last}"),
                    vec![],
                    "",
                    "/res0",
                    "GET",
                    false,
                ),
            ];
            if file == "basic_with_root_model.conf" {
                v.push(q("root", "root", vec![], "", "/anything", "DELETE", true));
            }
            v
        }
        "keymatch_model.conf" => {
            for i in 0..n {
                writeln!(p, "p, user{i}, /res{i}/*, (GET)|(POST)").unwrap();
            }
            vec![
                q(
                    "allow",
                    format!("user{last}"),
                    vec![],
                    "",
                    format!("/res{last}/a/b"),
                    "POST",
                    true,
                ),
                q(
                    "deny",
                    format!("user{last}"),
                    vec![],
                    "",
                    "/res0/a",
                    "GET",
                    false,
                ),
            ]
        }
        "keymatch2_model.conf" => {
            for i in 0..n {
                writeln!(p, "p, user{i}, /res{i}/:id, GET").unwrap();
            }
            vec![
                q(
                    "allow",
                    format!("user{last}"),
                    vec![],
                    "",
                    format!("/res{last}/42"),
                    "GET",
                    true,
                ),
                q(
                    "deny",
                    format!("user{last}"),
                    vec![],
                    "",
                    "/res0/42",
                    "GET",
                    false,
                ),
            ]
        }
        "ipmatch_model.conf" => {
            for i in 0..n {
                writeln!(p, "p, 10.{}.{}.0/24, /res{i}, GET", i / 256 % 256, i % 256).unwrap();
            }
            vec![
                q(
                    "allow",
                    format!("10.{}.{}.7", last / 256 % 256, last % 256),
                    vec![],
                    "",
                    format!("/res{last}"),
                    "GET",
                    true,
                ),
                q("deny", "192.168.0.1", vec![], "", "/res0", "GET", false),
            ]
        }
        "priority_model.conf" => {
            for i in 0..n {
                let eft = if i % 2 == 0 { "allow" } else { "deny" };
                writeln!(p, "p, role{}, /res{}, GET, {eft}", i % 100, i / 2).unwrap();
            }
            writeln!(p, "g, alice, role{}", last % 100).unwrap();
            vec![
                q(
                    "deny",
                    "alice",
                    vec![],
                    "",
                    format!("/res{}", last / 2),
                    "GET",
                    false,
                ),
                q("none", "alice", vec![], "", "/nothing", "GET", false),
            ]
        }
        "rbac_model.conf"
        | "rbac_with_deny_model.conf"
        | "rbac_with_not_deny_model.conf"
        | "rbac_model_matcher_using_in_op.conf" => {
            let eft = file.contains("deny");
            for i in 0..n {
                if eft {
                    writeln!(p, "p, role{}, /res{i}, GET, allow", i % 100).unwrap();
                } else {
                    writeln!(p, "p, role{}, /res{i}, GET", i % 100).unwrap();
                }
            }
            if eft {
                writeln!(p, "p, role{}, /res{last}, GET, deny", (last + 1) % 100).unwrap();
            }
            writeln!(p, "g, alice, role{}", last % 100).unwrap();
            let mut v = vec![q(
                "allow",
                "alice",
                vec![],
                "",
                format!("/res{last}"),
                "GET",
                true,
            )];
            // Deny-override allows what no rule denies: its deny is the deny rule's.
            if !file.contains("not_deny") {
                v.push(q("deny", "alice", vec![], "", "/res0", "GET", false));
            }
            if eft {
                v.push(q(
                    "deny_rule",
                    "bob",
                    vec![
                        format!("role{}", last % 100),
                        format!("role{}", (last + 1) % 100),
                    ],
                    "",
                    format!("/res{last}"),
                    "GET",
                    false,
                ));
            }
            if file.contains("in_op") {
                v.push(q("in_list", "nobody", vec![], "", "data2", "GET", true));
            }
            v
        }
        "rbac_with_domains_model.conf" => {
            for i in 0..n {
                writeln!(p, "p, role{}, dom{}, /res{i}, GET", i % 100, i % 50).unwrap();
            }
            writeln!(p, "g, alice, role{}, dom{}", last % 100, last % 50).unwrap();
            vec![
                q(
                    "allow",
                    "alice",
                    vec![],
                    &format!("dom{}", last % 50),
                    format!("/res{last}"),
                    "GET",
                    true,
                ),
                q(
                    "deny",
                    "alice",
                    vec![],
                    "dom0",
                    format!("/res{last}"),
                    "GET",
                    false,
                ),
            ]
        }
        "rbac_with_resource_roles_model.conf" => {
            for i in 0..n {
                writeln!(p, "p, role{}, group{i}, GET", i % 100).unwrap();
                writeln!(p, "g2, /res{i}, group{i}").unwrap();
            }
            writeln!(p, "g, alice, role{}", last % 100).unwrap();
            vec![
                q(
                    "allow",
                    "alice",
                    vec![],
                    "",
                    format!("/res{last}"),
                    "GET",
                    true,
                ),
                q("deny", "alice", vec![], "", "/res0", "GET", false),
            ]
        }
        // `[policy] role_matching = { g2 = "keyMatch2" }`: one object pattern per group.
        "rbac_with_pattern_model.conf" => {
            for i in 0..n {
                writeln!(p, "p, role{}, group{i}, GET", i % 100).unwrap();
                writeln!(p, "g2, /res{i}/:id, group{i}").unwrap();
            }
            writeln!(p, "g, alice, role{}", last % 100).unwrap();
            vec![
                q(
                    "allow",
                    "alice",
                    vec![],
                    "",
                    format!("/res{last}/7"),
                    "GET",
                    true,
                ),
                q("deny", "alice", vec![], "", "/res0/7", "GET", false),
            ]
        }
        // `domain_matching = { g = "keyMatch" }`: alice's role in every domain.
        "rbac_with_pattern_domain_model.conf" => {
            for i in 0..n {
                writeln!(p, "p, role{}, dom{}, /res{i}, read", i % 100, i % 50).unwrap();
            }
            writeln!(p, "g, alice, role{}, *", last % 100).unwrap();
            vec![
                q(
                    "allow",
                    "alice",
                    vec![],
                    &format!("dom{}", last % 50),
                    format!("/res{last}"),
                    "read",
                    true,
                ),
                q("deny", "alice", vec![], "dom0", "/res0", "read", false),
            ]
        }
        // `role_matching = { g = "keyMatch" }`: every `user-…` holds a role.
        "rbac_basic_role_model.conf" => {
            for i in 0..n {
                writeln!(p, "p, role{}, /res{i}, GET", i % 100).unwrap();
            }
            writeln!(p, "g, user-*, role{}", last % 100).unwrap();
            vec![
                q(
                    "allow",
                    "user-42",
                    vec![],
                    "",
                    format!("/res{last}"),
                    "GET",
                    true,
                ),
                q("deny", "user-42", vec![], "", "/res0", "GET", false),
            ]
        }
        other => panic!("no generator for {other}"),
    };
    Scaled { policy: p, queries }
}

const MODELS: &[&str] = &[
    "basic_model.conf",
    "basic_with_root_model.conf",
    "keymatch_model.conf",
    "keymatch2_model.conf",
    "ipmatch_model.conf",
    "priority_model.conf",
    "rbac_model.conf",
    "rbac_with_deny_model.conf",
    "rbac_with_not_deny_model.conf",
    "rbac_model_matcher_using_in_op.conf",
    "rbac_with_domains_model.conf",
    "rbac_with_resource_roles_model.conf",
    "rbac_with_pattern_model.conf",
    "rbac_with_pattern_domain_model.conf",
    "rbac_basic_role_model.conf",
];

/// The role managers' pattern matching each model is benchmarked with.
fn options(file: &str) -> LoadOptions {
    type Pairs = &'static [(&'static str, &'static str)];
    let (role, domain): (Pairs, Pairs) = match file {
        "rbac_with_pattern_model.conf" => (&[("g2", "keyMatch2")], &[]),
        "rbac_with_pattern_domain_model.conf" => (&[], &[("g", "keyMatch")]),
        "rbac_basic_role_model.conf" => (&[("g", "keyMatch")], &[]),
        _ => (&[], &[]),
    };
    let map = |e: &[(&str, &str)]| -> BTreeMap<String, String> {
        e.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    LoadOptions {
        matching: Matching::new(&map(role), &map(domain)).unwrap(),
        ..LoadOptions::default()
    }
}

fn load(rt: &tokio::runtime::Runtime, model: &str, policy: &str, opts: LoadOptions) -> Policy {
    rt.block_on(Policy::from_text_for(
        model, "model", policy, "policy", opts,
    ))
    .unwrap()
}

fn bench_models(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("model");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for file in MODELS {
        let model = example(file);
        for n in [10_000usize, 100_000] {
            let s = scaled(file, n);
            let started = std::time::Instant::now();
            let policy = load(&rt, &model, &s.policy, options(file));
            eprintln!(
                "{file} at {n} rules: {}, loaded in {:?}",
                policy.evaluator,
                started.elapsed()
            );
            for (label, sub, roles, dom, obj, act, allowed) in &s.queries {
                let query = Query {
                    subject: sub,
                    roles,
                    domain: dom,
                    resource: obj,
                    action: act,
                    attributes: &[],
                    unfolded: None,
                };
                assert_eq!(
                    policy.enforce(&query).unwrap().allowed,
                    *allowed,
                    "{file} {n} {label}"
                );
                let name = format!(
                    "{}/{label}",
                    file.trim_end_matches(".conf").trim_end_matches("_model")
                );
                group.bench_with_input(BenchmarkId::new(name, n), &query, |b, q| {
                    b.iter(|| policy.enforce(black_box(q)).unwrap())
                });
            }
        }
    }
    group.finish();
}

/// RBAC with a role chain of `depth` links above the role the policy names,
/// and `claims` claim roles on the principal (one of them the chain's start).
fn bench_depth(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = example("rbac_model.conf");
    let mut group = c.benchmark_group("rbac_depth");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let n = 100_000;
    for depth in [1usize, 5, 10] {
        let mut p = String::new();
        for i in 0..n {
            writeln!(p, "p, role{}, /res{i}, GET", i % 1000).unwrap();
        }
        // chain0 → chain1 → … → role999 (the last link reaches the granted role).
        for d in 0..depth - 1 {
            writeln!(p, "g, chain{d}, chain{}", d + 1).unwrap();
        }
        writeln!(p, "g, chain{}, role{}", depth - 1, (n - 1) % 1000).unwrap();
        let policy = load(&rt, &model, &p, LoadOptions::default());
        for claims in [1usize, 10, 300] {
            // Claim roles are one link from the subject: a chain of `depth` links
            // above the claim is within Casbin's limit of 10 only up to depth 9.
            let mut roles: Vec<String> = (1..claims).map(|k| format!("other{k}")).collect();
            roles.push("chain0".into());
            let reachable = depth < 10;
            for (label, obj, allowed) in [
                ("allow", format!("/res{}", n - 1), reachable),
                ("deny", "/res0".to_string(), false),
            ] {
                let query = Query {
                    subject: "alice",
                    roles: &roles,
                    domain: "",
                    resource: &obj,
                    action: "GET",
                    attributes: &[],
                    unfolded: None,
                };
                assert_eq!(
                    policy.enforce(&query).unwrap().allowed,
                    allowed,
                    "{depth} {claims} {label}"
                );
                group.bench_with_input(
                    BenchmarkId::new(format!("depth{depth}/claims{claims}/{label}"), n),
                    &query,
                    |b, q| b.iter(|| policy.enforce(black_box(q)).unwrap()),
                );
            }
        }
    }
    group.finish();
}

/// (label, subject, claim roles, object, action, the one attribute, allowed).
type AttrCase = (
    &'static str,
    String,
    Vec<String>,
    String,
    &'static str,
    String,
    bool,
);

/// The two attribute examples (`examples/attributes/`), scaled: per-user
/// grants (one `p` line per user, as per-object access lists grow) next to
/// the example's own lines, at 10k and 100k rules. The ownership rule and
/// the tenant rule are each timed allowing and denying.
fn bench_attributes(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/attributes");
    let mut group = c.benchmark_group("attributes");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for example in ["ownership", "tenants"] {
        let model = std::fs::read_to_string(root.join(example).join("model.conf")).unwrap();
        let own = std::fs::read_to_string(root.join(example).join("policy.csv")).unwrap();
        for n in [10_000usize, 100_000] {
            let mut p = own.clone();
            for i in 0..n {
                match example {
                    "ownership" => writeln!(p, "p, user:u{i}, /docs/{i}, GET").unwrap(),
                    _ => writeln!(p, "p, user:u{i}, /tenants/:tenant/docs/{i}, GET").unwrap(),
                }
            }
            let policy = load(&rt, &model, &p, LoadOptions::default());
            eprintln!("{example} at {n} rules: {}", policy.evaluator);
            let last = n - 1;
            let cases: Vec<AttrCase> = match example {
                "ownership" => vec![
                    (
                        "own/allow",
                        "user:alice".into(),
                        vec![],
                        "/users/alice".into(),
                        "PUT",
                        "alice".into(),
                        true,
                    ),
                    (
                        "own/deny",
                        "user:alice".into(),
                        vec![],
                        "/users/bob".into(),
                        "PUT",
                        "alice".into(),
                        false,
                    ),
                    (
                        "grant/allow",
                        format!("user:u{last}"),
                        vec![],
                        format!("/docs/{last}"),
                        "GET",
                        format!("u{last}"),
                        true,
                    ),
                    (
                        "grant/deny",
                        format!("user:u{last}"),
                        vec![],
                        "/docs/0".into(),
                        "GET",
                        format!("u{last}"),
                        false,
                    ),
                ],
                _ => vec![
                    (
                        "tenant/allow",
                        "user:alice".into(),
                        vec!["member".into()],
                        "/tenants/acme/projects/p1".into(),
                        "GET",
                        "acme".into(),
                        true,
                    ),
                    (
                        "tenant/deny",
                        "user:alice".into(),
                        vec!["member".into()],
                        "/tenants/globex/projects/p1".into(),
                        "GET",
                        "acme".into(),
                        false,
                    ),
                    (
                        "grant/allow",
                        format!("user:u{last}"),
                        vec![],
                        format!("/tenants/acme/docs/{last}"),
                        "GET",
                        "acme".into(),
                        true,
                    ),
                    (
                        "grant/deny",
                        format!("user:u{last}"),
                        vec![],
                        format!("/tenants/globex/docs/{last}"),
                        "GET",
                        "acme".into(),
                        false,
                    ),
                ],
            };
            for (label, sub, roles, obj, act, attr, allowed) in &cases {
                let attributes = vec![attr.clone()];
                let query = Query {
                    subject: sub,
                    roles,
                    domain: "",
                    resource: obj,
                    action: act,
                    attributes: &attributes,
                    unfolded: None,
                };
                assert_eq!(
                    policy.enforce(&query).unwrap().allowed,
                    *allowed,
                    "{example} {n} {label}"
                );
                group.bench_with_input(
                    BenchmarkId::new(format!("{example}/{label}"), n),
                    &query,
                    |b, q| b.iter(|| policy.enforce(black_box(q)).unwrap()),
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_models, bench_depth, bench_attributes);
criterion_main!(benches);
