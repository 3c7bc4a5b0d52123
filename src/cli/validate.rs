//! `authzd validate`: loads a configuration as `serve` would and says what
//! it found. Exit 0 valid; 1 valid, but `--online` found a problem with an
//! issuer; 2 refused (every problem is listed) or the command could not run.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use authzd::{
    policy::snapshot::{Snapshot, Warning},
    probe::Level,
};
use serde::Serialize;

use super::output;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct ValidateArgs {
    #[arg(long, default_value = "authzd.toml")]
    config: PathBuf,
    /// Also fetch each issuer's discovery document and keys.
    #[arg(long)]
    online: bool,
    /// Also say how `authzd lambda` would answer with this config (the
    /// default when the config has a `[lambda]` table).
    #[arg(long)]
    lambda: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// `--format json`: one object, every key a stable identifier.
#[derive(Serialize)]
struct Report {
    ok: bool,
    config: String,
    revision: Option<String>,
    evaluator: Option<String>,
    rules: Option<usize>,
    groupings: Option<usize>,
    routes: Option<usize>,
    issuers: Option<usize>,
    warnings: Vec<Warning>,
    errors: Vec<Warning>,
    /// `--lambda`: how `authzd lambda` would answer.
    lambda: Vec<String>,
}

pub async fn run(a: ValidateArgs) -> Result<ExitCode> {
    let mut report = Report {
        ok: false,
        config: a.config.display().to_string(),
        revision: None,
        evaluator: None,
        rules: None,
        groupings: None,
        routes: None,
        issuers: None,
        warnings: Vec::new(),
        errors: Vec::new(),
        lambda: Vec::new(),
    };
    let snap = match Snapshot::load(&a.config).await {
        Ok(snap) => snap,
        Err(e) => {
            report.errors = e.problems();
            match a.format {
                Format::Json => output::json(&report)?,
                Format::Text => report
                    .errors
                    .iter()
                    .for_each(|e| output::note(&format!("error: {}", e.message))),
            }
            return Ok(ExitCode::from(2));
        }
    };
    report.revision = Some(snap.revision.to_string());
    report.evaluator = Some(snap.policy.evaluator.clone());
    report.rules = Some(snap.policy.rules);
    report.groupings = Some(snap.policy.groupings);
    report.routes = Some(snap.routes.len());
    report.issuers = Some(snap.config.issuers.len());
    report.warnings = snap.warnings();
    // Lambda advice only for those who run it: asked for, or a `[lambda]` table.
    let has_lambda_table = std::fs::read_to_string(&a.config)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("lambda"));
    if a.lambda || has_lambda_table {
        report.lambda = authzd::transport::lambda::notes(&snap.config);
    }
    let mut online = Vec::new();
    if a.online {
        let http = reqwest::Client::new();
        for issuer in &snap.config.issuers {
            for f in authzd::probe::issuer(&http, issuer).await {
                let (code, level) = match f.level {
                    Level::Ok => ("issuer_ok", "ok"),
                    Level::Warning => ("issuer_warning", "warning"),
                    Level::Problem => ("issuer_problem", "problem"),
                };
                let w = Warning {
                    code,
                    message: format!("{}: {}", issuer.issuer, f.message),
                };
                online.push((level, w.message.clone()));
                match f.level {
                    Level::Ok => {}
                    Level::Warning => report.warnings.push(w),
                    Level::Problem => report.errors.push(w),
                }
            }
        }
    }
    report.ok = report.errors.is_empty();
    match a.format {
        Format::Json => output::json(&report)?,
        Format::Text => {
            let mut text = format!(
                "ok: `{}` revision {}: {} policy rules, {} grouping rules, {} routes, {} issuers\nevaluator: {}\n",
                a.config.display(),
                snap.revision,
                snap.policy.rules,
                snap.policy.groupings,
                snap.routes.len(),
                snap.config.issuers.len(),
                snap.policy.evaluator
            );
            for w in snap.warnings() {
                text += &format!("warning: {w}\n");
            }
            for note in &report.lambda {
                text += &format!("lambda: {note}\n");
            }
            for (level, message) in &online {
                text += &format!("{level}: {message}\n");
            }
            output::print(&text)?;
        }
    }
    Ok(match report.ok {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}
