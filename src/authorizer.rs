//! The async driver around the pure pipeline: picks the live snapshot, fetches
//! keys and looked-up roles when [`decide`](decision::decide) asks for them,
//! stamps the decision id and latency, logs and counts. Every transport calls
//! [`Authorizer::check`]; none of them re-implements a step.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    audit::{AuditSink, Outcome, ShadowDecision, Source},
    decision::{self, AuthFailure, Decision, Principal, Reason, Request, RolesStep, Sources, Step},
    policy::{reload::PolicyStore, snapshot::Snapshot},
    request,
    roles::{FailedLookup, RoleLookup, RoleSource},
    spans::SpanSink,
    telemetry::TraceContext,
    token::{jwks::Jwks, verified::VerifiedCache},
};

/// Shared by all transports.
pub struct Authorizer {
    pub store: Arc<PolicyStore>,
    pub jwks: Arc<Jwks>,
    pub roles: Arc<RoleLookup>,
    /// Tokens already verified (SHA-256 of the whole token → principal).
    tokens: VerifiedCache,
    audit: AuditSink,
    /// Decision spans for the OTLP collector (off unless `[tracing]` says where).
    spans: SpanSink,
    /// Checks seen while a `[shadow]` sample rate applies (which ones are shadowed).
    shadow_seen: AtomicU64,
    /// When (Unix seconds) a refused CORS preflight was last logged as a
    /// warning: at most one a minute, so preflights cannot flood the log.
    preflight_warned: AtomicU64,
}

/// One item of a batch: what to ask about.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub resource: String,
    pub action: String,
}

/// What a miss may still fetch in this check: each kind at most once, so a
/// check runs the pure pipeline at most three times.
struct Budget {
    keys: bool,
    roles: bool,
    failed_lookup: Option<FailedLookup>,
}

impl Budget {
    fn new() -> Self {
        Self {
            keys: true,
            roles: true,
            failed_lookup: None,
        }
    }

    fn sources<'a>(&'a self, a: &'a Authorizer) -> Sources<'a> {
        let roles: &dyn RoleSource = match &self.failed_lookup {
            Some(f) => f,
            None => a.roles.as_ref(),
        };
        Sources {
            keys: a.jwks.as_ref(),
            roles,
            fetch_keys: self.keys,
            fetch_roles: self.roles,
            tokens: Some(&a.tokens),
            store_failing_for: a
                .store
                .store_status()
                .and_then(|s| s.failing_for(SystemTime::now())),
        }
    }
}

impl Authorizer {
    pub fn new(store: Arc<PolicyStore>, jwks: Arc<Jwks>, audit: AuditSink) -> Self {
        let roles = Arc::new(RoleLookup::new());
        roles.configure(store.load().config.roles.lookup.as_ref());
        Self {
            tokens: VerifiedCache::default(),
            store,
            jwks,
            roles,
            audit,
            spans: SpanSink::off(),
            shadow_seen: AtomicU64::new(0),
            preflight_warned: AtomicU64::new(0),
        }
    }

    /// Exports a span per decision through `spans`.
    pub fn with_spans(mut self, spans: SpanSink) -> Self {
        self.spans = spans;
        self
    }

    /// The span exporter (the Lambda runtime flushes it between invocations).
    pub fn spans(&self) -> &SpanSink {
        &self.spans
    }

    /// The caller's trace, or a new one when spans are exported and it sent none.
    fn trace(&self, traceparent: Option<&str>, tracestate: Option<&str>) -> Option<TraceContext> {
        TraceContext::from_headers(traceparent, tracestate)
            .or_else(|| self.spans.enabled().then(TraceContext::root))
    }

    /// The decision log sink (SIGHUP reopens its file).
    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// Runs one check end to end and logs it.
    pub async fn check(&self, req: &Request<'_>, source: Source) -> Arc<Outcome> {
        let started = Instant::now();
        let snap = self.store.load();
        let decision = self.decide(&snap, req).await;
        let trace = self.trace(req.traceparent, req.tracestate);
        let shadow = self.shadow(&snap, req, &decision);
        self.emit_with(decision, source, started, trace, shadow)
    }

    /// Decides `req` as [`check`](Self::check) does, fetching what it needs,
    /// but logs, counts and records nothing: the explorer's *Explain*.
    pub async fn explain(&self, req: &Request<'_>) -> (Arc<Snapshot>, Decision) {
        let snap = self.store.load();
        let decision = self.decide(&snap, req).await;
        (snap, decision)
    }

    async fn decide(&self, snap: &Snapshot, req: &Request<'_>) -> Decision {
        let mut budget = Budget::new();
        // INVARIANT: decide asks for a fetch only while its budget flag is set, and
        // each fetch clears the flag, so this loop runs at most three times.
        loop {
            match decision::decide(snap, req, budget.sources(self), SystemTime::now()) {
                Step::Done(d) => break d,
                Step::NeedKeys(idx) if budget.keys => {
                    self.fetch_keys(snap, idx).await;
                    budget.keys = false;
                }
                Step::NeedRoles(subject) if budget.roles => {
                    budget.failed_lookup = self.fetch_roles(&subject).await;
                    budget.roles = false;
                }
                // Unreachable by the invariant; fail closed rather than loop.
                Step::NeedKeys(_) | Step::NeedRoles(_) => break fail_closed(snap, req),
            }
        }
    }

    /// The `[shadow]` candidate's decision for a check that reached a
    /// verified principal (anything decided before is decided alike: the
    /// candidate shares routes and issuers), on the sampled fraction.
    fn shadow(&self, snap: &Snapshot, req: &Request<'_>, d: &Decision) -> Option<ShadowDecision> {
        let Some(Ok(candidate)) = &snap.shadow else {
            return None;
        };
        let (subject, issuer) = (d.subject.as_ref()?, d.issuer.as_ref()?);
        let sample = snap.config.shadow.as_ref()?.sample;
        // Exactly `sample` of the checks, spread evenly.
        let n = self.shadow_seen.fetch_add(1, Ordering::Relaxed) as f64;
        if ((n + 1.0) * sample).floor() <= (n * sample).floor() {
            return None;
        }
        let value = |name: &String| {
            d.attributes
                .iter()
                .find(|a| &a.name == name)
                .map(|a| a.value.clone())
                .unwrap_or_default()
        };
        let principal = Principal {
            roles: d.roles.clone(),
            scopes: d.scopes.clone(),
            domain: d.domain.clone(),
            attributes: candidate.policy.attributes.iter().map(value).collect(),
            attribute_missing: d.attribute_missing.clone(),
            ..Principal::recorded(subject, issuer, &snap.config.policy.subject_prefix)
        };
        let s = decision::decide_for(candidate, req, &principal);
        crate::metrics::shadow(match (d.allowed, s.allowed) {
            (false, true) => "newly_allowed",
            (true, false) => "newly_denied",
            _ => "same",
        });
        Some(ShadowDecision {
            allowed: s.allowed,
            reason: s.reason,
            matched_policy: s.matched_policy,
            revision: Arc::clone(&candidate.revision),
        })
    }

    /// Validates the token once, resolves roles once, and answers each item
    /// (no routes, so no scopes).
    pub async fn check_batch(
        &self,
        token: Option<&str>,
        authorization: Option<&str>,
        domain: Option<&str>,
        items: &[BatchItem],
        source: Source,
    ) -> Vec<Arc<Outcome>> {
        let started = Instant::now();
        let snap = self.store.load();
        let probe = Request {
            target: decision::Target::Resource {
                resource: "",
                action: "",
            },
            token,
            authorization,
            origin: None,
            access_control_request_method: None,
            answers_preflight: false,
            domain,
            method_overrides: [None; 3],
            body: None,
            traceparent: None,
            tracestate: None,
        };
        let raw = decision::bearer_token(&probe);
        let fingerprint = raw.as_ref().ok().map(|r| decision::token_fingerprint(r));
        let principal = match raw {
            Err(why) => Err((Reason::TokenMissing, why, None)),
            Ok(raw) => self.principal(&snap, raw).await,
        };
        // Step 0′ once for the batch: every item shares the snapshot.
        let unusable = decision::policy_unusable(
            &snap,
            self.store
                .store_status()
                .and_then(|s| s.failing_for(SystemTime::now())),
        );
        items
            .iter()
            .map(|item| {
                // Step 0 for each item: a resource that is a URL path is put in canonical form.
                let resource =
                    match request::canonical_resource(&item.resource, &snap.config.request) {
                        Ok(r) => r,
                        Err(why) => {
                            let mut d =
                                decision::rejected(&snap, &item.resource, &item.action, &why);
                            d.token_sha256 = fingerprint.clone();
                            return self.emit(d, source, started, self.trace(None, None));
                        }
                    };
                let mut d = Decision::pending(&resource, &item.action, &snap.revision);
                d.token_sha256 = fingerprint.clone();
                match (&principal, &unusable) {
                    (Ok(_), Some(why)) => {
                        d.conclude(Reason::PolicyUnavailable, why.clone());
                    }
                    (Ok(p), None) => {
                        let (reason, detail, matched) =
                            decision::authorize(&snap, p, &resource, &item.action, domain);
                        d.set_principal(&snap, p);
                        if let Some(domain) = domain.filter(|d| !d.is_empty()) {
                            d.domain = Some(crate::bounded::clipped(domain));
                        }
                        d.matched_policy = matched;
                        d.conclude(reason, detail);
                    }
                    (Err((reason, detail, iss)), _) => {
                        d.issuer = iss.clone();
                        d.conclude(*reason, detail.clone());
                    }
                }
                // Each item is shadowed like a single check of it.
                let item_req = Request {
                    domain,
                    ..Request::bare(decision::Target::Resource {
                        resource: &resource,
                        action: &item.action,
                    })
                };
                let shadow = self.shadow(&snap, &item_req, &d);
                self.emit_with(d, source, started, self.trace(None, None), shadow)
            })
            .collect()
    }

    /// The verified caller of `req`'s token with all its roles, if it has a
    /// valid one (the Lambda authorizer's route set needs it even when the
    /// pipeline decided before reading the token). Nothing is logged.
    pub async fn principal_of_request(&self, req: &Request<'_>) -> Option<Principal> {
        let raw = decision::bearer_token(req).ok()?;
        self.principal(&self.store.load(), raw).await.ok()
    }

    /// A token verified as the pipeline verifies callers' tokens (issuer
    /// keys, checks, claim and looked-up roles), on the live snapshot:
    /// the explorer's sign-in. Nothing is logged.
    pub async fn verify(&self, raw: &str) -> Result<Principal, (Reason, String)> {
        self.principal(&self.store.load(), raw)
            .await
            .map_err(|(reason, why, _)| (reason, why))
    }

    /// Steps 4 and 6 for a batch: a verified principal with all its roles.
    async fn principal(
        &self,
        snap: &Snapshot,
        raw: &str,
    ) -> Result<Principal, (Reason, String, Option<String>)> {
        let mut budget = Budget::new();
        let mut principal = loop {
            match decision::authenticate(
                snap,
                raw,
                self.jwks.as_ref(),
                Some(&self.tokens),
                SystemTime::now(),
                budget.keys,
            ) {
                Ok(p) => break p,
                Err((AuthFailure::NeedKeys(idx), _)) if budget.keys => {
                    self.fetch_keys(snap, idx).await;
                    budget.keys = false;
                }
                Err((AuthFailure::NeedKeys(_), iss)) => {
                    return Err((
                        Reason::IssuerUnavailable,
                        "issuer keys unavailable".into(),
                        iss,
                    ));
                }
                Err((AuthFailure::Rejected(e), iss)) => {
                    return Err((e.reason(), e.to_string(), iss));
                }
                Err((AuthFailure::Missing(why), iss)) => {
                    return Err((Reason::TokenMissing, why, iss));
                }
            }
        };
        loop {
            let src = budget.sources(self);
            match decision::add_looked_up_roles(snap, &mut principal, src.roles, src.fetch_roles) {
                RolesStep::Ready => return Ok(principal),
                RolesStep::Failed(why) => {
                    return Err((Reason::RoleLookupFailed, why, Some(principal.issuer)));
                }
                RolesStep::Need(subject) if budget.roles => {
                    budget.failed_lookup = self.fetch_roles(&subject).await;
                    budget.roles = false;
                }
                RolesStep::Need(_) => {
                    return Err((
                        Reason::RoleLookupFailed,
                        "role lookup result unavailable".into(),
                        Some(principal.issuer),
                    ));
                }
            }
        }
    }

    async fn fetch_keys(&self, snap: &Snapshot, idx: usize) {
        if let Some(cfg) = snap.config.issuers.get(idx) {
            // Failures are logged and counted inside; the next run then answers key_unknown.
            let _ = self.jwks.fetch(cfg).await;
        }
    }

    /// `Some` describes a failed lookup for the pipeline's next run.
    async fn fetch_roles(&self, subject: &str) -> Option<FailedLookup> {
        match self.roles.fetch(subject).await {
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "role lookup failed; denying with 503");
                Some(FailedLookup(e.to_string()))
            }
        }
    }

    fn emit(
        &self,
        decision: Decision,
        source: Source,
        started: Instant,
        trace: Option<TraceContext>,
    ) -> Arc<Outcome> {
        self.emit_with(decision, source, started, trace, None)
    }

    fn emit_with(
        &self,
        decision: Decision,
        source: Source,
        started: Instant,
        trace: Option<TraceContext>,
        shadow: Option<ShadowDecision>,
    ) -> Arc<Outcome> {
        let latency = started.elapsed();
        crate::metrics::decision(
            source.as_str(),
            decision.reason.as_str(),
            latency.as_secs_f64(),
        );
        let outcome = Arc::new(Outcome {
            decision,
            decision_id: uuid::Uuid::now_v7().to_string(),
            source,
            time: SystemTime::now(),
            latency,
            trace,
            shadow,
        });
        self.spans.record(&outcome);
        self.audit.record(Arc::clone(&outcome));
        if outcome.decision.reason == Reason::CorsPreflight && outcome.decision.status == 403 {
            self.warn_preflight(&outcome);
        }
        outcome
    }

    /// A preflight that reached authzd and was refused means the gateway does
    /// not answer preflights itself: say so, at most once a minute.
    fn warn_preflight(&self, o: &Outcome) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.preflight_warned.load(Ordering::Relaxed);
        if now >= last.saturating_add(60)
            && self
                .preflight_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                source = o.source.as_str(),
                path = %o.decision.resource,
                detail = %o.decision.detail,
                "CORS preflight refused: configure the gateway to answer preflights (docs/security.md, \"CORS preflights\")"
            );
        }
    }
}

/// A denial for a check the pipeline could not finish (never expected).
fn fail_closed(snap: &Snapshot, req: &Request<'_>) -> Decision {
    let (resource, action) = req.target.raw_resource_action();
    let mut d = Decision::pending(resource, action, &snap.revision);
    d.conclude(
        Reason::IssuerUnavailable,
        "internal: a fetch was requested twice; denied".into(),
    );
    d
}
