//! `authzd store init|import|export`: the shared PostgreSQL policy store.

use std::{path::Path, process::ExitCode};

use anyhow::{Context, Result, bail};
use authzd::policy::source::{StoreKind, postgres::Admin};

use super::output;

#[derive(clap::Subcommand)]
pub enum StoreCommand {
    /// Create the table if missing and the trigger that notifies the channel (idempotent).
    Init,
    /// Replace the store's policy with a CSV policy file, in one transaction.
    Import { file: std::path::PathBuf },
    /// Print the store's policy as CSV.
    Export,
}

pub async fn store(config: &Path, command: StoreCommand) -> Result<ExitCode> {
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
            output::note(&format!(
                "ok: table `{}` ready, changes notify channel `{}`",
                cfg.policy.table, cfg.policy.channel
            ));
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
            output::note(&format!(
                "ok: {n} rows imported into `{}`",
                cfg.policy.table
            ));
        }
        StoreCommand::Export => output::print(&admin.export().await?)?,
    }
    Ok(ExitCode::SUCCESS)
}
