//! Building a [`FastPolicy`] from what casbin-rs loaded: rules, role types, the index; and why a model is outside the subset.

use std::sync::Arc;

use super::{
    ast::{Arg, Effect, Expr, RField},
    compile::compile,
    error::CompileError,
    functions::Func,
    index::{Index, build_index},
    patterns::{Matching, Segments, literal},
    plan::Plan,
    roles::RoleType,
    rule::{Eft, Rule},
    sharded::Sharded,
    slots::Slots,
};
use casbin::Model;
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

/// Cloning shares everything (reference counts): an update copies only
/// what it touches.
#[derive(Clone)]
pub struct FastPolicy {
    pub(super) effect: Effect,
    pub(super) matcher: Arc<Expr>,
    pub(super) rules: Slots,
    pub(super) index: Option<Index>,
    /// One per role definition (`g`, `g2`, `g3`, …), in `Expr::Role::rt` order.
    pub(super) roles: Arc<Vec<RoleType>>,
    /// The matcher calls `g(r.sub, …)` in the request's own domain: precompute the closure.
    pub(super) uses_closure: bool,
    /// Every name a `g` call can ask about (policy values in its second
    /// argument, literals) or link through: a claim role outside it cannot
    /// change an answer and is not followed. `None` when a call asks about a
    /// request value. After incremental updates it may hold names no line
    /// names any more: a superset only follows a claim role in vain.
    pub(super) known: Option<Sharded<Arc<str>, ()>>,
    /// How a policy line becomes a [`Rule`], kept for incremental updates.
    pub(super) shape: Shape,
}

/// What turns a policy line's values into a [`Rule`].
#[derive(Clone)]
pub(super) struct Shape {
    /// `(function, policy field)` of each `Pattern::Rule` slot.
    pub(super) slots: Vec<(Func, usize)>,
    pub(super) eft_at: Option<usize>,
    pub(super) arity: usize,
}

impl Shape {
    /// Compiles one line; `Err` is the message for an invalid pattern.
    pub(super) fn rule(
        &self,
        values: Vec<Arc<str>>,
        order: u64,
        regexes: &mut HashMap<String, Arc<regex::Regex>>,
    ) -> Result<Rule, CompileError> {
        if values.len() != self.arity {
            return Err("policy line arity".into());
        }
        let patterns = self
            .slots
            .iter()
            .map(|(func, field)| compile(*func, &values[*field], regexes))
            .collect::<Result<Box<[_]>, _>>()
            .map_err(|message| CompileError::InvalidRule {
                ptype: "p".into(),
                values: values.iter().map(|v| v.to_string()).collect(),
                message,
            })?;
        let eft = match self.eft_at.map(|i| &*values[i]) {
            None | Some("allow") => Eft::Allow,
            Some("deny") => Eft::Deny,
            Some(_) => Eft::Indeterminate,
        };
        Ok(Rule {
            values: values.into_boxed_slice(),
            patterns,
            eft,
            order,
        })
    }
}

impl FastPolicy {
    /// Compiles the model (with its role lines loaded) and `lines`, the
    /// values of its `p` lines in policy order, `orders` their order keys
    /// (increasing), or says why not.
    pub fn compile(
        model: &dyn Model,
        lines: Vec<Vec<String>>,
        orders: &[u64],
        matching: &Matching,
    ) -> Result<FastPolicy, CompileError> {
        let plan = Plan::of(model, matching)?;
        if lines.is_empty() {
            // casbin-rs evaluates the matcher once against empty values then; leave that to it.
            return Err("an empty policy".into());
        }
        let Plan {
            effect,
            expr,
            slots,
            eft_at,
            arity,
            roles,
        } = plan;
        let shape = Shape {
            slots,
            eft_at,
            arity,
        };
        let mut rules = Vec::with_capacity(lines.len());
        let mut regexes = HashMap::new();
        let mut interned: HashSet<Arc<str>> = HashSet::new();
        let mut intern = |v: String| -> Arc<str> {
            if let Some(a) = interned.get(v.as_str()) {
                return Arc::clone(a);
            }
            let a: Arc<str> = Arc::from(v);
            interned.insert(Arc::clone(&a));
            a
        };
        for (i, values) in lines.into_iter().enumerate() {
            let order = orders.get(i).copied().unwrap_or(i as u64);
            let values: Vec<Arc<str>> = values.into_iter().map(&mut intern).collect();
            rules.push(shape.rule(values, order, &mut regexes)?);
        }
        drop(interned);
        let overlay = roles.iter().position(|r| r.overlay);
        let is_closure = |rt: usize, args: &[Arg]| {
            Some(rt) == overlay
                && args.first() == Some(&Arg::R(RField::Sub))
                && (args.len() == 2 || args.get(2) == Some(&Arg::R(RField::Dom)))
        };
        let uses_closure =
            expr.any(&|e| matches!(e, Expr::Role { rt, args } if is_closure(*rt, args)));
        let mut roles = roles;
        role_targets(&expr, &rules, &mut roles)?;
        let is_pattern = |rt: usize, v: &str| {
            roles
                .get(rt)
                .and_then(|r| r.names.as_ref())
                .is_some_and(|nm| nm.compiled(v).is_some())
        };
        let mut index = build_index(&expr, &rules, &is_closure, &is_pattern);
        if let (Some(index), Some(nm)) = (
            index.as_mut(),
            overlay.and_then(|rt| roles[rt].names.as_deref()),
        ) {
            let compiled = index.pattern_keys.iter().filter_map(|k| nm.compiled(k));
            index.pattern_segments = Segments::new(nm.func, compiled);
        }
        // With role matching a claim role can match a pattern in the lines:
        // every one is followed.
        let known = overlay
            .filter(|rt| roles[*rt].names.is_none())
            .and_then(|rt| known_names(&expr, rt, &rules, &roles[rt]));
        Ok(FastPolicy {
            effect,
            matcher: Arc::new(expr),
            rules: Slots::from_rules(rules),
            index,
            roles: Arc::new(roles),
            uses_closure,
            known,
            shape,
        })
    }
}

/// For each role type with role matching, compiles the rule values and
/// literals its calls ask about (`g2(r.obj, p.obj)`: every `p.obj`) that are
/// patterns and no name in its lines: Go Casbin matches them too.
pub(super) fn role_targets(
    expr: &Expr,
    rules: &[Rule],
    roles: &mut [RoleType],
) -> Result<(), CompileError> {
    pub(super) fn asked<'e>(e: &'e Expr, out: &mut Vec<(usize, &'e Arg)>) {
        match e {
            Expr::Role { rt, args } => out.push((*rt, &args[1])),
            Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| asked(x, out)),
            Expr::Not(x) => asked(x, out),
            _ => {}
        }
    }
    let mut calls = Vec::new();
    asked(expr, &mut calls);
    let mut regexes = HashMap::new();
    for (rt, arg) in calls {
        let Some(nm) = roles.get_mut(rt).and_then(|r| r.names.as_deref_mut()) else {
            continue;
        };
        let values: Vec<(&str, Option<&Rule>)> = match arg {
            Arg::P(i) => rules.iter().map(|r| (&*r.values[*i], Some(r))).collect(),
            Arg::Lit(l) => vec![(l.as_str(), None)],
            Arg::R(_) | Arg::Get(_) => continue,
        };
        for (v, rule) in values {
            if nm.patterns.contains_key(v)
                || nm.targets.contains_key(v)
                || nm.nodes.values().any(|n| n.contains(v))
            {
                continue;
            }
            let c =
                compile(nm.func, v, &mut regexes).map_err(|message| CompileError::InvalidRule {
                    ptype: "p".into(),
                    values: rule
                        .map(|r| r.values.iter().map(|x| x.to_string()).collect())
                        .unwrap_or_default(),
                    message: format!("role {message}"),
                })?;
            if !literal(nm.func, &c) {
                nm.targets.insert(v.to_string(), c);
            }
        }
    }
    Ok(())
}

/// Where the names a role type can be asked about come from.
pub(super) enum KnownFrom<'e> {
    /// Every rule's value in this field.
    Field(usize),
    Lit(&'e str),
}

/// What `g` calls of role type `rt` ask about; `None` if one asks about a request value.
pub(super) fn known_sources(expr: &Expr, rt: usize) -> Option<Vec<KnownFrom<'_>>> {
    fn targets<'e>(e: &'e Expr, rt: usize, out: &mut Vec<&'e Arg>) {
        match e {
            Expr::Role { rt: t, args } if *t == rt => out.push(&args[1]),
            Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| targets(x, rt, out)),
            Expr::Not(x) => targets(x, rt, out),
            _ => {}
        }
    }
    let mut asked = Vec::new();
    targets(expr, rt, &mut asked);
    asked
        .into_iter()
        .map(|a| match a {
            Arg::P(i) => Some(KnownFrom::Field(*i)),
            Arg::Lit(s) => Some(KnownFrom::Lit(s.as_str())),
            Arg::R(_) | Arg::Get(_) => None,
        })
        .collect()
}

/// The names role type `rt` can be asked about or link through (see
/// `FastPolicy::known`); `None` if a call asks about a request value.
pub(super) fn known_names(
    expr: &Expr,
    rt: usize,
    rules: &[Rule],
    role: &RoleType,
) -> Option<Sharded<Arc<str>, ()>> {
    let mut known: HashSet<Arc<str>> = HashSet::new();
    for a in known_sources(expr, rt)? {
        match a {
            KnownFrom::Field(i) => known.extend(rules.iter().map(|r| Arc::clone(&r.values[i]))),
            KnownFrom::Lit(s) => {
                known.insert(Arc::from(s));
            }
        }
    }
    for edges in role.graph.values() {
        for (from, to) in edges {
            known.insert(Arc::from(from.as_str()));
            known.extend(to.iter().map(|t| Arc::from(t.as_str())));
        }
    }
    Some(known.into_iter().map(|k| (k, ())).collect())
}
