//! The question an evaluator answers and its answer: shared by the indexed
//! evaluator and the casbin-rs path, below both.

/// One enforcement question.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub subject: &'a str,
    /// Per-request roles, already prefixed; applied as `g, subject, role[, domain]`.
    pub roles: &'a [String],
    pub domain: &'a str,
    pub resource: &'a str,
    pub action: &'a str,
    /// The model's attribute fields (`r = sub, obj, act, tenant`), in the
    /// request definition's order, taken from the verified token's claims.
    pub attributes: &'a [String],
}

/// What Casbin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforced {
    pub allowed: bool,
    /// The policy line that decided (without its `p` type), empty when none matched.
    pub matched: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("policy evaluation failed: {0}")]
pub struct EvalError(pub(crate) String);
