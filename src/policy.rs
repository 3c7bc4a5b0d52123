//! Casbin behind our own type (`docs/pipeline.md`). casbin-rs's quirks stay in this file.
//!
//! [`Policy`] is immutable once built and shared by every request thread
//! without a lock of ours: casbin-rs's `enforce` takes `&self`.
//!
//! Per-request roles (from token claims) must behave exactly as if the policy
//! held `g, <sub>, <role>` for this one request. Mutating the shared role
//! graph would leak roles between concurrent requests, so instead the
//! enforcer's role manager is an `OverlayRoleManager`: it answers from the
//! policy's own graph plus a thread-local overlay that [`Policy::enforce`]
//! installs for the duration of one synchronous `enforce` call.
//!
//! [`snapshot`] bundles a policy with its config and routes; [`reload`]
//! publishes new snapshots atomically. Private pieces, one idea each:
//! `model` reads a model's request fields, effect and policy types;
//! `direct` builds the indexed evaluator straight from the parsed lines;
//! `overlay` is the casbin-rs role manager with per-request roles.

pub mod cases;
pub mod change;
mod check;
pub mod delta;
mod direct;
pub mod follow;
pub mod indexed;
pub mod lines;
mod model;
mod overlay;
pub mod query;
pub mod reload;
pub mod snapshot;
pub mod source;

pub use query::{Enforced, EvalError, Query};

use std::{path::Path, sync::Arc};

use casbin::{CoreApi, DefaultModel, Enforcer, Model, RoleManager, StringAdapter};
use direct::{Incremental, direct, fold_value};
use model::{arities, request_fields};
use overlay::{Overlay, OverlayRoleManager};
use parking_lot::RwLock;

/// Everything that can stop a model or policy from loading, naming file and line.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid model `{path}`: {message}")]
    Model { path: String, message: String },
    #[error("invalid policy `{path}` line {line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("invalid policy `{path}`: {message}")]
    Policy { path: String, message: String },
    /// Every problem found, when there is more than one.
    #[error("{}", several(.0))]
    Several(Vec<PolicyLoadError>),
}

fn several(problems: &[PolicyLoadError]) -> String {
    let mut out = format!("{} problems:", problems.len());
    for p in problems {
        out.push_str("\n  - ");
        out.push_str(&p.to_string());
    }
    out
}

impl PolicyLoadError {
    /// Each problem on its own (one for every variant but `Several`).
    pub fn problems(&self) -> Vec<String> {
        match self {
            PolicyLoadError::Several(all) => all.iter().map(ToString::to_string).collect(),
            one => vec![one.to_string()],
        }
    }
}

/// Which request field goes where in the model's `r = …` definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Sub,
    Dom,
    Obj,
    Act,
    /// The n-th attribute (a field beyond the four above).
    Attr(usize),
}

/// A compiled Casbin model + policy.
pub struct Policy {
    /// casbin-rs, kept only when it is the evaluator (it holds its own copy
    /// of every rule: about 2 KiB each at 100k rules).
    enforcer: Option<Enforcer>,
    /// The indexed evaluator, when the model is in its subset (else casbin-rs evaluates).
    fast: Option<indexed::FastPolicy>,
    /// Which evaluator runs, and why, for the load log and `authzd validate`.
    pub evaluator: String,
    fields: Vec<Field>,
    /// The model's attribute fields (`r = sub, obj, act, tenant`: `tenant`),
    /// in order; their values come from `[policy.attributes]` claims.
    pub attributes: Vec<String>,
    /// The matcher reads values out of paths (`keyGet`, `keyGet2`,
    /// `keyGet3`): a decision for a route template may not hold for every
    /// path of the route (the Lambda authorizer's cached answers).
    pub reads_path_values: bool,
    /// `g = _, _, _`: role links (claim roles included) live in a domain.
    g_domain: bool,
    /// Policy (`p`) rules and grouping (`g`) rules loaded.
    pub rules: usize,
    pub groupings: usize,
    /// Policy subjects that are also role names (warned about when no prefixes are set).
    pub shared_names: Vec<String>,
    /// A subject and up to three role names from the lines, for [`Self::probe_cost`].
    probe: (String, Vec<String>),
    /// With casbin-rs as the evaluator: what one check cost at load.
    pub casbin_check: Option<std::time::Duration>,
    /// What incremental updates need ([`Policy::apply`]); `Err` says why
    /// this policy is always built whole.
    incremental: Result<Incremental, String>,
}

/// How a config asks a policy to be built.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `[request] path_case = "insensitive"`: object patterns are lower-cased.
    pub fold_case: bool,
    /// `[policy] fallback = "refuse"`: a model outside the indexed subset is an error.
    pub refuse_fallback: bool,
    /// `[policy] role_matching` / `domain_matching`.
    pub matching: indexed::Matching,
    /// The rules' order keys, one per line of the text (a store's row ids);
    /// `None`: from the line numbers.
    pub orders: Option<Arc<[u64]>>,
    /// Skips the checks of what the text means (`check.rs`). Only for tests
    /// that compare evaluators on generated text no one would write;
    /// nothing a configuration says sets it.
    pub unchecked: bool,
}

impl LoadOptions {
    /// What `config` asks for; `Err` names a bad `role_matching` entry.
    pub fn of(config: &crate::config::Config) -> Result<LoadOptions, String> {
        Ok(LoadOptions {
            fold_case: config.request.path_case == crate::config::PathCase::Insensitive,
            refuse_fallback: config.policy.fallback == crate::config::Fallback::Refuse,
            matching: indexed::Matching::new(
                &config.policy.role_matching,
                &config.policy.domain_matching,
            )?
            .folding_case(config.request.path_case == crate::config::PathCase::Insensitive),
            orders: None,
            unchecked: false,
        })
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("fields", &self.fields)
            .field("rules", &self.rules)
            .field("groupings", &self.groupings)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Reads and builds from files.
    pub async fn load(model_path: &Path, policy_path: &Path) -> Result<Policy, PolicyLoadError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| PolicyLoadError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let (model, policy) = (read(model_path)?, read(policy_path)?);
        Self::from_text(
            &model,
            &model_path.display().to_string(),
            &policy,
            &policy_path.display().to_string(),
        )
        .await
    }

    /// Builds from text; names are used in errors.
    pub async fn from_text(
        model_text: &str,
        model_name: &str,
        policy_text: &str,
        policy_name: &str,
    ) -> Result<Policy, PolicyLoadError> {
        let opts = LoadOptions::default();
        Self::from_text_for(model_text, model_name, policy_text, policy_name, opts).await
    }

    /// Builds from text as a config asks (`[request] path_case`, `[policy] fallback`).
    pub async fn from_text_for(
        model_text: &str,
        model_name: &str,
        policy_text: &str,
        policy_name: &str,
        opts: LoadOptions,
    ) -> Result<Policy, PolicyLoadError> {
        Self::build(model_text, model_name, policy_text, policy_name, true, opts).await
    }

    /// Builds with casbin-rs as the evaluator whatever the model: the
    /// reference that benchmarks and tests compare the indexed evaluator with.
    pub async fn casbin_only(
        model_text: &str,
        policy_text: &str,
    ) -> Result<Policy, PolicyLoadError> {
        let opts = LoadOptions::default();
        Self::build(model_text, "model", policy_text, "policy", false, opts).await
    }

    async fn build(
        model_text: &str,
        model_name: &str,
        policy_text: &str,
        policy_name: &str,
        indexed: bool,
        opts: LoadOptions,
    ) -> Result<Policy, PolicyLoadError> {
        let model_err = |message: String| PolicyLoadError::Model {
            path: model_name.to_string(),
            message,
        };
        let model = DefaultModel::from_str(model_text)
            .await
            .map_err(|e| model_err(e.to_string()))?;
        let (fields, attributes) = request_fields(&model).map_err(model_err)?;
        let reads_path_values = model
            .get_model()
            .get("m")
            .and_then(|m| m.get("m"))
            .is_some_and(|m| m.value.contains("keyGet"));
        let arity = arities(&model);
        let parsed = lines::parse(policy_text, policy_name, &arity)?;
        // The reference build (`casbin_only`) takes the text as it is.
        let (mut problems, line_rules) = match indexed && !opts.unchecked {
            true => check::check(&model, model_name, &parsed, policy_name),
            false => (Vec::new(), None),
        };
        if !problems.is_empty() {
            return Err(match problems.len() {
                1 => problems.remove(0),
                _ => PolicyLoadError::Several(problems),
            });
        }
        let (rules, groupings) =
            parsed
                .iter()
                .fold((0, 0), |(r, g), p| match p.fields[0].starts_with('g') {
                    true => (r, g + 1),
                    false => (r + 1, g),
                });
        let (shared_names, probe) = lines::names_of(&parsed);
        let deduplicated = lines::without_repeats(policy_text, &parsed);
        let g_domain = model
            .get_model()
            .get("g")
            .and_then(|g| g.get("g"))
            .is_some_and(|g| g.value.matches('_').count() == 3);
        // The indexed evaluator is built from the lines directly; casbin-rs
        // reads them only when it evaluates.
        let direct = match indexed {
            true => {
                let n = policy_text.lines().count();
                direct(&model, parsed, policy_name, &opts, arity, n)?
            }
            false => Err(indexed::CompileError::Unsupported(
                "casbin-rs was asked for".into(),
            )),
        };
        let (fast, enforcer, evaluator, incremental) = match direct {
            Ok((fast, incremental)) => {
                let incremental = incremental.map(|inc| Incremental {
                    line_rules: line_rules.map(Arc::new),
                    ..inc
                });
                (Some(fast), None, "indexed".to_string(), incremental)
            }
            Err(indexed::CompileError::Matching(message)) => return Err(model_err(message)),
            // casbin-rs 2.20 has one role manager for every role type and
            // matches names differently from Casbin's documented (Go) one.
            Err(indexed::CompileError::Unsupported(why)) if !opts.matching.is_empty() => {
                return Err(model_err(format!(
                    "`[policy] role_matching`/`domain_matching` need the indexed evaluator, and {why} is outside its subset"
                )));
            }
            // casbin-rs cannot read a path value in the handler's case out of
            // a folded path: an identity would match every case variant.
            Err(indexed::CompileError::Unsupported(why)) if opts.fold_case && reads_path_values => {
                return Err(model_err(format!(
                    "`keyGet*` with `[request] path_case = \"insensitive\"` needs the indexed evaluator, and {why} is outside its subset"
                )));
            }
            Err(indexed::CompileError::Unsupported(why)) if indexed && opts.refuse_fallback => {
                return Err(model_err(format!(
                    "{why} is outside the indexed evaluator's subset, and `[policy] fallback = \"refuse\"` refuses a model that casbin-rs would have to evaluate"
                )));
            }
            Err(indexed::CompileError::InvalidRule {
                ptype,
                values,
                message,
            }) => {
                let line = lines::find_line(policy_text, &ptype, &values);
                return Err(PolicyLoadError::Line {
                    path: policy_name.to_string(),
                    line,
                    message: format!("{message} (casbin-rs would panic on it)"),
                });
            }
            Err(indexed::CompileError::Unsupported(why)) => {
                let text = deduplicated.as_deref().unwrap_or(policy_text);
                let enforcer =
                    casbin_enforcer(model, text, policy_text, policy_name, &opts).await?;
                (
                    None,
                    Some(enforcer),
                    format!("casbin-rs ({why} is outside the indexed subset)"),
                    Err("casbin-rs evaluates this model".to_string()),
                )
            }
        };
        let mut policy = Policy {
            enforcer,
            g_domain,
            fast,
            evaluator,
            fields,
            attributes,
            reads_path_values,
            rules,
            groupings,
            shared_names,
            probe,
            casbin_check: None,
            incremental,
        };
        if indexed && policy.fast.is_none() {
            let cost = policy.probe_cost();
            policy.evaluator = format!(
                "{}; about {} µs per check at this policy's size, measured at load",
                policy.evaluator,
                cost.as_micros()
            );
            policy.casbin_check = Some(cost);
        }
        Ok(policy)
    }

    /// What one casbin-rs check costs at this policy's size: the fastest of a
    /// few probe checks (a subject and roles from the policy, a path no rule
    /// names), so an operator sees the cost before traffic does.
    fn probe_cost(&self) -> std::time::Duration {
        let subject = self.probe.0.as_str();
        let roles = &self.probe.1;
        let probe_attributes = vec!["authzd-probe".to_string(); self.attributes.len()];
        let q = Query {
            subject,
            roles,
            domain: "",
            resource: "/authzd-probe/x",
            action: "GET",
            attributes: &probe_attributes,
            unfolded: None,
        };
        (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                let _ = self.enforce_casbin(&q);
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    }

    /// The warning to log when casbin-rs evaluates (decisions will be slow).
    pub fn slow_warning(&self) -> Option<String> {
        self.casbin_check.map(|cost| {
            format!(
                "decisions will be slow: the policy runs on casbin-rs ({}), about {} µs per check, more as the policy grows; `[policy] fallback = \"refuse\"` refuses such a model instead",
                self.evaluator,
                cost.as_micros()
            )
        })
    }

    /// Whether the model's request has a domain field (`r = sub, dom, obj, act`).
    pub fn has_domain(&self) -> bool {
        self.fields.contains(&Field::Dom)
    }

    /// Enforces `q`. Synchronous; safe to call from any number of threads at once.
    pub fn enforce(&self, q: &Query<'_>) -> Result<Enforced, EvalError> {
        match &self.fast {
            Some(f) => f.enforce(q),
            None => self.enforce_casbin(q),
        }
    }

    /// This policy with `change` applied, sharing everything unchanged with
    /// it; `line_orders` are the order keys of the new text's lines. `Err`
    /// says why it cannot be applied incrementally: then build the new text
    /// whole (which also names any invalid line).
    pub fn apply(
        &self,
        change: &change::Change,
        line_orders: Arc<[u64]>,
    ) -> Result<Policy, String> {
        let inc = self.incremental.as_ref().map_err(Clone::clone)?;
        let fast = self.fast.as_ref().ok_or("casbin-rs evaluates this model")?;
        let fit = |l: &change::Line| -> Result<Option<change::Line>, String> {
            let mut fields = Vec::with_capacity(l.values.len() + 1);
            fields.push(l.ptype.clone());
            fields.extend(l.values.iter().cloned());
            lines::check(&fields, &inc.arity)?;
            // What a full load would refuse: the full build then names the line.
            if let Some(problem) = inc.line_rules.as_ref().and_then(|r| r.line(&fields).pop()) {
                return Err(problem);
            }
            if l.ptype.starts_with('p') && l.ptype != "p" {
                return Ok(None); // `p2`…: never asked by `enforce`
            }
            let mut l = l.clone();
            if l.ptype == "p"
                && let Some(v) = inc.fold_at.and_then(|at| l.values.get_mut(at))
            {
                fold_value(v)?;
            }
            Ok(Some(l))
        };
        let mut fitted = change::Change::default();
        let (mut rules, mut groupings) = (self.rules, self.groupings);
        for l in &change.removed {
            match l.ptype.starts_with('g') {
                true => groupings -= 1,
                false => rules -= 1,
            }
            fitted.removed.extend(fit(l)?);
        }
        for l in &change.added {
            match l.ptype.starts_with('g') {
                true => groupings += 1,
                false => rules += 1,
            }
            fitted.added.extend(fit(l)?);
        }
        let fast = fast.apply(&fitted)?;
        Ok(Policy {
            enforcer: None,
            fast: Some(fast),
            evaluator: self.evaluator.clone(),
            fields: self.fields.clone(),
            attributes: self.attributes.clone(),
            reads_path_values: self.reads_path_values,
            g_domain: self.g_domain,
            rules,
            groupings,
            shared_names: self.shared_names.clone(),
            probe: self.probe.clone(),
            casbin_check: None,
            incremental: Ok(Incremental {
                arity: inc.arity.clone(),
                fold_at: inc.fold_at,
                line_orders,
                line_rules: inc.line_rules.clone(),
            }),
        })
    }

    /// The order keys of the text's lines, when [`Self::apply`] can update this policy.
    pub fn line_orders(&self) -> Option<&Arc<[u64]>> {
        self.incremental.as_ref().ok().map(|i| &i.line_orders)
    }

    /// Why [`Self::apply`] cannot update this policy, if it cannot.
    pub fn built_whole_because(&self) -> Option<&str> {
        self.incremental.as_ref().err().map(String::as_str)
    }

    /// Enforces `q` with casbin-rs itself (the reference), whatever the model.
    pub fn enforce_casbin(&self, q: &Query<'_>) -> Result<Enforced, EvalError> {
        let rvals: Vec<&str> = self
            .fields
            .iter()
            .map(|f| match f {
                Field::Sub => q.subject,
                Field::Dom => q.domain,
                Field::Obj => q.resource,
                Field::Act => q.action,
                Field::Attr(i) => q.attributes.get(*i).map_or("", String::as_str),
            })
            .collect();
        let Some(enforcer) = &self.enforcer else {
            return Err(EvalError(
                "casbin-rs is not kept next to the indexed evaluator".into(),
            ));
        };
        let _overlay = Overlay::install(q, self.g_domain);
        // casbin-rs panics on some inputs (an invalid `regexMatch` pattern in a
        // policy line, `keyMatch` slicing a request path mid-character). A panic
        // here must be a denial, not a dropped connection: catch it and fail closed.
        // The overlay guard above still runs on unwind; casbin's parking_lot locks
        // do not poison.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| enforcer.enforce_ex(rvals)));
        let (allowed, matched) = match result {
            Ok(r) => r.map_err(|e| EvalError(e.to_string()))?,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown panic");
                return Err(EvalError(format!("casbin panicked: {what}")));
            }
        };
        Ok(Enforced {
            allowed,
            // casbin-rs lists the allows it saw before a deny decided
            // (allow-and-deny); the deciding line is the deny, as Go reports.
            matched: match allowed {
                true => matched.into_iter().next(),
                false => matched.into_iter().last(),
            }
            .unwrap_or_default(),
        })
    }
}

/// Rewrites every `p` line of `model` through `f` (which may refuse a line).
fn rewrite_lines(
    model: &mut dyn Model,
    mut f: impl FnMut(&str, &[String], Vec<Vec<String>>) -> Result<Vec<Vec<String>>, PolicyLoadError>,
) -> Result<(), PolicyLoadError> {
    let Some(types) = model.get_mut_model().get_mut("p") else {
        return Ok(());
    };
    for (ptype, ast) in types.iter_mut() {
        let lines: Vec<Vec<String>> = std::mem::take(ast.get_mut_policy()).into_iter().collect();
        let lines = f(ptype, &ast.tokens, lines)?;
        let set = ast.get_mut_policy();
        for line in lines {
            set.insert(line);
        }
    }
    Ok(())
}

/// Casbin's documented priority semantics (the Priority Model page; Go and
/// Python Casbin): with a `priority` field in `p`, lines are evaluated by
/// priority, smaller first, non-numeric last, ties in file order. casbin-rs
/// 2.20 evaluates in file order, so both evaluators are handed the lines
/// already sorted.
fn sort_by_priority(model: &mut dyn Model) {
    let sorted = rewrite_lines(model, |ptype, tokens, mut lines| {
        let field = format!("{ptype}_priority");
        if let Some(at) = tokens.iter().position(|t| *t == field) {
            // A stable sort: ties keep file order.
            lines.sort_by_key(|l| match l.get(at).map(|v| v.trim().parse::<i64>()) {
                Some(Ok(n)) => (0, n),
                _ => (1, 0),
            });
        }
        Ok(lines)
    });
    // INVARIANT: the closure above never refuses a line.
    debug_assert!(sorted.is_ok());
}

/// `path_case = "insensitive"`: object patterns are lower-cased, as request
/// paths are. A regex escape whose meaning depends on case (`\D`, `\W`,
/// `\S`, `\B`, `\P{..}`) is refused rather than silently changed.
fn fold_object_case(model: &mut dyn Model, text: &str, name: &str) -> Result<(), PolicyLoadError> {
    rewrite_lines(model, |ptype, tokens, lines| {
        let field = format!("{ptype}_obj");
        let Some(at) = tokens.iter().position(|t| *t == field) else {
            return Ok(lines);
        };
        let mut out = Vec::with_capacity(lines.len());
        for mut line in lines {
            let Some(v) = line.get(at) else {
                out.push(line);
                continue;
            };
            let b = v.as_bytes();
            if b.windows(2)
                .any(|w| w[0] == b'\\' && w[1].is_ascii_uppercase())
            {
                return Err(PolicyLoadError::Line {
                    path: name.to_string(),
                    line: lines::find_line(text, "p", &line),
                    message: format!(
                        "pattern `{v}` has a case-sensitive regex escape; with `path_case = \"insensitive\"` write it without one"
                    ),
                });
            }
            line[at] = crate::request::fold_case(v).into_owned();
            out.push(line);
        }
        Ok(out)
    })
}

/// casbin-rs loaded with `text` (repeats already dropped), object case
/// folded and lines sorted by priority as the config asks, and authzd's
/// role manager in place.
async fn casbin_enforcer(
    model: DefaultModel,
    text: &str,
    original: &str,
    policy_name: &str,
    opts: &LoadOptions,
) -> Result<Enforcer, PolicyLoadError> {
    let policy_err = |e: casbin::Error| PolicyLoadError::Policy {
        path: policy_name.to_string(),
        message: e.to_string(),
    };
    let mut enforcer = Enforcer::new(model, StringAdapter::new(text.to_string()))
        .await
        .map_err(policy_err)?;
    if opts.fold_case {
        fold_object_case(enforcer.get_mut_model(), original, policy_name)?;
    }
    sort_by_priority(enforcer.get_mut_model());
    let rm: Arc<RwLock<dyn RoleManager>> = Arc::new(RwLock::new(OverlayRoleManager::default()));
    enforcer.set_role_manager(rm).map_err(policy_err)?;
    Ok(enforcer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A number in the matcher: outside the indexed subset, so casbin-rs evaluates.
    const RESOURCE_ROLES: &str = "[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act && 1 == 1
";

    #[tokio::test]
    async fn a_model_off_the_indexed_path_is_costed_or_refused() {
        let policy = "p, admin, docs, GET\ng, alice, admin\n";
        let p = Policy::from_text(RESOURCE_ROLES, "m.conf", policy, "p.csv")
            .await
            .unwrap();
        assert!(p.evaluator.starts_with("casbin-rs"), "{}", p.evaluator);
        assert!(p.casbin_check.is_some());
        let w = p.slow_warning().unwrap();
        assert!(w.contains("µs per check") && w.contains("fallback"), "{w}");
        let refuse = LoadOptions {
            refuse_fallback: true,
            ..LoadOptions::default()
        };
        let e = Policy::from_text_for(RESOURCE_ROLES, "m.conf", policy, "p.csv", refuse.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.conf") && e.contains("fallback = \"refuse\""),
            "{e}"
        );
        // A model on the indexed path loads either way, with no warning.
        let indexed = Policy::from_text_for(RBAC, "m.conf", "p, a, /x, GET\n", "p.csv", refuse)
            .await
            .unwrap();
        assert_eq!(indexed.evaluator, "indexed");
        assert!(indexed.slow_warning().is_none());
    }

    const RBAC: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n";

    #[tokio::test]
    async fn line_errors_name_the_line() {
        let e = Policy::from_text(RBAC, "m.conf", "p, a, b, c\n\np, a, b\n", "p.csv")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.csv") && e.contains("line 3") && e.contains("3 fields"),
            "{e}"
        );
        let e = Policy::from_text(RBAC, "m.conf", "x, a, b\n", "p.csv")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("`x`"), "{e}");
        let e = Policy::from_text(
            "[request_definition]\nr = sub, obj, act\n",
            "m.conf",
            "",
            "p.csv",
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("m.conf"), "{e}");
    }

    #[tokio::test]
    async fn casbin_panics_become_denials() {
        let keymatch = RBAC.replace("r.obj == p.obj", "keyMatch(r.obj, p.obj)");
        let p = Policy::from_text(&keymatch, "m", "p, alice, /ab*, GET\n", "p")
            .await
            .unwrap();
        let q = |resource: &'static str| Query {
            subject: "alice",
            roles: &[],
            domain: "",
            resource,
            action: "GET",
            attributes: &[],
            unfolded: None,
        };
        assert!(p.enforce(&q("/abc")).unwrap().allowed);
        // casbin-rs's key_match slices the path at the `*` offset, mid-character here.
        let reference = Policy::casbin_only(&keymatch, "p, alice, /ab*, GET\n")
            .await
            .unwrap();
        let e = reference.enforce(&q("/a\u{e4}")).unwrap_err().to_string();
        assert!(e.contains("panicked"), "{e}");
        // The indexed evaluator compares bytes there and denies, without panicking.
        assert_eq!(p.evaluator, "indexed");
        assert!(!p.enforce(&q("/a\u{e4}")).unwrap().allowed);
        assert!(
            !p.enforce(&q("/xyz")).unwrap().allowed,
            "still usable after a caught panic"
        );
        let regex = RBAC.replace("r.act == p.act", "regexMatch(r.act, p.act)");
        // casbin-rs loads an invalid regex and panics on the first request that
        // reaches it; the indexed evaluator refuses the line at load instead.
        let e = Policy::from_text(&regex, "m", "p, alice, /a, GET\np, bob, /b, (\n", "p.csv")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.csv` line 2") && e.contains("regex"), "{e}");
        let reference = Policy::casbin_only(&regex, "p, alice, /a, (\n")
            .await
            .unwrap();
        assert!(
            reference.enforce(&q("/a")).is_err(),
            "casbin-rs's panic on it fails closed"
        );
    }

    #[tokio::test]
    async fn unsupported_effects_are_refused_at_load() {
        let m = RBAC.replace(
            "e = some(where (p.eft == allow))",
            "e = some(where (p.eft == permit))",
        );
        let e = Policy::from_text(&m, "m.conf", "", "p.csv")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.conf") && e.contains("not one casbin-rs supports"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn unsupported_request_fields_are_named() {
        let m = RBAC.replace("r = sub, obj, act", "r = user, obj, act");
        let e = Policy::from_text(&m, "m.conf", "", "p.csv")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("`user`"), "{e}");
    }

    #[tokio::test]
    async fn overlay_roles_apply_only_to_their_call() {
        let p = Policy::from_text(
            RBAC,
            "m",
            "p, admin, /a, GET\ng, admin, staff\np, staff, /s, GET\n",
            "p",
        )
        .await
        .unwrap();
        let roles = vec!["admin".to_string()];
        let q = |roles: &'static [String], res: &'static str| Query {
            subject: "alice",
            roles,
            domain: "",
            resource: res,
            action: "GET",
            attributes: &[],
            unfolded: None,
        };
        let with = Box::leak(Box::new(roles));
        let r = p.enforce(&q(with, "/a")).unwrap();
        assert!(r.allowed);
        assert_eq!(r.matched, ["admin", "/a", "GET"]);
        assert!(
            p.enforce(&q(with, "/s")).unwrap().allowed,
            "inheritance from a claim role"
        );
        assert!(
            !p.enforce(&q(&[], "/a")).unwrap().allowed,
            "the overlay is gone after the call"
        );
        assert!(p.enforce(&q(&[], "/a")).unwrap().matched.is_empty());
    }

    fn matching(role: &[(&str, &str)], domain: &[(&str, &str)]) -> LoadOptions {
        let map = |e: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            e.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        LoadOptions {
            matching: indexed::Matching::new(&map(role), &map(domain)).unwrap(),
            ..LoadOptions::default()
        }
    }

    #[tokio::test]
    async fn role_matching_settings_that_do_not_fit_are_refused_by_name() {
        let role: std::collections::BTreeMap<String, String> =
            [("g".to_string(), "keyMatch9".to_string())].into();
        let bad_fn = indexed::Matching::new(&role, &std::collections::BTreeMap::new()).unwrap_err();
        assert!(
            bad_fn.contains("role_matching") && bad_fn.contains("keyMatch9"),
            "{bad_fn}"
        );
        let policy = "p, admin, /a, GET\ng, alice, admin\n";
        let load = |opts| Policy::from_text_for(RBAC, "m.conf", policy, "p.csv", opts);
        let e = load(matching(&[("g2", "keyMatch")], &[]))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("`g2`") && e.contains("role_definition"), "{e}");
        let e = load(matching(&[], &[("g", "keyMatch")]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("domain_matching") && e.contains("no domain"),
            "{e}"
        );
        // A model only casbin-rs evaluates: its role manager answers differently.
        let e = Policy::from_text_for(
            RESOURCE_ROLES,
            "m.conf",
            policy,
            "p.csv",
            matching(&[("g", "keyMatch")], &[]),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("need the indexed evaluator"), "{e}");
        // A role name that is no valid pattern for the function: its line.
        let e = Policy::from_text_for(
            RBAC,
            "m.conf",
            "p, admin, /a, GET\ng, alice, admin\ng, bob, adm(in\n",
            "p.csv",
            matching(&[("g", "regexMatch")], &[]),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3") && e.contains("adm(in"), "{e}");
    }

    #[tokio::test]
    async fn a_claim_role_is_a_name_never_a_pattern() {
        let policy = "p, admin, /a, GET\np, team-*, /t, GET\ng, team-*, staff\np, staff, /s, GET\n";
        let load = |text: &str| {
            let opts = matching(&[("g", "keyMatch")], &[]);
            let text = text.to_string();
            async move {
                Policy::from_text_for(RBAC, "m", &text, "p", opts)
                    .await
                    .unwrap()
            }
        };
        let p = load(policy).await;
        let held = load(&format!("{policy}g, alice, *\n")).await;
        let ask = |p: &Policy, roles: &[String], res: &str| {
            p.enforce(&Query {
                subject: "alice",
                roles,
                domain: "",
                resource: res,
                action: "GET",
                attributes: &[],
                unfolded: None,
            })
            .unwrap()
            .allowed
        };
        // A claim role matching a pattern in the lines has its links and rules.
        let red = ["team-red".to_string()];
        assert!(ask(&p, &red, "/s") && ask(&p, &red, "/t"));
        assert!(!ask(&p, &red, "/a"));
        // A claim role that is a pattern does not hold whatever matches it.
        let wild = ["*".to_string(), "adm*".to_string()];
        assert!(!ask(&p, &wild, "/a"));
        // The same pattern held through a line does (Go Casbin's semantics).
        assert!(ask(&held, &[], "/a"));
    }

    #[tokio::test]
    async fn a_repeated_line_keeps_its_first_place() {
        let model = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = priority(p.eft) || deny\n[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n";
        let policy = "p, alice, /a, GET, deny\np, staff, /a, GET, allow\np, alice, /a, GET, deny\ng, alice, staff\n";
        let p = Policy::from_text(model, "m", policy, "p").await.unwrap();
        let r = p
            .enforce(&Query {
                subject: "alice",
                roles: &[],
                domain: "",
                resource: "/a",
                action: "GET",
                attributes: &[],
                unfolded: None,
            })
            .unwrap();
        // casbin-rs would move the repeat last and allow.
        assert!(!r.allowed);
        assert_eq!(r.matched, ["alice", "/a", "GET", "deny"]);
    }

    #[tokio::test]
    async fn a_denial_under_allow_and_deny_names_the_deny_on_either_evaluator() {
        let model = |extra: &str| {
            format!(
                "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act{extra}\n"
            )
        };
        let policy = "p, staff, /a, GET, allow\np, alice, /a, GET, deny\ng, alice, staff\n";
        let q = Query {
            subject: "alice",
            roles: &[],
            domain: "",
            resource: "/a",
            action: "GET",
            attributes: &[],
            unfolded: None,
        };
        // The second model has a method call: casbin-rs evaluates it.
        for (m, evaluator) in [
            (model(""), "indexed"),
            (model(" && r.obj >= \"/\""), "casbin-rs"),
        ] {
            let p = Policy::from_text(&m, "m", policy, "p").await.unwrap();
            assert!(p.evaluator.starts_with(evaluator), "{}", p.evaluator);
            let r = p.enforce(&q).unwrap();
            assert!(!r.allowed);
            assert_eq!(r.matched, ["alice", "/a", "GET", "deny"], "{evaluator}");
        }
    }
}
