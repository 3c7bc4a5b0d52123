//! THE decision pipeline (`docs/pipeline.md`): pure, synchronous, no I/O,
//! clock passed in.
//!
//! A deny is a [`Decision`] carrying its [`Reason`], never an `Err`. The one
//! thing this module cannot do without I/O is obtain an issuer's keys; when
//! they are missing it returns [`Step::NeedKeys`] and the caller
//! ([`crate::authorizer`]) fetches them and runs the pipeline again.

use std::{borrow::Cow, sync::Arc, time::SystemTime};

use crate::{
    cors::{self, Preflight},
    policy::{Query, snapshot::Snapshot},
    request::{self, Overrides, body::Body},
    roles::{Lookup, RoleLookup, RoleSource},
    routes::Route,
    token::{self, verified::VerifiedCache},
};

mod authn;

pub use crate::{reason::Reason, roles::Principal};
pub use authn::{AuthFailure, KeySource, authenticate, token_fingerprint};

/// What is being asked about.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// An HTTP request: the route table runs; resource = path without query, action = method.
    Http { method: &'a str, path: &'a str },
    /// A direct question; no route, no scopes.
    Resource { resource: &'a str, action: &'a str },
}

impl<'a> Target<'a> {
    /// (resource, action) as received, for the log of a request refused at step 0:
    /// for HTTP, the path without its query (which may carry credentials).
    pub fn raw_resource_action(&self) -> (&'a str, &'a str) {
        match *self {
            Target::Http { method, path } => (request::split_query(path).0, method),
            Target::Resource { resource, action } => (resource, action),
        }
    }
}

/// One check, as every transport hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub target: Target<'a>,
    /// An explicit token (the RPC/JSON `token` field).
    pub token: Option<&'a str>,
    /// The `Authorization` header as received.
    pub authorization: Option<&'a str>,
    /// `Origin` and `Access-Control-Request-Method` headers: both present makes an `OPTIONS` a preflight.
    pub origin: Option<&'a str>,
    pub access_control_request_method: Option<&'a str>,
    /// The interface can send authzd's own answer to the client instead of
    /// forwarding the request (Envoy's denied response): there a CORS
    /// preflight is answered (`cors_preflight = "answer"`), elsewhere refused.
    pub answers_preflight: bool,
    /// Casbin domain for four-field models; falls back to the issuer's `domain_claim`.
    pub domain: Option<&'a str>,
    /// Method-override headers, in the order of [`request::METHOD_OVERRIDE_HEADERS`].
    pub method_overrides: Overrides<'a>,
    /// The request body, where the gateway forwards it (Envoy with
    /// `with_request_body`): a `_method` form field is an override too.
    pub body: Option<Body<'a>>,
    /// The W3C `traceparent` header, if any: it only labels the record.
    pub traceparent: Option<&'a str>,
    /// The W3C `tracestate` header, passed on to the exported span.
    pub tracestate: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// A request that is only its target: no token, headers or body. For
    /// deciding with a principal standing in for the token (`decide_for`).
    pub fn bare(target: Target<'a>) -> Request<'a> {
        Request {
            target,
            token: None,
            authorization: None,
            origin: None,
            access_control_request_method: None,
            answers_preflight: false,
            domain: None,
            method_overrides: [None; 3],
            body: None,
            traceparent: None,
            tracestate: None,
        }
    }
}

/// Step 0's result: what the rest of the pipeline decides on.
#[derive(Debug)]
struct Resolved<'a> {
    resource: Cow<'a, str>,
    action: Cow<'a, str>,
    /// An HTTP request (the route table runs), not a direct question.
    http: bool,
    /// The method a method override asks for (`method_override = "authorize"`).
    overridden: Option<String>,
}

/// The outcome of a check, with everything the log and the transports need.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub status: u16,
    pub reason: Reason,
    /// A human sentence, e.g. "token expired 42 s ago".
    pub detail: String,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// The principal's domain (`domain_claim`), when it has one.
    pub domain: Option<String>,
    /// The model's attributes as the token filled them (`[policy.attributes]`).
    pub attributes: Vec<Attribute>,
    /// Set when the token could not fill an attribute (see
    /// [`Principal::attribute_missing`]); the policy is then never asked.
    pub attribute_missing: Option<String>,
    pub resource: String,
    pub action: String,
    /// The check named a method and path (`resource` is the canonical path,
    /// `action` the method), not a resource and an action.
    pub http: bool,
    pub route: Option<String>,
    pub matched_policy: Vec<String>,
    pub revision: Arc<str>,
    /// First 16 hex chars of SHA-256 of the token; the token itself is never kept.
    pub token_sha256: Option<String>,
    /// Headers of authzd's own answer to the client (a CORS preflight answered
    /// with status 204); empty otherwise.
    pub response_headers: Vec<(&'static str, String)>,
    /// A method the request asked the upstream to run instead (a
    /// method-override header, `?_method=` or a body field) that was
    /// authorized too (`method_override = "authorize"`). `HEAD`'s `GET`
    /// is implied by the method and not named here.
    pub method_override: Option<String>,
}

/// One attribute of the decision: its model field, value (empty: the
/// token gave none), and whether the decision log may show the value
/// (`log = false` keeps it out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: String,
    pub log: bool,
}

/// Where the pipeline stopped.
#[derive(Debug)]
// `Step` is returned once per check and matched at once; boxing would cost an allocation for nothing.
#[expect(clippy::large_enum_variant, reason = "short-lived return value")]
pub enum Step {
    Done(Decision),
    /// The issuer's keys are missing or lack the token's `kid`: fetch, then run again
    /// with `allow_fetch = false`.
    NeedKeys(usize),
    /// Looked-up roles for this subject (the claim value, unprefixed) are not cached:
    /// fetch, then run again.
    NeedRoles(String),
}

/// What the pipeline may read without I/O, and whether a miss may ask for a fetch.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub keys: &'a dyn KeySource,
    pub roles: &'a dyn RoleSource,
    /// A missing key set or `kid` returns [`Step::NeedKeys`] (else `key_unknown`).
    pub fetch_keys: bool,
    /// Uncached looked-up roles return [`Step::NeedRoles`] (else `role_lookup_failed`).
    pub fetch_roles: bool,
    /// Tokens verified before, by SHA-256 of the whole token.
    pub tokens: Option<&'a VerifiedCache>,
    /// How long reads of the policy store have been failing (`None`: they
    /// succeed, or the policy is a file); bounded by `max_staleness_secs`.
    pub store_failing_for: Option<std::time::Duration>,
}

/// Runs the pipeline (steps 0–7) for `req` against `snap`.
pub fn decide(snap: &Snapshot, req: &Request<'_>, src: Sources<'_>, now: SystemTime) -> Step {
    let resolved = match resolve(snap, req) {
        Ok(r) => r,
        Err(rejected) => return Step::Done(*rejected),
    };
    if let Some(why) = policy_unusable(snap, src.store_failing_for) {
        return Step::Done(unavailable(snap, &resolved, why));
    }
    with_override(&resolved, |action| {
        decide_resolved(snap, req, &resolved, action, src, now)
    })
}

/// Runs `run` for the request's method and, when a method override is to be
/// authorized as well and the first answer allows, for the overridden method:
/// the first denial decides.
fn with_override(resolved: &Resolved<'_>, mut run: impl FnMut(&str) -> Step) -> Step {
    let first = run(&resolved.action);
    let Some(method) = &resolved.overridden else {
        return first;
    };
    // The record names an override the request asked for (not `HEAD`'s `GET`).
    let asked = (resolved.action != "HEAD" || method != "GET").then(|| method.clone());
    let named = |step: Step| match step {
        Step::Done(mut d) => {
            d.method_override.clone_from(&asked);
            Step::Done(d)
        }
        other => other,
    };
    match &first {
        Step::Done(d) if d.allowed => {}
        _ => return named(first),
    }
    named(match run(method) {
        Step::Done(mut d) if !d.allowed => {
            // The record keeps the method sent; the override is named beside it.
            d.action = crate::bounded::clipped(&resolved.action);
            d.detail = if resolved.action == "HEAD" && method == "GET" {
                format!(
                    "`HEAD` runs the `GET` handler, so `GET` must be allowed too: {}",
                    d.detail
                )
            } else {
                format!(
                    "method override to `{method}` (sent as `{}`): {}",
                    resolved.action, d.detail
                )
            };
            Step::Done(d)
        }
        Step::Done(_) => first,
        need => need,
    })
}

/// Step 0: the method, path or resource in canonical form, or a refusal
/// (`request_rejected`) naming what was wrong.
fn resolve<'a>(snap: &Snapshot, req: &Request<'a>) -> Result<Resolved<'a>, Box<Decision>> {
    let rules = &snap.config.request;
    let resolved = match req.target {
        Target::Http { method, path } => request::canonical(
            method,
            path,
            &req.method_overrides,
            req.body.as_ref(),
            rules,
        )
        .map(|c| Resolved {
            resource: c.path,
            action: c.method,
            http: true,
            overridden: c.overridden,
        }),
        Target::Resource { resource, action } => {
            request::canonical_resource(resource, rules).map(|resource| Resolved {
                resource,
                action: Cow::Borrowed(action),
                http: false,
                overridden: None,
            })
        }
    };
    resolved.map_err(|why| {
        let (resource, action) = req.target.raw_resource_action();
        let mut d = rejected(snap, resource, action, &why);
        d.http = matches!(req.target, Target::Http { .. });
        Box::new(d)
    })
}

/// Step 0′: why no policy may decide now, if none may: none was loaded yet
/// (a store-backed config whose store has not answered since start, and no
/// cache file), or reads of the store have failed longer than
/// `max_staleness_secs`. Either way every check fails closed, as unavailable.
pub fn policy_unusable(
    snap: &Snapshot,
    store_failing_for: Option<std::time::Duration>,
) -> Option<String> {
    if !snap.available {
        return Some(
            "no policy loaded yet: the policy store has not answered since start and no cache_file stood in".into(),
        );
    }
    let max = snap.config.policy.max_staleness_secs?;
    let failing = store_failing_for?;
    (failing.as_secs() >= max).then(|| {
        format!(
            "the policy store has not answered for {} s (max_staleness_secs = {max}): revision {} may be out of date",
            failing.as_secs(),
            snap.revision
        )
    })
}

fn unavailable(snap: &Snapshot, r: &Resolved<'_>, why: String) -> Decision {
    let mut d = Decision::pending(&r.resource, &r.action, &snap.revision);
    d.http = r.http;
    d.conclude(Reason::PolicyUnavailable, why);
    d
}

/// The decision for a request refused at step 0.
pub fn rejected(
    snap: &Snapshot,
    resource: &str,
    action: &str,
    why: &request::Rejected,
) -> Decision {
    let mut d = Decision::pending(resource, action, &snap.revision);
    d.conclude(Reason::RequestRejected, why.to_string());
    d
}

/// Steps 1–7 for a request in canonical form, deciding on `action`.
fn decide_resolved(
    snap: &Snapshot,
    req: &Request<'_>,
    resolved: &Resolved<'_>,
    action: &str,
    src: Sources<'_>,
    now: SystemTime,
) -> Step {
    let (mut d, route) = match before_token(snap, req, resolved, action) {
        Stage::Decided(mut early) => {
            // Whether a token came along (a public route never reads it):
            // replay must know if a candidate that wants one could be answered.
            early.token_sha256 = bearer_token(req).ok().map(token_fingerprint);
            return Step::Done(early);
        }
        Stage::Pending(d, route) => (d, route),
    };
    // 3–4. Token.
    let raw = bearer_token(req);
    d.token_sha256 = raw.as_ref().ok().map(|r| token_fingerprint(r));
    let principal = match raw.map_err(AuthFailure::Missing).and_then(|raw| {
        authenticate(snap, raw, src.keys, src.tokens, now, src.fetch_keys).map_err(|(f, iss)| {
            d.issuer = iss;
            f
        })
    }) {
        Ok(p) => p,
        Err(AuthFailure::NeedKeys(i)) => return Step::NeedKeys(i),
        Err(AuthFailure::Missing(why)) => return Step::Done(finish(d, Reason::TokenMissing, why)),
        Err(AuthFailure::Rejected(e)) => return Step::Done(finish(d, e.reason(), e.to_string())),
    };
    after_token(
        snap,
        d,
        route,
        principal,
        Asked {
            resource: &resolved.resource,
            action,
            domain: req.domain,
        },
        src.roles,
        src.fetch_roles,
    )
}

/// What step 7 asks about: the whole canonical resource (a record may hold
/// it clipped), the action, and the request's domain.
#[derive(Clone, Copy)]
struct Asked<'a> {
    resource: &'a str,
    action: &'a str,
    domain: Option<&'a str>,
}

/// Steps 1, 2 and 5–7 for a principal given directly (policy tests: no token,
/// and its roles stand in for claim and looked-up roles alike).
pub fn decide_for(snap: &Snapshot, req: &Request<'_>, principal: &Principal) -> Decision {
    let resolved = match resolve(snap, req) {
        Ok(r) => r,
        Err(rejected) => return *rejected,
    };
    if let Some(why) = policy_unusable(snap, None) {
        return unavailable(snap, &resolved, why);
    }
    let done = with_override(&resolved, |action| {
        match before_token(snap, req, &resolved, action) {
            Stage::Decided(early) => Step::Done(early),
            Stage::Pending(d, route) => after_token(
                snap,
                d,
                route,
                principal.clone(),
                Asked {
                    resource: &resolved.resource,
                    action,
                    domain: req.domain,
                },
                &crate::roles::NoLookup,
                false,
            ),
        }
    });
    match done {
        Step::Done(d) => d,
        // INVARIANT: NoLookup always answers, and no keys are involved.
        Step::NeedKeys(_) | Step::NeedRoles(_) => {
            let mut d = Decision::pending("", "", &snap.revision);
            d.conclude(
                Reason::RoleLookupFailed,
                "internal: policy tests need no fetch".into(),
            );
            d
        }
    }
}

/// Where steps 1–2 left a check.
enum Stage<'s> {
    Decided(Decision),
    /// Not decided yet: the decision so far and the matched route.
    Pending(Decision, Option<&'s Route>),
}

/// Steps 1–2: CORS preflight and public routes.
fn before_token<'s>(
    snap: &'s Snapshot,
    req: &Request<'_>,
    resolved: &Resolved<'_>,
    action: &str,
) -> Stage<'s> {
    let resource = &*resolved.resource;
    let route = if resolved.http {
        snap.routes.find(
            action,
            &request::matched_form(resource, &snap.config.request),
        )
    } else {
        None
    };
    let mut d = Decision::pending(resource, action, &snap.revision);
    d.http = resolved.http;
    d.route = route.map(|r| r.label.clone());
    // 1. CORS preflight.
    if resolved.http
        && let (Some(origin), Some(wants)) = (req.origin, req.access_control_request_method)
        && cors::is_preflight(action, req.origin, req.access_control_request_method)
    {
        let c = &snap.config;
        match cors::preflight(
            c.cors_preflight,
            &c.cors,
            origin,
            wants,
            req.answers_preflight,
        ) {
            Preflight::Check => {}
            Preflight::Forward => {
                d.conclude_as(
                    Reason::CorsPreflight,
                    200,
                    "CORS preflight forwarded without a token (cors_preflight = \"allow\")".into(),
                );
                return Stage::Decided(d);
            }
            Preflight::Refuse(why) => {
                return Stage::Decided(finish(d, Reason::CorsPreflight, why));
            }
            Preflight::Answer(headers) => {
                d.conclude_as(
                    Reason::CorsPreflight,
                    204,
                    format!(
                        "CORS preflight answered by authzd for origin `{}`",
                        token::clip(origin)
                    ),
                );
                d.response_headers = headers;
                return Stage::Decided(d);
            }
        }
    }
    // 2. Public route.
    if let Some(r) = route
        && r.public
    {
        return Stage::Decided(finish(
            d,
            Reason::PublicRoute,
            format!("route `{}` is public", r.label),
        ));
    }
    Stage::Pending(d, route)
}

/// Steps 5–7 for an authenticated principal.
fn after_token(
    snap: &Snapshot,
    mut d: Decision,
    route: Option<&Route>,
    mut principal: Principal,
    asked: Asked<'_>,
    roles: &dyn RoleSource,
    allow_fetch: bool,
) -> Step {
    d.set_principal(snap, &principal);
    // The domain decided in: the request's, else the principal's.
    if let Some(domain) = asked.domain.filter(|d| !d.is_empty()) {
        d.domain = Some(crate::bounded::clipped(domain));
    }
    // 5. Coarse scopes.
    if let Some(r) = route
        && !scopes_satisfied(r, &principal)
    {
        let detail = format!("route `{}` needs one of the scopes {:?}", r.label, r.scopes);
        return Step::Done(finish(d, Reason::ScopeMissing, detail));
    }
    // 6. Roles: claim roles ∪ looked-up roles.
    match add_looked_up_roles(snap, &mut principal, roles, allow_fetch) {
        RolesStep::Ready => d.roles.clone_from(&principal.roles),
        RolesStep::Need(sub) => return Step::NeedRoles(sub),
        RolesStep::Failed(why) => return Step::Done(finish(d, Reason::RoleLookupFailed, why)),
    }
    // 7. Policy.
    let (reason, detail, matched) =
        authorize(snap, &principal, asked.resource, asked.action, asked.domain);
    d.matched_policy = matched;
    Step::Done(finish(d, reason, detail))
}

/// The outcome of step 6.
#[derive(Debug, PartialEq, Eq)]
pub enum RolesStep {
    Ready,
    /// Fetch roles for this (unprefixed) subject, then run again.
    Need(String),
    /// Fail closed: 503 `role_lookup_failed`.
    Failed(String),
}

/// Step 6: adds looked-up roles (prefixed, deduplicated) to `p` when a lookup
/// is configured and applies to this token.
pub fn add_looked_up_roles(
    snap: &Snapshot,
    p: &mut Principal,
    roles: &dyn RoleSource,
    allow_fetch: bool,
) -> RolesStep {
    let Some(cfg) = &snap.config.roles.lookup else {
        return RolesStep::Ready;
    };
    if !RoleLookup::applies(cfg, &p.scopes) {
        return RolesStep::Ready;
    }
    match roles.lookup(&p.claim_subject) {
        Lookup::Hit(found) => {
            let prefix = &snap.config.policy.role_prefix;
            for r in found.iter() {
                let r = format!("{prefix}{r}");
                if !p.roles.contains(&r) {
                    p.roles.push(r);
                }
            }
            RolesStep::Ready
        }
        Lookup::Miss if allow_fetch => RolesStep::Need(p.claim_subject.clone()),
        Lookup::Miss => RolesStep::Failed("role lookup result unavailable".into()),
        Lookup::Failed(why) => RolesStep::Failed(why),
    }
}

fn finish(mut d: Decision, reason: Reason, detail: String) -> Decision {
    d.conclude(reason, detail);
    d
}

impl Decision {
    /// A decision not yet reached: denied, with no reason filled in. The
    /// resource and action are kept clipped to [`crate::bounded::MAX_BYTES`]
    /// (the pipeline decides on the whole values).
    pub fn pending(resource: &str, action: &str, revision: &Arc<str>) -> Decision {
        Decision {
            allowed: false,
            status: 0,
            reason: Reason::TokenMissing,
            detail: String::new(),
            subject: None,
            issuer: None,
            roles: Vec::new(),
            scopes: Vec::new(),
            domain: None,
            attributes: Vec::new(),
            attribute_missing: None,
            resource: crate::bounded::clipped(resource),
            action: crate::bounded::clipped(action),
            http: false,
            route: None,
            matched_policy: Vec::new(),
            revision: Arc::clone(revision),
            token_sha256: None,
            response_headers: Vec::new(),
            method_override: None,
        }
    }

    /// Sets the reason and everything that follows from it.
    pub fn conclude(&mut self, reason: Reason, detail: String) {
        self.conclude_as(reason, reason.status(), detail);
    }

    /// Sets the reason with a status other than its usual one (a preflight:
    /// 204 answered, 200 forwarded). Only 200 allows.
    pub fn conclude_as(&mut self, reason: Reason, status: u16, detail: String) {
        self.reason = reason;
        self.status = status;
        self.allowed = status == 200;
        // A detail may quote what the client sent: never kept whole past the bound.
        self.detail = match crate::bounded::fits(&detail) {
            true => detail,
            false => crate::bounded::clipped(&detail),
        };
    }

    /// Copies who the caller is into the decision.
    pub fn set_principal(&mut self, snap: &Snapshot, p: &Principal) {
        self.subject = Some(crate::bounded::clipped(&p.subject));
        self.issuer = Some(p.issuer.clone());
        self.roles = p.roles.clone();
        self.scopes = p.scopes.clone();
        self.domain.clone_from(&p.domain);
        self.attribute_missing.clone_from(&p.attribute_missing);
        // The attribute values with their names and log settings (only when
        // the model has attributes: no allocation otherwise).
        let names = &snap.policy.attributes;
        if names.is_empty() {
            return;
        }
        let mapped = &snap.config.policy.attributes;
        // Every attribute, in the model's order; an empty value is one the
        // token did not give (the record says `null`).
        self.attributes = names
            .iter()
            .zip(&p.attributes)
            .map(|(name, value)| Attribute {
                name: name.clone(),
                value: crate::bounded::clipped(value),
                log: mapped.get(name).is_none_or(|a| a.log),
            })
            .collect();
    }
}

/// Step 3: the token from the request's `token` field, else the `Authorization`
/// header (`Bearer <jwt>` with any scheme case, or a bare JWT as API Gateway accepts).
pub fn bearer_token<'a>(req: &Request<'a>) -> Result<&'a str, String> {
    if let Some(t) = req.token.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    let Some(header) = req.authorization.map(str::trim).filter(|h| !h.is_empty()) else {
        return Err("no token: no `Authorization` header and no `token` field".into());
    };
    match header.split_once(' ') {
        None if header.eq_ignore_ascii_case("bearer") => {
            Err("`Authorization: Bearer` carries no token".into())
        }
        None => Ok(header),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
            let rest = rest.trim();
            if rest.is_empty() {
                Err("`Authorization: Bearer` carries no token".into())
            } else {
                Ok(rest)
            }
        }
        Some((scheme, _)) => Err(format!("`Authorization` scheme `{scheme}` is not `Bearer`")),
    }
}

/// Step 5 for one route: it needs no scope, or the principal has one of them.
pub fn scopes_satisfied(route: &Route, p: &Principal) -> bool {
    route.scopes.is_empty() || route.scopes.iter().any(|s| p.scopes.contains(s))
}

/// Asks the policy about `p` doing `action` to the canonical `resource`
/// (step 7), in the request's domain, else the principal's. Under
/// `path_case = "insensitive"` patterns match the folded resource, while
/// values read out of it keep the case the upstream handler receives.
pub fn enforce(
    snap: &Snapshot,
    p: &Principal,
    resource: &str,
    action: &str,
    domain: Option<&str>,
) -> Result<crate::policy::Enforced, crate::policy::EvalError> {
    let matched = request::matched_form(resource, &snap.config.request);
    snap.policy.enforce(&Query {
        subject: &p.subject,
        roles: &p.roles,
        domain: domain
            .filter(|d| !d.is_empty())
            .or(p.domain.as_deref())
            .unwrap_or(""),
        resource: &matched,
        action,
        attributes: &p.attributes,
        unfolded: matches!(matched, Cow::Owned(_)).then_some(resource),
    })
}

/// Steps 2, 5 and 7 for a whole route of the table, without building a
/// [`Decision`]: what a cached Lambda answer must say about that route. The
/// policy must allow every one of the route's [witnesses](Route::witnesses)
/// (its path template as the resource, and a deeper one for `{proxy+}`).
pub fn route_allows(snap: &Snapshot, route: &Route, method: &str, p: &Principal) -> bool {
    if route.public {
        return true;
    }
    p.attribute_missing.is_none()
        && scopes_satisfied(route, p)
        && route
            .witnesses()
            .iter()
            .all(|w| path_allows(snap, method, p, w))
}

/// The policy step for one concrete path of a route, as the pipeline would
/// take it (canonical form first).
fn path_allows(snap: &Snapshot, method: &str, p: &Principal, path: &str) -> bool {
    request::canonical_path(path, &snap.config.request)
        .is_ok_and(|resource| enforce(snap, p, &resource, method, None).is_ok_and(|e| e.allowed))
}

/// What a cached answer may say about one route and method for a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteVerdict {
    /// The same for every path of the route.
    All(bool),
    /// The decision depends on a path value (`keyGet2(r.obj, p.obj, "id")
    /// == r.uid`): only these concrete paths, the caller's own values in
    /// the route's parameters, are allowed; the route as a whole is not.
    Only(Vec<String>),
}

impl RouteVerdict {
    pub fn allows(&self, path: &str) -> bool {
        match self {
            RouteVerdict::All(a) => *a,
            RouteVerdict::Only(paths) => paths.iter().any(|p| p == path),
        }
    }
}

/// The whole pipeline for `method path` as this principal sent it (no
/// token to read: the principal stands for it). What a fresh request
/// would get; a cached answer's concrete paths are checked with it.
pub fn fresh_allows(snap: &Snapshot, method: &str, path: &str, p: &Principal) -> bool {
    let req = Request::bare(Target::Http { method, path });
    decide_for(snap, &req, p).allowed
}

/// Combinations of the caller's values tried per route, at most.
const MAX_INSTANCES: usize = 64;

/// A value that can stand as one path segment, in an `execute-api` ARN too:
/// no `/`, no IAM wildcard, no dot segment, nothing that needs encoding.
fn plain_segment(v: &str) -> bool {
    !v.is_empty()
        && v != "."
        && v != ".."
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~@:+=,".contains(&b))
}

/// The route's paths built from the caller's own values (its subject claim
/// and attributes in every parameter) that `method` routes to this route.
pub fn own_paths(snap: &Snapshot, route: &Route, method: &str, p: &Principal) -> Vec<String> {
    let mut values: Vec<&str> = std::iter::once(p.claim_subject.as_str())
        .chain(p.attributes.iter().map(String::as_str))
        .filter(|v| plain_segment(v))
        .collect();
    values.sort_unstable();
    values.dedup();
    route
        .instances(&values, MAX_INSTANCES)
        .into_iter()
        // A path a more specific route takes is that route's to answer.
        .filter(|path| {
            snap.routes
                .find(method, path)
                .is_some_and(|r| r.same_paths(route))
        })
        .collect()
}

/// [`route_allows`] for a policy that reads path values: a route is
/// answered as a whole only when its template, a second witness with other
/// parameter values, and every path built from the caller's own values
/// (its subject claim and attributes) all decide alike. Otherwise only the
/// caller's own paths that are allowed are listed, each as itself, so a
/// cached answer neither allows another caller's resource nor denies the
/// caller its own.
pub fn route_verdict(snap: &Snapshot, route: &Route, method: &str, p: &Principal) -> RouteVerdict {
    let whole = route_allows(snap, route, method, p);
    if route.public || route.is_literal() || !snap.policy.reads_path_values {
        return RouteVerdict::All(whole);
    }
    let allows = |path: &str| {
        p.attribute_missing.is_none()
            && scopes_satisfied(route, p)
            && path_allows(snap, method, p, path)
    };
    let other = route
        .instances(&["~authzd-witness~"], 1)
        .iter()
        .all(|w| allows(w));
    let own: Vec<(String, bool)> = own_paths(snap, route, method, p)
        .into_iter()
        .map(|path| {
            let ok = fresh_allows(snap, method, &path, p);
            (path, ok)
        })
        .collect();
    if other == whole && own.iter().all(|(_, ok)| *ok == whole) {
        return RouteVerdict::All(whole);
    }
    RouteVerdict::Only(
        own.into_iter()
            .filter_map(|(path, ok)| ok.then_some(path))
            .collect(),
    )
}

/// Step 7: Casbin enforce for a verified principal. Returns reason, detail, matched line.
pub fn authorize(
    snap: &Snapshot,
    p: &Principal,
    resource: &str,
    action: &str,
    domain: Option<&str>,
) -> (Reason, String, Vec<String>) {
    if let Some(why) = &p.attribute_missing {
        // Never ask the policy with an attribute the token did not give.
        return (Reason::AttributeMissing, why.clone(), Vec::new());
    }
    match enforce(snap, p, resource, action, domain) {
        Ok(e) if e.allowed => {
            let detail = if e.matched.is_empty() {
                "policy allows (no rule matched; the model's effect allows by default)".to_string()
            } else {
                format!("policy allows by `{}`", e.matched.join(", "))
            };
            (Reason::Allowed, detail, e.matched)
        }
        Ok(e) => {
            let detail = if e.matched.is_empty() {
                format!(
                    "no policy rule allows `{}` to `{action}` `{resource}`",
                    p.subject
                )
            } else {
                format!("policy denies by `{}`", e.matched.join(", "))
            };
            (Reason::PolicyDenied, detail, e.matched)
        }
        // Fail closed: a policy that cannot be evaluated never allows.
        Err(e) => (Reason::PolicyDenied, e.to_string(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(token: Option<&'a str>, auth: Option<&'a str>) -> Request<'a> {
        Request {
            token,
            authorization: auth,
            ..Request::bare(Target::Resource {
                resource: "/x",
                action: "GET",
            })
        }
    }

    #[test]
    fn bearer_extraction() {
        assert_eq!(bearer_token(&req(None, Some("Bearer abc"))), Ok("abc"));
        assert_eq!(bearer_token(&req(None, Some("bEaReR   abc "))), Ok("abc"));
        assert_eq!(bearer_token(&req(None, Some("abc"))), Ok("abc"));
        assert_eq!(
            bearer_token(&req(Some("tok"), Some("Bearer abc"))),
            Ok("tok")
        );
        assert!(
            bearer_token(&req(None, Some("Basic dXNlcjpwYXNz")))
                .unwrap_err()
                .contains("Basic")
        );
        assert!(bearer_token(&req(None, Some("Bearer "))).is_err());
        assert!(bearer_token(&req(Some(""), None)).is_err());
        assert!(bearer_token(&req(None, None)).is_err());
    }

    #[test]
    fn every_reason_has_a_distinct_code_and_status() {
        let mut codes: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
            assert!(matches!(r.status(), 200 | 400 | 401 | 403 | 503));
        }
        assert_eq!(Reason::TokenExpired.status(), 401);
        assert_eq!(Reason::ScopeMissing.status(), 403);
        assert_eq!(Reason::RoleLookupFailed.status(), 503);
    }

    #[test]
    fn fingerprint_is_16_hex() {
        let f = token_fingerprint("a.b.c");
        assert_eq!(f.len(), 16);
        assert!(!f.contains("a.b.c"));
    }
}
