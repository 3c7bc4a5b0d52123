//! The `authzd` command line: parse arguments, set up logging, hand each
//! command to its file under `src/cli/`.

mod cli;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Result;
use authzd::server::Server;
use clap::{Parser, Subcommand};
use cli::{check, gate, output, store, token, validate};

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

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC and HTTP until SIGTERM or Ctrl-C.
    Serve {
        #[arg(long, default_value = "authzd.toml")]
        config: PathBuf,
    },
    /// One offline decision, printed as JSON; exit 0 allow, 1 deny, 2 error.
    Check(check::CheckArgs),
    /// Parse config, model, policy and routes; `--online` also fetches each
    /// issuer's keys; exit 0 valid, 1 an online problem, 2 refused.
    Validate(validate::ValidateArgs),
    /// Every decision that flips between this config and a candidate
    /// (`docs/policy-changes.md`); exit 0 none, 1 some, 2 error.
    Diff(gate::DiffArgs),
    /// Re-decide decision-log records under a candidate config
    /// (`docs/policy-changes.md`); exit 0 nothing changed, 1 something did,
    /// 2 error or nothing could be compared.
    Replay(gate::ReplayArgs),
    /// Run policy test cases (`docs/interfaces.md`); exit 1 if any fails, 2 if the file is invalid.
    Test(gate::TestArgs),
    /// Mint a signed development JWT and print it.
    Token(token::TokenArgs),
    /// Print the JWKS (public half) of a PEM private key.
    Jwks(token::JwksArgs),
    /// Manage the shared policy store the config's `[policy] store` names.
    Store {
        /// Also accepted after the nested command (`authzd store init --config …`).
        #[arg(long, global = true, default_value = "authzd.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Run as API Gateway's Lambda authorizer (speaks the Lambda Runtime API).
    Lambda {
        /// Default: `$AUTHZD_CONFIG`, else `authzd.toml` in `$LAMBDA_TASK_ROOT`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
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
            output::note(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            output::note(&format!("error: {e:#}"));
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
        Command::Serve { config } => {
            let server = Server::bind(&config).await?;
            server.run(shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lambda { config } => {
            authzd::transport::lambda::run(&lambda_config(config)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(a) => check::run(a).await,
        Command::Validate(a) => validate::run(a).await,
        Command::Store { config, command } => store::store(&config, command).await,
        Command::Diff(a) => gate::diff(a).await,
        Command::Replay(a) => gate::replay(a).await,
        Command::Test(a) => gate::test(a).await,
        Command::Token(a) => token::token(a),
        Command::Jwks(a) => token::jwks(a),
    }
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
