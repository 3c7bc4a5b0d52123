//! `authzd replay`: past decisions re-decided under a candidate
//! configuration (`docs/policy-changes.md`). Used only by the CLI.
//!
//! A decision record holds what the token proved (subject, issuer, roles,
//! scopes, domain, logged attributes) and the request in canonical form, so
//! each record is decided again by the whole pipeline with that principal
//! and no token. Records stream: one line in memory at a time.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, IsTerminal as _, Read},
    path::Path,
};

use serde::{Deserialize, Serialize};

use crate::{
    decision::{self, Principal, Request, Target},
    policy::snapshot::Snapshot,
};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// The record fields replay reads (`docs/decision-log.md`).
#[derive(Deserialize)]
struct Record {
    time: String,
    allowed: bool,
    reason: String,
    subject: Option<String>,
    issuer: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    resource: String,
    action: String,
    /// Absent in records written before it existed: then `route` says.
    target: Option<String>,
    domain: Option<String>,
    route: Option<String>,
    #[serde(default)]
    matched_policy: Vec<String>,
}

/// One changed decision.
#[derive(Debug, Clone, Serialize)]
pub struct Flip {
    pub time: String,
    pub subject: Option<String>,
    pub roles: Vec<String>,
    pub method_or_action: String,
    pub path_or_resource: String,
    pub route: Option<String>,
    pub before: Side,
    pub after: Side,
}

#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub allowed: bool,
    pub reason: String,
    pub matched_policy: Vec<String>,
}

/// Flips of one route (or resource) and subject: how many, and one example.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub route: String,
    pub subject: String,
    pub newly_allowed: usize,
    pub newly_denied: usize,
    pub example: Flip,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub read: u64,
    pub unchanged: u64,
    pub newly_allowed: u64,
    pub newly_denied: u64,
    pub skipped: u64,
    /// Why records were skipped, with counts.
    pub skipped_because: BTreeMap<String, u64>,
    /// The first and last record time seen.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Flips grouped by route and subject, newly allowed first.
    pub flips: Vec<Group>,
}

/// Opens a log: `-` is stdin, a `.gz` file is decompressed.
pub fn open(path: &str) -> Result<Box<dyn BufRead>, ReplayError> {
    if path == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file = std::fs::File::open(Path::new(path)).map_err(|source| ReplayError::Read {
        path: path.to_string(),
        source,
    })?;
    let reader: Box<dyn Read> = if path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

/// Replays every record of `logs` against `snap`.
pub fn replay(
    snap: &Snapshot,
    logs: &mut [(String, Box<dyn BufRead>)],
) -> Result<Report, ReplayError> {
    let mut report = Report::default();
    let mut groups: BTreeMap<(bool, String, String), Group> = BTreeMap::new();
    let progress = std::io::stderr().is_terminal();
    let mut line = String::new();
    for (name, reader) in logs.iter_mut() {
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|source| ReplayError::Read {
                    path: name.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            report.read += 1;
            if progress && report.read.is_multiple_of(100_000) {
                eprint!("\r{} records", report.read);
            }
            match one(snap, &line) {
                Err(why) => {
                    report.skipped += 1;
                    *report.skipped_because.entry(why.to_string()).or_default() += 1;
                }
                Ok((time, None)) => {
                    report.unchanged += 1;
                    note_time(&mut report, time);
                }
                Ok((time, Some(flip))) => {
                    note_time(&mut report, time);
                    let allowed = flip.after.allowed;
                    if allowed {
                        report.newly_allowed += 1;
                    } else {
                        report.newly_denied += 1;
                    }
                    let route = flip.route.clone().unwrap_or_else(|| {
                        format!("{} {}", flip.method_or_action, flip.path_or_resource)
                    });
                    let subject = flip.subject.clone().unwrap_or_else(|| "(no token)".into());
                    let g = groups
                        .entry((!allowed, route.clone(), subject.clone()))
                        .or_insert_with(|| Group {
                            route,
                            subject,
                            newly_allowed: 0,
                            newly_denied: 0,
                            example: flip,
                        });
                    if allowed {
                        g.newly_allowed += 1;
                    } else {
                        g.newly_denied += 1;
                    }
                }
            }
        }
    }
    if progress && report.read >= 100_000 {
        eprintln!();
    }
    report.flips = groups.into_values().collect();
    Ok(report)
}

fn note_time(r: &mut Report, time: String) {
    if r.from.as_ref().is_none_or(|f| time < *f) {
        r.from = Some(time.clone());
    }
    if r.to.as_ref().is_none_or(|t| time > *t) {
        r.to = Some(time);
    }
}

/// One record re-decided: its time and, if the decision changed, the flip;
/// `Err` says why it was skipped.
fn one(snap: &Snapshot, line: &str) -> Result<(String, Option<Flip>), &'static str> {
    let r: Record = serde_json::from_str(line).map_err(|_| "not a decision record")?;
    let http = match r.target.as_deref() {
        Some("http") => true,
        Some(_) => false,
        None => r.route.is_some(),
    };
    if matches!(
        r.reason.as_str(),
        "request_rejected" | "cors_preflight" | "policy_unavailable" | "role_lookup_failed"
    ) {
        // Step 0, preflights and outages say nothing about the policy.
        return Err("decided before the policy (rejected request, preflight, outage)");
    }
    let target = if http {
        Target::Http {
            method: &r.action,
            path: &r.resource,
        }
    } else {
        Target::Resource {
            resource: &r.resource,
            action: &r.action,
        }
    };
    let req = Request {
        domain: r.domain.as_deref(),
        ..Request::bare(target)
    };
    let after = match (&r.subject, &r.issuer) {
        (Some(subject), Some(issuer)) => {
            if !snap.config.issuers.iter().any(|i| &i.issuer == issuer) {
                return Err("issuer not trusted by the candidate");
            }
            let mut attributes = Vec::with_capacity(snap.policy.attributes.len());
            for name in &snap.policy.attributes {
                match r.attributes.get(name) {
                    Some(v) => attributes.push(v.clone()),
                    None => return Err("an attribute the candidate needs is not in the record"),
                }
            }
            let p = Principal {
                roles: r.roles.clone(),
                scopes: r.scopes.clone(),
                domain: r.domain.clone(),
                attributes,
                ..Principal::recorded(subject, issuer, &snap.config.policy.subject_prefix)
            };
            decision::decide_for(snap, &req, &p)
        }
        // No verified principal: only a decision that needed none can be
        // replayed (a public route, or no token at all).
        _ if matches!(r.reason.as_str(), "public_route" | "token_missing") => {
            let no_keys = crate::token::jwks::Jwks::new();
            match decision::decide(
                snap,
                &req,
                decision::Sources {
                    keys: &no_keys,
                    roles: &crate::roles::NoLookup,
                    fetch_keys: false,
                    fetch_roles: false,
                    tokens: None,
                    store_failing_for: None,
                },
                std::time::SystemTime::now(),
            ) {
                decision::Step::Done(d) => d,
                _ => return Err("the candidate needs a token the record does not hold"),
            }
        }
        _ => return Err("no verified principal (a token failure)"),
    };
    if after.allowed == r.allowed {
        return Ok((r.time, None));
    }
    let route = after.route.clone().or(r.route.clone());
    Ok((
        r.time.clone(),
        Some(Flip {
            time: r.time,
            subject: r.subject,
            roles: r.roles,
            method_or_action: r.action,
            path_or_resource: r.resource,
            route,
            before: Side {
                allowed: r.allowed,
                reason: r.reason,
                matched_policy: r.matched_policy,
            },
            after: Side {
                allowed: after.allowed,
                reason: after.reason.as_str().to_string(),
                matched_policy: after.matched_policy,
            },
        }),
    ))
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "{} records read ({} to {}): {} unchanged, {} newly allowed, {} newly denied, {} skipped\n",
        r.read,
        r.from.as_deref().unwrap_or("-"),
        r.to.as_deref().unwrap_or("-"),
        r.unchanged,
        r.newly_allowed,
        r.newly_denied,
        r.skipped
    );
    for (why, n) in &r.skipped_because {
        out.push_str(&format!("  skipped {n}: {why}\n"));
    }
    for g in &r.flips {
        let (what, n) = if g.newly_allowed > 0 {
            ("NEWLY ALLOWED", g.newly_allowed)
        } else {
            ("newly denied", g.newly_denied)
        };
        let e = &g.example;
        out.push_str(&format!(
            "{what} ×{n}: {} for {} — e.g. {} {} at {}: {} → {} ({})\n",
            g.route,
            g.subject,
            e.method_or_action,
            e.path_or_resource,
            e.time,
            if e.before.allowed { "allow" } else { "deny" },
            if e.after.allowed { "allow" } else { "deny" },
            if e.after.matched_policy.is_empty() {
                e.after.reason.clone()
            } else {
                e.after.matched_policy.join(", ")
            }
        ));
    }
    out
}
