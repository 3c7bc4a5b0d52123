//! `authzd diff`: every decision that flips between a live revision and a
//! candidate (`docs/policy-changes.md`), over the requests the two can tell
//! apart. Used only by the CLI.
//!
//! The universe is built from what either revision names:
//! - principals: every name in either policy (`p` subjects, both ends of
//!   `g` lines) as a subject with no claim roles; a subject no line names
//!   holding each such name as its one claim role; and, under an effect
//!   where a deny or an order can undo an allow, every pair of them;
//!   each with no scopes and with every scope either route table names;
//! - requests: every route of either table, each method it takes (`ANY`:
//!   GET, POST, PUT, PATCH, DELETE), parameters replaced by a witness (a
//!   greedy one also two segments deep); every policy object, patterns
//!   made concrete the same way, with every action the lines name for it;
//! - each domain either policy names, for a model with domains; attributes
//!   equal to the witness, so ownership and tenant lines apply.
//!
//! Each (principal, request) is decided by the whole pipeline under both
//! revisions; a flip is a different `allowed`.

use std::{collections::BTreeSet, path::Path};

use serde::Serialize;

use crate::{
    decision::{self, Principal, Request, Target},
    policy::snapshot::Snapshot,
};

/// The value put in every path parameter and attribute.
pub const WITNESS: &str = "w";
/// A subject no policy line names.
const NOBODY: &str = "authzd-nobody";
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Pairs of claim roles are enumerated only up to this many names.
const MAX_PAIR_NAMES: usize = 60;

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "`{0}` takes its policy from a store: export it (`authzd store export`) and point a config's `policy` at the file"
    )]
    Store(String),
}

/// One side of a flip.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Side {
    pub allowed: bool,
    pub reason: &'static str,
    pub matched_policy: Vec<String>,
}

/// A decision that differs between the revisions.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Flip {
    pub subject: String,
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    pub before: Side,
    pub after: Side,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub newly_allowed: usize,
    pub newly_denied: usize,
    pub principals: usize,
    pub requests: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub summary: Summary,
    /// Newly allowed first (the security-relevant direction), then newly denied.
    pub flips: Vec<Flip>,
}

/// A request of the universe.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ask {
    Http { method: String, path: String },
    Resource { resource: String, action: String },
}

/// What one policy file names.
#[derive(Default)]
struct Names {
    subjects: BTreeSet<String>,
    roles: BTreeSet<String>,
    domains: BTreeSet<String>,
    /// (object, action) of every `p` line.
    objects: BTreeSet<(String, String)>,
    /// A deny or an order can undo an allow.
    denies: bool,
}

/// The policy text of a snapshot's config (files only).
pub fn policy_text(snap: &Snapshot) -> Result<String, DiffError> {
    let p = &snap.config.policy;
    let Some(file) = &p.policy else {
        return Err(DiffError::Store(snap.config.source.display().to_string()));
    };
    read(file)
}

fn read(path: &Path) -> Result<String, DiffError> {
    std::fs::read_to_string(path).map_err(|source| DiffError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Field positions of `p = …` in the model text.
fn p_fields(model: &str) -> Vec<String> {
    let mut in_section = false;
    for line in model.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[policy_definition]";
            continue;
        }
        if in_section && let Some(rest) = line.strip_prefix("p =").or(line.strip_prefix("p=")) {
            return rest.split(',').map(|f| f.trim().to_string()).collect();
        }
    }
    vec!["sub".into(), "obj".into(), "act".into()]
}

fn names_of(model: &str, policy: &str) -> Names {
    let fields = p_fields(model);
    let at = |name: &str| fields.iter().position(|f| f == name);
    let (sub, obj, act, dom) = (at("sub"), at("obj"), at("act"), at("dom"));
    let mut n = Names {
        denies: model.contains("deny") || model.contains("priority"),
        ..Names::default()
    };
    for line in policy.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: Option<usize>| i.and_then(|i| f.get(i + 1)).map(|s| s.to_string());
        match f[0] {
            "p" => {
                if let Some(s) = get(sub) {
                    n.subjects.insert(s.clone());
                    n.roles.insert(s);
                }
                if let Some(d) = get(dom) {
                    n.domains.insert(d);
                }
                if let (Some(o), Some(a)) = (get(obj), get(act)) {
                    n.objects.insert((o, a));
                }
            }
            "g" => {
                if let (Some(a), Some(b)) = (f.get(1), f.get(2)) {
                    n.subjects.insert(a.to_string());
                    n.roles.insert(b.to_string());
                }
                if let Some(d) = f.get(3) {
                    n.domains.insert(d.to_string());
                }
            }
            _ => {}
        }
    }
    n
}

/// A pattern made concrete: `:id`, `{id}`, `*` become the witness.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| {
            if s.starts_with(':') || (s.starts_with('{') && s.ends_with('}')) || s == "*" {
                WITNESS.to_string()
            } else {
                s.replace('*', WITNESS)
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods an action names: `GET`, `(GET)|(POST)`, `GET|HEAD`.
fn methods_of(action: &str) -> Vec<String> {
    let words: Vec<String> = action
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase()))
        .map(str::to_string)
        .collect();
    if words.is_empty() || action == "*" || action.contains(".*") {
        METHODS.iter().map(|m| m.to_string()).collect()
    } else {
        words
    }
}

/// Route templates made concrete, with the methods they take.
fn route_asks(snap: &Snapshot, out: &mut BTreeSet<Ask>) {
    for r in snap.routes.iter() {
        let methods: Vec<String> = match r.method() {
            Some(m) => vec![m.to_string()],
            None => METHODS.iter().map(|m| m.to_string()).collect(),
        };
        let mut paths = vec![concrete(&r.path.replace("+}", "}"))];
        if r.path.contains("+}") {
            paths.push(format!("{}/{WITNESS}", paths[0]));
        }
        for m in &methods {
            for p in &paths {
                out.insert(Ask::Http {
                    method: m.clone(),
                    path: p.clone(),
                });
            }
        }
    }
}

/// Every flip between `live` and `candidate`.
pub fn diff(
    live: &Snapshot,
    live_model: &str,
    live_policy: &str,
    cand: &Snapshot,
    cand_model: &str,
    cand_policy: &str,
) -> Report {
    let (a, b) = (
        names_of(live_model, live_policy),
        names_of(cand_model, cand_policy),
    );
    let names: BTreeSet<&String> = a
        .subjects
        .iter()
        .chain(&a.roles)
        .chain(&b.subjects)
        .chain(&b.roles)
        .collect();
    // A token's subject carries `subject_prefix` and its claim roles
    // `role_prefix`: only names with them can be either.
    let (sp, rp) = (
        live.config.policy.subject_prefix.as_str(),
        live.config.policy.role_prefix.as_str(),
    );
    let nobody = format!("{sp}{NOBODY}");
    let roles: Vec<&String> = a
        .roles
        .iter()
        .chain(&b.roles)
        .chain(names.iter().copied())
        .filter(|r| r.starts_with(rp))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut claim_sets: Vec<(String, Vec<String>)> = names
        .iter()
        .filter(|n| n.starts_with(sp))
        .map(|n| (n.to_string(), Vec::new()))
        .chain(std::iter::once((nobody.clone(), Vec::new())))
        .chain(roles.iter().map(|r| (nobody.clone(), vec![r.to_string()])))
        .collect();
    if (a.denies || b.denies) && roles.len() <= MAX_PAIR_NAMES {
        for (i, r1) in roles.iter().enumerate() {
            for r2 in &roles[i + 1..] {
                claim_sets.push((nobody.clone(), vec![r1.to_string(), r2.to_string()]));
            }
        }
    }
    let scopes: BTreeSet<String> = live
        .routes
        .iter()
        .chain(cand.routes.iter())
        .flat_map(|r| r.scopes.iter().cloned())
        .collect();
    let scope_sets: Vec<Vec<String>> = if scopes.is_empty() {
        vec![Vec::new()]
    } else {
        vec![Vec::new(), scopes.into_iter().collect()]
    };
    let mut asks = BTreeSet::new();
    route_asks(live, &mut asks);
    route_asks(cand, &mut asks);
    for (object, action) in a.objects.iter().chain(&b.objects) {
        if object.starts_with('/') {
            for m in methods_of(action) {
                asks.insert(Ask::Http {
                    method: m,
                    path: concrete(object),
                });
            }
        } else {
            asks.insert(Ask::Resource {
                resource: object.clone(),
                action: action.clone(),
            });
        }
    }
    let domains: Vec<Option<String>> = if live.policy.has_domain() || cand.policy.has_domain() {
        a.domains
            .iter()
            .chain(&b.domains)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|d| Some(d.clone()))
            .collect()
    } else {
        vec![None]
    };
    let attributes = live
        .policy
        .attributes
        .len()
        .max(cand.policy.attributes.len());
    let mut flips = Vec::new();
    let principals = claim_sets.len() * scope_sets.len();
    // A request flipping for a principal without scopes is reported once,
    // not again for the same principal with every scope.
    let mut reported: BTreeSet<(usize, &Ask, &Option<String>)> = BTreeSet::new();
    for (who, (subject, roles)) in claim_sets.iter().enumerate() {
        for scopes in &scope_sets {
            let principal = |snap: &Snapshot| Principal {
                roles: roles.clone(),
                scopes: scopes.clone(),
                attributes: vec![WITNESS.to_string(); attributes],
                ..Principal::recorded(subject, "(diff)", &snap.config.policy.subject_prefix)
            };
            let (pa, pb) = (principal(live), principal(cand));
            for ask in &asks {
                for domain in &domains {
                    let before = decide(live, &pa, ask, domain.as_deref());
                    let after = decide(cand, &pb, ask, domain.as_deref());
                    if before.allowed != after.allowed && reported.insert((who, ask, domain)) {
                        let (method, path, resource, action) = match ask {
                            Ask::Http { method, path } => {
                                (Some(method.clone()), Some(path.clone()), None, None)
                            }
                            Ask::Resource { resource, action } => {
                                (None, None, Some(resource.clone()), Some(action.clone()))
                            }
                        };
                        flips.push(Flip {
                            subject: subject.clone(),
                            roles: roles.clone(),
                            scopes: scopes.clone(),
                            domain: domain.clone(),
                            method,
                            path,
                            resource,
                            action,
                            before,
                            after,
                        });
                    }
                }
            }
        }
    }
    flips.sort_by_key(|f| {
        (
            f.before.allowed,
            f.path.clone(),
            f.resource.clone(),
            f.method.clone(),
            f.subject.clone(),
        )
    });
    let newly_allowed = flips.iter().filter(|f| f.after.allowed).count();
    Report {
        summary: Summary {
            newly_allowed,
            newly_denied: flips.len() - newly_allowed,
            principals,
            requests: asks.len() * domains.len(),
        },
        flips,
    }
}

fn decide(snap: &Snapshot, p: &Principal, ask: &Ask, domain: Option<&str>) -> Side {
    let target = match ask {
        Ask::Http { method, path } => Target::Http { method, path },
        Ask::Resource { resource, action } => Target::Resource { resource, action },
    };
    let req = Request {
        domain,
        ..Request::bare(target)
    };
    let d = decision::decide_for(snap, &req, p);
    Side {
        allowed: d.allowed,
        reason: d.reason.as_str(),
        matched_policy: d.matched_policy,
    }
}

/// The report as a Markdown table, to paste into a pull request.
pub fn markdown(r: &Report) -> String {
    let mut out = format!(
        "**{} newly allowed, {} newly denied** ({} principals × {} requests compared)\n\n",
        r.summary.newly_allowed, r.summary.newly_denied, r.summary.principals, r.summary.requests
    );
    if r.flips.is_empty() {
        out.push_str("No decision changes.\n");
        return out;
    }
    out.push_str("| change | subject | claim roles | request | before | after |\n|---|---|---|---|---|---|\n");
    let side = |s: &Side| {
        let verdict = if s.allowed { "allow" } else { "deny" };
        if s.matched_policy.is_empty() {
            format!("{verdict} ({})", s.reason)
        } else {
            format!("{verdict} by `{}`", s.matched_policy.join(", "))
        }
    };
    for f in &r.flips {
        let request = match (&f.method, &f.path, &f.resource, &f.action) {
            (Some(m), Some(p), _, _) => format!("`{m} {p}`"),
            (_, _, Some(res), Some(a)) => format!("`{a}` on `{res}`"),
            _ => String::new(),
        };
        let request = match &f.domain {
            Some(d) => format!("{request} in `{d}`"),
            None => request,
        };
        let subject = if f.subject.ends_with(NOBODY) {
            "any user".to_string()
        } else {
            format!("`{}`", f.subject.replace('|', "\\|"))
        };
        out.push_str(&format!(
            "| {} | {subject} | {} | {request} | {} | {} |\n",
            if f.after.allowed {
                "**newly allowed**"
            } else {
                "newly denied"
            },
            f.roles.join(", ").replace('|', "\\|"),
            side(&f.before).replace('|', "\\|"),
            side(&f.after).replace('|', "\\|"),
        ));
    }
    out
}
