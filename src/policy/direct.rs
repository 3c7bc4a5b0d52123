//! The indexed evaluator built straight from the parsed lines, without a
//! casbin-rs copy of the rules: role lines into the model's role section,
//! `p` lines folded, deduplicated and sorted as casbin-rs would have them,
//! each with its order key; and what incremental updates need afterwards.

use std::sync::Arc;

use casbin::{DefaultModel, Model};

use super::{LoadOptions, PolicyLoadError, indexed, lines};

/// What [`Policy::apply`] needs besides the indexed evaluator.
#[derive(Debug, Clone)]
pub(super) struct Incremental {
    /// The model's policy types and their field counts.
    pub(super) arity: Vec<(String, usize)>,
    /// `path_case = "insensitive"`: the `p` field (0-based value) to lower-case.
    pub(super) fold_at: Option<usize>,
    /// For each line of the text: the order key of the rule it holds (0: none).
    pub(super) line_orders: Arc<[u64]>,
    /// What each added line must satisfy, as a full load checks it
    /// (`None`: unchecked, see `LoadOptions::unchecked`).
    pub(super) line_rules: Option<Arc<super::check::LineRules>>,
}

/// The indexed evaluator built from the parsed lines (no casbin-rs copy of
/// the rules): role lines into the model's role section, `p` lines folded,
/// deduplicated and sorted as casbin-rs would have them, each with its
/// order key (`orders`: per text line, e.g. a store's row ids; else from the
/// line number). `Ok(Err(_))` when the model is outside the indexed subset
/// or a line is invalid for it.
pub(super) fn direct(
    model: &DefaultModel,
    parsed: Vec<lines::Parsed>,
    policy_name: &str,
    opts: &LoadOptions,
    arity: Vec<(String, usize)>,
    text_lines: usize,
) -> Result<Result<Direct, indexed::CompileError>, PolicyLoadError> {
    let mut roles_model = model.clone();
    let p_tokens: Vec<String> = model
        .get_model()
        .get("p")
        .and_then(|p| p.get("p"))
        .map(|a| a.tokens.clone())
        .unwrap_or_default();
    let fold_at = opts
        .fold_case
        .then(|| p_tokens.iter().position(|t| t == "p_obj"))
        .flatten();
    let priority_at = p_tokens.iter().position(|t| t == "p_priority");
    let mut line_orders = vec![0u64; text_lines];
    let mut incremental = match parsed.iter().any(|p| p.repeat) {
        // Which copy counts depends on where the others go: build whole.
        true => Err("the policy repeats a line".to_string()),
        false => Ok(()),
    };
    let mut rules: Vec<(usize, u64, Vec<String>)> = Vec::with_capacity(parsed.len());
    for p in parsed {
        if p.repeat {
            continue;
        }
        let mut fields = p.fields;
        if fields[0].starts_with('g') {
            let ptype = fields.remove(0);
            roles_model.add_policy("g", &ptype, fields);
            continue;
        }
        if fields[0] != "p" {
            continue; // `p2`…: never asked by `enforce`
        }
        fields.remove(0);
        if let Some(at) = fold_at
            && let Some(v) = fields.get_mut(at)
        {
            fold_value(v).map_err(|message| PolicyLoadError::Line {
                path: policy_name.to_string(),
                line: p.at + 1,
                message,
            })?;
        }
        let order = match opts.orders.as_deref() {
            Some(o) => o.get(p.at).copied().unwrap_or(0),
            None => (p.at as u64 + 1) << 20,
        };
        rules.push((p.at, order, fields));
    }
    if fold_at.is_some() {
        // Lines equal once folded: the first keeps its place.
        let mut seen: foldhash::HashSet<Vec<String>> = foldhash::HashSet::default();
        let before = rules.len();
        rules.retain(|(_, _, f)| seen.insert(f.clone()));
        if rules.len() != before {
            incremental = Err("lines repeat once object case is folded".to_string());
        }
    }
    if let Some(at) = priority_at {
        // Casbin's priority semantics: smaller first, non-numeric last, ties in file order.
        rules.sort_by_key(
            |(_, _, l)| match l.get(at).map(|v| v.trim().parse::<i64>()) {
                Some(Ok(n)) => (0, n),
                _ => (1, 0),
            },
        );
        for (i, r) in rules.iter_mut().enumerate() {
            r.1 = (i as u64 + 1) << 20;
        }
        incremental = Err("a priority policy orders lines by priority".to_string());
    }
    if !rules.windows(2).all(|w| w[0].1 < w[1].1) || rules.first().is_some_and(|r| r.1 == 0) {
        // Store rows without increasing ids: order by position.
        for (i, r) in rules.iter_mut().enumerate() {
            r.1 = (i as u64 + 1) << 20;
        }
        incremental = Err("the lines have no increasing order keys".to_string());
    }
    for (at, order, _) in &rules {
        line_orders[*at] = *order;
    }
    let orders: Vec<u64> = rules.iter().map(|r| r.1).collect();
    let lines: Vec<Vec<String>> = rules.into_iter().map(|r| r.2).collect();
    let compiled = indexed::FastPolicy::compile(&roles_model, lines, &orders, &opts.matching);
    Ok(compiled.map(|fast| {
        let incremental = incremental.map(|()| Incremental {
            arity,
            fold_at,
            line_orders: line_orders.into(),
            line_rules: None,
        });
        (fast, incremental)
    }))
}

/// The indexed evaluator built straight from the lines, and what
/// incremental updates need (or why they cannot apply).
pub(super) type Direct = (indexed::FastPolicy, Result<Incremental, String>);

/// `path_case = "insensitive"` on one object pattern: lower-cased, unless
/// it holds a regex escape whose meaning depends on case.
pub(super) fn fold_value(v: &mut String) -> Result<(), String> {
    let b = v.as_bytes();
    if b.windows(2)
        .any(|w| w[0] == b'\\' && w[1].is_ascii_uppercase())
    {
        return Err(format!(
            "pattern `{v}` has a case-sensitive regex escape; with `path_case = \"insensitive\"` write it without one"
        ));
    }
    *v = crate::request::fold_case(v).into_owned();
    Ok(())
}
