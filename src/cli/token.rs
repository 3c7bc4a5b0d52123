//! `authzd token` and `authzd jwks`: development tokens and key sets.

use std::{path::PathBuf, process::ExitCode, time::Duration, time::SystemTime};

use anyhow::{Context, Result};
use authzd::devtoken::{self, SigningKey};

use super::output;

#[derive(clap::Args)]
pub struct TokenArgs {
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
}

pub fn token(a: TokenArgs) -> Result<ExitCode> {
    let key = load_key(&a.key)?;
    let claims = devtoken::Claims {
        iss: a.iss,
        sub: a.sub,
        aud: a.aud,
        groups: a.groups,
        scope: a.scope,
        ttl: a.ttl,
        extra: a.claims,
    };
    output::line(&devtoken::mint(
        &key,
        &claims,
        a.kid.as_deref(),
        SystemTime::now(),
    )?)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct JwksArgs {
    #[arg(long)]
    key: PathBuf,
}

pub fn jwks(a: JwksArgs) -> Result<ExitCode> {
    output::line(&format!("{:#}", load_key(&a.key)?.jwks()))?;
    Ok(ExitCode::SUCCESS)
}

fn load_key(path: &std::path::Path) -> Result<SigningKey> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read key `{}`", path.display()))?;
    Ok(SigningKey::from_pem(&pem, &path.display().to_string())?)
}
