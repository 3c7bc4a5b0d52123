//! The `authzd` command line: parse arguments, set up tracing, call the library.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};
use authzd::{
    audit::{AuditSink, Source},
    authorizer::Authorizer,
    decision::{Request, Target},
    devtoken::{self, SigningKey},
    policy::{reload::PolicyStore, snapshot::Snapshot},
    probe::Level,
    server::Server,
    token::jwks::Jwks,
};
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's allocator: request handling allocates small,
/// short-lived buffers on every worker thread, and glibc's per-thread arenas
/// kept about twice the live heap resident under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "authzd",
    version,
    about = "Policy decision service for JWT-protected HTTP APIs"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReplayFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DiffFormat {
    Markdown,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC and HTTP until SIGTERM or Ctrl-C.
    Serve {
        #[arg(long, default_value = "authzd.toml")]
        config: PathBuf,
    },
    /// One offline decision, printed as JSON; exit 0 allow, 1 deny, 2 error.
    Check {
        #[arg(long, default_value = "authzd.toml")]
        config: PathBuf,
        #[arg(long)]
        token: Option<String>,
        #[arg(long, requires = "path", conflicts_with_all = ["resource", "action"])]
        method: Option<String>,
        #[arg(long, requires = "method")]
        path: Option<String>,
        #[arg(long, requires = "action")]
        resource: Option<String>,
        #[arg(long, requires = "resource")]
        action: Option<String>,
        #[arg(long)]
        domain: Option<String>,
    },
    /// Parse config, model, policy and routes; `--online` also fetches each issuer's keys.
    Validate {
        #[arg(long, default_value = "authzd.toml")]
        config: PathBuf,
        #[arg(long)]
        online: bool,
        /// Also say how `authzd lambda` would answer with this config (the
        /// default when the config has a `[lambda]` table).
        #[arg(long)]
        lambda: bool,
    },
    /// Every decision that flips between this config and a candidate
    /// (`docs/policy-changes.md`); exit 0 none, 1 some, 2 error.
    Diff {
        /// The live configuration.
        #[arg(long, default_value = "authzd.toml")]
        config: PathBuf,
        /// The candidate configuration (its model, policy and routes).
        #[arg(long)]
        candidate: PathBuf,
        #[arg(long, value_enum, default_value = "markdown")]
        format: DiffFormat,
    },
    /// Re-decide decision-log records under a candidate config
    /// (`docs/policy-changes.md`); exit 0 nothing changed, 1 something did, 2 error.
    Replay {
        /// The candidate configuration.
        #[arg(long, default_value = "authzd.toml")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: ReplayFormat,
        /// Decision logs: files (`.gz` too), `-` for stdin.
        #[arg(required = true)]
        logs: Vec<String>,
    },
    /// Run policy test cases (`docs/interfaces.md`); exit 1 if any fails, 2 if the file is invalid.
    Test { file: PathBuf },
    /// Mint a signed development JWT and print it.
    Token {
        /// PEM private key (RSA → RS256, EC P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        iss: String,
        #[arg(long)]
        sub: String,
        /// Header `kid` (default: the key's RFC 7638 thumbprint).
        #[arg(long)]
        kid: Option<String>,
        #[arg(long)]
        aud: Option<String>,
        /// Comma-separated; becomes the `cognito:groups` array.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Space-separated; becomes the `scope` string.
        #[arg(long)]
        scope: Option<String>,
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Extra claim `key=value` (value parsed as JSON when it is JSON); repeatable.
        #[arg(long = "claim")]
        claims: Vec<String>,
    },
    /// Print the JWKS (public half) of a PEM private key.
    Jwks {
        #[arg(long)]
        key: PathBuf,
    },
    /// Manage the shared policy store the config's `[policy] store` names.
    Store {
        /// Also accepted after the nested command (`authzd store init --config …`).
        #[arg(long, global = true, default_value = "authzd.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Run as API Gateway's Lambda authorizer (speaks the Lambda Runtime API).
    Lambda {
        /// Default: `$AUTHZD_CONFIG`, else `authzd.toml` in `$LAMBDA_TASK_ROOT`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Create the table if missing and the trigger that notifies the channel (idempotent).
    Init,
    /// Replace the store's policy with a CSV policy file, in one transaction.
    Import { file: PathBuf },
    /// Print the store's policy as CSV.
    Export,
}

/// `bootstrap` (the custom-runtime convention), or no arguments inside Lambda,
/// means `authzd lambda`.
fn lambda_by_convention() -> bool {
    let mut args = std::env::args_os();
    let invoked_as_bootstrap = args
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|n| n == "bootstrap"))
        .unwrap_or(false);
    invoked_as_bootstrap
        || (args.next().is_none() && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some())
}

fn lambda_config(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("AUTHZD_CONFIG").map(PathBuf::from))
        .or_else(|| std::env::var_os("LAMBDA_TASK_ROOT").map(|r| Path::new(&r).join("authzd.toml")))
        .unwrap_or_else(|| PathBuf::from("authzd.toml"))
}

fn main() -> ExitCode {
    let cli = if lambda_by_convention() {
        Cli {
            log_format: LogFormat::Json,
            command: Command::Lambda { config: None },
        }
    } else {
        Cli::parse()
    };
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTHZD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve { config } => serve(&config).await,
        Command::Lambda { config } => {
            authzd::transport::lambda::run(&lambda_config(config)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            config,
            token,
            method,
            path,
            resource,
            action,
            domain,
        } => {
            let target = match (&method, &path, &resource, &action) {
                (Some(m), Some(p), _, _) => Target::Http { method: m, path: p },
                (_, _, Some(r), Some(a)) => Target::Resource {
                    resource: r,
                    action: a,
                },
                _ => bail!("give either --method and --path, or --resource and --action"),
            };
            check(&config, token.as_deref(), target, domain.as_deref()).await
        }
        Command::Validate {
            config,
            online,
            lambda,
        } => validate(&config, online, lambda).await,
        Command::Store { config, command } => store(&config, command).await,
        Command::Diff {
            config,
            candidate,
            format,
        } => diff(&config, &candidate, format).await,
        Command::Replay {
            config,
            format,
            logs,
        } => {
            let snap = Snapshot::load(&config)
                .await
                .with_context(|| format!("loading `{}`", config.display()))?;
            let mut readers = Vec::new();
            for l in logs {
                let r = authzd::replay::open(&l)?;
                readers.push((l, r));
            }
            let report = authzd::replay::replay(&snap, &mut readers)?;
            match format {
                ReplayFormat::Text => print!("{}", authzd::replay::text(&report)),
                ReplayFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(if report.newly_allowed + report.newly_denied == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Test { file } => {
            let (snap, results) = authzd::policy::cases::run(&file).await?;
            println!("{} (policy revision {})", file.display(), snap.revision);
            print!("{}", authzd::policy::cases::report(&results));
            Ok(if results.iter().all(|r| r.passed) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Token {
            key,
            iss,
            sub,
            kid,
            aud,
            groups,
            scope,
            ttl,
            claims,
        } => {
            let key = load_key(&key)?;
            let claims = devtoken::Claims {
                iss,
                sub,
                aud,
                groups,
                scope,
                ttl,
                extra: claims,
            };
            println!(
                "{}",
                devtoken::mint(&key, &claims, kid.as_deref(), SystemTime::now())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Jwks { key } => {
            println!("{:#}", load_key(&key)?.jwks());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_key(path: &Path) -> Result<SigningKey> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read key `{}`", path.display()))?;
    Ok(SigningKey::from_pem(&pem, &path.display().to_string())?)
}

async fn serve(config: &Path) -> Result<ExitCode> {
    let server = Server::bind(config).await?;
    server.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight checks");
}

async fn check(
    config: &Path,
    token: Option<&str>,
    target: Target<'_>,
    domain: Option<&str>,
) -> Result<ExitCode> {
    let snapshot = Snapshot::load(config).await?;
    let store = Arc::new(PolicyStore::new(snapshot, config));
    // The printed line is this check's decision record (source `cli`).
    let authorizer = Authorizer::new(store, Arc::new(Jwks::new()), AuditSink::off());
    let req = Request {
        target,
        token,
        authorization: None,
        origin: None,
        access_control_request_method: None,
        answers_preflight: false,
        domain,
        method_overrides: [None; 3],
        body: None,
        traceparent: None,
        tracestate: None,
    };
    let outcome = authorizer.check(&req, Source::Cli).await;
    println!("{}", outcome.to_json_line());
    Ok(if outcome.decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn store(config: &Path, command: StoreCommand) -> Result<ExitCode> {
    use authzd::policy::source::{StoreKind, postgres::Admin};
    let cfg = authzd::config::Config::load(config)?;
    let Some(url) = &cfg.policy.store else {
        bail!("`{}` sets no `[policy] store`", config.display());
    };
    if StoreKind::of(url) != Some(StoreKind::Postgres) {
        bail!(
            "`authzd store` manages PostgreSQL stores; an HTTP store is written by whatever serves it"
        );
    }
    let mut admin = Admin::connect(&cfg.policy).await?;
    match command {
        StoreCommand::Init => {
            admin.init().await?;
            eprintln!(
                "ok: table `{}` ready, changes notify channel `{}`",
                cfg.policy.table, cfg.policy.channel
            );
        }
        StoreCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            // Refuse what replicas would refuse, before anything is written.
            let model = std::fs::read_to_string(&cfg.policy.model)
                .with_context(|| format!("cannot read `{}`", cfg.policy.model.display()))?;
            authzd::policy::Policy::from_text_for(
                &model,
                &cfg.policy.model.display().to_string(),
                &text,
                &file.display().to_string(),
                authzd::policy::LoadOptions::of(&cfg).map_err(|m| anyhow::anyhow!(m))?,
            )
            .await?;
            let lines = authzd::policy::source::csv_lines(&text)
                .map_err(|(line, m)| anyhow::anyhow!("`{}` line {line}: {m}", file.display()))?;
            let n = admin.import(&lines).await?;
            eprintln!("ok: {n} rows imported into `{}`", cfg.policy.table);
        }
        StoreCommand::Export => print!("{}", admin.export().await?),
    }
    Ok(ExitCode::SUCCESS)
}

async fn validate(config: &Path, online: bool, lambda: bool) -> Result<ExitCode> {
    let snap = Snapshot::load(config).await?;
    println!(
        "ok: `{}` revision {}: {} policy rules, {} grouping rules, {} routes, {} issuers",
        config.display(),
        snap.revision,
        snap.policy.rules,
        snap.policy.groupings,
        snap.routes.len(),
        snap.config.issuers.len()
    );
    println!("evaluator: {}", snap.policy.evaluator);
    for w in snap.warnings() {
        println!("warning: {w}");
    }
    // Lambda advice only for those who run it: asked for, or a `[lambda]` table.
    let has_lambda_table = std::fs::read_to_string(config)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("lambda"));
    if lambda || has_lambda_table {
        for note in authzd::transport::lambda::notes(&snap.config) {
            println!("lambda: {note}");
        }
    }
    if !online {
        return Ok(ExitCode::SUCCESS);
    }
    let http = reqwest::Client::new();
    let mut problems = 0;
    for issuer in &snap.config.issuers {
        for f in authzd::probe::issuer(&http, issuer).await {
            let level = match f.level {
                Level::Ok => "ok",
                Level::Warning => "warning",
                Level::Problem => {
                    problems += 1;
                    "problem"
                }
            };
            println!("{level}: {}: {}", issuer.issuer, f.message);
        }
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn diff(live: &Path, candidate: &Path, format: DiffFormat) -> Result<ExitCode> {
    let load = |path: &Path| {
        let path = path.to_owned();
        async move {
            let snap = Snapshot::load(&path)
                .await
                .with_context(|| format!("loading `{}`", path.display()))?;
            let model = std::fs::read_to_string(&snap.config.policy.model)
                .with_context(|| format!("reading `{}`", snap.config.policy.model.display()))?;
            let policy = authzd::diff::policy_text(&snap)?;
            anyhow::Ok((snap, model, policy))
        }
    };
    let (a, am, ap) = load(live).await?;
    let (b, bm, bp) = load(candidate).await?;
    let report = authzd::diff::diff(&a, &am, &ap, &b, &bm, &bp);
    match format {
        DiffFormat::Markdown => print!("{}", authzd::diff::markdown(&report)),
        DiffFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.flips.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
