//! `authzd diff`: every decision that flips between a live revision and a
//! candidate (`docs/policy-changes.md`), over the requests the two can tell
//! apart. Used only by the CLI.
//!
//! The universe ([`universe`]) is built from what either side names, read
//! with the loader's own CSV reader:
//! - principals: every name in either policy as a subject; a subject no
//!   line names holding each role name as a claim role (and every pair
//!   of them where a deny or an order can undo an allow); each with no
//!   scopes and with every scope either route table names; each with
//!   every assignment of absent / `w` / `w2` to the claims either config
//!   maps to attributes or domains;
//! - requests: every route of either table with each method it takes and
//!   every policy object with each action its lines name, each path
//!   parameter filled with `w`, `w2`, the principal's subject claim and
//!   subject, and the matchers' literals (so an equality between a path
//!   value and an identity is tried both true and false); unless both
//!   configs keep `[request]`'s defaults, each path also in the spellings
//!   those settings decide differently (case, trailing and doubled `/`,
//!   an encoded character);
//! - each domain either policy names and one none does, for models with
//!   domains.
//!
//! Each (principal, request) is decided by the whole pipeline under both
//! revisions, each revision reading the principal's claims through its own
//! `[policy.attributes]`; a flip is a different `allowed`.

mod markdown;
mod universe;

use std::{collections::BTreeMap, collections::BTreeSet, path::Path};

use serde::Serialize;

pub use markdown::markdown;
use universe::{Ask, Who};
pub use universe::{NOBODY, OTHER, WITNESS};

use crate::{
    decision::{self, Principal, Request, Target},
    policy::{cases, snapshot::Snapshot},
};

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

/// A decision that differs between the revisions, for a principal stated
/// as a token would state it (`authzd check --subject … --roles … --claim …`
/// asks it again).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Flip {
    /// The subject claim (without `subject_prefix`).
    pub subject: String,
    /// Claim roles (without `role_prefix`).
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Claims the attributes and domains read (JSON Pointer → value); a
    /// mapped claim not listed is one the token lacks.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
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
        universe::names_of(live_model, live_policy),
        universe::names_of(cand_model, cand_policy),
    );
    let whos = universe::principals(live, cand, &a, &b);
    let shapes = universe::shapes(live, cand, &a, &b);
    let domains = universe::domains(live, cand, &a, &b);
    let literals: BTreeSet<String> = universe::literals(live_model)
        .into_iter()
        .chain(universe::literals(cand_model))
        .collect();
    // Spellings matter unless both sides keep every default: then a path
    // in another case, with a trailing or doubled `/` or an encoded
    // character is refused, folded, or another resource alike.
    let spellings = [&live.config.request, &cand.config.request]
        .iter()
        .any(|r| **r != crate::config::RequestConfig::default());
    let mut flips = Vec::new();
    let mut requests = 0;
    // A request flipping for a principal without scopes is reported once,
    // not again for the same principal with every scope.
    let mut reported: BTreeSet<FlipKey> = BTreeSet::new();
    for who in &whos {
        let (pa, pb) = (stated(live, who), stated(cand, who));
        let asks = universe::asks(&shapes, who, &pa.subject, &literals, spellings);
        requests = requests.max(asks.len() * domains.len());
        for ask in &asks {
            for domain in &domains {
                let before = decide(live, &pa, ask, domain.as_deref());
                let after = decide(cand, &pb, ask, domain.as_deref());
                if before.allowed == after.allowed {
                    continue;
                }
                let key = (
                    who.subject.clone(),
                    who.roles.clone(),
                    who.claims.clone(),
                    ask.clone(),
                    domain.clone(),
                );
                if !reported.insert(key) {
                    continue;
                }
                let (method, path, resource, action) = match ask {
                    Ask::Http { method, path } => {
                        (Some(method.clone()), Some(path.clone()), None, None)
                    }
                    Ask::Resource { resource, action } => {
                        (None, None, Some(resource.clone()), Some(action.clone()))
                    }
                };
                flips.push(Flip {
                    subject: who.subject.clone(),
                    roles: who.roles.clone(),
                    scopes: who.scopes.clone(),
                    claims: who.claims.clone(),
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
    flips.sort_by(|x, y| {
        (
            x.before.allowed,
            &x.path,
            &x.resource,
            &x.method,
            &x.subject,
        )
            .cmp(&(
                y.before.allowed,
                &y.path,
                &y.resource,
                &y.method,
                &y.subject,
            ))
    });
    let newly_allowed = flips.iter().filter(|f| f.after.allowed).count();
    Report {
        summary: Summary {
            newly_allowed,
            newly_denied: flips.len() - newly_allowed,
            principals: whos.len(),
            requests,
        },
        flips,
    }
}

/// A flip's principal without its scopes, its request and domain: a flip
/// is reported once per key.
type FlipKey = (
    String,
    Vec<String>,
    BTreeMap<String, String>,
    Ask,
    Option<String>,
);

/// `who` as `snap` reads it: its prefixes, its attribute mapping.
fn stated(snap: &Snapshot, who: &Who) -> Principal {
    let mut claims = serde_json::Map::new();
    for (pointer, value) in &who.claims {
        insert_at(&mut claims, pointer, value);
    }
    let mut p = cases::stated(snap, &who.subject, &who.roles, &who.scopes, claims.clone());
    p.domain = snap
        .config
        .policy
        .domain_claim
        .as_deref()
        .and_then(|ptr| crate::token::claims::string_at(&claims, ptr));
    p.issuer = "(diff)".into();
    p
}

/// Puts `value` at the JSON Pointer `pointer` of `claims`, making objects
/// on the way (`/custom:tenant`, `/org/id`).
fn insert_at(claims: &mut serde_json::Map<String, serde_json::Value>, pointer: &str, value: &str) {
    let keys: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|k| k.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut at = claims;
    for k in parents {
        let next = at
            .entry(k.clone())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !next.is_object() {
            *next = serde_json::Value::Object(serde_json::Map::new());
        }
        let serde_json::Value::Object(map) = next else {
            return;
        };
        at = map;
    }
    at.insert(last.clone(), serde_json::Value::String(value.to_string()));
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
