//! authzd against Go Casbin, the implementation Casbin's documentation
//! describes (`tests/common/reference.rs`): pattern-matching role managers
//! (`[policy] role_matching` / `domain_matching`, Go's
//! `AddNamedMatchingFunc` / `AddNamedDomainMatchingFunc`) on Casbin's own
//! examples and on generated policies, with claim roles given to Go Casbin
//! as the `g` lines they stand for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use authzd::policy::{LoadOptions, Policy, Query, indexed::Matching};
use common::{
    casbin::{EXAMPLES, fixture},
    reference::{Job, Reference},
};
use proptest::prelude::*;

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One request: values in `r` order, and claim roles.
struct Ask {
    values: Vec<String>,
    roles: Vec<String>,
}

/// The request definition's field names (`sub`, `dom`, …), in order.
fn request_fields(model: &str) -> Vec<String> {
    let line = model
        .lines()
        .skip_while(|l| l.trim() != "[request_definition]")
        .find(|l| l.trim_start().starts_with("r ="))
        .unwrap();
    line.split_once('=')
        .unwrap()
        .1
        .split(',')
        .map(|f| f.trim().to_string())
        .collect()
}

/// Loads `job` into authzd and asks both; panics on the first difference.
fn compare(reference: &mut Reference, job: &Job<'_>, asks: &[Ask], rt: &tokio::runtime::Runtime) {
    let opts = LoadOptions {
        matching: Matching::new(&job.role_matching, &job.domain_matching).unwrap(),
        ..LoadOptions::default()
    };
    let ours = rt
        .block_on(Policy::from_text_for(
            job.model, "model", job.policy, "policy", opts,
        ))
        .unwrap_or_else(|e| panic!("authzd refused it: {e}\n{}\n{}", job.model, job.policy));
    assert_eq!(ours.evaluator, "indexed", "{}", job.model);
    let fields = request_fields(job.model);
    let get = |a: &'_ Ask, name: &str| -> String {
        fields
            .iter()
            .position(|f| f == name)
            .map_or(String::new(), |i| a.values[i].clone())
    };
    let domain = fields.iter().any(|f| f == "dom");
    let requests: Vec<(Vec<&str>, String)> = asks
        .iter()
        .map(|a| {
            let sub = get(a, "sub");
            let extra: String = a
                .roles
                .iter()
                .map(|r| match domain {
                    true => format!("g, {sub}, {r}, {}\n", get(a, "dom")),
                    false => format!("g, {sub}, {r}\n"),
                })
                .collect();
            (a.values.iter().map(String::as_str).collect(), extra)
        })
        .collect();
    let want = reference
        .ask(job, &requests)
        .unwrap_or_else(|e| panic!("Go Casbin refused it: {e}\n{}\n{}", job.model, job.policy));
    for (a, want) in asks.iter().zip(want) {
        let (sub, dom, obj, act) = (get(a, "sub"), get(a, "dom"), get(a, "obj"), get(a, "act"));
        // Fields beyond these four are attributes, in request order.
        let attributes: Vec<String> = fields
            .iter()
            .filter(|f| !["sub", "dom", "obj", "act"].contains(&f.as_str()))
            .map(|f| get(a, f))
            .collect();
        let got = ours.enforce(&Query {
            subject: &sub,
            roles: &a.roles,
            domain: &dom,
            resource: &obj,
            action: &act,
            attributes: &attributes,
            unfolded: None,
        });
        let at = || {
            format!(
                "request {:?} roles {:?}\nmatching {:?} {:?}\n{}{}",
                a.values, a.roles, job.role_matching, job.domain_matching, job.model, job.policy
            )
        };
        match (got, want) {
            (Ok(g), Ok((allowed, explain))) => {
                let explain: Vec<String> = explain.iter().map(|v| v.trim().to_string()).collect();
                assert_eq!((g.allowed, &g.matched), (allowed, &explain), "{}", at());
            }
            (Err(_), Err(_)) => {}
            (g, w) => panic!("authzd {g:?}, Go Casbin {w:?}: {}", at()),
        }
    }
}

/// Go Casbin and a runtime to load authzd's policies on; `None` (said
/// loudly) where Go Casbin is not installed.
fn start() -> Option<(Reference, tokio::runtime::Runtime)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    Some((Reference::start()?, rt))
}

/// An example policy with its fields trimmed: Go's CSV reader keeps
/// trailing spaces, casbin-rs trims them.
fn trimmed_fixture(name: &str) -> String {
    fixture(name)
        .lines()
        .map(|l| l.split(',').map(str::trim).collect::<Vec<_>>().join(", ") + "\n")
        .collect()
}

/// Every combination of the policy's values per request field, plus `extra`.
fn combinations(policy: &str, fields: usize, extra: &[&str]) -> Vec<Ask> {
    let mut names: BTreeSet<String> = extra.iter().map(|s| s.to_string()).collect();
    for line in policy.lines() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() > 1 && !f[0].starts_with('#') {
            names.extend(f[1..].iter().map(|s| s.to_string()));
        }
    }
    let names: Vec<String> = names.into_iter().collect();
    let mut out = Vec::new();
    let mut combo = vec![0usize; fields];
    'all: loop {
        out.push(Ask {
            values: combo.iter().map(|i| names[*i].clone()).collect(),
            roles: Vec::new(),
        });
        for c in combo.iter_mut() {
            *c += 1;
            if *c < names.len() {
                continue 'all;
            }
            *c = 0;
        }
        break;
    }
    out
}

#[test]
fn casbin_pattern_examples_answer_as_go_casbin() {
    let Some((mut reference, rt)) = start() else {
        return;
    };
    // (model, policy, role_matching, domain_matching, request values beyond the policy's)
    type Example = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );
    let cases: &[Example] = &[
        (
            "rbac_with_pattern_model.conf",
            "rbac_with_pattern_policy.csv",
            &[("g2", "keyMatch2")],
            &[],
            &["/book/1", "/book/2", "/pen/3", "/pen2/1", "/book", "carol"],
        ),
        (
            "rbac_with_pattern_model.conf",
            "rbac_with_pattern_policy.csv",
            &[("g", "keyMatch2"), ("g2", "keyMatch2")],
            &[],
            &["/book/1", "/pen/3", "carol"],
        ),
        (
            "rbac_with_pattern_domain_model.conf",
            "rbac_with_pattern_domain_policy.csv",
            &[],
            &[("g", "keyMatch")],
            &["domain3", "carol"],
        ),
        (
            "rbac_basic_role_model.conf",
            "rbac_basic_role_policy.csv",
            &[("g", "keyMatch")],
            &[],
            &["/book/2", "carol"],
        ),
        (
            "rbac_with_domains_model.conf",
            "rbac_with_hierarchy_with_domains_policy.csv",
            &[("g", "keyMatch")],
            &[("g", "keyMatch")],
            &["domain3"],
        ),
    ];
    for (model, policy, role, domain, extra) in cases {
        let (model, policy) = (fixture(model), trimmed_fixture(policy));
        let job = Job {
            model: &model,
            policy: &policy,
            role_matching: map(role),
            domain_matching: map(domain),
        };
        let asks = combinations(&policy, request_fields(&model).len(), extra);
        assert!(asks.len() > 50);
        compare(&mut reference, &job, &asks, &rt);
    }
}

/// Names for a role type matched with `func` (`None`: names are literal):
/// plain names and patterns, all valid patterns for `func`.
fn names(func: Option<&str>) -> &'static [&'static str] {
    match func {
        Some("keyMatch") => &[
            "alice", "bob", "u1", "u2", "u*", "*", "admin", "adm*", "editor",
        ],
        Some("regexMatch") => &[
            "alice", "bob", "u1", "u2", "u.", "^u", "admin", "adm.*", "e.*r",
        ],
        _ => &[
            "alice", "bob", "/u/1", "/u/2", "/u/:id", "/u/*", "admin", "/r/:x", "/r/a",
        ],
    }
}

fn objects(func: Option<&str>) -> &'static [&'static str] {
    match func {
        Some("keyMatch") => &[
            "/book/1", "/book/*", "/pen/1", "/pen/*", "/*", "books", "pens",
        ],
        _ => &[
            "/book/1",
            "/book/2",
            "/book/:id",
            "/book/*",
            "/pen/1",
            "/pen/:id",
            "books",
            "pens",
        ],
    }
}

const DOMAINS: &[&str] = &["d1", "d2", "*", "d*"];
const REQUEST_DOMAINS: &[&str] = &["d1", "d2", "d3"];
const ACTS: &[&str] = &["read", "write"];

/// Casbin's four standard effects.
const EFFECTS: &[&str] = &[
    "some(where (p.eft == allow))",
    "!some(where (p.eft == deny))",
    "some(where (p.eft == allow)) && !some(where (p.eft == deny))",
    "priority(p.eft) || deny",
];

const MATCHERS: &[&str] = &[
    "g(r.sub, p.sub) && g2(r.obj, p.obj) && r.act == p.act",
    "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act",
    "g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act",
    "(g(r.sub, p.sub) || g2(r.obj, p.obj)) && r.act == p.act",
];
const DOMAIN_MATCHERS: &[&str] = &[
    "g(r.sub, p.sub, r.dom) && r.dom == p.dom && g2(r.obj, p.obj) && r.act == p.act",
    "g(r.sub, p.sub, r.dom) && keyMatch(r.dom, p.dom) && r.obj == p.obj && r.act == p.act",
];

#[derive(Debug, Clone)]
struct Generated {
    domains: bool,
    effect: &'static str,
    matcher: &'static str,
    g_fn: Option<&'static str>,
    g2_fn: Option<&'static str>,
    dom_fn: Option<&'static str>,
    /// (sub, dom, obj, act, deny) as indexes.
    rules: Vec<(usize, usize, usize, usize, bool)>,
    /// (a, b, dom).
    g: Vec<(usize, usize, usize)>,
    g2: Vec<(usize, usize)>,
    /// (sub, claim roles, dom, obj, act).
    requests: Vec<(usize, Vec<usize>, usize, usize, usize)>,
}

impl Generated {
    fn model(&self) -> String {
        let (r, p, g) = match self.domains {
            true => ("sub, dom, obj, act", "sub, dom, obj, act, eft", "_, _, _"),
            false => ("sub, obj, act", "sub, obj, act, eft", "_, _"),
        };
        let e = self.effect;
        format!(
            "[request_definition]\nr = {r}\n[policy_definition]\np = {p}\n[role_definition]\ng = {g}\ng2 = _, _\n[policy_effect]\ne = {e}\n[matchers]\nm = {}\n",
            self.matcher
        )
    }

    fn policy(&self) -> String {
        let (n, o) = (names(self.g_fn), objects(self.g2_fn));
        let mut text = String::new();
        for &(s, d, ob, a, deny) in &self.rules {
            let eft = if deny { "deny" } else { "allow" };
            text += &match self.domains {
                true => format!(
                    "p, {}, {}, {}, {}, {eft}\n",
                    n[s], DOMAINS[d], o[ob], ACTS[a]
                ),
                false => format!("p, {}, {}, {}, {eft}\n", n[s], o[ob], ACTS[a]),
            };
        }
        for &(a, b, d) in &self.g {
            text += &match self.domains {
                true => format!("g, {}, {}, {}\n", n[a], n[b], DOMAINS[d]),
                false => format!("g, {}, {}\n", n[a], n[b]),
            };
        }
        // `g2` lines only where the matcher asks `g2` (else they are refused).
        for &(a, b) in self.g2.iter().filter(|_| self.matcher.contains("g2(")) {
            text += &format!("g2, {}, {}\n", o[a], o[b]);
        }
        text
    }
}

fn generated() -> impl Strategy<Value = Generated> {
    let g_fn = prop::sample::select(vec![
        None,
        Some("keyMatch"),
        Some("keyMatch2"),
        Some("regexMatch"),
    ]);
    let g2_fn = prop::sample::select(vec![None, Some("keyMatch"), Some("keyMatch2")]);
    let effect = prop::sample::select(EFFECTS);
    (any::<bool>(), effect, g_fn, g2_fn, any::<bool>()).prop_flat_map(
        |(domains, effect, g_fn, g2_fn, dom_pattern)| {
            let (nn, no) = (names(g_fn).len(), objects(g2_fn).len());
            let matcher = prop::sample::select(if domains { DOMAIN_MATCHERS } else { MATCHERS });
            let rule = (
                0..nn,
                0..DOMAINS.len(),
                0..no,
                0..ACTS.len(),
                prop::bool::weighted(0.2),
            );
            // Claim roles are names, never patterns: the plain ones only.
            let plain: Vec<usize> = (0..nn)
                .filter(|i| {
                    names(g_fn)[*i]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '/')
                })
                .collect();
            let request = (
                0..nn,
                prop::collection::vec(prop::sample::select(plain), 0..3),
                0..REQUEST_DOMAINS.len(),
                0..no,
                0..ACTS.len(),
            );
            (
                matcher,
                prop::collection::vec(rule, 1..10),
                prop::collection::vec((0..nn, 0..nn, 0..DOMAINS.len()), 0..8),
                prop::collection::vec((0..no, 0..no), 0..6),
                prop::collection::vec(request, 12),
            )
                .prop_map(move |(matcher, rules, g, g2, requests)| Generated {
                    domains,
                    effect,
                    matcher,
                    g_fn,
                    g2_fn,
                    dom_fn: (domains && dom_pattern).then_some("keyMatch"),
                    rules,
                    g,
                    g2,
                    requests,
                })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pattern_role_managers_answer_as_go_casbin(case in generated()) {
        let Some((mut reference, rt)) = start() else {
            return Ok(());
        };
        let (model, policy) = (case.model(), case.policy());
        let mut role = BTreeMap::new();
        let mut domain = BTreeMap::new();
        if let Some(f) = case.g_fn {
            role.insert("g".to_string(), f.to_string());
        }
        if let Some(f) = case.g2_fn {
            role.insert("g2".to_string(), f.to_string());
        }
        if let Some(f) = case.dom_fn {
            domain.insert("g".to_string(), f.to_string());
        }
        let job = Job { model: &model, policy: &policy, role_matching: role, domain_matching: domain };
        let (n, o) = (names(case.g_fn), objects(case.g2_fn));
        let asks: Vec<Ask> = case
            .requests
            .iter()
            .map(|(s, roles, d, ob, a)| Ask {
                values: match case.domains {
                    true => vec![n[*s], REQUEST_DOMAINS[*d], o[*ob], ACTS[*a]],
                    false => vec![n[*s], o[*ob], ACTS[*a]],
                }
                .into_iter()
                .map(String::from)
                .collect(),
                roles: roles.iter().map(|r| n[*r].to_string()).collect(),
            })
            .collect();
        compare(&mut reference, &job, &asks, &rt);
    }
}

/// casbin-rs moves a repeated line to its last place; Go Casbin keeps the
/// first, and under a first-match effect that decides.
#[test]
fn repeated_lines_keep_their_first_place_as_in_go_casbin() {
    let Some((mut reference, rt)) = start() else {
        return;
    };
    let model = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = priority(p.eft) || deny\n[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n";
    let policy = "p, alice, /a, GET, deny\np, staff, /a, GET, allow\np, alice, /a, GET, deny\ng, alice, staff\ng, bob, staff\n";
    let job = Job {
        model,
        policy,
        ..Job::default()
    };
    let asks = combinations(policy, 3, &[]);
    compare(&mut reference, &job, &asks, &rt);
}

/// Every casbin-rs example model that authzd runs, with its example policy
/// and no pattern matching (names taken literally), against Go Casbin.
#[test]
fn casbin_examples_answer_as_go_casbin() {
    let Some((mut reference, rt)) = start() else {
        return;
    };
    for (model, policy) in EXAMPLES {
        let (model, policy) = (fixture(model), trimmed_fixture(policy));
        let job = Job {
            model: &model,
            policy: &policy,
            ..Job::default()
        };
        let asks = combinations(&policy, request_fields(&model).len(), &["nobody"]);
        compare(&mut reference, &job, &asks, &rt);
    }
}

/// Models with `keyGet`, `keyGet2`, `keyGet3` and attribute fields (the
/// ownership and tenant rules of `docs/attributes.md`), each getter on
/// either side of `==`/`!=`, against requests whose paths match and do not.
const GETTER_MODELS: &[(&str, &str)] = &[
    (
        "r = sub, obj, act",
        "(g(r.sub, p.sub) || (p.sub == \"self\" && keyGet2(r.obj, p.obj, \"id\") == r.sub)) && keyMatch2(r.obj, p.obj) && r.act == p.act",
    ),
    (
        "r = sub, obj, act, tenant",
        "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act && keyGet2(r.obj, p.obj, \"tenant\") == r.tenant",
    ),
    (
        "r = sub, obj, act, owner",
        "g(r.sub, p.sub) && keyMatch3(r.obj, p.obj) && r.owner == keyGet3(r.obj, p.obj, \"id\") && r.act == p.act",
    ),
    (
        "r = sub, obj, act, org",
        "r.sub == p.sub && keyMatch(r.obj, p.obj) && keyGet(r.obj, p.obj) != r.org && r.act == p.act",
    ),
    (
        "r = sub, obj, act, tenant",
        "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && (keyGet2(r.obj, p.obj, \"tenant\") == r.tenant || keyGet2(r.obj, p.obj, \"tenant\") == \"shared\") && r.act == p.act",
    ),
    (
        "r = tenant, sub, obj, act",
        "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act && keyGet2(\"/t/x/docs/1\", \"/t/:tenant/docs/:d\", \"tenant\") != r.tenant",
    ),
];

const GETTER_SUBJECTS: &[&str] = &["alice", "bob", "self", "admin"];
/// Policy objects in each model's own syntax: `:name` for keyMatch2
/// (casbin-rs refuses `{name}` there), `{name}` for keyMatch3, prefixes
/// for keyMatch.
const COLON_OBJECTS: &[&str] = &[
    "/users/:id",
    "/users/*",
    "/t/:tenant/docs/:doc",
    "/t/:tenant/*",
    "/files/:id/:id",
    "/t/:tenant/docs/1",
];
const BRACE_OBJECTS: &[&str] = &[
    "/users/{id}",
    "/users/*",
    "/t/{tenant}/docs/{id}",
    "/files/{id}/{id}",
    "/users/{id}x",
];
const PREFIX_OBJECTS: &[&str] = &["/users/*", "/t/*", "/t/a/*", "/users/alice", "*"];

fn getter_objects(model: usize) -> &'static [&'static str] {
    match model {
        2 => BRACE_OBJECTS,
        3 => PREFIX_OBJECTS,
        _ => COLON_OBJECTS,
    }
}
const GETTER_PATHS: &[&str] = &[
    "/users/alice",
    "/users/bob",
    "/users/alice/x",
    "/users/",
    "/t/a/docs/1",
    "/t/b/docs/1",
    "/t/shared/docs/1",
    "/t/a",
    "/t/x/docs/1",
    "/files/1/alice",
    "/other",
];
const GETTER_VALUES: &[&str] = &["alice", "bob", "a", "b", "shared", "x", "users", "1"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn getters_and_attributes_answer_as_go_casbin(
        model in 0..GETTER_MODELS.len(),
        lines in prop::collection::vec((0..GETTER_SUBJECTS.len(), 0..6usize, 0..2usize), 1..8),
        grants in prop::collection::vec((0..2usize, 0..GETTER_SUBJECTS.len()), 0..3),
        requests in prop::collection::vec(
            (0..3usize, 0..GETTER_PATHS.len(), 0..2usize, 0..GETTER_VALUES.len(), prop::collection::vec(0..GETTER_SUBJECTS.len(), 0..2)),
            1..24,
        ),
    ) {
        let Some((mut reference, rt)) = start() else {
            return Ok(());
        };
        let (r, m) = GETTER_MODELS[model];
        let text = format!(
            "[request_definition]\n{r}\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = {m}\n"
        );
        let acts = ["GET", "PUT"];
        let mut policy: String = lines
            .iter()
            .map(|(s, o, a)| {
                let objects = getter_objects(model);
                format!("p, {}, {}, {}\n", GETTER_SUBJECTS[*s], objects[*o % objects.len()], acts[*a])
            })
            .collect();
        let users = ["alice", "bob"];
        // `g` lines only where the matcher asks `g` (else they are refused).
        let grants = if m.contains("g(r.sub") { grants } else { Vec::new() };
        for (u, s) in &grants {
            policy.push_str(&format!("g, {}, {}\n", users[*u], GETTER_SUBJECTS[*s]));
        }
        let fields = request_fields(&text);
        let asks: Vec<Ask> = requests
            .iter()
            .map(|(s, p, a, v, roles)| {
                let subject = ["alice", "bob", "carol"][*s];
                Ask {
                    values: fields
                        .iter()
                        .map(|f| match f.as_str() {
                            "sub" => subject.to_string(),
                            "obj" => GETTER_PATHS[*p].to_string(),
                            "act" => acts[*a].to_string(),
                            _ => GETTER_VALUES[*v].to_string(),
                        })
                        .collect(),
                    roles: roles.iter().map(|r| GETTER_SUBJECTS[*r].to_string()).collect(),
                }
            })
            .collect();
        let job = Job { model: &text, policy: &policy, ..Job::default() };
        compare(&mut reference, &job, &asks, &rt);
    }
}
