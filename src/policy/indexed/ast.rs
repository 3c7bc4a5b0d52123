//! The matcher's syntax tree: expressions, operands, the Casbin functions by name, and the effects.

use std::sync::Arc;

use super::{compile::Compiled, functions::Func};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    AllowOverride,
    DenyOverride,
    AllowAndDeny,
    Priority,
}

/// A request field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RField {
    Sub,
    Dom,
    Obj,
    Act,
    /// An attribute: the n-th request field beyond `sub`, `dom`, `obj` and
    /// `act`, in the order of the request definition.
    Attr(u8),
}

/// A string operand of the matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Arg {
    R(RField),
    /// A policy field, by position in the `p` definition.
    P(usize),
    Lit(String),
    /// `keyGet(key, pattern)`, `keyGet2(key, pattern, name)`, `keyGet3(…)`: a value.
    Get(Box<Getter>),
}

/// A getter call. Its pattern never comes from the request (that stays on
/// casbin-rs), so its value is computed without failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Getter {
    pub(super) func: Func,
    pub(super) key: Arg,
    pub(super) from: GetFrom,
    /// keyGet2/keyGet3: the parameter's name; keyGet: `""`, unused.
    pub(super) var: Arg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GetFrom {
    /// A policy field: compiled per rule at load, kept in `Rule::patterns[slot]`.
    Rule { slot: usize },
    /// A literal (its text, then compiled once).
    Fixed(String, Shared),
}

/// A compiled literal pattern, shared; equal when the text beside it is.
#[derive(Clone)]
pub(super) struct Shared(pub(super) Arc<Compiled>);

impl PartialEq for Shared {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Shared {}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("compiled")
    }
}

impl Arg {
    /// Whether this value depends on the rule (a policy field, or a getter
    /// reading one).
    pub(super) fn reads_rule(&self) -> bool {
        match self {
            Arg::P(_) => true,
            Arg::R(_) | Arg::Lit(_) => false,
            Arg::Get(g) => {
                matches!(g.from, GetFrom::Rule { .. }) || g.key.reads_rule() || g.var.reads_rule()
            }
        }
    }
}

/// Where a function's pattern (its second argument) comes from.
pub(super) enum Pattern {
    /// A policy field: compiled per rule at load, kept in `Rule::patterns[slot]`.
    Rule { slot: usize },
    /// A literal: compiled once.
    Fixed(Box<Compiled>),
    /// A request field: compiled per call, as casbin-rs does for every pattern.
    Live(RField),
}

pub(super) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// `a == b` (`true`) or `a != b` (`false`).
    Eq(Arg, Arg, bool),
    /// `g(a, b)` or `g(a, b, domain)`, of role type `rt` (`g`, `g2`, …).
    Role {
        rt: usize,
        args: Vec<Arg>,
    },
    /// `a in [x, y, …]`: equal to one of them.
    In(Arg, Vec<Arg>),
    Call {
        func: Func,
        key: Arg,
        pattern: Pattern,
    },
}

impl Expr {
    pub(super) fn any(&self, f: &dyn Fn(&Expr) -> bool) -> bool {
        f(self)
            || match self {
                Expr::And(xs) | Expr::Or(xs) => xs.iter().any(|x| x.any(f)),
                Expr::Not(x) => x.any(f),
                _ => false,
            }
    }

    /// The conjuncts that every matching rule satisfies.
    pub(super) fn conjuncts(&self) -> &[Expr] {
        match self {
            Expr::And(xs) => xs,
            other => std::slice::from_ref(other),
        }
    }
}
