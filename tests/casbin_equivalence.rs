//! `docs/pipeline.md`: claim roles behave exactly as if the policy held `g, <sub>, <role>`.
//!
//! For several models, authzd's `Policy` (shared policy + per-request role
//! overlay) is compared on many generated requests with a plain casbin-rs
//! `Enforcer` whose policy physically contains those `g` lines. Decisions and
//! the matched policy line must be identical. A second test runs requests with
//! different roles on many threads at once against one shared `Policy`.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/casbin.rs"]
mod casbin_fixtures;
use casbin_fixtures::{Rng, decided, first_occurrences};

use std::{collections::HashMap, sync::Arc};

use authzd::policy::{Policy, Query};
use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};

struct ModelCase {
    name: &'static str,
    model: &'static str,
    /// Whether `p` lines carry an `eft` column.
    eft: bool,
    domains: bool,
    roles: bool,
    /// Object values used in policies (patterns allowed) and in requests.
    policy_objs: &'static [&'static str],
    request_objs: &'static [&'static str],
    policy_acts: &'static [&'static str],
}

const USERS: &[&str] = &["u0", "u1", "u2", "u3"];
const ROLES: &[&str] = &["r0", "r1", "r2", "r3", "r4"];
const DOMS: &[&str] = &["d0", "d1"];
const ACTS: &[&str] = &["GET", "POST", "DELETE"];

fn cases() -> Vec<ModelCase> {
    let plain_objs: &[&str] = &["/a", "/b", "/c"];
    vec![
        ModelCase {
            name: "acl",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub && r.obj == p.obj && r.act == p.act\n",
            eft: false,
            domains: false,
            roles: false,
            policy_objs: plain_objs,
            request_objs: plain_objs,
            policy_acts: ACTS,
        },
        ModelCase {
            name: "rbac-hierarchy",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n",
            eft: false,
            domains: false,
            roles: true,
            policy_objs: plain_objs,
            request_objs: plain_objs,
            policy_acts: ACTS,
        },
        ModelCase {
            name: "deny-override",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = !some(where (p.eft == deny))\n[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n",
            eft: true,
            domains: false,
            roles: true,
            policy_objs: plain_objs,
            request_objs: plain_objs,
            policy_acts: ACTS,
        },
        ModelCase {
            name: "allow-and-deny",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n",
            eft: true,
            domains: false,
            roles: true,
            policy_objs: plain_objs,
            request_objs: plain_objs,
            policy_acts: ACTS,
        },
        ModelCase {
            name: "rbac-domains",
            model: "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\np = sub, dom, obj, act\n[role_definition]\ng = _, _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act\n",
            eft: false,
            domains: true,
            roles: true,
            policy_objs: plain_objs,
            request_objs: plain_objs,
            policy_acts: ACTS,
        },
        ModelCase {
            name: "acl-keymatch-subject-index",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub && keyMatch(r.obj, p.obj) && r.act == p.act\n",
            eft: false,
            domains: false,
            roles: false,
            policy_objs: &["/a*", "/b", "/a/x*", "*"],
            request_objs: &["/a", "/ab", "/a/x/y", "/b", "/c"],
            policy_acts: ACTS,
        },
        ModelCase {
            name: "rbac-g-not-first",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = r.act == p.act && g(r.sub, p.sub) && (r.obj == p.obj)\n",
            eft: true,
            domains: false,
            roles: true,
            policy_objs: plain_objs,
            request_objs: plain_objs,
            policy_acts: ACTS,
        },
        ModelCase {
            name: "restful-keymatch2-regex",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)\n",
            eft: false,
            domains: false,
            roles: true,
            policy_objs: &["/items/:id", "/items/*", "/users/:uid/orders", "/admin"],
            request_objs: &[
                "/items/1",
                "/items/1/parts",
                "/users/7/orders",
                "/users/7/orders/2",
                "/admin",
                "/other",
            ],
            policy_acts: &["GET", "(GET)|(POST)", "DELETE", ".*"],
        },
    ]
}

fn policy_text(case: &ModelCase, rng: &mut Rng) -> String {
    let mut lines = Vec::new();
    for _ in 0..14 {
        // Subjects are mostly roles, sometimes users.
        let sub = if rng.below(4) == 0 || !case.roles {
            rng.pick(USERS)
        } else {
            rng.pick(ROLES)
        };
        let mut fields = vec![sub.to_string()];
        if case.domains {
            fields.push(rng.pick(DOMS).to_string());
        }
        fields.push(rng.pick(case.policy_objs).to_string());
        fields.push(rng.pick(case.policy_acts).to_string());
        if case.eft {
            fields.push(if rng.below(3) == 0 { "deny" } else { "allow" }.to_string());
        }
        lines.push(format!("p, {}", fields.join(", ")));
    }
    if case.roles {
        // A role hierarchy (acyclic: higher index inherits lower) and some users with stored roles.
        for _ in 0..5 {
            let a = rng.below(ROLES.len());
            let b = rng.below(ROLES.len());
            if a > b {
                lines.push(grouping(case, ROLES[a], ROLES[b], rng.pick(DOMS)));
            }
        }
        for _ in 0..2 {
            lines.push(grouping(
                case,
                rng.pick(USERS),
                rng.pick(ROLES),
                rng.pick(DOMS),
            ));
        }
    }
    lines.join("\n") + "\n"
}

fn grouping(case: &ModelCase, a: &str, b: &str, dom: &str) -> String {
    if case.domains {
        format!("g, {a}, {b}, {dom}")
    } else {
        format!("g, {a}, {b}")
    }
}

/// The reference: casbin-rs with the claim roles written into the policy.
async fn reference(
    case: &ModelCase,
    policy: &str,
    user: &str,
    roles: &[String],
    dom: &str,
) -> Enforcer {
    let mut text = policy.to_string();
    for r in roles {
        text.push_str(&grouping(case, user, r, dom));
        text.push('\n');
    }
    let model = DefaultModel::from_str(case.model).await.unwrap();
    Enforcer::new(model, StringAdapter::new(first_occurrences(&text)))
        .await
        .unwrap()
}

#[tokio::test]
async fn claim_roles_equal_physical_g_lines_across_models() {
    let mut compared = 0;
    let mut allowed = 0;
    for (ci, case) in cases().iter().enumerate() {
        for policy_seed in 0..3u64 {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((ci as u64) << 32) ^ (policy_seed + 1));
            let policy = policy_text(case, &mut rng);
            let ours = Policy::from_text(case.model, case.name, &policy, "generated")
                .await
                .unwrap();
            for _principal in 0..12 {
                let user = rng.pick(USERS);
                let n = if case.roles { rng.below(3) } else { 0 };
                let roles: Vec<String> = (0..n).map(|_| rng.pick(ROLES).to_string()).collect();
                let dom = if case.domains { rng.pick(DOMS) } else { "" };
                let reference = reference(case, &policy, user, &roles, dom).await;
                for _ in 0..12 {
                    let obj = rng.pick(case.request_objs);
                    let act = rng.pick(ACTS);
                    let q = Query {
                        subject: user,
                        roles: &roles,
                        domain: dom,
                        resource: obj,
                        action: act,
                        attributes: &[],
                        unfolded: None,
                    };
                    let got = ours.enforce(&q).unwrap();
                    let rvals: Vec<&str> = if case.domains {
                        vec![user, dom, obj, act]
                    } else {
                        vec![user, obj, act]
                    };
                    let (want, want_lines) = reference.enforce_ex(rvals).unwrap();
                    let want_line = decided(want, want_lines);
                    assert_eq!(
                        (got.allowed, &got.matched),
                        (want, &want_line),
                        "model {} request ({user} roles {roles:?} dom {dom:?}, {obj}, {act})\npolicy:\n{policy}",
                        case.name
                    );
                    compared += 1;
                    allowed += usize::from(want);
                }
            }
        }
    }
    // The generator must produce both outcomes, or the comparison proves little.
    assert!(compared >= 3000, "{compared}");
    assert!(
        allowed > compared / 10 && allowed < compared * 9 / 10,
        "{allowed} of {compared} allowed"
    );
}

#[tokio::test]
async fn deny_on_a_claim_role_overrides_an_allow() {
    let case = &cases()[2];
    let policy = "p, alice, /a, GET, allow\np, banned, /a, GET, deny\n";
    let ours = Policy::from_text(case.model, "m", policy, "p")
        .await
        .unwrap();
    let banned = vec!["banned".to_string()];
    let q = |roles: &[String]| {
        ours.enforce(&Query {
            subject: "alice",
            roles,
            domain: "",
            resource: "/a",
            action: "GET",
            attributes: &[],
            unfolded: None,
        })
        .unwrap()
    };
    assert!(q(&[]).allowed);
    let r = q(&banned);
    assert!(!r.allowed);
    assert_eq!(r.matched, ["banned", "/a", "GET", "deny"]);
}

/// Many threads, one `Policy`, different roles per request: no thread may see
/// another's roles, and all of them run at once (no global lock of ours).
#[test]
fn concurrent_requests_never_share_roles() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let case = &cases()[1];
    let policy = "p, r0, /a, GET\np, r1, /b, GET\np, r2, /c, GET\ng, r2, r1\n";
    let ours = Arc::new(
        rt.block_on(Policy::from_text(case.model, "m", policy, "p"))
            .unwrap(),
    );
    let mut expected: HashMap<(&str, &str), bool> = HashMap::new();
    for role in ["r0", "r1", "r2", "none"] {
        for obj in ["/a", "/b", "/c"] {
            let allow = matches!(
                (role, obj),
                ("r0", "/a") | ("r1", "/b") | ("r2", "/b") | ("r2", "/c")
            );
            expected.insert((role, obj), allow);
        }
    }
    let expected = Arc::new(expected);
    let threads: Vec<_> = ["r0", "r1", "r2", "none"]
        .into_iter()
        .map(|role| {
            let ours = Arc::clone(&ours);
            let expected = Arc::clone(&expected);
            std::thread::spawn(move || {
                let roles = if role == "none" {
                    vec![]
                } else {
                    vec![role.to_string()]
                };
                for i in 0..400 {
                    let obj = ["/a", "/b", "/c"][i % 3];
                    // Every thread uses the same subject, so only the overlay tells them apart.
                    let q = Query {
                        subject: "same-user",
                        roles: &roles,
                        domain: "",
                        resource: obj,
                        action: "GET",
                        attributes: &[],
                        unfolded: None,
                    };
                    let got = ours.enforce(&q).unwrap().allowed;
                    assert_eq!(
                        got,
                        expected[&(role, obj)],
                        "thread {role} saw the wrong roles for {obj}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
