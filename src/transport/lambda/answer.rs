//! What the Lambda authorizer answers API Gateway: an IAM policy (default)
//! or a simple response, built from the outcome of the one pipeline.
//!
//! API Gateway caches an answer by identity source (the token) for the
//! authorizer's TTL and replays it for *other routes*. With `policy_scope =
//! "routes"` the IAM policy is therefore about the whole route table: it
//! allows the ARN of every route this principal may call, each decided with
//! the route's path template as the resource. IAM matches ARNs with `*`
//! spanning `/`, so `GET/items/*` also matches `GET/items/7/secret`: a route
//! whose pattern reaches paths of a route the principal may not call is
//! answered only when an exact `Deny` for that route can be added without
//! reaching an allowed route's paths; otherwise it is left out (a replay on
//! it is denied, never wrongly allowed, until the cache expires).

use serde_json::{Map, Value, json};

use super::event::{Api, Event, Shape};
use crate::{
    audit::Outcome,
    config::{LambdaPolicyScope, LambdaResponse},
    decision::{self, Principal, RouteVerdict},
    policy::snapshot::Snapshot,
};

/// The methods an `ANY` route stands for in ARNs.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The invocation's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The authorizer's answer document.
    Answer(Value),
    /// A failed invocation: API Gateway answers 401 for `Unauthorized` (REST
    /// APIs) and 500 for anything else — never an allow.
    Fail {
        error_type: &'static str,
        message: String,
    },
}

/// How [`reply`] gets a caller's route set: [`route_set`] itself, or a
/// cache of it (the Lambda runtime's `route_cache`).
pub type RouteSetFn<'a> = &'a dyn Fn(&Snapshot, &Event, Option<&Principal>) -> Statements;

/// The statements of an IAM answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Statements {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// The answer to `event` given the check's `outcome` and the caller, when
/// its token is valid ([`principal_of`], else resolved from the token: a
/// public route is decided before the token is read, but the cached answer
/// must still list what this caller may call).
pub fn reply(
    snap: &Snapshot,
    event: &Event,
    outcome: &Outcome,
    principal: Option<&Principal>,
    routes: RouteSetFn<'_>,
) -> Reply {
    let d = &outcome.decision;
    let cfg = &snap.config.lambda;
    match d.status {
        503 => {
            return Reply::Fail {
                error_type: "ServiceUnavailable",
                message: format!("authzd could not decide: {}", d.reason.as_str()),
            };
        }
        401 if event.api == Api::Rest => {
            return Reply::Fail {
                error_type: "Unauthorized",
                message: "Unauthorized".into(),
            };
        }
        _ => {}
    }
    let context = context(outcome);
    if cfg.response == LambdaResponse::Simple && event.shape == Shape::HttpV2 {
        return Reply::Answer(json!({"isAuthorized": d.allowed, "context": context}));
    }
    let statements = match cfg.policy_scope {
        LambdaPolicyScope::Request => {
            let mut s = Statements::default();
            let list = if d.allowed { &mut s.allow } else { &mut s.deny };
            list.push(event.arn.to_arn());
            s
        }
        LambdaPolicyScope::Routes => {
            let mut s = routes(snap, event, principal);
            pin_current(&mut s, event, d.allowed);
            s
        }
    };
    let principal_id = d
        .subject
        .as_deref()
        .or(principal.map(|p| p.subject.as_str()))
        .unwrap_or("anonymous");
    Reply::Answer(json!({
        "principalId": principal_id,
        "policyDocument": policy_document(&statements),
        "context": context,
    }))
}

/// `context` holds flat strings only (API Gateway rejects nested values).
fn context(o: &Outcome) -> Map<String, Value> {
    let d = &o.decision;
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.into(), Value::String(v));
    };
    put("subject", d.subject.clone().unwrap_or_default());
    put("roles", crate::transport::answer::roles_value(&d.roles));
    put("scopes", d.scopes.join(" "));
    put("decision_id", o.decision_id.clone());
    put("policy_revision", d.revision.to_string());
    put("reason", d.reason.as_str().into());
    m
}

fn policy_document(s: &Statements) -> Value {
    let mut statements = Vec::new();
    for (effect, list) in [("Allow", &s.allow), ("Deny", &s.deny)] {
        if !list.is_empty() {
            statements
                .push(json!({"Action": "execute-api:Invoke", "Effect": effect, "Resource": list}));
        }
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Who the caller was, when the pipeline verified a token.
pub fn principal_of(o: &Outcome) -> Option<Principal> {
    let d = &o.decision;
    let subject = d.subject.clone()?;
    Some(Principal {
        claim_subject: subject.clone(),
        subject,
        issuer: d.issuer.clone().unwrap_or_default(),
        roles: d.roles.clone(),
        scopes: d.scopes.clone(),
        domain: d.domain.clone(),
        // Every attribute, logged or not, by position; a missing one is
        // carried so that no route is decided without it.
        attributes: d.attributes.iter().map(|a| a.value.clone()).collect(),
        attribute_missing: d.attribute_missing.clone(),
    })
}

/// The current request's own ARN, decided on its concrete path: an allow
/// that the route set does not already give is added exactly (unless the
/// path holds a wildcard character, which would widen it), and a deny is
/// always added (explicit `Deny` wins in IAM, so it is never overridden).
fn pin_current(s: &mut Statements, event: &Event, allowed: bool) {
    let arn = event.arn.to_arn();
    if !allowed {
        s.deny.push(arn);
        return;
    }
    // A Deny for exactly this ARN (a literal route's) yields to the concrete
    // decision; a wildcard Deny stays (failing closed for this request).
    s.deny.retain(|d| *d != arn);
    if !s.allow.iter().any(|a| glob_match(a, &arn)) && !arn.contains(['*', '?']) {
        s.allow.push(arn);
    }
}

/// The routes this principal may call (`None`: no verified caller, so only
/// public routes), as `execute-api` ARNs with `*` for parameters.
pub fn route_set(snap: &Snapshot, event: &Event, principal: Option<&Principal>) -> Statements {
    struct Entry<'s> {
        method: &'static str,
        route: &'s crate::routes::Route,
        glob: String,
        allowed: bool,
        /// The route's decision depends on a path value: never a wildcard
        /// (neither Allow nor Deny), only these concrete allowed paths.
        only: Option<Vec<String>>,
    }
    // Routes with a named method, by ARN pattern: for that method they take
    // every path of an `ANY` route with the same path (a named method wins).
    // Each route's ARN pattern, built once.
    let globs: Vec<String> = snap.routes.iter().map(|r| r.glob()).collect();
    let mut named: foldhash::HashMap<&str, Vec<(usize, &crate::routes::Route)>> =
        foldhash::HashMap::default();
    for (i, r) in snap.routes.iter().enumerate() {
        if r.method().is_some() {
            named.entry(globs[i].as_str()).or_default().push((i, r));
        }
    }
    // Every (method, route) of the table, each decided as itself, with its
    // path template as the resource.
    let mut decided: Vec<Entry<'_>> = Vec::new();
    // Each route's GET verdict, computed once: HEAD entries consult the GET
    // routes reaching their paths.
    let get_verdicts: Vec<std::cell::OnceCell<RouteVerdict>> = snap
        .routes
        .iter()
        .map(|_| std::cell::OnceCell::new())
        .collect();
    let get_verdict = |i: usize, o: &crate::routes::Route, p: &Principal| {
        get_verdicts[i]
            .get_or_init(|| decision::route_verdict(snap, o, "GET", p))
            .clone()
    };
    for (ri, route) in snap.routes.iter().enumerate() {
        let glob = &globs[ri];
        for m in METHODS {
            let taken_over = || {
                route.method().is_none()
                    && named.get(glob.as_str()).is_some_and(|rs| {
                        rs.iter()
                            .any(|(_, o)| o.method() == Some(m) && o.same_paths(route))
                    })
            };
            if route.method().is_some_and(|rm| rm != m) || taken_over() {
                continue;
            }
            // A HEAD on one of this route's paths runs whichever GET route
            // takes that path: another GET route reaching these paths must
            // allow too, or a wildcard for this one is not safe.
            let others_allow = |gets: &dyn Fn(usize, &crate::routes::Route) -> bool| {
                m != "HEAD"
                    || snap.routes.iter().enumerate().all(|(i, o)| {
                        o.same_paths(route)
                            || !matches!(o.method(), None | Some("GET"))
                            || !o.may_overlap(glob)
                            || gets(i, o)
                    })
            };
            let verdict = match principal {
                None => RouteVerdict::All(route.public && others_allow(&|_, o| o.public)),
                // A HEAD runs the GET handler, so it is also decided as GET
                // (by the route that takes GET on this path), as the pipeline does.
                Some(p) if m == "HEAD" => {
                    let (gi, get_route) = named
                        .get(glob.as_str())
                        .and_then(|rs| {
                            rs.iter()
                                .find(|(_, o)| o.method() == Some("GET") && o.same_paths(route))
                        })
                        .copied()
                        .unwrap_or((ri, route));
                    // Only asked when this route allows HEAD at all.
                    let others =
                        || others_allow(&|i, o| get_verdict(i, o, p) == RouteVerdict::All(true));
                    let (head, get) = (
                        decision::route_verdict(snap, route, m, p),
                        get_verdict(gi, get_route, p),
                    );
                    let whole = match (&head, &get) {
                        (RouteVerdict::All(true), RouteVerdict::All(true)) => Some(others()),
                        (RouteVerdict::All(_), RouteVerdict::All(_)) => Some(false),
                        _ => None,
                    };
                    match whole {
                        Some(ok) if ok || !snap.policy.reads_path_values => RouteVerdict::All(ok),
                        // Some GET decision here depends on path values: no
                        // wildcard, only this caller's own paths (of this
                        // route, and of the GET routes reaching its paths),
                        // each decided as a fresh HEAD is.
                        _ => {
                            let mut paths: Vec<String> = [head, get]
                                .into_iter()
                                .flat_map(|v| match v {
                                    RouteVerdict::Only(ps) => ps,
                                    RouteVerdict::All(_) => Vec::new(),
                                })
                                .chain(decision::own_paths(snap, route, m, p))
                                .collect();
                            for (i, o) in snap.routes.iter().enumerate().filter(|(_, o)| {
                                !o.same_paths(route)
                                    && matches!(o.method(), None | Some("GET"))
                                    && o.may_overlap(glob)
                            }) {
                                if let RouteVerdict::Only(ps) = get_verdict(i, o, p) {
                                    paths.extend(ps);
                                }
                            }
                            paths.sort();
                            paths.dedup();
                            paths.retain(|path| {
                                snap.routes
                                    .find(m, path)
                                    .is_some_and(|r| r.same_paths(route))
                                    && decision::fresh_allows(snap, m, path, p)
                            });
                            RouteVerdict::Only(paths)
                        }
                    }
                }
                // The GET verdict is shared with the HEAD entries that consult it.
                Some(p) if m == "GET" => get_verdict(ri, route, p),
                Some(p) => decision::route_verdict(snap, route, m, p),
            };
            let (allowed, only) = match verdict {
                RouteVerdict::All(a) => (a, None),
                RouteVerdict::Only(paths) => (false, Some(paths)),
            };
            decided.push(Entry {
                method: m,
                route,
                glob: glob.clone(),
                allowed,
                only,
            });
        }
    }
    // Entries that may overlap: same method, and the same literal first
    // segment unless either side's first segment is a parameter. Bucketing
    // keeps the pairwise checks below near-linear for real route tables.
    fn first(glob: &str) -> Option<&str> {
        let seg = glob.trim_start_matches('/').split('/').next().unwrap_or("");
        (!seg.contains(['*', '?'])).then_some(seg)
    }
    let mut buckets: foldhash::HashMap<(&str, Option<&str>), Vec<usize>> =
        foldhash::HashMap::default();
    for (i, e) in decided.iter().enumerate() {
        buckets
            .entry((e.method, first(&e.glob)))
            .or_default()
            .push(i);
    }
    let near = |e: &Entry<'_>, allowed: bool| -> Vec<usize> {
        let idx: Vec<usize> = match first(&e.glob) {
            // A parameter first: anything of this method may overlap.
            None => buckets
                .iter()
                .filter(|((m, _), _)| *m == e.method)
                .flat_map(|(_, v)| v.iter().copied())
                .collect(),
            Some(seg) => buckets
                .get(&(e.method, Some(seg)))
                .into_iter()
                .chain(buckets.get(&(e.method, None)))
                .flatten()
                .copied()
                .collect(),
        };
        idx.into_iter()
            .filter(|&i| decided[i].allowed == allowed)
            .collect()
    };
    // A Deny is exact when it cannot reach a path of an allowed route (and
    // is never written for a route whose answer depends on path values:
    // it would override the caller's own concrete Allows).
    let own: Vec<String> = decided
        .iter()
        .filter_map(|e| e.only.as_ref().map(|paths| (e.method, paths)))
        .flat_map(|(m, paths)| paths.iter().map(move |p| event.arn.with(m, p)))
        .collect();
    // Each entry's ARN, and whether its Deny is exact, computed once: an
    // Allow asks about every denied route near it.
    let arns: Vec<String> = decided
        .iter()
        .map(|e| event.arn.with(e.method, &e.glob))
        .collect();
    let exact: Vec<std::cell::OnceCell<bool>> =
        decided.iter().map(|_| std::cell::OnceCell::new()).collect();
    let deny_is_exact = |i: usize| {
        *exact[i].get_or_init(|| {
            let d = &decided[i];
            d.only.is_none()
                && !own.iter().any(|a| glob_match(&arns[i], a))
                && (d.route.is_literal()
                    || near(d, true)
                        .into_iter()
                        .all(|a| !decided[a].route.may_overlap(&d.glob)))
        })
    };
    let mut out = Statements::default();
    let (mut allowed, mut denied) = (
        foldhash::HashSet::<String>::default(),
        foldhash::HashSet::<String>::default(),
    );
    let mut allow = |out: &mut Statements, arn: String| {
        if allowed.insert(arn.clone()) {
            out.allow.push(arn);
        }
    };
    for (i, e) in decided.iter().enumerate() {
        if e.allowed {
            // Every denied route this Allow reaches must be covered by an exact Deny.
            let safe = near(e, false)
                .into_iter()
                .all(|d| !decided[d].route.may_overlap(&e.glob) || deny_is_exact(d));
            if safe {
                allow(&mut out, arns[i].clone());
            }
        } else if let Some(paths) = &e.only {
            for path in paths {
                allow(&mut out, event.arn.with(e.method, path));
            }
        } else if deny_is_exact(i) && denied.insert(arns[i].clone()) {
            out.deny.push(arns[i].clone());
        }
    }
    // Denies matter only where some Allow could reach them.
    let allow_prefixes: Vec<&str> = out.allow.iter().map(|a| literal_prefix(a)).collect();
    out.deny.retain(|d| {
        let dp = literal_prefix(d);
        allow_prefixes
            .iter()
            .zip(&out.allow)
            .any(|(ap, a)| prefixes_meet(ap, a, dp, d))
    });
    out
}

/// IAM's wildcard match for `execute-api` resources: `*` any characters
/// (`/` included), `?` one character.
pub fn glob_match(pattern: &str, arn: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), arn.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// An ARN pattern up to its first wildcard.
fn literal_prefix(s: &str) -> &str {
    // INVARIANT: `*` and `?` are ASCII, so the position is a char boundary.
    let end = s
        .bytes()
        .position(|b| b == b'*' || b == b'?')
        .unwrap_or(s.len());
    &s[..end]
}

/// Whether two ARN patterns could match one ARN (a cheap over-approximation:
/// same text up to the first wildcard of either).
#[cfg(test)]
fn globs_may_meet(a: &str, b: &str) -> bool {
    prefixes_meet(literal_prefix(a), a, literal_prefix(b), b)
}

/// [`globs_may_meet`] with both literal prefixes already found.
fn prefixes_meet(ap: &str, a: &str, bp: &str, b: &str) -> bool {
    let n = ap.len().min(bp.len());
    a.as_bytes()[..n] == b.as_bytes()[..n] && (n < a.len() || n < b.len() || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_wildcards() {
        assert!(glob_match("a/GET/items/*", "a/GET/items/7"));
        assert!(glob_match("a/GET/items/*", "a/GET/items/7/secret"));
        assert!(!glob_match("a/GET/items/*", "a/POST/items/7"));
        assert!(glob_match("a/*/items/?", "a/PUT/items/7"));
        assert!(!glob_match("a/*/items/?", "a/PUT/items/77"));
        assert!(glob_match("a/GET/", "a/GET/"));
        assert!(!glob_match("a/GET/", "a/GET/x"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn globs_may_meet_over_approximates() {
        assert!(globs_may_meet("a/GET/*", "a/GET/x"));
        assert!(globs_may_meet("a/GET/x", "a/GET/x"));
        assert!(!globs_may_meet("a/GET/x", "a/GET/y"));
        assert!(!globs_may_meet("a/POST/*", "a/GET/x"));
    }
}
