//! The server's bootstrap: binds both listeners, starts the background
//! tasks (key refresh, file watcher, store follower, SIGHUP), serves until
//! shutdown, then drains and flushes the decision log. Above the transports:
//! [`listeners`] composes them onto the two ports, [`conn`] holds every
//! connection to its limits.

pub mod conn;
pub mod listeners;

use std::{future::Future, net::SocketAddr, path::Path, sync::Arc};

use tokio::net::TcpListener;

use crate::{
    admin,
    audit::{self, Output},
    authorizer::Authorizer,
    policy::{
        follow,
        reload::{self, PolicyStore},
        snapshot::{Snapshot, SnapshotError},
        source,
    },
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
    #[error(transparent)]
    Tracing(#[from] crate::spans::SpanError),
    #[error("gRPC server failed: {0}")]
    Grpc(std::io::Error),
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("explorer server failed: {0}")]
    Admin(std::io::Error),
}

/// A bound, not yet serving authzd.
pub struct Server {
    grpc: TcpListener,
    http: TcpListener,
    /// The explorer's listener, with `[admin]`.
    admin: Option<(
        TcpListener,
        Arc<crate::config::AdminConfig>,
        Arc<crate::explorer::Explorer>,
    )>,
    authorizer: Arc<Authorizer>,
    audit_writer: Option<tokio::task::JoinHandle<()>>,
    span_exporter: Option<tokio::task::JoinHandle<()>>,
    /// The connection the first store read used, handed to the follower.
    store_client: Option<source::Client>,
}

impl Server {
    /// Loads the config at `path` and binds its gRPC and HTTP addresses.
    pub async fn bind(path: &Path) -> Result<Server, ServeError> {
        let (snapshot, status, client) = follow::start(path).await?;
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
        let admin = match &cfg.admin {
            None => None,
            Some(a) => {
                let listener =
                    TcpListener::bind(a.addr)
                        .await
                        .map_err(|source| ServeError::Bind {
                            addr: a.addr,
                            source,
                        })?;
                let explorer = Arc::new(crate::explorer::Explorer::new(a.recent));
                Some((listener, Arc::new(a.clone()), explorer))
            }
        };
        // The explorer reads what the log writer takes, on the writer's thread.
        let tap = admin.as_ref().map(|(_, _, e)| {
            let e = Arc::clone(e);
            Box::new(
                move |batch: &[Arc<audit::Outcome>], lines: &[u8], ends: &[usize]| {
                    e.record(batch, lines, ends);
                },
            ) as audit::Tap
        });
        let (sink, audit_writer) =
            audit::spawn(Output::from_config(&log_cfg.output), log_cfg.buffer, tap).map_err(
                |source| ServeError::Log {
                    output: log_cfg.output.clone(),
                    source,
                },
            )?;
        let (spans, span_exporter) = crate::spans::SpanSink::start(&cfg.tracing)?;
        crate::metrics::revision_serving(&snapshot.revision);
        tracing::info!(revision = %snapshot.revision, rules = snapshot.policy.rules, routes = snapshot.routes.len(), issuers = cfg.issuers.len(), evaluator = %snapshot.policy.evaluator, "policy loaded");
        let store = Arc::new(PolicyStore::following(snapshot, path, status));
        let authorizer =
            Arc::new(Authorizer::new(store, Arc::new(Jwks::new()), sink).with_spans(spans));
        Ok(Server {
            grpc,
            http,
            admin,
            authorizer,
            audit_writer,
            span_exporter,
            store_client: client,
        })
    }

    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.local_addr().ok()
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.local_addr().ok()
    }

    /// The explorer's address, with `[admin]`.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|(l, _, _)| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then drains in-flight checks and flushes the log.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            grpc,
            http,
            admin,
            authorizer,
            audit_writer,
            span_exporter,
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
            follow::follow(Arc::clone(&authorizer.store), store_client, move |snap| {
                after_reload(&jwks, &roles, snap)
            })
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let grpc_task = listeners::grpc(grpc, Arc::clone(&authorizer), stopped(stop_rx.clone()));
        let http_task = listeners::http(http, Arc::clone(&authorizer), stopped(stop_rx.clone()));
        let admin_task = async {
            let Some((listener, cfg, explorer)) = admin else {
                return Ok(());
            };
            tracing::info!(admin = %addr(&listener), sign_in = cfg.signs_in(), "decision explorer serving");
            let state = admin::Admin {
                authorizer: Arc::clone(&authorizer),
                explorer,
                sessions: Arc::new(admin::session::Sessions::new(&cfg)),
                cfg,
                stopping: stop_rx.clone(),
            };
            let limits = conn::Limits::of(&authorizer.store.load().config.server, false);
            conn::serve(
                listener,
                admin::router(state),
                limits,
                stopped(stop_rx.clone()),
            )
            .await
        };
        let (g, h, a) = tokio::join!(grpc_task, http_task, admin_task);
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
        if let Some(exporter) = span_exporter {
            // Likewise: the last spans are exported, or given up on after 5 s.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), exporter).await;
        }
        g.map_err(ServeError::Grpc)?;
        h.map_err(ServeError::Http)?;
        a.map_err(ServeError::Admin)?;
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
