//! Reading the model: which request and policy fields, which effect, which role types, and the matcher tree.

use super::{
    ast::{Arg, Effect, Expr},
    error::{CompileError, Unsupported},
    functions::Func,
    grammar::{Parser, tokenize},
    patterns::{DomainMatching, Matching, NameMatching},
    roles::RoleType,
};
use casbin::Model;
use foldhash::{HashMap, HashMapExt as _};

/// Everything decided from the model and the role lines, before any rule is
/// touched: if this fails, casbin-rs evaluates and keeps its rules.
pub(super) struct Plan {
    pub(super) effect: Effect,
    pub(super) expr: Expr,
    /// `(function, policy field)` of each `Pattern::Rule` slot.
    pub(super) slots: Vec<(Func, usize)>,
    pub(super) eft_at: Option<usize>,
    pub(super) arity: usize,
    pub(super) roles: Vec<RoleType>,
}

impl Plan {
    pub(super) fn of(model: &dyn Model, matching: &Matching) -> Result<Plan, CompileError> {
        let m = model.get_model();
        // authzd enforces with the primary sections, as casbin's `enforce`
        // does: `r2`, `p2`, `e2`, `m2` (for `enforce_with_context`) are never asked.
        let one = |sec: &str| -> Result<Option<&casbin::Assertion>, Unsupported> {
            Ok(m.get(sec).and_then(|map| map.get(sec)))
        };
        let r = one("r")?.ok_or("no request definition")?;
        let p = one("p")?.ok_or("no policy definition")?;
        let e = one("e")?.ok_or("no effect")?;
        let matcher = one("m")?.ok_or("no matcher")?;
        // Every role definition: `g`, `g2`, `g3`, … (the one named `g` gets the claim roles).
        let mut defs: Vec<(&String, &casbin::Assertion)> =
            m.get("g").map(|g| g.iter().collect()).unwrap_or_default();
        defs.sort_by(|a, b| a.0.cmp(b.0));
        let effect = match e.value.as_str() {
            "some(where (p_eft == allow))" => Effect::AllowOverride,
            "!some(where (p_eft == deny))" => Effect::DenyOverride,
            "some(where (p_eft == allow)) && !some(where (p_eft == deny))" => Effect::AllowAndDeny,
            "priority(p_eft) || deny" => Effect::Priority,
            other => return Err(format!("effect `{other}`").into()),
        };
        for (def, _) in matching.role.iter().chain(&matching.domain) {
            if !defs.iter().any(|(name, _)| *name == def) {
                return Err(CompileError::Matching(format!(
                    "`[policy] role_matching`/`domain_matching` name `{def}`, which the model's [role_definition] does not define"
                )));
            }
        }
        let mut role_arity = HashMap::new();
        for (name, def) in &defs {
            match def.value.matches('_').count() {
                n @ (2 | 3) => {
                    role_arity.insert(name.as_str(), (role_arity.len(), n));
                }
                n => return Err(format!("role definition `{name}` with {n} fields").into()),
            }
        }
        let mut parser = Parser {
            tokens: tokenize(&matcher.value)?,
            at: 0,
            r_tokens: &r.tokens,
            p_tokens: &p.tokens,
            role_arity: &role_arity,
            slots: Vec::new(),
        };
        let mut expr = parser.parse()?;
        if matching.fold_case {
            fold_getter_names(&mut expr);
        }
        let mut roles = Vec::with_capacity(defs.len());
        for (name, def) in &defs {
            let domain = def.value.matches('_').count() == 3;
            let mut graph: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
            for values in def.get_policy() {
                let dom = if domain {
                    values.get(2).cloned().unwrap_or_default()
                } else {
                    String::new()
                };
                let (Some(a), Some(b)) = (values.first(), values.get(1)) else {
                    return Err(format!("short `{name}` line").into());
                };
                graph
                    .entry(dom)
                    .or_default()
                    .entry(a.clone())
                    .or_default()
                    .push(b.clone());
            }
            // The first line naming `n`, to point at in an error.
            let line_of = |n: &str| -> (String, Vec<String>) {
                let values = def.get_policy().iter().find(|v| v.iter().any(|x| x == n));
                (name.to_string(), values.cloned().unwrap_or_default())
            };
            let find =
                |list: &[(String, Func)]| list.iter().find(|(d, _)| d == *name).map(|(_, f)| *f);
            let names = match find(&matching.role) {
                Some(f) => Some(Box::new(NameMatching::build(f, &graph, &line_of)?)),
                None => None,
            };
            let domains = match find(&matching.domain) {
                Some(_) if !domain => {
                    return Err(CompileError::Matching(format!(
                        "`[policy] domain_matching` names `{name}`, which has no domain (`{name} = _, _`)"
                    )));
                }
                Some(f) => Some(Box::new(DomainMatching::build(f, &graph, &line_of)?)),
                None => None,
            };
            roles.push(RoleType {
                name: name.to_string(),
                graph,
                domain,
                overlay: name.as_str() == "g",
                names,
                domains,
            });
        }
        Ok(Plan {
            effect,
            expr,
            slots: parser.slots,
            eft_at: p.tokens.iter().position(|t| t == "p_eft"),
            arity: p.tokens.len(),
            roles,
        })
    }
}

/// Lower-cases the parameter names `keyGet2`/`keyGet3` ask for, to meet
/// object patterns that `path_case = "insensitive"` lower-cased.
fn fold_getter_names(e: &mut Expr) {
    fn arg(a: &mut Arg) {
        if let Arg::Get(g) = a {
            if let Arg::Lit(name) = &mut g.var {
                *name = crate::request::fold_case(name).into_owned();
            }
            arg(&mut g.key);
        }
    }
    match e {
        Expr::And(xs) | Expr::Or(xs) => xs.iter_mut().for_each(fold_getter_names),
        Expr::Not(x) => fold_getter_names(x),
        Expr::Eq(a, b, _) => {
            arg(a);
            arg(b);
        }
        Expr::Role { args, .. } => args.iter_mut().for_each(arg),
        Expr::In(a, xs) => {
            arg(a);
            xs.iter_mut().for_each(arg);
        }
        Expr::Call { key, .. } => arg(key),
    }
}
