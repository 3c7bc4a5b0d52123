//! An indexed, compiled evaluator with casbin-rs semantics; models outside
//! its subset stay on casbin-rs (the reference).
//!
//! Supported: request fields `sub, obj, act` (+ optional `dom`, + attribute
//! fields, [`Query::attributes`](super::query::Query)), one policy
//! type `p` (optionally with `eft`), any number of role types (`g`, `g2`, …;
//! `_, _` or `_, _, _`; names or domains matched as patterns when
//! `[policy] role_matching` / `domain_matching` say so, with Go Casbin's
//! semantics), any of casbin-rs's four effects (allow-override, deny-override,
//! allow-and-deny, priority), and a matcher built from `&&`, `||`, `!`,
//! parentheses, `==` / `!=` between request fields, policy fields and
//! double-quoted literals, `in [...]`, `g(…)`, and the functions `keyMatch`,
//! `keyMatch2`…`keyMatch5`, `regexMatch`, `globMatch` and `ipMatch`; the
//! getters `keyGet`, `keyGet2`, `keyGet3` are values (Go Casbin's
//! construction, compiled per rule like any pattern).
//!
//! The matcher is parsed once into a tree. Every pattern that comes from a
//! policy line is compiled once, at load (keyMatch2/3/5 patterns without regex
//! syntax become a small path matcher with no regex at all); a pattern that
//! casbin-rs would panic on (an invalid regex, glob or network) is refused at
//! load with its line, instead of failing requests later.
//!
//! When a top-level conjunct is `g(r.sub, p.X[, r.dom])` or `r.sub == p.X`,
//! rules are bucketed by `p.X`, and by the literal first path segment of the
//! object pattern when another top-level conjunct tests `r.obj` with `==`,
//! `keyMatch`, `keyMatch2` or `keyMatch3`. A request then evaluates only the
//! rules of its subject's role closure (claim roles included) and path
//! segment, in policy order (a conjunct `(p.X == "self" && …) || g(r.sub,
//! p.X)` keys by the closure plus the literal's bucket), so a deny costs the same at 10 and 100,000
//! rules. Skipping a rule is exact because no term of an indexed matcher can
//! fail at request time (matchers where one can — `ipMatch`, or a pattern
//! taken from the request — are evaluated rule by rule, in order, like
//! casbin-rs).
//!
//! Decisions and the matched line equal casbin-rs's `enforce_ex`, except
//! the matched line under allow-and-deny, which is the deny that
//! decided, as in Go Casbin (casbin-rs reports the first allow instead).
//! `tests/casbin_equivalence.rs` compares them on generated models, policies
//! and requests; `compile.rs`'s tests compare each function with casbin-rs's own.
//!
//! # Files
//!
//! One idea each, in the order a model goes through them:
//! - `grammar`: matcher text → tokens → the syntax tree of `ast`;
//! - `plan`: the model read (fields, effect, role types, the tree);
//! - `compile`: each pattern compiled once for its function;
//!   `functions` holds the Casbin functions themselves;
//! - `rule`: one compiled policy line; `slots`: the rules, in chunks
//!   snapshots share; `index`: the buckets that let a check skip rules
//!   exactly; `sharded`: the copy-on-write map the buckets live in;
//! - `patterns`: pattern roles (`role_matching`, `domain_matching`);
//!   `roles`: role closures at request time;
//! - `build`: [`FastPolicy::compile`] puts it together; `eval`:
//!   [`FastPolicy::enforce`] answers a query; `update`:
//!   [`FastPolicy::apply`] applies a change to a copy that shares
//!   everything untouched.
//!
//! Nothing here imports `policy.rs`: the query and change types live in
//! [`super::query`] and [`super::change`], below both evaluators.

mod ast;
mod build;
mod compile;
mod effect;
mod error;
mod eval;
mod functions;
mod grammar;
mod index;
mod patterns;
mod plan;
mod roles;
mod rule;
mod sharded;
mod slots;
mod update;

pub use build::FastPolicy;

/// Whether `pattern` compiles for the Casbin function `name` and can ever
/// match (`Err` names the problem): an invalid regular expression, glob or
/// network, or a keyMatch4 pattern whose regex does not compile (which
/// casbin-rs answers `false` for, always). Names that take no pattern pass.
pub fn check_pattern(name: &str, pattern: &str) -> Result<(), String> {
    let Some(func) =
        functions::Func::by_name(name).or_else(|| functions::Func::getter_by_name(name))
    else {
        return Ok(());
    };
    match compile::compile(func, pattern, &mut foldhash::HashMap::default())? {
        compile::Compiled::Never => Err(format!(
            "{name} pattern `{pattern}` is not a regular expression that compiles: it would never match"
        )),
        _ => Ok(()),
    }
}
pub use error::{CompileError, Unsupported};
pub use patterns::Matching;
