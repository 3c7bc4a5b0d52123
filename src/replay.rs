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
    /// The model's attributes: a value, or `null` where the token had none.
    #[serde(default)]
    attributes: BTreeMap<String, Option<String>>,
    /// Attributes with `log = false`: decided on, not recorded.
    #[serde(default)]
    attributes_withheld: Vec<String>,
    resource: String,
    action: String,
    /// An overridden method that was authorized too (`method_override =
    /// "authorize"`).
    method_override: Option<String>,
    /// Absent in records written before it existed: then `route` says.
    target: Option<String>,
    domain: Option<String>,
    route: Option<String>,
    #[serde(default)]
    matched_policy: Vec<String>,
    /// Whether the request carried a token (its fingerprint).
    token_sha256: Option<String>,
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

/// Why a line was not compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipCode {
    /// The line is not valid UTF-8 (a crash-truncated write, a binary file).
    NotUtf8,
    /// Not a JSON object with a decision record's fields.
    NotARecord,
    /// Refused or answered before the policy ran: a malformed request, a
    /// preflight, an outage.
    DecidedBeforePolicy,
    /// The token failed: no principal was proven.
    TokenFailure,
    /// Proven by an issuer the candidate does not trust.
    IssuerUntrusted,
    /// The candidate needs an attribute the record withholds (`log = false`).
    AttributeNotLogged,
    /// The candidate needs an attribute the writing model did not have.
    AttributeNotRecorded,
    /// A value was clipped in the record (over 1 KiB): not decidable again.
    ValueClipped,
    /// The candidate needs a token for a request the record holds no principal for.
    NeedsToken,
}

impl SkipCode {
    pub fn message(self) -> &'static str {
        match self {
            SkipCode::NotUtf8 => "not valid UTF-8",
            SkipCode::NotARecord => "not a decision record",
            SkipCode::DecidedBeforePolicy => {
                "decided before the policy (a refused request, a preflight, an outage)"
            }
            SkipCode::TokenFailure => "no verified principal (a token failure)",
            SkipCode::IssuerUntrusted => "issuer not trusted by the candidate",
            SkipCode::AttributeNotLogged => {
                "an attribute the candidate needs is withheld from the log (`log = false`)"
            }
            SkipCode::AttributeNotRecorded => {
                "an attribute the candidate needs is not in the record"
            }
            SkipCode::ValueClipped => "a value over 1 KiB was clipped in the record",
            SkipCode::NeedsToken => "the candidate needs a token the record does not hold",
        }
    }
}

/// One skipped line: where, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    pub file: String,
    /// 1-based.
    pub line: u64,
    pub code: SkipCode,
    pub message: &'static str,
}

/// Skipped lines listed one by one, at most (all are counted).
const MAX_SKIPS: usize = 100;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub read: u64,
    pub unchanged: u64,
    pub newly_allowed: u64,
    pub newly_denied: u64,
    pub skipped: u64,
    /// Skipped lines by code.
    pub skipped_by_code: BTreeMap<SkipCode, u64>,
    /// The first skipped lines, each with its file and line number.
    pub skips: Vec<Skip>,
    /// The first and last record time seen.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Flips grouped by route and subject, newly allowed first.
    pub flips: Vec<Group>,
}

impl Report {
    /// Records decided again (unchanged or flipped): zero means nothing
    /// was compared, which a gate must not read as "no change".
    pub fn compared(&self) -> u64 {
        self.unchanged + self.newly_allowed + self.newly_denied
    }
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
    let mut bytes = Vec::new();
    for (name, reader) in logs.iter_mut() {
        let mut at = 0u64;
        loop {
            bytes.clear();
            let n = reader
                .read_until(b'\n', &mut bytes)
                .map_err(|source| ReplayError::Read {
                    path: name.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            at += 1;
            let decided = match std::str::from_utf8(&bytes) {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => one(snap, line),
                Err(_) => Err(SkipCode::NotUtf8),
            };
            report.read += 1;
            if progress && report.read.is_multiple_of(100_000) {
                eprint!("\r{} records", report.read);
            }
            match decided {
                Err(code) => {
                    report.skipped += 1;
                    *report.skipped_by_code.entry(code).or_default() += 1;
                    if report.skips.len() < MAX_SKIPS {
                        report.skips.push(Skip {
                            file: name.clone(),
                            line: at,
                            code,
                            message: code.message(),
                        });
                    }
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
fn one(snap: &Snapshot, line: &str) -> Result<(String, Option<Flip>), SkipCode> {
    let r: Record = serde_json::from_str(line).map_err(|_| SkipCode::NotARecord)?;
    let http = match r.target.as_deref() {
        Some("http") => true,
        Some(_) => false,
        None => r.route.is_some(),
    };
    if matches!(
        r.reason.as_str(),
        "request_rejected"
            | "cors_preflight"
            | "policy_unavailable"
            | "role_lookup_failed"
            | "issuer_unavailable"
    ) {
        // Step 0, preflights and outages say nothing about the policy.
        return Err(SkipCode::DecidedBeforePolicy);
    }
    let clipped = [Some(&r.resource), Some(&r.action), r.subject.as_ref()]
        .into_iter()
        .flatten()
        .chain(r.domain.as_ref())
        .any(|v| crate::bounded::was_clipped(v));
    if clipped {
        return Err(SkipCode::ValueClipped);
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
    // The override the writer authorized too, as the header that asked for it.
    let req = Request {
        domain: r.domain.as_deref(),
        method_overrides: [r.method_override.as_deref(), None, None],
        ..Request::bare(target)
    };
    let after = match (&r.subject, &r.issuer) {
        (Some(subject), Some(issuer)) => {
            if !snap.config.issuers.iter().any(|i| &i.issuer == issuer) {
                return Err(SkipCode::IssuerUntrusted);
            }
            let mut attributes = Vec::with_capacity(snap.policy.attributes.len());
            let mut missing = None;
            for name in &snap.policy.attributes {
                match r.attributes.get(name) {
                    Some(Some(v)) => attributes.push(v.clone()),
                    // The token had no value (and no default stood in).
                    Some(None) => {
                        missing.get_or_insert_with(|| {
                            format!("attribute `{name}`: the token had no value for it")
                        });
                        attributes.push(String::new());
                    }
                    None if r.attributes_withheld.contains(name) => {
                        return Err(SkipCode::AttributeNotLogged);
                    }
                    None => return Err(SkipCode::AttributeNotRecorded),
                }
            }
            let p = Principal {
                roles: r.roles.clone(),
                scopes: r.scopes.clone(),
                domain: r.domain.clone(),
                attributes,
                attribute_missing: missing,
                ..Principal::recorded(subject, issuer, &snap.config.policy.subject_prefix)
            };
            decision::decide_for(snap, &req, &p)
        }
        // No verified principal: only a decision that needed none can be
        // replayed (a public route, or no token at all).
        _ if matches!(r.reason.as_str(), "public_route" | "token_missing") => {
            let no_keys = crate::token::jwks::Jwks::new();
            let d = match decision::decide(
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
                _ => return Err(SkipCode::NeedsToken),
            };
            // A public route's caller who sent a token (the record has its
            // fingerprint, not the token): a candidate that wants one cannot
            // be answered. Without one, `token_missing` is the answer.
            if r.token_sha256.is_some() && d.reason == decision::Reason::TokenMissing {
                return Err(SkipCode::NeedsToken);
            }
            d
        }
        _ => return Err(SkipCode::TokenFailure),
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
    for (code, n) in &r.skipped_by_code {
        out.push_str(&format!("  skipped {n}: {}\n", code.message()));
    }
    for s in r.skips.iter().take(10) {
        out.push_str(&format!("    {}:{}: {}\n", s.file, s.line, s.message));
    }
    if r.compared() == 0 {
        out.push_str("nothing was compared: no record could be decided again\n");
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
