//! Load benchmark: authzd against a no-op server of the same protocol, in one
//! run, driven by the same client at the same concurrency.
//!
//! Four processes share the machine: the real `authzd` release binary twice —
//! with the decision log off, and with it written to a file, as users run it
//! — a no-op server (this executable started again with `AUTHZD_LOAD_NOOP`
//! set), and the client (this process). All use mimalloc, as authzd does.
//! Every answer of the logging authzd is counted and, at the end, compared
//! with the records in its log file: none may be missing.
//!
//! - gRPC: `authzd.v1.Authorizer/Check` vs a tonic service that answers a fixed
//!   `CheckResponse`.
//! - HTTP: `POST /v1/check` vs an axum handler that answers a fixed JSON body.
//! - Envoy: `envoy.service.auth.v3.Authorization/Check` vs a no-op of the same.
//!
//! Each side runs twice (the better run counts), `LOAD_SECS` (default 5)
//! seconds with `LOAD_CONCURRENCY` (default 32) requests in flight: the same
//! cached token (the common case), a new path per request that nothing allows,
//! and (gRPC) a forged token per request, each a full signature check and 401.
//!
//! When `h2load` (Debian `nghttp2-client`) is installed, it drives both
//! servers again from its own process: saturated throughput, then latency at
//! half of authzd's saturated rate (`--rps`). h2load paces on its event loop's
//! millisecond timer, so it sends bursts of rate/1000 requests each
//! millisecond; the no-op column shows what that costs any server.
//!
//! With `LOAD_TRACING=1`, the logging authzd also exports a span per decision
//! (`[tracing]`) to an OTLP/gRPC collector that the no-op process runs and
//! that counts what it receives: run once with and once without to see what
//! tracing costs next to the same no-op.
//!
//! With `LOAD_SHADOW=<rate>` (e.g. `1.0`, `0.1`), the logging authzd also
//! has a `[shadow]` candidate (the same rules plus one) deciding that
//! fraction of checks: run with and without to see what shadowing costs.
//!
//! With `LOAD_EXPLORER=1`, the logging authzd also has the decision explorer
//! on (`[admin]`, its ring and counts fed by every decision) and a
//! browser-like client reading its live stream (`/api/stream`, every
//! decision) for the whole run: run with and without to see what it costs.
//!
//! Run: `cargo bench --bench load` (release build; prints a table).

// A benchmark harness: setup failures abort loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use authzd::{
    devtoken::{Claims, SigningKey, mint},
    pb::{
        self,
        authorizer_client::AuthorizerClient,
        authorizer_server::{Authorizer, AuthorizerServer},
    },
};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest as EnvoyRequest, CheckResponse as EnvoyResponse,
    attribute_context,
    authorization_client::AuthorizationClient,
    authorization_server::{Authorization, AuthorizationServer},
};
use tonic::{Request, Response, Status};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct NoopGrpc;

#[tonic::async_trait]
impl Authorizer for NoopGrpc {
    async fn check(
        &self,
        _: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        Ok(Response::new(pb::CheckResponse {
            allowed: true,
            status: 200,
            reason: "allowed".into(),
            decision_id: "00000000-0000-0000-0000-000000000000".into(),
            subject: "alice".into(),
            roles: vec!["admin".into()],
            policy_revision: "000000000000".into(),
            matched_policy: vec!["admin".into(), "/AdminUser".into(), "GET".into()],
        }))
    }
    async fn check_batch(
        &self,
        _: Request<pb::CheckBatchRequest>,
    ) -> Result<Response<pb::CheckBatchResponse>, Status> {
        Ok(Response::new(pb::CheckBatchResponse::default()))
    }
}

struct NoopEnvoy;

#[tonic::async_trait]
impl Authorization for NoopEnvoy {
    async fn check(&self, _: Request<EnvoyRequest>) -> Result<Response<EnvoyResponse>, Status> {
        Ok(Response::new(EnvoyResponse {
            status: Some(envoy_types::pb::google::rpc::Status {
                code: 0,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

async fn noop_grpc(l: tokio::net::TcpListener) {
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AuthorizerServer::new(NoopGrpc))
            .add_service(AuthorizationServer::new(NoopEnvoy))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true)),
            ),
    );
}

async fn noop_http(l: tokio::net::TcpListener) {
    let body = r#"{"allowed":true,"status":200,"reason":"allowed","decision_id":"00000000-0000-0000-0000-000000000000","subject":"alice","roles":["admin"],"policy_revision":"000000000000","matched_policy":["admin","/AdminUser","GET"]}"#;
    let app = axum::Router::new().route(
        "/v1/check",
        axum::routing::post(move || async move { ([("content-type", "application/json")], body) }),
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
}

/// The no-op process: serves until killed, on the ports in `AUTHZD_LOAD_NOOP`.
fn noop_main(ports: &str) {
    let mut ports = ports.split(',');
    let (g, h) = (ports.next().unwrap(), ports.next().unwrap());
    let otlp = ports.next().map(str::to_string);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bind = |p: &str| tokio::net::TcpListener::bind(format!("127.0.0.1:{p}"));
        noop_grpc(bind(g).await.unwrap()).await;
        noop_http(bind(h).await.unwrap()).await;
        if let Some(p) = otlp {
            collector(bind(&p).await.unwrap());
        }
        std::future::pending::<()>().await;
    });
}

/// An OTLP/gRPC trace collector that counts spans and prints the count at
/// each export past a multiple of 100,000.
fn collector(l: tokio::net::TcpListener) {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    };
    #[derive(Default)]
    struct Count(AtomicU64);
    #[tonic::async_trait]
    impl TraceService for Count {
        async fn export(
            &self,
            r: Request<ExportTraceServiceRequest>,
        ) -> Result<Response<ExportTraceServiceResponse>, Status> {
            let n: usize = r
                .get_ref()
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum();
            let before = self.0.fetch_add(n as u64, Ordering::Relaxed);
            if (before + n as u64) / 100_000 > before / 100_000 {
                eprintln!("collector: {} spans received", before + n as u64);
            }
            Ok(Response::new(ExportTraceServiceResponse::default()))
        }
    }
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Count::default()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l)),
    );
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A child process, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on `addr`.
async fn listening(addr: SocketAddr) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing listens on {addr}");
}

/// Throughput and latency percentiles of one run.
struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// Requests answered.
    answered: u64,
}

/// Answers given by the logging authzd, to compare with its log at the end.
static LOGGED_ANSWERS: AtomicU64 = AtomicU64::new(0);
/// Requests h2load started but stopped counting at its `-D` deadline: the
/// server may have answered (and logged) them.
static LOGGED_CUT_OFF: AtomicU64 = AtomicU64::new(0);

/// The `p` quantile of sorted latencies.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Runs `op` with `concurrency` loops for `secs`, recording latencies.
async fn drive<F, Fut>(concurrency: usize, secs: u64, op: F) -> Stats
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (stop, counter, op) = (Arc::clone(&stop), Arc::clone(&counter), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                op(n).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    Stats {
        rps: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        answered: all.len() as u64,
    }
}

/// The three servers of one comparison: authzd with the log off, authzd
/// logging to a file, the no-op.
#[derive(Clone, Copy)]
struct Three([SocketAddr; 3]);

impl Three {
    /// The better of two runs against each server (the first also warms
    /// connections and caches); counts the logging authzd's answers.
    async fn run<F, Fut>(self, run: F) -> [Stats; 3]
    where
        F: Fn(SocketAddr) -> Fut,
        Fut: std::future::Future<Output = Stats>,
    {
        let mut out = Vec::new();
        for (i, addr) in self.0.into_iter().enumerate() {
            let (a, b) = (run(addr).await, run(addr).await);
            if i == 1 {
                LOGGED_ANSWERS.fetch_add(a.answered + b.answered, Ordering::Relaxed);
            }
            out.push(best(a, b));
        }
        let [off, log, noop]: [Stats; 3] = out.try_into().unwrap_or_else(|_| unreachable!());
        [off, log, noop]
    }
}

/// Writes the shared keys, model and policy (10,001 rules), and one config
/// per authzd: `name.toml` with `log` as the decision log output.
fn write_config(
    dir: &Path,
    key: &SigningKey,
    grpc: SocketAddr,
    http: SocketAddr,
    name: &str,
    log: &str,
    otlp: Option<SocketAddr>,
) -> std::path::PathBuf {
    std::fs::write(dir.join("jwks.json"), key.jwks().to_string()).unwrap();
    std::fs::write(
        dir.join("model.conf"),
        "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)\n",
    )
    .unwrap();
    let mut policy = String::new();
    for i in 0..10_000 {
        policy.push_str(&format!("p, role{}, /res{i}/:id, (GET)|(POST)\n", i % 100));
    }
    policy.push_str("p, admin, /AdminUser, GET\n");
    std::fs::write(dir.join("policy.csv"), policy).unwrap();
    let cfg = format!(
        "[server]\ngrpc_addr = \"{grpc}\"\nhttp_addr = \"{http}\"\n[[issuer]]\nissuer = \"https://bench.example\"\njwks_file = \"jwks.json\"\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n[decision_log]\noutput = \"{log}\"\n"
    );
    let cfg = match otlp {
        Some(a) => format!("{cfg}[tracing]\notlp_endpoint = \"http://{a}\"\n"),
        None => cfg,
    };
    let cfg = match (name, std::env::var("LOAD_SHADOW")) {
        ("log", Ok(rate)) => {
            let mut candidate = std::fs::read_to_string(dir.join("policy.csv")).unwrap();
            candidate.push_str("p, role1, /AdminUser, GET\n");
            std::fs::write(dir.join("candidate.csv"), candidate).unwrap();
            format!(
                "{cfg}[shadow]\nmodel = \"model.conf\"\npolicy = \"candidate.csv\"\nsample = {rate}\n"
            )
        }
        _ => cfg,
    };
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).unwrap();
    path
}

#[derive(Clone, Copy)]
enum Load {
    /// The same allowed request, its token already verified.
    Cached,
    /// A new path per request, all denied: nothing to reuse but the token.
    NewPath,
    /// A new forged token per request.
    Forged,
}

/// The better of two runs (the first also warms connections and caches).
fn best(a: Stats, b: Stats) -> Stats {
    if a.rps >= b.rps { a } else { b }
}

fn row(name: &str, [off, log, noop]: &[Stats; 3]) {
    println!(
        "| {name:<36} | {:>9.0} | {:>9.0} | {:>9.0} | {:>5.2} | {:>5.2} | {:>7.0} | {:>7.0} |",
        off.rps,
        log.rps,
        noop.rps,
        off.rps / noop.rps,
        log.rps / noop.rps,
        log.p50.as_secs_f64() * 1e6,
        log.p99.as_secs_f64() * 1e6
    );
}

fn main() {
    if let Ok(ports) = std::env::var("AUTHZD_LOAD_NOOP") {
        return noop_main(&ports);
    }
    let secs: u64 = std::env::var("LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let conc: usize = std::env::var("LOAD_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    // `cargo bench` passes `--bench`; this harness has no filters.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let pem =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa.pem"))
                .unwrap();
        let key = SigningKey::from_pem(&pem, "rsa.pem").unwrap();
        let (grpc, http, noop_g, noop_h) = (free_addr(), free_addr(), free_addr(), free_addr());
        let (grpc_log, http_log) = (free_addr(), free_addr());
        let log_file = dir.path().join("decisions.log");
        let serve = |config: std::path::PathBuf| {
            Child(
                // AUTHZD_LOAD_BIN: another authzd build, for before/after comparisons.
                std::process::Command::new(
                    std::env::var("AUTHZD_LOAD_BIN")
                        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_authzd").to_string()),
                )
                .args(["serve", "--config"])
                .arg(config)
                .env("RUST_LOG", "warn")
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
            )
        };
        let otlp = std::env::var_os("LOAD_TRACING").map(|_| free_addr());
        let _authzd = serve(write_config(
            dir.path(),
            &key,
            grpc,
            http,
            "off",
            "off",
            None,
        ));
        let explorer = std::env::var_os("LOAD_EXPLORER").map(|_| free_addr());
        let log_config = write_config(
            dir.path(),
            &key,
            grpc_log,
            http_log,
            "log",
            &log_file.display().to_string(),
            otlp,
        );
        if let Some(a) = explorer {
            let text = std::fs::read_to_string(&log_config).unwrap();
            std::fs::write(&log_config, format!("{text}[admin]\naddr = \"{a}\"\n")).unwrap();
        }
        let _authzd_log = serve(log_config);
        let grpcs = Three([grpc, grpc_log, noop_g]);
        let https = Three([http, http_log, noop_h]);
        let _noop = Child(
            std::process::Command::new(std::env::current_exe().unwrap())
                .env(
                    "AUTHZD_LOAD_NOOP",
                    match otlp {
                        Some(o) => format!("{},{},{}", noop_g.port(), noop_h.port(), o.port()),
                        None => format!("{},{}", noop_g.port(), noop_h.port()),
                    },
                )
                .spawn()
                .unwrap(),
        );
        for addr in [grpc, http, grpc_log, http_log, noop_g, noop_h] {
            listening(addr).await;
        }
        let claims = Claims {
            iss: "https://bench.example".into(),
            sub: "alice".into(),
            groups: vec!["admin".into()],
            ttl: Duration::from_secs(3600),
            ..Default::default()
        };
        let token = Arc::new(mint(&key, &claims, None, SystemTime::now()).unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The explorer's live page, as a browser holds it open: every decision streamed.
        let streamed = Arc::new(AtomicU64::new(0));
        if let Some(a) = explorer {
            listening(a).await;
            let streamed = Arc::clone(&streamed);
            tokio::spawn(async move {
                let mut resp = reqwest::get(format!("http://{a}/api/stream")).await.unwrap();
                while let Ok(Some(chunk)) = resp.chunk().await {
                    let n = chunk.windows(14).filter(|w| w == b"\"decision_id\":").count();
                    streamed.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }

        println!(
            "{secs} s per run, {conc} requests in flight, 10,001 rules, loopback, this machine{}",
            match (otlp.is_some(), std::env::var("LOAD_SHADOW")) {
                _ if explorer.is_some() => "; \"log on\" also feeds the explorer, with its live stream read (LOAD_EXPLORER)".to_string(),
                (true, _) => "; \"log on\" also exports a span per decision (LOAD_TRACING)".to_string(),
                (false, Ok(rate)) => format!("; \"log on\" also shadows {rate} of the checks (LOAD_SHADOW)"),
                _ => String::new(),
            }
        );
        println!(
            "| {:<36} | {:>9} | {:>9} | {:>9} | {:>5} | {:>5} | {:>7} | {:>7} |",
            "interface", "log off/s", "log on/s", "no-op/s", "off", "on", "p50 µs", "p99 µs"
        );
        println!("|{}", "---|".repeat(8));

        // A forged token per request: a real header and signature over a
        // payload naming a new subject. Every one misses the token cache and
        // costs a full RS256 verification before its 401.
        let forged = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut parts = token.split('.');
            let (header, payload, sig) = (
                parts.next().unwrap().to_string(),
                String::from_utf8(b64.decode(parts.next().unwrap()).unwrap()).unwrap(),
                parts.next().unwrap().to_string(),
            );
            assert!(payload.contains(r#""sub":"alice""#), "{payload}");
            Arc::new(move |n: u64| {
                let p = payload.replace(r#""sub":"alice""#, &format!(r#""sub":"m{n}""#));
                format!("{header}.{}.{sig}", b64.encode(p))
            })
        };
        for (label, load) in [
            ("gRPC Check", Load::Cached),
            ("gRPC Check, cache-busting deny", Load::NewPath),
            ("gRPC Check, forged token each (401)", Load::Forged),
        ] {
            let run = |addr: SocketAddr| {
                let (token, forged) = (Arc::clone(&token), Arc::clone(&forged));
                async move {
                    let client = AuthorizerClient::connect(format!("http://{addr}"))
                        .await
                        .unwrap();
                    drive(conc, secs, move |n| {
                        let (mut c, token) = (client.clone(), Arc::clone(&token));
                        let (path, token) = match load {
                            Load::Cached => ("/AdminUser".to_string(), (*token).clone()),
                            Load::NewPath => (format!("/nothing/{n}"), (*token).clone()),
                            Load::Forged => ("/AdminUser".to_string(), forged(n)),
                        };
                        async move {
                            let r = pb::CheckRequest {
                                method: "GET".into(),
                                path,
                                token,
                                ..Default::default()
                            };
                            c.check(r).await.unwrap();
                        }
                    })
                    .await
                }
            };
            row(label, &grpcs.run(run).await);
        }

        for (label, busting) in [
            ("POST /v1/check", false),
            ("POST /v1/check, cache-busting deny", true),
        ] {
            let run = |addr: SocketAddr| {
                let token = Arc::clone(&token);
                async move {
                    let client = reqwest::Client::new();
                    drive(conc, secs, move |n| {
                        let (c, token) = (client.clone(), Arc::clone(&token));
                        async move {
                            let path = if busting {
                                format!("/nothing/{n}")
                            } else {
                                "/AdminUser".into()
                            };
                            let body =
                                format!(r#"{{"method":"GET","path":"{path}","token":"{token}"}}"#);
                            let r = c
                                .post(format!("http://{addr}/v1/check"))
                                .body(body)
                                .send()
                                .await
                                .unwrap();
                            r.bytes().await.unwrap();
                        }
                    })
                    .await
                }
            };
            row(label, &https.run(run).await);
        }

        let run = |addr: SocketAddr| {
            let token = Arc::clone(&token);
            async move {
                let client = AuthorizationClient::connect(format!("http://{addr}"))
                    .await
                    .unwrap();
                drive(conc, secs, move |_| {
                    let (mut c, token) = (client.clone(), Arc::clone(&token));
                    async move {
                        let http = attribute_context::HttpRequest {
                            method: "GET".into(),
                            path: "/AdminUser?tab=1".into(),
                            headers: [("authorization".to_string(), format!("Bearer {token}"))]
                                .into(),
                            ..Default::default()
                        };
                        let r = EnvoyRequest {
                            attributes: Some(AttributeContext {
                                request: Some(attribute_context::Request {
                                    http: Some(http),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                        };
                        c.check(r).await.unwrap();
                    }
                })
                .await
            }
        };
        row("Envoy ext_authz Check", &grpcs.run(run).await);

        if std::process::Command::new("h2load")
            .arg("--version")
            .output()
            .is_ok()
        {
            h2load_section(dir.path(), &token, grpcs, https, secs);
        } else {
            println!(
                "\n(h2load not found: `apt-get install nghttp2-client` adds the h2load table)"
            );
        }
        // The writer flushes every 10 ms; then every answer must have its record.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let records = std::fs::read_to_string(&log_file).unwrap().lines().count() as u64;
        if explorer.is_some() {
            println!(
                "explorer: the live stream carried {} decisions",
                streamed.load(Ordering::Relaxed)
            );
        }
        let answers = LOGGED_ANSWERS.load(Ordering::Relaxed);
        let cut_off = LOGGED_CUT_OFF.load(Ordering::Relaxed);
        println!(
            "\ndecision log: {records} records written for {answers} answers (+ up to {cut_off} requests h2load stopped counting)"
        );
        assert!(
            (answers..=answers + cut_off).contains(&records),
            "decision log records lost or duplicated"
        );
    });
}

/// One h2load run; returns (requests per second, sorted latencies).
/// One h2load run: requests per second, sorted latencies, requests that
/// succeeded, and requests started but not finished when the run ended.
fn h2load(args: &[String], log: &Path) -> (f64, Vec<Duration>, u64, u64) {
    // h2load appends to its log file: start each run with an empty one.
    let _ = std::fs::remove_file(log);
    let out = std::process::Command::new("h2load")
        .args(args)
        .arg(format!("--log-file={}", log.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|r| r.strip_suffix(" req/s"))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("h2load said:\n{text}"));
    let failed = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .is_some_and(|l| !l.contains(" 0 failed"));
    assert!(!failed, "h2load saw failures:\n{text}");
    // `requests: 10 total, 10 started, 10 done, 10 succeeded, …`
    let count = |what: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("requests: "))
            .and_then(|l| l.split(", ").find_map(|p| p.strip_suffix(what)))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("h2load said:\n{text}"))
    };
    let (succeeded, started, done) = (count(" succeeded"), count(" started"), count(" done"));
    let mut lat: Vec<Duration> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.parse().ok())
        .map(Duration::from_micros)
        .collect();
    lat.sort_unstable();
    (rps, lat, succeeded, started - done)
}

/// A gRPC message with its length-prefixed frame, as an h2load request body.
fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(msg);
    framed
}

/// One h2load workload: where it posts, what, and over how many connections.
struct H2Load {
    name: &'static str,
    path: &'static str,
    body: std::path::PathBuf,
    clients: u32,
    streams: u32,
}

impl H2Load {
    /// h2load's arguments for `secs` against `addr`; `rps` is the total rate.
    fn args(&self, addr: SocketAddr, secs: u64, rps: Option<f64>) -> Vec<String> {
        let grpc = self.body.extension().is_some_and(|e| e == "grpc");
        let mut args = vec![
            format!("http://{addr}{}", self.path),
            format!("-D{secs}"),
            format!("-c{}", self.clients),
            format!("-m{}", self.streams),
            "-t1".into(),
            "-d".into(),
            self.body.display().to_string(),
            "-H".into(),
        ];
        if grpc {
            args.extend(["content-type: application/grpc", "-H", "te: trailers"].map(String::from));
        } else {
            args.extend(["content-type: application/json", "--h1"].map(String::from));
        }
        if let Some(r) = rps {
            args.push(format!("--rps={}", (r / f64::from(self.clients)).max(1.0)));
        }
        args
    }
}

/// The same comparison with h2load, a C client in its own process: saturated
/// throughput, then latency with h2load pacing half of authzd's saturated rate.
fn h2load_section(dir: &Path, token: &str, grpc: Three, http: Three, secs: u64) {
    use prost::Message;
    let msg = pb::CheckRequest {
        method: "GET".into(),
        path: "/AdminUser".into(),
        token: token.to_string(),
        ..Default::default()
    }
    .encode_to_vec();
    std::fs::write(dir.join("check.grpc"), grpc_frame(&msg)).unwrap();
    // As Envoy sends it: method, path and headers under attributes.request.http.
    let envoy = EnvoyRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: "GET".into(),
                    path: "/AdminUser?tab=1".into(),
                    host: "api.example.com".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: [
                        (":authority".to_string(), "api.example.com".to_string()),
                        (":method".into(), "GET".into()),
                        (":path".into(), "/AdminUser?tab=1".into()),
                        ("authorization".into(), format!("Bearer {token}")),
                        ("user-agent".into(), "curl/8.5.0".into()),
                        (
                            "x-request-id".into(),
                            "5f0c6a7e-2b1d-4c1e-9a57-0d3a3c2f1b9e".into(),
                        ),
                    ]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
    .encode_to_vec();
    std::fs::write(dir.join("envoy.grpc"), grpc_frame(&envoy)).unwrap();
    std::fs::write(
        dir.join("check.json"),
        format!(r#"{{"method":"GET","path":"/AdminUser","token":"{token}"}}"#),
    )
    .unwrap();
    let log = dir.join("h2load.log");
    let us = |lat: &[Duration], p: f64| percentile(lat, p).as_secs_f64() * 1e6;
    println!();
    println!(
        "h2load (nghttp2), {secs} s per run; latency with the log on, at half of its saturated rate:"
    );
    println!(
        "| {:<30} | {:>9} | {:>9} | {:>9} | {:>5} | {:>5} | {:>9} | {:>7} | {:>7} | {:>9} | {:>9} |",
        "interface",
        "log off/s",
        "log on/s",
        "no-op/s",
        "off",
        "on",
        "offered/s",
        "p50 µs",
        "p99 µs",
        "no-op p50",
        "no-op p99"
    );
    println!("|{}", "---|".repeat(11));
    let http_check = |name, clients, streams| H2Load {
        name,
        path: "/v1/check",
        body: dir.join("check.json"),
        clients,
        streams,
    };
    for (load, addrs) in [
        (
            H2Load {
                name: "gRPC Check (4 conns × 16)",
                path: "/authzd.v1.Authorizer/Check",
                body: dir.join("check.grpc"),
                clients: 4,
                streams: 16,
            },
            grpc,
        ),
        (
            H2Load {
                name: "Envoy Check (4 conns × 16)",
                path: "/envoy.service.auth.v3.Authorization/Check",
                body: dir.join("envoy.grpc"),
                clients: 4,
                streams: 16,
            },
            grpc,
        ),
        (http_check("POST /v1/check (32 × HTTP/1.1)", 32, 1), http),
    ] {
        let [off_addr, log_addr, noop_addr] = addrs.0;
        let run = |addr: SocketAddr, rps: Option<f64>| {
            let (r, lat, answered, cut_off) = h2load(&load.args(addr, secs, rps), &log);
            if addr == log_addr {
                LOGGED_ANSWERS.fetch_add(answered, Ordering::Relaxed);
                LOGGED_CUT_OFF.fetch_add(cut_off, Ordering::Relaxed);
            }
            (r, lat)
        };
        // Saturated: the better of two runs each, as above.
        let sat = |addr| run(addr, None).0.max(run(addr, None).0);
        let (off, on, noop) = (sat(off_addr), sat(log_addr), sat(noop_addr));
        let half = on / 2.0;
        let (_, lat) = run(log_addr, Some(half));
        let (_, noop_lat) = run(noop_addr, Some(half));
        println!(
            "| {:<30} | {off:>9.0} | {on:>9.0} | {noop:>9.0} | {:>5.2} | {:>5.2} | {half:>9.0} | {:>7.0} | {:>7.0} | {:>9.0} | {:>9.0} |",
            load.name,
            off / noop,
            on / noop,
            us(&lat, 0.5),
            us(&lat, 0.99),
            us(&noop_lat, 0.5),
            us(&noop_lat, 0.99),
        );
    }

    // The bursts above are h2load's, not the servers': at a rate whose
    // bursts are small, the same request shows the servers' own latency.
    let light = http_check("POST /v1/check, light", 4, 1);
    let [_, log_addr, noop_addr] = http.0;
    let run = |addr| {
        let (_, lat, answered, cut_off) = h2load(&light.args(addr, secs, Some(12_000.0)), &log);
        if addr == log_addr {
            LOGGED_ANSWERS.fetch_add(answered, Ordering::Relaxed);
            LOGGED_CUT_OFF.fetch_add(cut_off, Ordering::Relaxed);
        }
        lat
    };
    let (ours, noop) = (run(log_addr), run(noop_addr));
    println!(
        "POST /v1/check at 12,000 req/s over 4 HTTP/1.1 connections: p50 {:.0} µs, p99 {:.0} µs (no-op: {:.0} µs, {:.0} µs)",
        us(&ours, 0.5),
        us(&ours, 0.99),
        us(&noop, 0.5),
        us(&noop, 0.99),
    );
}
