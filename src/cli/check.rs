//! `authzd check`: one offline decision, printed as its decision record.
//! With `--token` the whole pipeline runs; with `--subject` a principal is
//! stated instead, exactly as a policy test case states one.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::SystemTime};

use anyhow::{Result, bail};
use authzd::{
    audit::{AuditSink, Outcome, Source},
    authorizer::Authorizer,
    decision::{self, Request, Target},
    policy::{cases, reload::PolicyStore, snapshot::Snapshot},
    token::jwks::Jwks,
};

use super::output;

#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = "authzd.toml")]
    config: PathBuf,
    /// The caller's JWT: the whole pipeline runs on it (without one, a
    /// check is `token_missing` unless its route is public).
    #[arg(long, conflicts_with = "subject")]
    token: Option<String>,
    /// Or a principal stated without a token (as a policy test case states
    /// one): its subject claim…
    #[arg(long)]
    subject: Option<String>,
    /// …its roles, as claim roles (comma-separated)…
    #[arg(long, value_delimiter = ',', requires = "subject")]
    roles: Vec<String>,
    /// …its scopes (space-separated)…
    #[arg(long, requires = "subject")]
    scopes: Option<String>,
    /// …and claims `key=value` for `[policy.attributes]` (JSON when the value is JSON); repeatable.
    #[arg(long = "claim", requires = "subject")]
    claims: Vec<String>,
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
}

/// `key=value` arguments as claims (the value as JSON when it parses).
pub fn claims(args: &[String]) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    for kv in args {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("`--claim {kv}` is not `key=value`");
        };
        let v = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()));
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// Exit 0 allow, 1 deny; errors are 2 (`main`).
pub async fn run(a: CheckArgs) -> Result<ExitCode> {
    let target = match (&a.method, &a.path, &a.resource, &a.action) {
        (Some(m), Some(p), _, _) => Target::Http { method: m, path: p },
        (_, _, Some(r), Some(a)) => Target::Resource {
            resource: r,
            action: a,
        },
        _ => bail!("give either --method and --path, or --resource and --action"),
    };
    let snapshot = Snapshot::load(&a.config).await?;
    let req = Request {
        domain: a.domain.as_deref(),
        token: a.token.as_deref(),
        ..Request::bare(target)
    };
    let outcome = match &a.subject {
        Some(subject) => {
            let scopes: Vec<String> = a
                .scopes
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect();
            let p = cases::stated(&snapshot, subject, &a.roles, &scopes, claims(&a.claims)?);
            let started = std::time::Instant::now();
            let decision = decision::decide_for(&snapshot, &req, &p);
            Arc::new(Outcome {
                decision,
                decision_id: uuid::Uuid::now_v7().to_string(),
                source: Source::Cli,
                time: SystemTime::now(),
                latency: started.elapsed(),
                trace: None,
                shadow: None,
            })
        }
        None => {
            let store = Arc::new(PolicyStore::new(snapshot, &a.config));
            // The printed line is this check's decision record (source `cli`).
            let authorizer = Authorizer::new(store, Arc::new(Jwks::new()), AuditSink::off());
            authorizer.check(&req, Source::Cli).await
        }
    };
    output::line(&outcome.to_json_line())?;
    Ok(match outcome.decision.allowed {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}
