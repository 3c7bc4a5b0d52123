//! Pattern roles (`role_matching`, `domain_matching`): names and domains in role lines matched with a Casbin function, as Go Casbin does.

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

use super::{
    compile::{Compiled, compile},
    error::{CompileError, invalid},
    functions::{Func, Piece, first_segment},
};
use crate::policy::query::EvalError;

/// Which role definitions match names or domains as patterns, and with what
/// (`[policy] role_matching` / `domain_matching`; Go Casbin's
/// `AddNamedMatchingFunc` / `AddNamedDomainMatchingFunc`).
#[derive(Debug, Clone, Default)]
pub struct Matching {
    pub(super) role: Vec<(String, Func)>,
    pub(super) domain: Vec<(String, Func)>,
    /// `path_case = "insensitive"`: object patterns arrive lower-cased, so
    /// the parameter names `keyGet2`/`keyGet3` ask for are lower-cased too.
    pub fold_case: bool,
}

impl Matching {
    /// The functions a role manager can match with, by their matcher names.
    pub const FUNCTIONS: &'static str =
        "keyMatch, keyMatch2, keyMatch3, keyMatch4, keyMatch5, regexMatch, globMatch";

    /// From the config's tables (role definition → function name).
    pub fn new<'a>(
        role: impl IntoIterator<Item = (&'a String, &'a String)>,
        domain: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Matching, String> {
        let parse = |key: &str, (def, name): (&String, &String)| match Func::by_name(name) {
            Some(Func::Ip) | None => Err(format!(
                "`[policy] {key}`: `{def} = \"{name}\"` is not one of {}",
                Self::FUNCTIONS
            )),
            Some(f) => Ok((def.clone(), f)),
        };
        Ok(Matching {
            role: role
                .into_iter()
                .map(|e| parse("role_matching", e))
                .collect::<Result<_, _>>()?,
            domain: domain
                .into_iter()
                .map(|e| parse("domain_matching", e))
                .collect::<Result<_, _>>()?,
            fold_case: false,
        })
    }

    /// With `fold_case` set (see the field).
    pub fn folding_case(self, fold_case: bool) -> Matching {
        Matching { fold_case, ..self }
    }

    /// No role or domain names are matched as patterns.
    pub fn is_empty(&self) -> bool {
        self.role.is_empty() && self.domain.is_empty()
    }
}

/// A role type whose names are patterns, with Go Casbin's semantics: a name
/// matching a pattern that has links has those links too (`g2, /book/:id,
/// book_group`: `/book/1` is in `book_group`), and whoever holds a pattern
/// (`g, alice, /book/*`) holds every name matching it.
#[derive(Clone)]
pub(super) struct NameMatching {
    pub(super) func: Func,
    /// The names in the lines that match more than themselves, compiled.
    pub(super) patterns: HashMap<String, Compiled>,
    /// The patterns that have links of their own.
    pub(super) sources: Vec<String>,
    /// `sources` by the literal first segment every name they match has.
    pub(super) by_segment: Segments,
    /// For each name in the lines: which `sources` it matches (never itself).
    pub(super) matched_by: HashMap<String, Vec<u32>>,
    /// For each pattern some line links to: the names in the lines matching it.
    pub(super) matched: HashMap<String, Vec<String>>,
    /// The names in each domain's lines ("" without domains).
    pub(super) nodes: HashMap<String, HashSet<String>>,
    /// Rule values a role call asks about that are patterns and not names in the lines.
    pub(super) targets: HashMap<String, Compiled>,
}

/// A role type whose domains are patterns (`g, alice, admin, *`): a domain
/// has the links of every domain pattern it matches, as in Go Casbin.
#[derive(Clone)]
pub(super) struct DomainMatching {
    pub(super) func: Func,
    /// For each domain in the lines: the domains whose links it has (itself first).
    pub(super) inherits: HashMap<String, Vec<String>>,
    /// The domains in the lines that match more than themselves.
    pub(super) patterns: Vec<(String, Compiled)>,
}

/// Patterns filed by the literal first path segment of whatever they match
/// (`/book/:id`: `book`), so a name is tried against few of them.
#[derive(Default, Clone)]
pub(super) struct Segments {
    pub(super) by_segment: HashMap<String, Vec<u32>>,
    pub(super) any: Vec<u32>,
}

impl Segments {
    pub(super) fn new<'p>(func: Func, patterns: impl Iterator<Item = &'p Compiled>) -> Segments {
        let mut out = Segments::default();
        for (i, c) in patterns.enumerate() {
            // keyMatch5 drops a query string first: `/a?x` matches `/a`.
            match c.segment().filter(|_| func != Func::KeyMatch5) {
                Some(seg) => out
                    .by_segment
                    .entry(seg.to_string())
                    .or_default()
                    .push(i as u32),
                None => out.any.push(i as u32),
            }
        }
        out
    }

    /// The patterns `name` could match.
    pub(super) fn candidates(&self, name: &str) -> impl Iterator<Item = u32> + '_ {
        self.by_segment
            .get(first_segment(name))
            .into_iter()
            .flatten()
            .chain(&self.any)
            .copied()
    }
}

/// Whether `f(x, pattern)` holds for `x == pattern` only.
pub(super) fn literal(func: Func, c: &Compiled) -> bool {
    match (func, c) {
        // keyMatch5 ignores a query string: `a?b` matches `a`.
        (Func::KeyMatch5, _) => false,
        (_, Compiled::Prefix(p)) => !p.contains('*'),
        (_, Compiled::Path(pieces)) => pieces.iter().all(|p| matches!(p, Piece::Literal(_))),
        _ => false,
    }
}

impl NameMatching {
    pub(super) fn build(
        func: Func,
        graph: &HashMap<String, HashMap<String, Vec<String>>>,
        line_of: &dyn Fn(&str) -> (String, Vec<String>),
    ) -> Result<NameMatching, CompileError> {
        let mut regexes = HashMap::new();
        let mut nodes: HashMap<String, HashSet<String>> = HashMap::new();
        let mut all: Vec<&String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (dom, edges) in graph {
            let set = nodes.entry(dom.clone()).or_default();
            for (from, to) in edges {
                for n in std::iter::once(from).chain(to) {
                    set.insert(n.clone());
                    if seen.insert(n) {
                        all.push(n);
                    }
                }
            }
        }
        all.sort();
        let mut patterns = HashMap::new();
        for n in &all {
            let c = compile(func, n, &mut regexes)
                .map_err(|message| invalid(line_of(n), format!("role name {message}")))?;
            if !literal(func, &c) {
                patterns.insert((*n).clone(), c);
            }
        }
        let has_links = |n: &str| graph.values().any(|e| e.contains_key(n));
        let targets: HashSet<&str> = graph
            .values()
            .flat_map(|e| e.values().flatten())
            .map(String::as_str)
            .collect();
        let is_target = |n: &str| targets.contains(n);
        let mut sources: Vec<String> = patterns.keys().filter(|p| has_links(p)).cloned().collect();
        sources.sort();
        let bad = |n: &str, e: EvalError| invalid(line_of(n), e.0);
        let by_segment = Segments::new(func, sources.iter().map(|p| &patterns[p]));
        let mut matched_by: HashMap<String, Vec<u32>> = HashMap::new();
        for n in &all {
            let mut ids = Vec::new();
            for i in by_segment.candidates(n) {
                let p = &sources[i as usize];
                if p != *n && patterns[p].matches(func, n).map_err(|e| bad(n, e))? {
                    ids.push(i);
                }
            }
            if !ids.is_empty() {
                ids.sort_unstable();
                matched_by.insert((*n).clone(), ids);
            }
        }
        let mut by_first: HashMap<&str, Vec<&String>> = HashMap::new();
        for n in &all {
            by_first.entry(first_segment(n)).or_default().push(n);
        }
        let mut matched: HashMap<String, Vec<String>> = HashMap::new();
        for (p, c) in &patterns {
            if !is_target(p) {
                continue;
            }
            let within: Box<dyn Iterator<Item = &&String>> =
                match c.segment().filter(|_| func != Func::KeyMatch5) {
                    Some(seg) => Box::new(by_first.get(seg).into_iter().flatten()),
                    None => Box::new(all.iter()),
                };
            let mut members = Vec::new();
            for n in within {
                if *n != p && c.matches(func, n).map_err(|e| bad(n, e))? {
                    members.push((*n).clone());
                }
            }
            members.sort();
            matched.insert(p.clone(), members);
        }
        Ok(NameMatching {
            func,
            patterns,
            sources,
            by_segment,
            matched_by,
            matched,
            nodes,
            targets: HashMap::new(),
        })
    }

    /// A name or rule value of this role type that is a pattern, compiled.
    pub(super) fn compiled(&self, name: &str) -> Option<&Compiled> {
        self.patterns.get(name).or_else(|| self.targets.get(name))
    }

    /// The pattern `b` compiles to, `None` when it is a plain name.
    pub(super) fn pattern_of<'s>(
        &'s self,
        b: &str,
    ) -> Result<Option<std::borrow::Cow<'s, Compiled>>, EvalError> {
        if let Some(c) = self.compiled(b) {
            return Ok(Some(std::borrow::Cow::Borrowed(c)));
        }
        if self.nodes.values().any(|n| n.contains(b)) {
            return Ok(None);
        }
        let c = compile(self.func, b, &mut HashMap::new()).map_err(EvalError)?;
        Ok((!literal(self.func, &c)).then_some(std::borrow::Cow::Owned(c)))
    }
}

impl DomainMatching {
    pub(super) fn build(
        func: Func,
        graph: &HashMap<String, HashMap<String, Vec<String>>>,
        line_of: &dyn Fn(&str) -> (String, Vec<String>),
    ) -> Result<DomainMatching, CompileError> {
        let mut regexes = HashMap::new();
        let mut domains: Vec<&String> = graph.keys().collect();
        domains.sort();
        let mut patterns = Vec::new();
        for d in &domains {
            let c = compile(func, d, &mut regexes)
                .map_err(|message| invalid(line_of(d), format!("domain {message}")))?;
            if !literal(func, &c) {
                patterns.push(((*d).clone(), c));
            }
        }
        let mut inherits = HashMap::new();
        for d in &domains {
            let mut list = vec![(*d).clone()];
            for (p, c) in &patterns {
                if p != *d && c.matches(func, d).map_err(|e| invalid(line_of(d), e.0))? {
                    list.push(p.clone());
                }
            }
            inherits.insert((*d).clone(), list);
        }
        Ok(DomainMatching {
            func,
            inherits,
            patterns,
        })
    }
}
