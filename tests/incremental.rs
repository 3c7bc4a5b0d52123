//! Incremental policy updates (`docs/large-policies.md`): random sequences of
//! edits to a policy file — rules and role links added, removed and
//! replaced anywhere in the file — each applied to the previous snapshot
//! incrementally, and after every step the result decides exactly as a
//! snapshot built from scratch from the same text, with the same revision.
//! The chain never restarts from a full build unless authzd itself falls
//! back to one (a repeated line), so errors would accumulate.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use authzd::policy::{
    Query,
    snapshot::{Snapshot, Sources},
};

/// Small deterministic PRNG so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

struct Case {
    name: &'static str,
    model: &'static str,
    eft: bool,
    domains: bool,
}

const SUBJECTS: &[&str] = &["alice", "bob", "carol", "admin", "dev", "ops"];
const ROLES: &[&str] = &["admin", "dev", "ops", "audit"];
const DOMS: &[&str] = &["t1", "t2"];
const PATTERNS: &[&str] = &[
    "/docs/:id",
    "/docs/1",
    "/docs/2",
    "/docs/*",
    "/pub/:x/edit",
    "/admin/*",
    "/*",
];
const PATHS: &[&str] = &[
    "/docs/1",
    "/docs/2",
    "/docs/3",
    "/pub/a/edit",
    "/admin/users",
    "/other",
];
const ACTS: &[&str] = &["GET", "POST", "DELETE"];

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "rbac keyMatch2, allow-override",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act\n",
            eft: false,
            domains: false,
        },
        Case {
            name: "allow-and-deny with eft, keyMatch",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && r.act == p.act\n",
            eft: true,
            domains: false,
        },
        Case {
            name: "deny-override, subject keyed",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = !some(where (p.eft == deny))\n[matchers]\nm = r.sub == p.sub && keyMatch2(r.obj, p.obj) && r.act == p.act\n",
            eft: true,
            domains: false,
        },
        Case {
            name: "domains",
            model: "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\np = sub, dom, obj, act\n[role_definition]\ng = _, _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act\n",
            eft: false,
            domains: true,
        },
        Case {
            name: "an escape branch, the whole policy one bucket",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = keyMatch2(r.obj, p.obj) && r.act == p.act && g(r.sub, p.sub) || r.sub == \"root\"\n",
            eft: false,
            domains: false,
        },
    ]
}

fn rule_line(rng: &mut Rng, case: &Case) -> String {
    let sub = rng.pick(SUBJECTS);
    // Per-object lines, as large policies hold them; and shared patterns.
    let obj = match rng.below(2) {
        0 => format!("/docs/{}", rng.below(40)),
        _ => rng.pick(PATTERNS).to_string(),
    };
    let act = rng.pick(ACTS);
    let mut line = match case.domains {
        true => format!("p, {sub}, {}, {obj}, {act}", rng.pick(DOMS)),
        false => format!("p, {sub}, {obj}, {act}"),
    };
    if case.eft {
        line.push_str(if rng.below(4) == 0 {
            ", deny"
        } else {
            ", allow"
        });
    }
    line
}

fn link_line(rng: &mut Rng, case: &Case) -> String {
    let (a, b) = (rng.pick(SUBJECTS), rng.pick(ROLES));
    match case.domains {
        true => format!("g, {a}, {b}, {}", rng.pick(DOMS)),
        false => format!("g, {a}, {b}"),
    }
}

/// One random edit of `lines`.
fn edit(rng: &mut Rng, case: &Case, lines: &mut Vec<String>) {
    let at = rng.below(lines.len() + 1);
    match rng.below(8) {
        0 | 1 => lines.insert(at, rule_line(rng, case)),
        2 => lines.insert(at, link_line(rng, case)),
        3 if !lines.is_empty() => {
            lines.remove(at.min(lines.len() - 1));
        }
        4 if !lines.is_empty() => {
            let i = at.min(lines.len() - 1);
            lines[i] = rule_line(rng, case);
        }
        5 => {
            for _ in 0..=rng.below(3) {
                lines.push(rule_line(rng, case));
            }
        }
        6 => lines.insert(at, "# a comment".to_string()),
        _ if !lines.is_empty() => {
            // Two edits far apart: one change spanning the middle.
            let i = rng.below(lines.len());
            lines.remove(i);
            lines.push(link_line(rng, case));
        }
        _ => lines.push(rule_line(rng, case)),
    }
}

fn sources(dir: &Path) -> Sources {
    Sources::read(&dir.join("authzd.toml"), None).unwrap()
}

/// Both snapshots decide every generated request alike.
fn same_decisions(rng: &mut Rng, case: &Case, inc: &Snapshot, full: &Snapshot, what: &str) {
    for _ in 0..60 {
        let subject = match rng.below(10) {
            0 => "root",
            _ => rng.pick(SUBJECTS),
        };
        let roles: Vec<String> = (0..rng.below(3))
            .map(|_| rng.pick(ROLES).to_string())
            .collect();
        let domain = if case.domains { rng.pick(DOMS) } else { "" };
        let resource = match rng.below(3) {
            0 => format!("/docs/{}", rng.below(40)),
            _ => rng.pick(PATHS).to_string(),
        };
        let q = Query {
            subject,
            roles: &roles,
            domain,
            resource: &resource,
            action: rng.pick(ACTS),
            attributes: &[],
        };
        let a = inc.policy.enforce(&q).map_err(|e| e.to_string());
        let b = full.policy.enforce(&q).map_err(|e| e.to_string());
        let (a, b) = (
            a.map(|e| (e.allowed, e.matched)),
            b.map(|e| (e.allowed, e.matched)),
        );
        assert_eq!(
            a, b,
            "{what}: {subject} {roles:?} {domain} {} {}",
            q.resource, q.action
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_updates_decide_as_a_full_build_of_the_same_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("jwks.json"), r#"{"keys":[]}"#).unwrap();
    std::fs::write(
        d.join("authzd.toml"),
        "[[issuer]]\nissuer = \"https://x.example\"\njwks_file = \"jwks.json\"\nalgorithms = [\"RS256\"]\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n",
    )
    .unwrap();
    let (mut incremental, mut whole) = (0usize, 0usize);
    for case in cases() {
        std::fs::write(d.join("model.conf"), case.model).unwrap();
        for seed in 1..=12u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut lines: Vec<String> = (0..8)
                .map(|i| match i % 3 {
                    2 => link_line(&mut rng, &case),
                    _ => rule_line(&mut rng, &case),
                })
                .collect();
            std::fs::write(d.join("policy.csv"), lines.join("\n") + "\n").unwrap();
            let mut prev = sources(d).build().await.unwrap();
            for step in 0..25 {
                edit(&mut rng, &case, &mut lines);
                let text = lines.join("\n") + "\n";
                std::fs::write(d.join("policy.csv"), &text).unwrap();
                let what = format!("{} seed {seed} step {step}:\n{text}", case.name);
                let full = match sources(d).build().await {
                    Ok(s) => s,
                    Err(e) => panic!("{what}: the full build failed: {e}"),
                };
                let next = match sources(d).apply_to(&prev) {
                    Ok(s) => {
                        incremental += 1;
                        s
                    }
                    Err((s, why)) => {
                        assert!(
                            why.contains("repeats") || why.contains("no room"),
                            "{what}: built whole because {why}"
                        );
                        whole += 1;
                        s.build().await.unwrap()
                    }
                };
                assert_eq!(next.revision, full.revision, "{what}");
                assert_eq!(
                    (next.policy.rules, next.policy.groupings),
                    (full.policy.rules, full.policy.groupings),
                    "{what}"
                );
                same_decisions(&mut rng, &case, &next, &full, &what);
                prev = next;
            }
        }
    }
    println!("{incremental} steps applied incrementally, {whole} built whole (a repeated line)");
    assert!(
        incremental > whole * 2,
        "most steps are incremental: {incremental} vs {whole}"
    );
}
