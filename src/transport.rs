//! How authzd is reached. Each adapter maps its wire format to a
//! [`Request`], calls the [`Authorizer`], and maps
//! the [`Outcome`](crate::audit::Outcome) back in one function. None of them
//! re-implements a pipeline step.
//!
//! [`Server`] binds both listeners, serves until shutdown, then flushes the
//! decision log.

pub mod conn;
pub mod envoy;
pub mod forward_auth;
pub mod grpc;
pub mod http;
pub mod lambda;

use std::{collections::HashMap, future::Future, net::SocketAddr, path::Path, sync::Arc};

use tokio::net::TcpListener;

use crate::{
    audit::{self, Output},
    authorizer::Authorizer,
    decision::{Request, Target},
    policy::{
        reload::{self, PolicyStore},
        snapshot::{Snapshot, SnapshotError, Sources},
        source::{self, StoreStatus},
    },
    request::{METHOD_OVERRIDE_HEADERS, Overrides},
    roles::RoleLookup,
    token::jwks::Jwks,
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Load(#[from] SnapshotError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open decision log `{output}`: {source}")]
    Log {
        output: String,
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Grpc(std::io::Error),
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// A bound, not yet serving authzd.
pub struct Server {
    grpc: TcpListener,
    http: TcpListener,
    authorizer: Arc<Authorizer>,
    audit_writer: Option<tokio::task::JoinHandle<()>>,
    /// The connection the first store read used, handed to the follower.
    store_client: Option<source::Client>,
}

/// The first snapshot. With a `store`: read it once (else the cache file,
/// else an unavailable snapshot: checks answer `policy_unavailable` and the
/// follower keeps trying). A store whose content does not build at start is
/// treated like one that does not answer.
pub async fn start(
    path: &Path,
) -> Result<(Snapshot, Option<Arc<StoreStatus>>, Option<source::Client>), SnapshotError> {
    let config = crate::config::Config::load(path)?;
    let Some(status) = StoreStatus::new(&config.policy).map(Arc::new) else {
        return Ok((Snapshot::load(path).await?, None, None));
    };
    let client = source::initial(&status, &config.policy).await;
    let latest = status.latest();
    let snapshot = match Sources::read(path, latest.as_deref())?.build().await {
        Ok(s) => s,
        Err(e @ SnapshotError::Policy(_)) => {
            tracing::error!(error = %e, "the store's policy does not load");
            source::use_cache(&status, &config.policy);
            let cached = status.latest().filter(|c| Some(c) != latest.as_ref());
            match Sources::read(path, cached.as_deref())?.build().await {
                Ok(s) => s,
                Err(_) => Sources::read(path, None)?.build().await?,
            }
        }
        Err(e) => return Err(e),
    };
    if !snapshot.available {
        tracing::error!(store = %status.url, "no policy: checks answer 503 policy_unavailable until the store answers");
    }
    Ok((snapshot, Some(status), client))
}

impl Server {
    /// Loads the config at `path` and binds its gRPC and HTTP addresses.
    pub async fn bind(path: &Path) -> Result<Server, ServeError> {
        let (snapshot, status, client) = start(path).await?;
        for w in snapshot.warnings() {
            tracing::warn!("{w}");
        }
        let cfg = &snapshot.config;
        let (grpc_addr, http_addr) = (cfg.server.grpc_addr, cfg.server.http_addr);
        let log_cfg = cfg.decision_log.clone();
        let grpc = TcpListener::bind(grpc_addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: grpc_addr,
                source,
            })?;
        let http = TcpListener::bind(http_addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: http_addr,
                source,
            })?;
        let (sink, audit_writer) =
            audit::spawn(Output::from_config(&log_cfg.output), log_cfg.buffer).map_err(
                |source| ServeError::Log {
                    output: log_cfg.output.clone(),
                    source,
                },
            )?;
        crate::metrics::revision_serving(&snapshot.revision);
        tracing::info!(revision = %snapshot.revision, rules = snapshot.policy.rules, routes = snapshot.routes.len(), issuers = cfg.issuers.len(), evaluator = %snapshot.policy.evaluator, "policy loaded");
        let store = Arc::new(PolicyStore::following(snapshot, path, status));
        let authorizer = Arc::new(Authorizer::new(store, Arc::new(Jwks::new()), sink));
        Ok(Server {
            grpc,
            http,
            authorizer,
            audit_writer,
            store_client: client,
        })
    }

    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.local_addr().ok()
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then drains in-flight checks and flushes the log.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            grpc,
            http,
            authorizer,
            audit_writer,
            store_client,
        } = self;
        let addr = |l: &TcpListener| {
            l.local_addr()
                .map_or_else(|e| format!("unknown ({e})"), |a| a.to_string())
        };
        tracing::info!(grpc = %addr(&grpc), http = %addr(&http), "authzd serving");
        let refresher = refresh_keys(&authorizer);
        let sighup = reload_on_sighup(&authorizer);
        let watcher = if authorizer.store.load().config.policy.watch {
            let (jwks, roles) = (Arc::clone(&authorizer.jwks), Arc::clone(&authorizer.roles));
            reload::watch(Arc::clone(&authorizer.store), move |snap| {
                after_reload(&jwks, &roles, snap)
            })
            .map_err(
                |e| tracing::warn!(error = %e, "cannot watch policy files; reload with SIGHUP"),
            )
            .ok()
        } else {
            tracing::info!("policy file watching is off; reload with SIGHUP");
            None
        };
        let follower = {
            let (jwks, roles) = (Arc::clone(&authorizer.jwks), Arc::clone(&authorizer.roles));
            crate::policy::follow::follow(
                Arc::clone(&authorizer.store),
                store_client,
                move |snap| after_reload(&jwks, &roles, snap),
            )
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let grpc_task = grpc::serve(grpc, Arc::clone(&authorizer), stopped(stop_rx.clone()));
        let http_task = http::serve(http, Arc::clone(&authorizer), stopped(stop_rx));
        let (g, h) = tokio::join!(grpc_task, http_task);
        drop(watcher);
        if let Some(f) = follower {
            f.abort();
        }
        refresher.abort();
        if let Some(task) = sighup {
            task.abort();
            let _ = task.await;
        }
        drop(authorizer);
        if let Some(writer) = audit_writer {
            // The writer ends once the last sink clone is gone; give it a bounded time to flush.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        }
        g.map_err(ServeError::Grpc)?;
        h.map_err(ServeError::Http)?;
        tracing::info!("authzd stopped");
        Ok(())
    }
}

/// Keeps every issuer's keys fresh in the background: fetched at start (so the
/// first request does not wait), refetched when due (`Cache-Control: max-age`
/// within bounds), retried while missing — each within the per-issuer rate
/// limit. A failure keeps the last good keys.
fn refresh_keys(authorizer: &Arc<Authorizer>) -> tokio::task::JoinHandle<()> {
    let (store, jwks) = (Arc::clone(&authorizer.store), Arc::clone(&authorizer.jwks));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            for cfg in &store.load().config.issuers {
                if jwks.due(cfg) {
                    let (jwks, cfg) = (Arc::clone(&jwks), cfg.clone());
                    tokio::spawn(async move {
                        let _ = jwks.fetch(&cfg).await;
                    });
                }
            }
        }
    })
}

/// Applies what a new snapshot changes outside itself: new issuers' keys, role lookup settings.
fn after_reload(jwks: &Arc<Jwks>, roles: &RoleLookup, snap: &Snapshot) {
    warm_issuers(jwks, snap);
    roles.configure(snap.config.roles.lookup.as_ref());
}

/// Fetches keys for the issuers of `snap` that have none yet.
fn warm_issuers(jwks: &Arc<Jwks>, snap: &Snapshot) {
    for cfg in &snap.config.issuers {
        if jwks.get(&cfg.issuer).is_some() {
            continue;
        }
        let (jwks, cfg) = (Arc::clone(jwks), cfg.clone());
        tokio::spawn(async move {
            let _ = jwks.fetch(&cfg).await;
        });
    }
}

/// `SIGHUP` forces a policy reload and reopens the decision log file
/// (logrotate). The task holds a decision-log sink: abort it at shutdown so
/// the writer can finish.
fn reload_on_sighup(authorizer: &Arc<Authorizer>) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        let store = Arc::clone(&authorizer.store);
        let (jwks, roles) = (Arc::clone(&authorizer.jwks), Arc::clone(&authorizer.roles));
        let audit = authorizer.audit().clone();
        Some(tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading policy, reopening the decision log");
                audit.reopen();
                // A shared store is reread too (its follower does that and reloads).
                if let Some(status) = store.store_status() {
                    status.kick();
                }
                // Errors are logged, counted and kept for GET /v1/policy inside reload().
                match store.reload().await {
                    Ok(Some(snap)) => after_reload(&jwks, &roles, &snap),
                    Ok(None) => {
                        tracing::info!(revision = %store.load().revision, "SIGHUP: policy unchanged");
                    }
                    Err(_) => {}
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = authorizer;
        None
    }
}

/// Case-insensitive header lookup in a plain map (gRPC and JSON callers).
pub fn header<'a>(headers: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .or_else(|| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .map(String::as_str)
}

/// Why a check request could not be run at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadRequest {
    #[error("give either `resource` and `action`, or `method` and `path`")]
    NoTarget,
    #[error("`resource` and `action` must be given together")]
    HalfResource,
    #[error("`method` and `path` must be given together")]
    HalfHttp,
}

/// Maps an `authzd.v1.CheckRequest` (gRPC or JSON) to a pipeline request.
pub fn check_request(m: &crate::pb::CheckRequest) -> Result<Request<'_>, BadRequest> {
    let target = match (
        m.resource.is_empty(),
        m.action.is_empty(),
        m.method.is_empty(),
        m.path.is_empty(),
    ) {
        (false, false, _, _) => Target::Resource {
            resource: &m.resource,
            action: &m.action,
        },
        (true, true, false, false) => Target::Http {
            method: &m.method,
            path: &m.path,
        },
        (true, true, true, true) => return Err(BadRequest::NoTarget),
        (false, true, _, _) | (true, false, _, _) => return Err(BadRequest::HalfResource),
        _ => return Err(BadRequest::HalfHttp),
    };
    Ok(Request {
        target,
        token: Some(m.token.as_str()).filter(|t| !t.is_empty()),
        authorization: header(&m.headers, "authorization"),
        origin: header(&m.headers, "origin"),
        access_control_request_method: header(&m.headers, "access-control-request-method"),
        answers_preflight: false,
        domain: Some(m.domain.as_str()).filter(|d| !d.is_empty()),
        method_overrides: method_overrides(|name| header(&m.headers, name)),
        body: None,
    })
}

/// The method-override headers a request carries, looked up by lower-case name.
pub fn method_overrides<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Overrides<'a> {
    METHOD_OVERRIDE_HEADERS.map(get)
}

/// Maps an outcome to an `authzd.v1.CheckResponse`.
pub fn check_response(o: &crate::audit::Outcome) -> crate::pb::CheckResponse {
    let d = &o.decision;
    crate::pb::CheckResponse {
        allowed: d.allowed,
        status: u32::from(d.status),
        reason: d.reason.as_str().to_string(),
        decision_id: o.decision_id.clone(),
        subject: d.subject.clone().unwrap_or_default(),
        roles: d.roles.clone(),
        policy_revision: d.revision.to_string(),
        matched_policy: d.matched_policy.clone(),
    }
}

/// Headers authzd sets on the upstream request when it allows (`docs/pipeline.md`).
pub const SUBJECT_HEADER: &str = "x-authz-subject";
pub const ROLES_HEADER: &str = "x-authz-roles";
pub const DECISION_ID_HEADER: &str = "x-authz-decision-id";
/// Client-supplied headers with this prefix are never passed upstream as if authzd had set them.
pub const RESERVED_PREFIX: &str = "x-authz-";

/// The HTTP meaning of an outcome, shared by every HTTP-facing adapter
/// (Envoy gRPC and HTTP modes, forward auth): the one place §2's table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// Empty on allow.
    pub body: &'static str,
    /// On allow: the upstream headers. On deny: the response headers.
    pub headers: Vec<(&'static str, String)>,
}

impl HttpAnswer {
    pub fn of(o: &crate::audit::Outcome) -> HttpAnswer {
        let d = &o.decision;
        if d.allowed {
            let mut headers = Vec::with_capacity(3);
            if let Some(s) = &d.subject {
                headers.push((SUBJECT_HEADER, header_value(s)));
            }
            if !d.roles.is_empty() {
                headers.push((ROLES_HEADER, roles_value(&d.roles)));
            }
            headers.push((DECISION_ID_HEADER, o.decision_id.clone()));
            return HttpAnswer {
                status: 200,
                body: "",
                headers,
            };
        }
        if d.status == 204 {
            // authzd's own answer (a CORS preflight): no body, its headers, never forwarded.
            return HttpAnswer {
                status: 204,
                body: "",
                headers: d.response_headers.clone(),
            };
        }
        let body = match d.status {
            400 => r#"{"message":"Bad Request"}"#,
            401 => r#"{"message":"Unauthorized"}"#,
            503 => r#"{"message":"Service Unavailable"}"#,
            _ => r#"{"message":"Forbidden"}"#,
        };
        let mut headers = vec![("content-type", "application/json".to_string())];
        if d.status == 401 {
            // RFC 6750 §3: error attributes only when a token was presented.
            let challenge = if d.token_sha256.is_some() {
                format!(
                    r#"Bearer error="invalid_token", error_description="{}""#,
                    d.reason.as_str()
                )
            } else {
                "Bearer".to_string()
            };
            headers.push(("www-authenticate", challenge));
        }
        HttpAnswer {
            status: d.status,
            body,
            headers,
        }
    }

    /// The answer for a proxy that understands only 401 and 403 (nginx
    /// `auth_request`, Traefik ForwardAuth turn anything else into a 500,
    /// and every 2xx into "forward it"): a refused request (400) becomes a
    /// 403, and so does any other answer but an allow, 401 or 503.
    pub fn for_forward_auth(mut self) -> HttpAnswer {
        if !matches!(self.status, 200 | 401 | 403 | 503) {
            self.status = 403;
            self.body = r#"{"message":"Forbidden"}"#;
        }
        self
    }

    /// The names of `client_headers` that look like ours but that this answer does not set:
    /// they must be removed before the request goes upstream.
    pub fn spoofed<'a>(&self, client_headers: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = client_headers
            // Byte-wise: header names from Envoy's map may hold any UTF-8, and slicing
            // a `str` mid-character would panic (found by fuzz/envoy_request).
            .filter(|k| {
                k.as_bytes()
                    .get(..RESERVED_PREFIX.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX.as_bytes()))
            })
            .map(str::to_ascii_lowercase)
            .filter(|k| !self.headers.iter().any(|(set, _)| set == k))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// What an upstream could split, trim or unfold in a header value: control
/// characters, non-ASCII, `%` (the escape itself), the list separator `,`,
/// space (trimmed around list items and values), `"` (quoted strings) and `;`
/// (parameters). Each is percent-encoded, so one claim value stays one value.
const HEADER_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b'%')
    .add(b',')
    .add(b' ')
    .add(b'"')
    .add(b';');

/// A header-safe rendering of a claim value: a subject can never inject a
/// header line, and an upstream that trims or splits the value sees it whole.
pub fn header_value(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, HEADER_UNSAFE).to_string()
}

/// `x-authz-roles`: each role encoded as by [`header_value`], joined with `,`,
/// so a role named `x,admin` or ` admin` reaches the upstream as one role that
/// is not `admin`.
pub fn roles_value(roles: &[String]) -> String {
    let mut out = String::new();
    for (i, r) in roles.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.extend(percent_encoding::utf8_percent_encode(r, HEADER_UNSAFE));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_cannot_inject_lines() {
        assert_eq!(header_value("alice"), "alice");
        assert_eq!(
            header_value("a\r\nx-authz-subject: root"),
            "a%0D%0Ax-authz-subject:%20root"
        );
        assert_eq!(header_value("jürgen 100%"), "j%C3%BCrgen%20100%25");
        assert_eq!(header_value(" admin"), "%20admin");
    }

    #[test]
    fn each_role_stays_one_role() {
        let roles = |r: &[&str]| roles_value(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(roles(&["regular", "editor"]), "regular,editor");
        let smuggled = roles(&["regular", "x,admin", " admin", "a;q=admin", "\"admin\""]);
        assert_eq!(
            smuggled,
            "regular,x%2Cadmin,%20admin,a%3Bq=admin,%22admin%22"
        );
        // However an upstream splits and trims, no item is `admin`.
        for item in smuggled.split([',', ';']).map(str::trim) {
            assert_ne!(item.trim_matches('"'), "admin", "{smuggled}");
        }
    }

    #[test]
    fn spoofed_headers_are_those_we_do_not_set() {
        let a = HttpAnswer {
            status: 200,
            body: "",
            headers: vec![(SUBJECT_HEADER, "s".into())],
        };
        let client = [
            "X-Authz-Subject",
            "x-authz-roles",
            "x-authz-whatever",
            "authorization",
            "x-auth",
        ];
        assert_eq!(
            a.spoofed(client.into_iter()),
            ["x-authz-roles", "x-authz-whatever"]
        );
    }
}
