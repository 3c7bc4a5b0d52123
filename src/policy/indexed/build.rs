//! Building a [`FastPolicy`] from what casbin-rs loaded: rules, role types, the index; and why a model is outside the subset.

use std::sync::Arc;

use super::{
    ast::{Arg, Effect, Expr, RField},
    compile::compile,
    error::CompileError,
    index::{Index, build_index},
    patterns::{Matching, Segments, literal},
    plan::Plan,
    roles::RoleType,
    rule::{Eft, Rule},
};
use casbin::Model;
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

pub struct FastPolicy {
    pub(super) effect: Effect,
    pub(super) matcher: Expr,
    pub(super) rules: Vec<Rule>,
    pub(super) index: Option<Index>,
    /// One per role definition (`g`, `g2`, `g3`, …), in `Expr::Role::rt` order.
    pub(super) roles: Vec<RoleType>,
    /// The matcher calls `g(r.sub, …)` in the request's own domain: precompute the closure.
    pub(super) uses_closure: bool,
    /// Every name a `g` call can ask about (policy values in its second
    /// argument, literals) or link through: a claim role outside it cannot
    /// change an answer and is not followed. `None` when a call asks about a
    /// request value.
    pub(super) known: Option<HashSet<Arc<str>>>,
}

impl FastPolicy {
    /// Compiles the model and policy casbin-rs loaded (same rules, same order),
    /// or says why not. On success the policy rules have been moved out of
    /// `model` (converted one by one, so the two copies never coexist): the
    /// caller drops casbin-rs then. On `Unsupported`, `model` is untouched.
    pub fn compile(model: &mut dyn Model, matching: &Matching) -> Result<FastPolicy, CompileError> {
        let plan = Plan::of(model, matching)?;
        let Some(p) = model
            .get_mut_model()
            .get_mut("p")
            .and_then(|m| m.get_mut("p"))
        else {
            return Err("no policy definition".into());
        };
        let lines = std::mem::take(p.get_mut_policy());
        let Plan {
            effect,
            expr,
            slots,
            eft_at,
            arity,
            roles,
        } = plan;
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
        for values in lines {
            if values.len() != arity {
                return Err("policy line arity".into());
            }
            let patterns = slots
                .iter()
                .map(|(func, field)| compile(*func, &values[*field], &mut regexes))
                .collect::<Result<Box<[_]>, _>>()
                .map_err(|message| CompileError::InvalidRule {
                    ptype: "p".into(),
                    values: values.clone(),
                    message,
                })?;
            let eft = match eft_at.map(|i| values[i].as_str()) {
                None | Some("allow") => Eft::Allow,
                Some("deny") => Eft::Deny,
                Some(_) => Eft::Indeterminate,
            };
            rules.push(Rule {
                values: values.into_iter().map(&mut intern).collect(),
                patterns,
                eft,
            });
        }
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
            matcher: expr,
            rules,
            index,
            roles,
            uses_closure,
            known,
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

/// The names role type `rt` can be asked about or link through (see
/// `FastPolicy::known`); `None` if a call asks about a request value.
pub(super) fn known_names(
    expr: &Expr,
    rt: usize,
    rules: &[Rule],
    role: &RoleType,
) -> Option<HashSet<Arc<str>>> {
    pub(super) fn targets<'e>(e: &'e Expr, rt: usize, out: &mut Vec<&'e Arg>) {
        match e {
            Expr::Role { rt: t, args } if *t == rt => out.push(&args[1]),
            Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| targets(x, rt, out)),
            Expr::Not(x) => targets(x, rt, out),
            _ => {}
        }
    }
    let mut asked = Vec::new();
    targets(expr, rt, &mut asked);
    let mut known: HashSet<Arc<str>> = HashSet::new();
    for a in asked {
        match a {
            Arg::P(i) => known.extend(rules.iter().map(|r| Arc::clone(&r.values[*i]))),
            Arg::Lit(s) => {
                known.insert(Arc::from(s.as_str()));
            }
            Arg::R(_) | Arg::Get(_) => return None,
        }
    }
    for edges in role.graph.values() {
        for (from, to) in edges {
            known.insert(Arc::from(from.as_str()));
            known.extend(to.iter().map(|t| Arc::from(t.as_str())));
        }
    }
    Some(known)
}
