//! Policy test cases (`docs/interfaces.md`): `authzd test FILE`.
//!
//! Each case names a principal directly (subject, roles and scopes as if they
//! came from a verified token) and a request, and runs through the same
//! decision core as live traffic ([`crate::decision::decide_for`]): routes,
//! public routes, scopes and the Casbin policy.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::snapshot::{Snapshot, SnapshotError};
use crate::decision::{self, Decision, Principal, Request, Target};

#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    #[error("cannot read test file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid test file `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid test file `{path}`: case {index} (`{name}`): {message}")]
    Case {
        path: PathBuf,
        index: usize,
        name: String,
        message: String,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Config whose routes and policy the cases run against.
    config: Option<PathBuf>,
    /// Or a bare model and policy (no routes).
    model: Option<PathBuf>,
    policy: Option<PathBuf>,
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub subject: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub resource: Option<String>,
    pub action: Option<String>,
    pub domain: Option<String>,
    /// Claims of the token the case stands for: what `[policy.attributes]`
    /// read (`claims = { "custom:tenant" = "acme" }`). `sub` is the case's
    /// `subject` unless given here.
    #[serde(default)]
    pub claims: toml::Table,
    pub expect: Expect,
    /// Optional: the reason code the decision must carry.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Allow,
    Deny,
}

/// One case's result.
#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub expect: Expect,
    pub decision: Decision,
    pub expected_reason: Option<String>,
}

/// Loads `path` and runs every case.
pub async fn run(path: &Path) -> Result<(Snapshot, Vec<CaseResult>), CasesError> {
    let text = std::fs::read_to_string(path).map_err(|source| CasesError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: File = toml::from_str(&text).map_err(|e| CasesError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().replace('\n', " "),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let snap = match (&file.config, &file.model, &file.policy) {
        (Some(cfg), None, None) => Snapshot::load(&base.join(cfg)).await?,
        (None, Some(model), Some(policy)) => {
            let toml = format!(
                "[policy]\nmodel = {}\npolicy = {}\n",
                toml_string(&base.join(model)),
                toml_string(&base.join(policy))
            );
            Snapshot::build(&toml, path).await?
        }
        _ => {
            return Err(CasesError::Parse {
                path: path.to_owned(),
                message: "give either `config`, or `model` and `policy`".into(),
            });
        }
    };
    if file.cases.is_empty() {
        return Err(CasesError::Parse {
            path: path.to_owned(),
            message: "no `[[case]]` entries".into(),
        });
    }
    let mut results = Vec::with_capacity(file.cases.len());
    for (index, case) in file.cases.into_iter().enumerate() {
        let case_err = |message: &str| CasesError::Case {
            path: path.to_owned(),
            index,
            name: case.name.clone(),
            message: message.to_string(),
        };
        let target = match (&case.method, &case.path, &case.resource, &case.action) {
            (Some(m), Some(p), None, None) => Target::Http { method: m, path: p },
            (None, None, Some(r), Some(a)) => Target::Resource {
                resource: r,
                action: a,
            },
            _ => {
                return Err(case_err(
                    "give either `method` and `path`, or `resource` and `action`",
                ));
            }
        };
        if let Some(r) = &case.reason
            && !decision::Reason::ALL.iter().any(|x| x.as_str() == r)
        {
            return Err(case_err(&format!("`{r}` is not a reason code")));
        }
        let claims = serde_json::to_value(&case.claims)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let principal = stated(&snap, &case.subject, &case.roles, &case.scopes, claims);
        let req = Request {
            domain: case.domain.as_deref(),
            ..Request::bare(target)
        };
        let decision = decision::decide_for(&snap, &req, &principal);
        let allowed_ok = decision.allowed == (case.expect == Expect::Allow);
        let reason_ok = case
            .reason
            .as_deref()
            .is_none_or(|r| r == decision.reason.as_str());
        results.push(CaseResult {
            name: case.name,
            passed: allowed_ok && reason_ok,
            expect: case.expect,
            decision,
            expected_reason: case.reason,
        });
    }
    Ok((snap, results))
}

/// The principal a test case (or `authzd check --subject`) states, as a
/// verified token would give it: the subject with `subject_prefix`, the
/// roles as claim roles (with `role_prefix`), the scopes, and the
/// attributes `[policy.attributes]` read from `claims` (whose `sub` is the
/// subject unless they say otherwise).
pub fn stated(
    snap: &Snapshot,
    subject: &str,
    roles: &[String],
    scopes: &[String],
    mut claims: serde_json::Map<String, serde_json::Value>,
) -> Principal {
    let pcfg = &snap.config.policy;
    claims
        .entry("sub")
        .or_insert_with(|| subject.to_string().into());
    let (attributes, attribute_missing) =
        crate::roles::attributes_from_claims(&claims, &snap.policy.attributes, &pcfg.attributes);
    Principal {
        subject: format!("{}{subject}", pcfg.subject_prefix),
        claim_subject: subject.to_string(),
        issuer: "(stated)".into(),
        roles: roles
            .iter()
            .map(|r| format!("{}{r}", pcfg.role_prefix))
            .collect(),
        scopes: scopes.to_vec(),
        domain: None,
        attributes,
        attribute_missing,
    }
}

fn toml_string(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

/// A readable table: one line per case, with reason and matched line for failures.
pub fn report(results: &[CaseResult]) -> String {
    let width = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .min(60);
    let mut out = String::new();
    for r in results {
        let d = &r.decision;
        let got = if d.allowed { "allow" } else { "deny" };
        if r.passed {
            out.push_str(&format!(
                "PASS  {:width$}  {got} ({})\n",
                r.name,
                d.reason.as_str()
            ));
        } else {
            let want = match r.expect {
                Expect::Allow => "allow",
                Expect::Deny => "deny",
            };
            let want = match &r.expected_reason {
                Some(reason) => format!("{want} ({reason})"),
                None => want.to_string(),
            };
            let matched = if d.matched_policy.is_empty() {
                "no policy line matched".to_string()
            } else {
                format!("matched `{}`", d.matched_policy.join(", "))
            };
            out.push_str(&format!(
                "FAIL  {:width$}  expected {want}, got {got} ({}): {}; {matched}\n",
                r.name,
                d.reason.as_str(),
                d.detail
            ));
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    out.push_str(&format!(
        "{} passed, {failed} failed\n",
        results.len() - failed
    ));
    out
}
