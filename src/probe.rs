//! `authzd validate --online`: how each issuer's discovery document and keys
//! look from here, in findings an operator can act on.

use std::time::Duration;

use crate::{
    config::IssuerConfig,
    token::jwks::{self, KeySet},
};

/// How serious a finding is. Any `Problem` makes `validate --online` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warning,
    Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub message: String,
}

fn finding(level: Level, message: impl Into<String>) -> Finding {
    Finding {
        level,
        message: message.into(),
    }
}

/// Fetches discovery (when used) and the key set of `cfg` and describes them.
pub async fn issuer(http: &reqwest::Client, cfg: &IssuerConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let timeout = Duration::from_millis(cfg.jwks_timeout_ms);
    let max_stale = Duration::from_secs(cfg.jwks_max_stale_secs);
    let keys = if let Some(file) = &cfg.jwks_file {
        match std::fs::read(file) {
            Ok(bytes) => KeySet::from_json(&bytes, &file.display().to_string(), max_stale),
            Err(e) => {
                out.push(finding(
                    Level::Problem,
                    format!("cannot read `{}`: {e}", file.display()),
                ));
                return out;
            }
        }
    } else {
        let uri = match &cfg.jwks_uri {
            Some(u) => u.clone(),
            None => match jwks::discover(http, &cfg.issuer, timeout).await {
                Err(e) => {
                    out.push(finding(Level::Problem, e.to_string()));
                    return out;
                }
                Ok(doc) => {
                    if doc.issuer != cfg.issuer {
                        let msg = if doc.issuer.trim_end_matches('/')
                            == cfg.issuer.trim_end_matches('/')
                        {
                            format!(
                                "the discovery document says issuer `{}` but the config says `{}`: they differ only by a trailing slash, and tokens' `iss` must match the config exactly",
                                doc.issuer, cfg.issuer
                            )
                        } else {
                            format!(
                                "the discovery document says issuer `{}` but the config says `{}`",
                                doc.issuer, cfg.issuer
                            )
                        };
                        out.push(finding(Level::Problem, msg));
                    } else {
                        out.push(finding(
                            Level::Ok,
                            format!("discovery ok, jwks_uri `{}`", doc.jwks_uri),
                        ));
                    }
                    doc.jwks_uri
                }
            },
        };
        match jwks::get_document(http, &uri, timeout).await {
            Ok(doc) => KeySet::from_json(&doc.bytes, &uri, max_stale),
            Err(e) => Err(e),
        }
    };
    let keys = match keys {
        Ok(k) => k,
        Err(e) => {
            out.push(finding(Level::Problem, e.to_string()));
            return out;
        }
    };
    for s in &keys.skipped {
        out.push(finding(Level::Warning, format!("skipped key {s}")));
    }
    let mut usable = 0;
    for k in &keys.keys {
        let kid = k.kid.as_deref().unwrap_or("(no kid)");
        if k.kid.is_none() {
            out.push(finding(Level::Warning, "a key has no `kid`: tokens must then omit `kid`, and only one key may fit their `alg`"));
        }
        if cfg.algs.iter().any(|a| k.fits(*a)) {
            usable += 1;
            out.push(finding(
                Level::Ok,
                format!("key `{kid}` ({:?}) usable", k.kind),
            ));
        } else {
            let alg = k.alg.map(|a| a.name()).unwrap_or("none given");
            out.push(finding(
                Level::Warning,
                format!(
                    "key `{kid}` ({:?}, alg {alg}) fits none of the allowed algorithms {:?}",
                    k.kind, cfg.algorithms
                ),
            ));
        }
    }
    if usable == 0 {
        out.push(finding(
            Level::Problem,
            format!(
                "no key can verify any of the allowed algorithms {:?}",
                cfg.algorithms
            ),
        ));
    }
    out
}
