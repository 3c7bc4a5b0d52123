//! API Gateway's authorizer cache, emulated: an answer is cached by token and
//! replayed for later routes, evaluated as IAM evaluates it (an explicit
//! `Deny` wins, `*` matches any characters, `?` one). Over generated route
//! tables, route-aligned policies and principals, a replayed answer must
//! never allow what a fresh decision denies; and, whenever authzd could list
//! every allowed route (docs/lambda.md, "Caching"), never deny what a fresh
//! decision allows.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, SystemTime},
};

use authzd::{
    audit::{Outcome, Source},
    decision::{self, Principal, Request, Target},
    policy::snapshot::Snapshot,
    transport::lambda::{
        answer::{Reply, glob_match, reply},
        event,
    },
};
use common::RBAC_MODEL;
use proptest::prelude::*;
use serde_json::{Value, json};

const BASE: &str = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod";
const TEMPLATES: [&str; 10] = [
    "/a",
    "/a/b",
    "/a/{x}",
    "/a/{x}/b",
    "/a/{proxy+}",
    "/c/{x}",
    "/c/{x}/{y}",
    "/c/d/{proxy+}",
    "/",
    "/e",
];

#[derive(Debug, Clone)]
struct RouteSpec {
    template: &'static str,
    method: &'static str,
    public: bool,
    scoped: bool,
}

fn route() -> impl Strategy<Value = RouteSpec> {
    (
        prop::sample::select(TEMPLATES.to_vec()),
        prop::sample::select(vec!["GET", "POST", "ANY"]),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(template, method, public, scoped)| RouteSpec {
            template,
            method,
            public,
            scoped,
        })
}

/// A rule's pattern for a route: the route's own shape in keyMatch2.
fn pattern(template: &str) -> String {
    template
        .split('/')
        .map(|s| match s {
            "{proxy+}" => "*".to_string(),
            s if s.starts_with('{') => ":p".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Concrete paths of a template (parameter values name no literal).
fn instances(template: &str) -> Vec<String> {
    let one = template
        .replace("{proxy+}", "v1")
        .replace("{x}", "v2")
        .replace("{y}", "v3");
    let mut out = vec![one];
    if template.contains("{proxy+}") {
        out.push(
            template
                .replace("{proxy+}", "v1/v4")
                .replace("{x}", "v2")
                .replace("{y}", "v3"),
        );
    }
    out
}

fn methods(m: &str) -> Vec<&'static str> {
    if m == "ANY" {
        vec!["GET", "POST", "PUT", "DELETE", "HEAD"]
    } else if m == "GET" {
        vec!["GET"]
    } else {
        vec!["POST"]
    }
}

/// IAM's evaluation of the cached statements for one ARN.
fn iam_allows(answer: &Value, arn: &str) -> bool {
    let mut allowed = false;
    for s in answer["policyDocument"]["Statement"].as_array().unwrap() {
        let hit = s["Resource"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| glob_match(r.as_str().unwrap(), arn));
        match (hit, s["Effect"].as_str().unwrap()) {
            (true, "Deny") => return false,
            (true, "Allow") => allowed = true,
            _ => {}
        }
    }
    allowed
}

struct Case {
    snap: Snapshot,
    _dir: tempfile::TempDir,
}

fn build(routes: &[RouteSpec], rules: &[(usize, usize, &'static str)]) -> Option<Case> {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::from("[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n");
    let mut seen = std::collections::HashSet::new();
    for r in routes {
        if !seen.insert((r.method, r.template)) {
            continue;
        }
        cfg.push_str(&format!(
            "[[route]]\nmethod = \"{}\"\npath = \"{}\"\n",
            r.method, r.template
        ));
        if r.public {
            cfg.push_str("auth = \"none\"\n");
        }
        if r.scoped {
            cfg.push_str("scopes = [\"s1\"]\n");
        }
    }
    let mut policy = String::new();
    for (route_idx, role, method) in rules {
        let r = &routes[route_idx % routes.len()];
        policy.push_str(&format!("p, r{role}, {}, {method}\n", pattern(r.template)));
    }
    policy.push_str("g, r0, r1\n");
    std::fs::write(dir.path().join("model.conf"), RBAC_MODEL).unwrap();
    std::fs::write(dir.path().join("policy.csv"), &policy).unwrap();
    let path = dir.path().join("authzd.toml");
    std::fs::write(&path, &cfg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let snap = rt.block_on(Snapshot::load(&path)).ok()?;
    Some(Case { snap, _dir: dir })
}

/// What authzd answers for `method path` (the answer API Gateway caches).
fn cached_answer(snap: &Snapshot, method: &str, path: &str, principal: &Principal) -> Value {
    answer_with(snap, method, path, principal, None)
}

fn answer_with(
    snap: &Snapshot,
    method: &str,
    path: &str,
    principal: &Principal,
    sets: Option<&authzd::transport::lambda::route_cache::RouteSets>,
) -> Value {
    let outcome = Outcome {
        decision: decide(snap, method, path, principal),
        decision_id: "d".into(),
        source: Source::Lambda,
        time: SystemTime::now(),
        latency: Duration::ZERO,
        trace: None,
        shadow: None,
    };
    let ev = event::parse(&json!({
        "type": "TOKEN", "authorizationToken": "t", "methodArn": format!("{BASE}/{method}{path}")
    }))
    .unwrap();
    let cached = |s: &Snapshot, e: &event::Event, p: Option<&Principal>| match sets {
        Some(sets) => sets.get(s, e, p),
        None => authzd::transport::lambda::answer::route_set(s, e, p),
    };
    match reply(snap, &ev, &outcome, Some(principal), &cached) {
        Reply::Answer(v) => v,
        other => panic!("no answer: {other:?}"),
    }
}

fn decide(snap: &Snapshot, method: &str, path: &str, p: &Principal) -> decision::Decision {
    let req = Request::bare(Target::Http { method, path });
    decision::decide_for(snap, &req, p)
}

static CASES: AtomicUsize = AtomicUsize::new(0);
static COMPLETE: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_replayed_answer_decides_as_a_fresh_one(
        routes in prop::collection::vec(route(), 1..6),
        rules in prop::collection::vec((0usize..6, 0usize..3, prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD"])), 0..10),
        roles in prop::collection::vec(0usize..3, 0..3),
        scoped in any::<bool>(),
        first in 0usize..6,
    ) {
        let Some(case) = build(&routes, &rules) else { return Ok(()) };
        let snap = &case.snap;
        let principal = Principal {
            subject: "u".into(),
            claim_subject: "u".into(),
            issuer: "i".into(),
            roles: roles.iter().map(|r| format!("r{r}")).collect(),
            scopes: if scoped { vec!["s1".into()] } else { vec![] },
            domain: None,
            attributes: vec![],
            attribute_missing: None,
        };
        // Every routed request, as API Gateway would send it.
        let mut requests = Vec::new();
        for r in snap.routes.iter() {
            let spec_method = r.method().unwrap_or("ANY");
            for m in methods(spec_method) {
                for p in instances(&r.path) {
                    // Only requests this route owns (API Gateway routes them here).
                    if snap.routes.find(m, &p).map(|o| o.label.as_str()) == Some(r.label.as_str()) {
                        requests.push((m, p, r.path.clone()));
                    }
                }
            }
        }
        prop_assume!(!requests.is_empty());
        // The policy decides by route (docs/lambda.md): every concrete path a
        // route receives for one method is decided alike, by the full pipeline
        // (no reference to templates, so this cannot hide a route-set bug).
        let mut by_route: std::collections::HashMap<(&str, String), bool> = std::collections::HashMap::new();
        for (m, p, _) in &requests {
            let owner = snap.routes.find(m, p).unwrap().label.clone();
            let fresh = decide(snap, m, p, &principal).allowed;
            prop_assume!(*by_route.entry((*m, owner)).or_insert(fresh) == fresh);
        }
        let (m0, p0, _) = &requests[first % requests.len()];
        let cached = cached_answer(snap, m0, p0, &principal);
        // Did the answer list every route (method) the principal may call?
        let allow_list: Vec<String> = cached["policyDocument"]["Statement"].as_array().unwrap().iter()
            .filter(|s| s["Effect"] == "Allow")
            .flat_map(|s| s["Resource"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()))
            .collect();
        let complete = requests.iter().all(|(m, p, _)| {
            let owner = snap.routes.find(m, p).unwrap();
            !by_route[&(*m, owner.label.clone())]
                || allow_list.iter().any(|a| a.ends_with(&format!("/{m}/{}", owner.glob().trim_start_matches('/'))))
        });
        CASES.fetch_add(1, Ordering::Relaxed);
        if complete {
            COMPLETE.fetch_add(1, Ordering::Relaxed);
        }
        for (m, p, _) in &requests {
            let fresh = decide(snap, m, p, &principal).allowed;
            let replayed = iam_allows(&cached, &format!("{BASE}/{m}{p}"));
            prop_assert!(!replayed || fresh, "the cached answer allows {m} {p}, a fresh decision denies it\n{cached:#}");
            if complete {
                prop_assert!(replayed || !fresh, "the cached answer denies {m} {p}, a fresh decision allows it\n{cached:#}");
            }
        }
    }
}

/// Models whose decision depends on a path value (docs/attributes.md): the
/// `{x}` parameter compared with the caller's `uid` (ownership, `self`
/// lines) or `tenant` (every line).
const VALUE_MODELS: [(&str, &str); 2] = [
    (
        "uid",
        "((p.sub == \"self\" && keyGet2(r.obj, p.obj, \"x\") == r.uid) || (p.sub != \"self\" && g(r.sub, p.sub))) && keyMatch2(r.obj, p.obj) && r.act == p.act",
    ),
    (
        "tenant",
        "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act && keyGet2(r.obj, p.obj, \"x\") == r.tenant",
    ),
];

/// Parameter values: the caller's own is one of the first three.
const VALUES: [&str; 4] = ["v1", "v2", "v3", "w"];

/// keyMatch2 with the template's own parameter names (`{x}` → `:x`).
fn named_pattern(template: &str) -> String {
    template
        .split('/')
        .map(|s| match s {
            "{proxy+}" => "*".to_string(),
            s if s.starts_with('{') => format!(":{}", &s[1..s.len() - 1]),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every concrete path of a template over [`VALUES`] (a greedy parameter
/// also two segments deep).
fn all_instances(template: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for seg in template.split('/').skip(1) {
        out = out
            .into_iter()
            .flat_map(|p| {
                let options: Vec<String> = match seg {
                    "{proxy+}" => VALUES
                        .iter()
                        .map(|v| v.to_string())
                        .chain(["v1/v4".to_string()])
                        .collect(),
                    s if s.starts_with('{') => VALUES.iter().map(|v| v.to_string()).collect(),
                    s => vec![s.to_string()],
                };
                options.into_iter().map(move |o| format!("{p}/{o}"))
            })
            .collect();
    }
    if template == "/" {
        return vec!["/".into()];
    }
    out
}

fn build_valued(
    model: usize,
    routes: &[RouteSpec],
    rules: &[(usize, usize, &'static str)],
) -> Option<Case> {
    let (attr, matcher) = VALUE_MODELS[model];
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = format!(
        "[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n[policy.attributes]\n{attr} = {{ claim = \"/{attr}\" }}\n"
    );
    let mut seen = std::collections::HashSet::new();
    for r in routes {
        if !seen.insert((r.method, r.template)) {
            continue;
        }
        cfg.push_str(&format!(
            "[[route]]\nmethod = \"{}\"\npath = \"{}\"\n",
            r.method, r.template
        ));
        if r.public {
            cfg.push_str("auth = \"none\"\n");
        }
    }
    let subjects = ["r0", "r1", "self"];
    let mut policy = String::new();
    for (route_idx, who, method) in rules {
        let r = &routes[route_idx % routes.len()];
        policy.push_str(&format!(
            "p, {}, {}, {method}\n",
            subjects[who % 3],
            named_pattern(r.template)
        ));
    }
    policy.push_str("g, r0, r1\n");
    let model_text = format!(
        "[request_definition]\nr = sub, obj, act, {attr}\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = {matcher}\n"
    );
    std::fs::write(dir.path().join("model.conf"), model_text).unwrap();
    std::fs::write(dir.path().join("policy.csv"), &policy).unwrap();
    let path = dir.path().join("authzd.toml");
    std::fs::write(&path, &cfg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let snap = rt.block_on(Snapshot::load(&path)).ok()?;
    Some(Case { snap, _dir: dir })
}

static VALUED: AtomicUsize = AtomicUsize::new(0);
static OWN_ALLOWED: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Ownership and tenant routes: a replayed answer never allows what a
    /// fresh decision denies, on any value of the parameters, and never
    /// denies the caller a path built from its own value that a fresh
    /// decision allows.
    #[test]
    fn a_replayed_answer_is_safe_and_keeps_the_callers_own_paths(
        model in 0usize..2,
        routes in prop::collection::vec(route(), 1..6),
        rules in prop::collection::vec((0usize..6, 0usize..3, prop::sample::select(vec!["GET", "POST", "PUT", "HEAD"])), 1..10),
        roles in prop::collection::vec(0usize..2, 0..2),
        own in 0usize..3,
        first in 0usize..64,
    ) {
        let Some(case) = build_valued(model, &routes, &rules) else { return Ok(()) };
        let snap = &case.snap;
        let mine = VALUES[own];
        let principal = Principal {
            subject: mine.into(),
            claim_subject: mine.into(),
            issuer: "i".into(),
            roles: roles.iter().map(|r| format!("r{r}")).collect(),
            scopes: vec![],
            domain: None,
            attributes: vec![mine.into()],
            attribute_missing: None,
        };
        let mut requests = Vec::new();
        for r in snap.routes.iter() {
            for m in methods(r.method().unwrap_or("ANY")) {
                for p in all_instances(&r.path) {
                    if snap.routes.find(m, &p).map(|o| o.label.as_str()) == Some(r.label.as_str()) {
                        requests.push((m, p));
                    }
                }
            }
        }
        prop_assume!(!requests.is_empty());
        let (m0, p0) = &requests[first % requests.len()];
        let cached = cached_answer(snap, m0, p0, &principal);
        // The warm instance's route-set cache answers the same, first and again.
        let sets = authzd::transport::lambda::route_cache::RouteSets::default();
        for _ in 0..2 {
            prop_assert_eq!(&answer_with(snap, m0, p0, &principal, Some(&sets)), &cached);
        }
        let other = Principal { roles: vec![], attributes: vec!["w".into()], ..principal.clone() };
        prop_assert_eq!(
            answer_with(snap, m0, p0, &other, Some(&sets)),
            cached_answer(snap, m0, p0, &other),
            "another caller never gets the first one's routes"
        );
        VALUED.fetch_add(1, Ordering::Relaxed);
        // Routes (per method) whose paths a fresh decision answers differently:
        // the ones that depend on a path value. (A route decided alike for
        // every path is the other property's business, overlaps included.)
        let fresh: Vec<bool> = requests.iter().map(|(m, p)| decide(snap, m, p, &principal).allowed).collect();
        let owner = |m: &str, p: &str| snap.routes.find(m, p).unwrap().label.clone();
        // Paths of one depth differ only in parameter values: a route (per
        // method and depth) decided differently among them depends on a value.
        let depth = |p: &str| p.matches('/').count();
        let mut seen: std::collections::HashMap<(&str, String, usize), (bool, bool)> = std::collections::HashMap::new();
        for ((m, p), f) in requests.iter().zip(&fresh) {
            let e = seen.entry((*m, owner(m, p), depth(p))).or_insert((*f, false));
            e.1 |= e.0 != *f;
        }
        for ((m, p), fresh) in requests.iter().zip(fresh) {
            let replayed = iam_allows(&cached, &format!("{BASE}/{m}{p}"));
            prop_assert!(!replayed || fresh, "the cached answer allows {m} {p}, a fresh decision denies it\n{cached:#}");
            // The caller's own path (every parameter its value; `v4` is the
            // second segment of a greedy one, never a caller's) on a route
            // that depends on it.
            let own_path = p
                .trim_start_matches('/')
                .split('/')
                .all(|s| !(VALUES.contains(&s) || s == "v4") || s == mine);
            let dependent = seen[&(*m, owner(m, p), depth(p))].1;
            if own_path && dependent && fresh {
                OWN_ALLOWED.fetch_add(1, Ordering::Relaxed);
                prop_assert!(replayed, "the cached answer denies {m} {p}, the caller's own, which a fresh decision allows\n{cached:#}");
            }
        }
    }
}

/// The property above must not hold vacuously: own paths were allowed and checked.
#[test]
fn valued_answers_were_checked_on_allowed_own_paths() {
    a_replayed_answer_is_safe_and_keeps_the_callers_own_paths();
    let (cases, own) = (
        VALUED.load(Ordering::Relaxed),
        OWN_ALLOWED.load(Ordering::Relaxed),
    );
    assert!(cases >= 50, "only {cases} cases were checked");
    assert!(own >= 50, "only {own} allowed own paths were checked");
}

/// The property above must not hold vacuously.
#[test]
fn most_generated_answers_list_every_allowed_route() {
    a_replayed_answer_decides_as_a_fresh_one();
    let (cases, complete) = (
        CASES.load(Ordering::Relaxed),
        COMPLETE.load(Ordering::Relaxed),
    );
    assert!(cases >= 50, "only {cases} cases were checked");
    assert!(
        complete * 10 >= cases * 8,
        "only {complete} of {cases} answers were complete"
    );
}

/// `/a/{proxy+}` is also a one-segment path `/a/{x}` would match: each route
/// must be decided as itself, or `GET/a/*` from the allowed `{x}` route
/// reaches the denied greedy route's deeper paths.
#[test]
fn a_greedy_route_is_not_decided_by_a_param_route_that_matches_its_template() {
    let routes = [
        RouteSpec {
            template: "/a/{x}",
            method: "GET",
            public: false,
            scoped: false,
        },
        RouteSpec {
            template: "/a/{proxy+}",
            method: "GET",
            public: false,
            scoped: false,
        },
    ];
    // Role r1 may GET `/a/:p` (one segment) only.
    let case = build(&routes, &[(0, 1, "GET")]).unwrap();
    let snap = &case.snap;
    let principal = Principal {
        subject: "u".into(),
        claim_subject: "u".into(),
        issuer: "i".into(),
        roles: vec!["r1".into()],
        scopes: vec![],
        domain: None,
        attributes: vec![],
        attribute_missing: None,
    };
    assert!(decide(snap, "GET", "/a/v2", &principal).allowed);
    let cached = cached_answer(snap, "GET", "/a/v2", &principal);
    assert!(!decide(snap, "GET", "/a/v1/v4", &principal).allowed);
    assert!(
        !iam_allows(&cached, &format!("{BASE}/GET/a/v1/v4")),
        "{cached:#}"
    );
    assert!(
        iam_allows(&cached, &format!("{BASE}/GET/a/v2")),
        "{cached:#}"
    );
}
