//! The indexed evaluator equals casbin-rs on generated models (issue #6).
//!
//! proptest generates a model from the grammar the indexed evaluator claims
//! (`&&`, `||`, `!`, parentheses, `==`, `!=`, `in [...]`, literals, `g` with
//! and without domains, a second role type `g2` on objects and actions,
//! keyMatch…keyMatch5, regexMatch, globMatch; any of the four effects), a
//! policy with role hierarchies, and requests with claim roles.
//! Every answer — decision and matched line — is compared with a plain
//! casbin-rs `Enforcer` whose policy holds the claim roles as `g` lines,
//! and, where Go Casbin is installed and means the same by the matcher
//! (`comparable_with_go`), with Go Casbin given the same lines.
//! Where casbin-rs fails (a panic or an evaluation error) we must fail or deny.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/casbin.rs"]
mod casbin_fixtures;
#[allow(dead_code)]
#[path = "common/reference.rs"]
mod reference;
use casbin_fixtures::{decided, first_occurrences};

use authzd::policy::{LoadOptions, Policy, Query};
use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use proptest::prelude::*;

const USERS: &[&str] = &["alice", "bob", "root"];
const ROLES: &[&str] = &["r0", "r1", "r2", "r3"];
const DOMS: &[&str] = &["d0", "d1"];
const ACTS: &[&str] = &["GET", "POST", "DELETE"];
/// Valid for every path function and for globs; the braces are not valid regexes.
const OBJ_PATTERNS: &[&str] = &[
    "/a",
    "/a/b",
    "/a/*",
    "/a/:id",
    "/a/b*",
    "/*",
    "/b/:id/*",
    "/c",
    "/a/{id}",
    "/b/{x}/c/{x}",
];
const REQUEST_OBJS: &[&str] = &[
    "/a", "/a/b", "/a/1", "/a/bc", "/a/b/c", "/b/1/c/1", "/b/1/c/2", "/b/1/x", "/c", "/d",
];
const ACT_PATTERNS: &[&str] = &["GET", "POST", "GET|POST", ".*"];
const EFFECTS: &[&str] = &[
    "some(where (p.eft == allow))",
    "!some(where (p.eft == deny))",
    "some(where (p.eft == allow)) && !some(where (p.eft == deny))",
    "priority(p.eft) || deny",
];

fn subject_atoms(domains: bool) -> Vec<&'static str> {
    if domains {
        vec!["g(r.sub, p.sub, r.dom)", "r.sub == p.sub"]
    } else {
        vec!["g(r.sub, p.sub)", "r.sub == p.sub"]
    }
}

fn object_atoms() -> Vec<&'static str> {
    vec![
        "r.obj == p.obj",
        "g2(r.obj, p.obj)",
        "keyMatch(r.obj, p.obj)",
        "keyMatch2(r.obj, p.obj)",
        "keyMatch3(r.obj, p.obj)",
        "keyMatch4(r.obj, p.obj)",
        "keyMatch5(r.obj, p.obj)",
        "globMatch(r.obj, p.obj)",
        "regexMatch(r.obj, p.obj)",
    ]
}

fn atoms(domains: bool) -> Vec<&'static str> {
    let mut a = subject_atoms(domains);
    a.extend(object_atoms());
    a.extend([
        "r.act == p.act",
        "regexMatch(r.act, p.act)",
        "p.act == \"GET|POST\"",
        "r.sub == \"root\"",
        "p.sub != r.sub",
        "keyMatch2(r.obj, \"/a/:x\")",
        "keyMatch(p.obj, r.obj)",
        "g2(r.obj, p.obj)",
        "g2(r.act, p.act)",
        "g2(p.obj, r.obj)",
        "r.act in [\"GET\", \"DELETE\"]",
        "r.sub in [\"root\", p.sub]",
        "p.act in []",
    ]);
    if domains {
        a.extend([
            "r.dom == p.dom",
            "g(r.sub, p.sub, p.dom)",
            "r.dom != \"d1\"",
        ]);
    }
    a
}

fn tree(domains: bool) -> impl Strategy<Value = String> {
    prop::sample::select(atoms(domains))
        .prop_map(String::from)
        .prop_recursive(3, 10, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
                inner.prop_map(|a| format!("!({a})")),
            ]
        })
}

/// Mostly the indexable shape (a subject test, an object test, the rest),
/// sometimes anything.
fn matcher(domains: bool) -> impl Strategy<Value = String> {
    prop_oneof![
        2 => tree(domains),
        3 => (
            prop::sample::select(subject_atoms(domains)),
            prop::sample::select(object_atoms()),
            tree(domains)
        )
            .prop_map(|(s, o, t)| format!("{s} && {o} && {t}")),
        1 => (prop::sample::select(subject_atoms(domains)), tree(domains))
            .prop_map(|(s, t)| format!("{t} && {s}")),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    domains: bool,
    effect: &'static str,
    matcher: String,
    policy: Vec<String>,
    groupings: Vec<(usize, usize, usize)>,
    members: Vec<(usize, usize, usize)>,
    /// `g2` lines: (request object or action, object pattern or action pattern).
    objgroups: Vec<(usize, usize)>,
    /// (user, claim roles, domain, object, action).
    requests: Vec<(usize, Vec<usize>, usize, usize, usize)>,
}

impl Case {
    fn model(&self) -> String {
        let (r, p, g) = if self.domains {
            ("sub, dom, obj, act", "sub, dom, obj, act, eft", "_, _, _")
        } else {
            ("sub, obj, act", "sub, obj, act, eft", "_, _")
        };
        format!(
            "[request_definition]\nr = {r}\n[policy_definition]\np = {p}\n[role_definition]\ng = {g}\ng2 = _, _\n[policy_effect]\ne = {}\n[matchers]\nm = {}\n",
            self.effect, self.matcher
        )
    }

    fn grouping(&self, a: &str, b: &str, dom: usize) -> String {
        if self.domains {
            format!("g, {a}, {b}, {}\n", DOMS[dom])
        } else {
            format!("g, {a}, {b}\n")
        }
    }

    fn policy_text(&self) -> String {
        // Braces are not regexes, and keyMatch2 turns its pattern into one:
        // keep them out of p.obj when either reads it (casbin-rs would panic).
        let braces_ok = !self.matcher.contains("regexMatch(r.obj, p.obj)")
            && !self.matcher.contains("keyMatch2(r.obj, p.obj)");
        let mut text = String::new();
        for line in &self.policy {
            if braces_ok {
                text += line;
            } else {
                text += &line
                    .replace("/a/{id}", "/a/:id")
                    .replace("/b/{x}/c/{x}", "/b/:x/c/:x");
            }
            text.push('\n');
        }
        // A hierarchy (higher index inherits lower: acyclic, at most 3 deep).
        for &(a, b, d) in &self.groupings {
            if a > b {
                text += &self.grouping(ROLES[a], ROLES[b], d);
            }
        }
        for &(u, r, d) in &self.members {
            text += &self.grouping(USERS[u], ROLES[r], d);
        }
        // Object groups (and action groups, by the same lines read for actions).
        for &(o, g) in &self.objgroups {
            let member = REQUEST_OBJS.iter().chain(ACTS).nth(o).unwrap();
            let group = OBJ_PATTERNS.iter().chain(ACT_PATTERNS).nth(g).unwrap();
            text += &format!("g2, {member}, {group}\n");
        }
        text
    }
}

fn case() -> impl Strategy<Value = Case> {
    (any::<bool>(), prop::sample::select(EFFECTS)).prop_flat_map(|(domains, effect)| {
        let subjects: Vec<&str> = USERS.iter().chain(ROLES).copied().collect();
        let line = (
            prop::sample::select(subjects),
            prop::sample::select(DOMS),
            prop::sample::select(OBJ_PATTERNS),
            prop::sample::select(ACT_PATTERNS),
            prop::sample::select(&["allow", "allow", "deny", "maybe"][..]),
        );
        (
            matcher(domains),
            prop::collection::vec(line, 1..10),
            prop::collection::vec((0..ROLES.len(), 0..ROLES.len(), 0..DOMS.len()), 0..5),
            prop::collection::vec((0..USERS.len(), 0..ROLES.len(), 0..DOMS.len()), 0..3),
            prop::collection::vec(
                (
                    0..REQUEST_OBJS.len() + ACTS.len(),
                    0..OBJ_PATTERNS.len() + ACT_PATTERNS.len(),
                ),
                0..5,
            ),
            prop::collection::vec(
                (
                    0..USERS.len(),
                    prop::collection::vec(0..ROLES.len(), 0..3),
                    0..DOMS.len(),
                    0..REQUEST_OBJS.len(),
                    0..ACTS.len(),
                ),
                12,
            ),
        )
            .prop_map(
                move |(matcher, lines, groupings, members, objgroups, requests)| {
                    let policy = lines
                        .into_iter()
                        .map(|(s, d, o, a, e)| {
                            if domains {
                                format!("p, {s}, {d}, {o}, {a}, {e}")
                            } else {
                                format!("p, {s}, {o}, {a}, {e}")
                            }
                        })
                        .collect();
                    Case {
                        domains,
                        effect,
                        matcher,
                        policy,
                        groupings,
                        members,
                        objgroups,
                        requests,
                    }
                },
            )
    })
}

fn check(case: &Case, rt: &tokio::runtime::Runtime) -> Result<(), TestCaseError> {
    let model = case.model();
    let policy = case.policy_text();
    let ours = rt
        // Generated matchers need not read every field, nor call `g2` for
        // its lines: the evaluators are compared on text `check.rs` refuses.
        .block_on(Policy::from_text_for(
            &model,
            "model",
            &policy,
            "policy",
            LoadOptions {
                unchecked: true,
                ..LoadOptions::default()
            },
        ))
        .map_err(|e| TestCaseError::fail(format!("load: {e}\n{model}\n{policy}")))?;
    prop_assert_eq!(&ours.evaluator, "indexed", "{}", model);
    let mut go = comparable_with_go(&case.matcher)
        .then(reference::Reference::start)
        .flatten();
    for (u, roles, d, o, a) in &case.requests {
        let (user, dom, obj, act) = (USERS[*u], DOMS[*d], REQUEST_OBJS[*o], ACTS[*a]);
        let roles: Vec<String> = roles.iter().map(|r| ROLES[*r].to_string()).collect();
        let dom = if case.domains { dom } else { "" };
        let got = ours.enforce(&Query {
            subject: user,
            roles: &roles,
            domain: dom,
            resource: obj,
            action: act,
            attributes: &[],
            unfolded: None,
        });
        let mut text = policy.clone();
        for r in &roles {
            text += &case.grouping(user, r, *d);
        }
        let want = rt.block_on(async {
            let m = DefaultModel::from_str(&model).await.unwrap();
            let e = Enforcer::new(m, StringAdapter::new(first_occurrences(&text)))
                .await
                .unwrap();
            let rvals = if case.domains {
                vec![user, dom, obj, act]
            } else {
                vec![user, obj, act]
            };
            quiet(|| e.enforce_ex(rvals))
        });
        let ctx = || format!("request ({user} {roles:?} {dom:?} {obj} {act})\n{model}{policy}");
        // And Go Casbin, the implementation Casbin's documentation describes.
        if let Some(go) = go.as_mut() {
            let extra: String = roles.iter().map(|r| case.grouping(user, r, *d)).collect();
            let rvals = match case.domains {
                true => vec![user, dom, obj, act],
                false => vec![user, obj, act],
            };
            let job = reference::Job {
                model: &model,
                policy: &policy,
                ..Default::default()
            };
            if let Ok(answers) = go.ask(&job, &[(rvals, extra)]) {
                match (&got, &answers[0]) {
                    (Ok(g), Ok((allowed, explain))) => prop_assert_eq!(
                        (g.allowed, &g.matched),
                        (*allowed, explain),
                        "Go Casbin: {}",
                        ctx()
                    ),
                    (Ok(g), Err(e)) => {
                        prop_assert!(
                            !g.allowed,
                            "allowed where Go Casbin failed ({e}): {}",
                            ctx()
                        )
                    }
                    (Err(_), _) => {}
                }
            }
        }
        match (got, want) {
            (Ok(g), Some(Ok((allowed, lines)))) => {
                let line = decided(allowed, lines);
                prop_assert_eq!((g.allowed, &g.matched), (allowed, &line), "{}", ctx());
            }
            // casbin-rs failed: we must not allow.
            (Ok(g), None | Some(Err(_))) => {
                prop_assert!(!g.allowed, "allowed where casbin-rs failed: {}", ctx())
            }
            (Err(e), Some(Ok(_))) => {
                prop_assert!(false, "we failed ({e}) where casbin-rs answered: {}", ctx())
            }
            (Err(_), _) => {}
        }
    }
    Ok(())
}

/// Whether Go Casbin (Debian's 2.60) means the same by this matcher. Not
/// when it uses `keyMatch5` (2.60 predates `{param}` patterns there: query
/// stripped, then equality), `globMatch` (Go's is `path.Match`), an empty
/// `in []` (govaluate cannot evaluate it), or reads no policy field (Go then
/// evaluates the matcher once, ignoring the lines and the effect; authzd
/// applies the effect to every line, as casbin-rs does, so a deny line
/// still denies).
fn comparable_with_go(matcher: &str) -> bool {
    !matcher.contains("keyMatch5")
        && !matcher.contains("globMatch")
        && !matcher.contains("in []")
        && matcher.contains("p.")
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `None` without printing it.
fn quiet<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r.ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn indexed_evaluator_equals_casbin_on_generated_models(case in case()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        check(&case, &rt)?;
    }
}

/// The same comparison on the shapes users write, so a failure reads plainly.
#[test]
fn common_models_equal_casbin() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (domains, matcher) in [
        (
            false,
            "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act) || r.sub == \"root\"",
        ),
        (
            false,
            "(g(r.sub, p.sub) || p.sub == \"root\") && keyMatch3(r.obj, p.obj) && r.act == p.act",
        ),
        (
            true,
            "g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch5(r.obj, p.obj) && !(r.act == \"DELETE\")",
        ),
        (true, "g(r.sub, p.sub, p.dom) && globMatch(r.obj, p.obj)"),
        // Casbin's rbac_with_resource_roles and rbac_model_matcher_using_in_op.
        (
            false,
            "g(r.sub, p.sub) && g2(r.obj, p.obj) && r.act == p.act",
        ),
        (
            false,
            "g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act || r.obj in [\"/c\", \"/d\"]",
        ),
    ] {
        for effect in EFFECTS {
            let policy = [
                "p, r0, d0, /a/*, GET, allow",
                "p, r1, d0, /a/{id}, POST, deny",
                "p, alice, d1, /b/{x}/c/{x}, GET, allow",
                "p, r2, d0, /*, GET, deny",
                "p, r3, d1, /c, DELETE, allow",
                "p, root, d0, /d, GET, allow",
            ];
            let policy = policy
                .iter()
                .map(|l| {
                    if domains {
                        l.to_string()
                    } else {
                        l.replace(" d0,", "").replace(" d1,", "")
                    }
                })
                .collect();
            let case = Case {
                domains,
                effect,
                matcher: matcher.to_string(),
                policy,
                groupings: vec![(1, 0, 0), (2, 1, 0), (3, 2, 1)],
                members: vec![(0, 1, 0), (1, 3, 1)],
                objgroups: vec![(1, 0), (2, 0), (0, 7), (9, 2)],
                requests: (0..USERS.len() * REQUEST_OBJS.len() * ACTS.len())
                    .map(|i| {
                        let u = i % USERS.len();
                        let o = (i / USERS.len()) % REQUEST_OBJS.len();
                        let a = i / (USERS.len() * REQUEST_OBJS.len());
                        (
                            u,
                            vec![i % 5]
                                .into_iter()
                                .filter(|r| *r < ROLES.len())
                                .collect(),
                            i % 2,
                            o,
                            a,
                        )
                    })
                    .collect(),
            };
            check(&case, &rt).unwrap();
        }
    }
}
