//! The change gate: `authzd test` (policy test cases), `authzd diff` (what
//! a candidate config flips) and `authzd replay` (past decisions under a
//! candidate). Each speaks text for people and JSON (`test`: also JUnit
//! XML) for CI; exit 0 means "nothing to report", 1 "something failed or
//! flipped", 2 "could not run or nothing could be compared".

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use authzd::policy::{
    cases::{self, CaseResult, Expect},
    snapshot::Snapshot,
};
use serde::Serialize;

use super::output;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TestFormat {
    Text,
    Json,
    Junit,
}

#[derive(clap::Args)]
pub struct TestArgs {
    /// The policy test file (`[[case]]` entries).
    file: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    format: TestFormat,
}

/// `authzd test --format json`.
#[derive(Serialize)]
struct TestReport<'a> {
    file: String,
    revision: &'a str,
    passed: usize,
    failed: usize,
    cases: Vec<CaseJson<'a>>,
}

#[derive(Serialize)]
struct CaseJson<'a> {
    name: &'a str,
    passed: bool,
    expect: &'static str,
    expected_reason: Option<&'a str>,
    allowed: bool,
    reason: &'static str,
    matched_policy: &'a [String],
    detail: &'a str,
}

fn expect_str(e: Expect) -> &'static str {
    match e {
        Expect::Allow => "allow",
        Expect::Deny => "deny",
    }
}

pub async fn test(a: TestArgs) -> Result<ExitCode> {
    let (snap, results) = cases::run(&a.file).await?;
    let failed = results.iter().filter(|r| !r.passed).count();
    match a.format {
        TestFormat::Text => output::print(&format!(
            "{} (policy revision {})\n{}",
            a.file.display(),
            snap.revision,
            cases::report(&results)
        ))?,
        TestFormat::Json => output::json(&TestReport {
            file: a.file.display().to_string(),
            revision: &snap.revision,
            passed: results.len() - failed,
            failed,
            cases: results
                .iter()
                .map(|r| CaseJson {
                    name: &r.name,
                    passed: r.passed,
                    expect: expect_str(r.expect),
                    expected_reason: r.expected_reason.as_deref(),
                    allowed: r.decision.allowed,
                    reason: r.decision.reason.as_str(),
                    matched_policy: &r.decision.matched_policy,
                    detail: &r.decision.detail,
                })
                .collect(),
        })?,
        TestFormat::Junit => output::print(&junit(&a.file.display().to_string(), &snap, &results))?,
    }
    Ok(match failed {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// JUnit XML, as CI systems show it: one `testcase` per case, a `failure`
/// for each that fails.
fn junit(file: &str, snap: &Snapshot, results: &[CaseResult]) -> String {
    let failed = results.iter().filter(|r| !r.passed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out += &format!(
        "<testsuites tests=\"{n}\" failures=\"{failed}\">\n  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{failed}\" errors=\"0\">\n    <properties><property name=\"policy_revision\" value=\"{}\"/></properties>\n",
        xml(file),
        xml(&snap.revision),
        n = results.len(),
    );
    for r in results {
        let d = &r.decision;
        out += &format!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml(file),
            xml(&r.name)
        );
        if r.passed {
            out += "/>\n";
            continue;
        }
        let want = match &r.expected_reason {
            Some(reason) => format!("{} ({reason})", expect_str(r.expect)),
            None => expect_str(r.expect).to_string(),
        };
        let got = format!(
            "{} ({})",
            if d.allowed { "allow" } else { "deny" },
            d.reason.as_str()
        );
        let matched = match d.matched_policy.is_empty() {
            true => "no policy line matched".to_string(),
            false => format!("matched `{}`", d.matched_policy.join(", ")),
        };
        out += &format!(
            ">\n      <failure message=\"expected {}, got {}\" type=\"{}\">{}; {}</failure>\n    </testcase>\n",
            xml(&want),
            xml(&got),
            d.reason.as_str(),
            xml(&d.detail),
            xml(&matched)
        );
    }
    out += "  </testsuite>\n</testsuites>\n";
    out
}

/// Text escaped for XML attributes and content.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot hold at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DiffFormat {
    Markdown,
    Json,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The live configuration.
    #[arg(long, default_value = "authzd.toml")]
    config: PathBuf,
    /// The candidate configuration (its model, policy and routes).
    #[arg(long)]
    candidate: PathBuf,
    #[arg(long, value_enum, default_value = "markdown")]
    format: DiffFormat,
}

pub async fn diff(a: DiffArgs) -> Result<ExitCode> {
    let load = |path: PathBuf| async move {
        let snap = Snapshot::load(&path)
            .await
            .with_context(|| format!("loading `{}`", path.display()))?;
        let model = std::fs::read_to_string(&snap.config.policy.model)
            .with_context(|| format!("reading `{}`", snap.config.policy.model.display()))?;
        let policy = authzd::diff::policy_text(&snap)?;
        anyhow::Ok((snap, model, policy))
    };
    let (a_snap, am, ap) = load(a.config).await?;
    let (b_snap, bm, bp) = load(a.candidate).await?;
    let report = authzd::diff::diff(&a_snap, &am, &ap, &b_snap, &bm, &bp);
    match a.format {
        DiffFormat::Markdown => output::print(&authzd::diff::markdown(&report))?,
        DiffFormat::Json => output::json(&report)?,
    }
    Ok(match report.flips.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ReplayFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The candidate configuration.
    #[arg(long, default_value = "authzd.toml")]
    config: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    format: ReplayFormat,
    /// Decision logs: files (`.gz` too), `-` for stdin.
    #[arg(required = true)]
    logs: Vec<String>,
}

pub async fn replay(a: ReplayArgs) -> Result<ExitCode> {
    let snap = Snapshot::load(&a.config)
        .await
        .with_context(|| format!("loading `{}`", a.config.display()))?;
    let mut readers = Vec::new();
    for l in a.logs {
        let r = authzd::replay::open(&l)?;
        readers.push((l, r));
    }
    let report = authzd::replay::replay(&snap, &mut readers)?;
    match a.format {
        ReplayFormat::Text => output::print(&authzd::replay::text(&report))?,
        ReplayFormat::Json => output::json(&report)?,
    }
    // A log of which nothing could be compared must never read as "safe".
    Ok(if report.compared() == 0 {
        ExitCode::from(2)
    } else if report.newly_allowed + report.newly_denied == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
