//! The matcher's syntax tree: expressions, operands, the Casbin functions by name, and the effects.

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
}

/// A string operand of the matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Arg {
    R(RField),
    /// A policy field, by position in the `p` definition.
    P(usize),
    Lit(String),
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
