//! The async driver around the pure pipeline: picks the live snapshot, fetches
//! keys when [`decide`] asks for them, stamps the decision id and latency,
//! logs and counts. Every transport calls [`Authorizer::check`]; none of them
//! re-implements a step.

use std::{
    sync::Arc,
    time::{Instant, SystemTime},
};

use crate::{
    audit::{AuditSink, Outcome, Source},
    decision::{self, AuthFailure, Decision, Principal, Reason, Request, Step},
    policy::{reload::PolicyStore, snapshot::Snapshot},
    token::jwks::Jwks,
};

/// Shared by all transports.
pub struct Authorizer {
    pub store: Arc<PolicyStore>,
    pub jwks: Arc<Jwks>,
    audit: AuditSink,
}

/// One item of a batch: what to ask about.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub resource: String,
    pub action: String,
}

impl Authorizer {
    pub fn new(store: Arc<PolicyStore>, jwks: Arc<Jwks>, audit: AuditSink) -> Self {
        Self { store, jwks, audit }
    }

    /// Runs one check end to end and logs it.
    pub async fn check(&self, req: &Request<'_>, source: Source) -> Arc<Outcome> {
        let started = Instant::now();
        let snap = self.store.load();
        let decision =
            match decision::decide(&snap, req, self.jwks.as_ref(), SystemTime::now(), true) {
                Step::Done(d) => d,
                Step::NeedKeys(idx) => {
                    self.fetch_keys(&snap, idx).await;
                    match decision::decide(&snap, req, self.jwks.as_ref(), SystemTime::now(), false)
                    {
                        Step::Done(d) => d,
                        // INVARIANT: decide never asks for keys when allow_fetch is false.
                        Step::NeedKeys(_) => unreachable_key_request(&snap, req),
                    }
                }
            };
        self.emit(decision, source, started)
    }

    /// Validates the token once and answers each item (no routes, no scopes).
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
            domain,
        };
        let raw = decision::bearer_token(&probe);
        let fingerprint = raw.as_ref().ok().map(|r| decision::token_fingerprint(r));
        let principal = match raw {
            Err(why) => Err((Reason::TokenMissing, why, None)),
            Ok(raw) => self.authenticate(&snap, raw).await,
        };
        items
            .iter()
            .map(|item| {
                let mut d = Decision::pending(&item.resource, &item.action, &snap.revision);
                d.token_sha256 = fingerprint.clone();
                match &principal {
                    Ok(p) => {
                        let (reason, detail, matched) =
                            decision::authorize(&snap, p, &item.resource, &item.action, domain);
                        d.set_principal(p);
                        d.matched_policy = matched;
                        d.conclude(reason, detail);
                    }
                    Err((reason, detail, iss)) => {
                        d.issuer = iss.clone();
                        d.conclude(*reason, detail.clone());
                    }
                }
                self.emit(d, source, started)
            })
            .collect()
    }

    async fn authenticate(
        &self,
        snap: &Snapshot,
        raw: &str,
    ) -> Result<Principal, (Reason, String, Option<String>)> {
        let mut allow_fetch = true;
        loop {
            match decision::authenticate(
                snap,
                raw,
                self.jwks.as_ref(),
                SystemTime::now(),
                allow_fetch,
            ) {
                Ok(p) => return Ok(p),
                Err((AuthFailure::NeedKeys(idx), _)) if allow_fetch => {
                    self.fetch_keys(snap, idx).await;
                    allow_fetch = false;
                }
                Err((AuthFailure::Rejected(e), iss)) => {
                    return Err((e.reason(), e.to_string(), iss));
                }
                Err((AuthFailure::Missing(why), iss)) => {
                    return Err((Reason::TokenMissing, why, iss));
                }
                Err((AuthFailure::NeedKeys(_), iss)) => {
                    return Err((Reason::KeyUnknown, "issuer keys unavailable".into(), iss));
                }
            }
        }
    }

    async fn fetch_keys(&self, snap: &Snapshot, idx: usize) {
        if let Some(cfg) = snap.config.issuers.get(idx) {
            // Failures are logged and counted inside; the retry then answers key_unknown.
            let _ = self.jwks.fetch(cfg).await;
        }
    }

    fn emit(&self, decision: Decision, source: Source, started: Instant) -> Arc<Outcome> {
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
        });
        self.audit.record(Arc::clone(&outcome));
        outcome
    }
}

/// Fail closed if the invariant above were ever broken.
fn unreachable_key_request(snap: &Snapshot, req: &Request<'_>) -> Decision {
    let (resource, action) = match req.target {
        decision::Target::Http { method, path } => (crate::routes::strip_query(path), method),
        decision::Target::Resource { resource, action } => (resource, action),
    };
    let mut d = Decision::pending(resource, action, &snap.revision);
    d.conclude(Reason::KeyUnknown, "issuer keys unavailable".into());
    d
}
