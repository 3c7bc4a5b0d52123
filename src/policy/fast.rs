//! An indexed, compiled evaluator with casbin-rs semantics for the common
//! model shape; anything else stays on casbin-rs (the reference).
//!
//! Supported: request `sub, obj, act` (+ optional `dom`), one policy type `p`
//! (optionally with `eft`), one role type `g` (`_, _` or `_, _, _`), the
//! allow-override, deny-override and allow-and-deny effects, and a matcher
//! that is a conjunction (`&&`) of `g(r.sub, p.sub[, r.dom])`,
//! `r.X == p.X`, `keyMatch(r.X, p.X)`, `keyMatch2(r.X, p.X)` and
//! `regexMatch(r.X, p.X)`. Patterns are compiled once per rule at load.
//! When the first term is `g(r.sub, p.sub…)` or `r.sub == p.sub`, only the
//! rules whose `p.sub` is in the subject's role closure are evaluated, in
//! policy order, so a deny costs the same at 10 and 100,000 rules.
//!
//! Decisions and the matched line equal casbin-rs's `enforce_ex`, including
//! its explain quirks (allow-and-deny reports the first allow before a deny);
//! `tests/casbin_equivalence.rs` compares them on generated policies.

use std::collections::{HashMap, HashSet, VecDeque};

use casbin::Model;
use regex::Regex;

use super::{Enforced, EvalError, Query};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    AllowOverride,
    DenyOverride,
    AllowAndDeny,
}

/// A request field: its position in `Query` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RField {
    Sub,
    Dom,
    Obj,
    Act,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Eq,
    KeyMatch,
    KeyMatch2,
    Regex,
}

#[derive(Debug, Clone)]
enum Term {
    /// `g(r.sub, p.sub)` or, with a domain, `g(r.sub, p.sub, r.dom)`.
    G { p_sub: usize },
    /// `f(r.X, p.Y)`.
    Call { func: Func, r: RField, p: usize },
}

/// One term of one rule, ready to test.
enum Compiled {
    Always,
    Text(String),
    Pattern(Regex),
    /// A keyMatch2 pattern with no regex syntax left: matched without a regex.
    Path(Vec<Piece>),
    /// The pattern does not compile: casbin-rs would panic when it reaches it.
    Broken(String),
}

struct Rule {
    values: Vec<String>,
    terms: Vec<Compiled>,
    eft: Eft,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Eft {
    Allow,
    Deny,
    Indeterminate,
}

/// One subject's rules (ascending indices), split by the literal first path
/// segment of their object pattern when the second term is an indexable
/// `r.obj == p.obj` or `keyMatch2(r.obj, p.obj)`; rules whose first segment
/// is not a plain literal go to `any`. A rule outside the request's segment
/// bucket cannot match, so skipping it changes nothing.
#[derive(Default)]
struct Bucket {
    by_segment: HashMap<String, Vec<u32>>,
    any: Vec<u32>,
}

impl Bucket {
    fn candidates<'a>(&'a self, segment: Option<&str>) -> impl Iterator<Item = u32> + 'a {
        let hit = segment.and_then(|s| self.by_segment.get(s));
        hit.into_iter().flatten().chain(self.any.iter()).copied()
    }
}

/// The first path segment: `/a/b` → `a`, `/` → ``; other strings are their own segment.
fn first_segment(s: &str) -> &str {
    match s.strip_prefix('/') {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None => s,
    }
}

/// The literal first segment a rule's object term demands, if it demands one.
fn rule_segment(func: Func, value: &str, compiled: &Compiled) -> Option<String> {
    match (func, compiled) {
        (Func::Eq, _) => Some(first_segment(value).to_string()),
        (Func::KeyMatch2, Compiled::Pattern(_) | Compiled::Path(_)) => {
            let rest = value.strip_prefix('/')?;
            let seg = rest.split('/').next().unwrap_or(rest);
            // Regex syntax or keyMatch2 syntax in the segment: not a plain literal.
            let special = |c: char| ":*.^$|?+()[]{}\\".contains(c);
            (!seg.contains(special)).then(|| seg.to_string())
        }
        _ => None,
    }
}

/// Why a model stays on casbin-rs.
pub type Unsupported = String;

pub struct FastPolicy {
    effect: Effect,
    terms: Vec<Term>,
    rules: Vec<Rule>,
    /// Rule indices by `p.sub`, when the first term selects on the subject.
    by_sub: Option<HashMap<String, Bucket>>,
    /// Role edges by domain ("" without domains).
    graph: HashMap<String, HashMap<String, Vec<String>>>,
    with_domain: bool,
}

/// Deepest role chain the fast path accepts; casbin-rs stops role traversal at
/// a depth of 10, so staying well below it keeps both answers identical.
const MAX_CHAIN: usize = 5;

fn r_field(name: &str) -> Option<RField> {
    Some(match name {
        "r_sub" => RField::Sub,
        "r_dom" => RField::Dom,
        "r_obj" => RField::Obj,
        "r_act" => RField::Act,
        _ => return None,
    })
}

impl FastPolicy {
    /// Compiles the model and policy casbin-rs loaded (same rules, same order), or says why not.
    pub fn compile(model: &dyn Model) -> Result<FastPolicy, Unsupported> {
        let m = model.get_model();
        let one = |sec: &str| -> Result<Option<&casbin::Assertion>, Unsupported> {
            match m.get(sec) {
                None => Ok(None),
                Some(map) if map.len() == 1 => Ok(map.get(sec)),
                Some(_) => Err(format!("more than one `{sec}` definition")),
            }
        };
        let p = one("p")?.ok_or("no policy definition")?;
        let e = one("e")?.ok_or("no effect")?;
        let matcher = one("m")?.ok_or("no matcher")?;
        let g = one("g")?;
        let effect = match e.value.as_str() {
            "some(where (p_eft == allow))" => Effect::AllowOverride,
            "!some(where (p_eft == deny))" => Effect::DenyOverride,
            "some(where (p_eft == allow)) && !some(where (p_eft == deny))" => Effect::AllowAndDeny,
            other => return Err(format!("effect `{other}`")),
        };
        let with_domain = match g.map(|g| g.value.matches('_').count()) {
            None | Some(2) => false,
            Some(3) => true,
            Some(n) => return Err(format!("role definition with {n} fields")),
        };
        let p_index = |name: &str| p.tokens.iter().position(|t| t == name);
        let terms = parse_matcher(&matcher.value, &p_index, with_domain, g.is_some())?;
        let eft_at = p_index("p_eft");
        let mut rules = Vec::new();
        let mut regexes = HashMap::new();
        for values in p.get_policy() {
            if values.len() != p.tokens.len() {
                return Err("policy line arity".into());
            }
            let compiled = terms
                .iter()
                .map(|t| compile_term(t, values, &mut regexes))
                .collect();
            let eft = match eft_at.map(|i| values[i].as_str()) {
                None | Some("allow") => Eft::Allow,
                Some("deny") => Eft::Deny,
                Some(_) => Eft::Indeterminate,
            };
            rules.push(Rule {
                values: values.clone(),
                terms: compiled,
                eft,
            });
        }
        let mut graph: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
        for values in g.map(|g| g.get_policy().iter()).into_iter().flatten() {
            let dom = if with_domain {
                values.get(2).cloned().unwrap_or_default()
            } else {
                String::new()
            };
            let (Some(a), Some(b)) = (values.first(), values.get(1)) else {
                return Err("short g line".into());
            };
            graph
                .entry(dom)
                .or_default()
                .entry(a.clone())
                .or_default()
                .push(b.clone());
        }
        if rules.is_empty() {
            // casbin-rs evaluates the matcher once against empty values then; leave that to it.
            return Err("an empty policy".into());
        }
        if longest_chain(&graph) > MAX_CHAIN {
            return Err(format!("a role chain deeper than {MAX_CHAIN}"));
        }
        // The object term can split buckets only when it directly follows the
        // subject term: nothing that could fail evaluation runs before it.
        let obj_func = match terms.get(1) {
            Some(Term::Call {
                func: f @ (Func::Eq | Func::KeyMatch2),
                r: RField::Obj,
                ..
            }) => Some(*f),
            _ => None,
        };
        let by_sub = match terms.first() {
            Some(Term::G { p_sub })
            | Some(Term::Call {
                func: Func::Eq,
                r: RField::Sub,
                p: p_sub,
            }) => {
                let mut map: HashMap<String, Bucket> = HashMap::new();
                for (i, r) in rules.iter().enumerate() {
                    let bucket = map.entry(r.values[*p_sub].clone()).or_default();
                    let seg = match (obj_func, &terms[1..], &r.terms[1..]) {
                        (Some(f), [Term::Call { p, .. }, ..], [c, ..]) => {
                            rule_segment(f, &r.values[*p], c)
                        }
                        _ => None,
                    };
                    match seg {
                        Some(seg) => bucket.by_segment.entry(seg).or_default().push(i as u32),
                        None => bucket.any.push(i as u32),
                    }
                }
                Some(map)
            }
            _ => None,
        };
        Ok(FastPolicy {
            effect,
            terms,
            rules,
            by_sub,
            graph,
            with_domain,
        })
    }

    /// Evaluates `q` exactly as casbin-rs would with `q.roles` as `g` lines.
    pub fn enforce(&self, q: &Query<'_>) -> Result<Enforced, EvalError> {
        let closure = self.closure(q);
        let mut verdict = Stream::new(self.effect);
        let mut check = |i: usize| -> Result<bool, EvalError> {
            let rule = &self.rules[i];
            if self.matches(rule, q, &closure)? {
                Ok(verdict.push(rule.eft, i))
            } else {
                Ok(false)
            }
        };
        // Indexed: the buckets of the subject (`r.sub == p.sub`) or of its whole
        // role closure (`g`), merged and sorted, since policy order decides the
        // first match and the explain line. Unindexed: every rule, in order.
        let candidates = self.by_sub.as_ref().map(|index| {
            let by_role = matches!(self.terms.first(), Some(Term::G { .. }));
            let segment = Some(first_segment(q.resource));
            let mut c: Vec<u32> = closure
                .iter()
                .filter(|s| by_role || **s == q.subject)
                .filter_map(|s| index.get(*s))
                .flat_map(|b| b.candidates(segment))
                .collect();
            c.sort_unstable();
            c
        });
        let stopped = match candidates {
            Some(c) => c
                .into_iter()
                .map(|i| check(i as usize))
                .find(|r| !matches!(r, Ok(false))),
            None => (0..self.rules.len())
                .map(&mut check)
                .find(|r| !matches!(r, Ok(false))),
        };
        if let Some(Err(e)) = stopped {
            return Err(e);
        }
        let (allowed, at) = verdict.finish();
        Ok(Enforced {
            allowed,
            matched: at.map(|i| self.rules[i].values.clone()).unwrap_or_default(),
        })
    }

    /// The subject, its stored roles, and the request's roles, transitively.
    fn closure<'a>(&'a self, q: &'a Query<'a>) -> HashSet<&'a str> {
        let mut seen: HashSet<&str> = HashSet::new();
        seen.insert(q.subject);
        let dom = if self.with_domain { q.domain } else { "" };
        let edges = self.graph.get(dom);
        let mut queue: VecDeque<&str> = VecDeque::new();
        queue.push_back(q.subject);
        for r in q.roles {
            if seen.insert(r) {
                queue.push_back(r);
            }
        }
        while let Some(node) = queue.pop_front() {
            for next in edges.and_then(|e| e.get(node)).into_iter().flatten() {
                if seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
        seen
    }

    fn matches(
        &self,
        rule: &Rule,
        q: &Query<'_>,
        closure: &HashSet<&str>,
    ) -> Result<bool, EvalError> {
        for (term, compiled) in self.terms.iter().zip(&rule.terms) {
            let ok = match (term, compiled) {
                (Term::G { p_sub }, _) => closure.contains(rule.values[*p_sub].as_str()),
                (Term::Call { func, r, .. }, c) => {
                    let input = match r {
                        RField::Sub => q.subject,
                        RField::Dom => q.domain,
                        RField::Obj => q.resource,
                        RField::Act => q.action,
                    };
                    match (func, c) {
                        (_, Compiled::Broken(why)) => return Err(EvalError(why.clone())),
                        (Func::Eq, Compiled::Text(t)) => input == t,
                        (Func::KeyMatch, Compiled::Text(t)) => key_match(input, t)?,
                        (_, Compiled::Pattern(re)) => re.is_match(input),
                        (_, Compiled::Path(pieces)) => path_match(pieces, input),
                        _ => true,
                    }
                }
            };
            // `&&` short-circuits left to right, as in casbin-rs.
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// casbin-rs's `key_match`, except that where it would slice a string
/// mid-character (and panic) this is an evaluation error.
fn key_match(key1: &str, key2: &str) -> Result<bool, EvalError> {
    let Some(i) = key2.find('*') else {
        return Ok(key1 == key2);
    };
    if key1.len() > i {
        if !key1.is_char_boundary(i) {
            return Err(EvalError(
                "keyMatch would slice the request mid-character".into(),
            ));
        }
        Ok(key1[..i] == key2[..i])
    } else {
        Ok(key1 == &key2[..i])
    }
}

/// Compiles one rule's term. `regexes` shares compiled patterns between rules
/// (a 100k-rule policy often repeats a handful of `regexMatch` patterns).
fn compile_term(term: &Term, values: &[String], regexes: &mut HashMap<String, Regex>) -> Compiled {
    let Term::Call { func, p, .. } = term else {
        return Compiled::Always;
    };
    let v = &values[*p];
    let mut regex = |pattern: &str, what: &str| -> Compiled {
        if let Some(re) = regexes.get(pattern) {
            return Compiled::Pattern(re.clone());
        }
        match Regex::new(pattern) {
            Ok(re) => {
                regexes.insert(pattern.to_string(), re.clone());
                Compiled::Pattern(re)
            }
            Err(e) => Compiled::Broken(format!("invalid {what} pattern `{v}`: {e}")),
        }
    };
    match func {
        Func::Eq | Func::KeyMatch => Compiled::Text(v.clone()),
        Func::Regex => regex(v, "regexMatch"),
        Func::KeyMatch2 => match key2_pieces(v) {
            Some(pieces) => Compiled::Path(pieces),
            None => {
                // casbin-rs's key_match2 transformation, done once instead of per request.
                let mut k = if v.contains("/*") {
                    v.replace("/*", "/.*")
                } else {
                    v.clone()
                };
                k = key2_params().replace_all(&k, "[^/]+").into_owned();
                regex(&format!("^{k}$"), "keyMatch2")
            }
        },
    }
}

/// A piece of a keyMatch2 pattern after casbin-rs's transformation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// `[^/]+`, from `:name`.
    Segment,
    /// `.*`, from `/*`: anything but a newline (regex `.`).
    Any,
}

/// Splits a keyMatch2 pattern into pieces when its literal text holds no regex
/// syntax (the usual `/users/:id/*`); `None` means a regex is needed.
fn key2_pieces(pattern: &str) -> Option<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                literal.push('/');
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                pieces.push(Piece::Any);
            }
            ':' => {
                // `:[^/]*` becomes `[^/]+`: the name runs to the next `/`.
                while chars.peek().is_some_and(|&n| n != '/') {
                    chars.next();
                }
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                pieces.push(Piece::Segment);
            }
            c if "\\.+*?()|[]{}^$#&-~ ".contains(c) || c.is_whitespace() => return None,
            c => literal.push(c),
        }
    }
    pieces.push(Piece::Literal(literal));
    pieces.retain(|p| !matches!(p, Piece::Literal(l) if l.is_empty()));
    Some(pieces)
}

/// Matches `input` against pieces exactly as the anchored regex would.
fn path_match(pieces: &[Piece], input: &str) -> bool {
    match pieces.split_first() {
        None => input.is_empty(),
        Some((Piece::Literal(l), rest)) => input
            .strip_prefix(l.as_str())
            .is_some_and(|r| path_match(rest, r)),
        Some((Piece::Segment, rest)) => {
            // One or more non-`/` characters, then the rest: try each split point.
            let run = input.find('/').unwrap_or(input.len());
            let ends = input[..run]
                .char_indices()
                .map(|(i, _)| i)
                .skip(1)
                .chain(std::iter::once(run));
            ends.filter(|&i| i > 0)
                .any(|i| path_match(rest, &input[i..]))
        }
        Some((Piece::Any, rest)) => {
            let run = input.find('\n').unwrap_or(input.len());
            let ends = input[..run]
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(run));
            ends.into_iter().any(|i| path_match(rest, &input[i..]))
        }
    }
}

#[expect(
    clippy::expect_used,
    reason = "a constant pattern that always compiles"
)]
fn key2_params() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    // The same expression casbin-rs uses.
    RE.get_or_init(|| Regex::new(r":[^/]*").expect("constant regex"))
}

/// Parses the escaped matcher (`g(r_sub, p_sub) && keyMatch2(r_obj, p_obj)`).
fn parse_matcher(
    m: &str,
    p_index: &dyn Fn(&str) -> Option<usize>,
    with_domain: bool,
    has_g: bool,
) -> Result<Vec<Term>, Unsupported> {
    if m.contains("||") || m.contains('!') {
        return Err(format!("matcher `{m}` uses `||` or `!`"));
    }
    let p_field = |name: &str| p_index(name).ok_or_else(|| format!("matcher field `{name}`"));
    let mut terms = Vec::new();
    for raw in m.split("&&") {
        let t = raw.trim();
        let t = t
            .strip_prefix('(')
            .and_then(|x| x.strip_suffix(')'))
            .map(str::trim)
            .unwrap_or(t);
        if let Some((a, b)) = t.split_once("==") {
            let (a, b) = (a.trim(), b.trim());
            let (r, p) = if a.starts_with("r_") { (a, b) } else { (b, a) };
            let r = r_field(r).ok_or_else(|| format!("matcher term `{t}`"))?;
            terms.push(Term::Call {
                func: Func::Eq,
                r,
                p: p_field(p)?,
            });
            continue;
        }
        let (name, args) = t
            .split_once('(')
            .ok_or_else(|| format!("matcher term `{t}`"))?;
        let args: Vec<&str> = args
            .strip_suffix(')')
            .ok_or_else(|| format!("matcher term `{t}`"))?
            .split(',')
            .map(str::trim)
            .collect();
        match (name.trim(), args.as_slice()) {
            ("g", ["r_sub", ps]) if has_g && !with_domain => terms.push(Term::G {
                p_sub: p_field(ps)?,
            }),
            ("g", ["r_sub", ps, "r_dom"]) if has_g && with_domain => terms.push(Term::G {
                p_sub: p_field(ps)?,
            }),
            (f @ ("keyMatch" | "keyMatch2" | "regexMatch"), [r, p]) => {
                let func = match f {
                    "keyMatch" => Func::KeyMatch,
                    "keyMatch2" => Func::KeyMatch2,
                    _ => Func::Regex,
                };
                let r = r_field(r).ok_or_else(|| format!("matcher term `{t}`"))?;
                terms.push(Term::Call {
                    func,
                    r,
                    p: p_field(p)?,
                });
            }
            _ => return Err(format!("matcher term `{t}`")),
        }
    }
    if terms.is_empty() {
        return Err("empty matcher".into());
    }
    Ok(terms)
}

/// Longest chain of role edges from any node (cycles count as deep).
fn longest_chain(graph: &HashMap<String, HashMap<String, Vec<String>>>) -> usize {
    let mut longest = 0;
    for edges in graph.values() {
        for start in edges.keys() {
            let mut depth = 0;
            let mut frontier: Vec<&str> = vec![start];
            let mut seen: HashSet<&str> = HashSet::new();
            while !frontier.is_empty() && depth <= MAX_CHAIN {
                let next: Vec<&str> = frontier
                    .iter()
                    .filter_map(|n| edges.get(*n))
                    .flatten()
                    .map(String::as_str)
                    .filter(|n| seen.insert(n))
                    .collect();
                if next.is_empty() {
                    break;
                }
                depth += 1;
                frontier = next;
            }
            longest = longest.max(depth);
        }
    }
    longest
}

/// casbin-rs's DefaultEffectStream, with its explain indices.
struct Stream {
    effect: Effect,
    res: bool,
    first_allow: Option<usize>,
    decided_by: Option<usize>,
}

impl Stream {
    fn new(effect: Effect) -> Self {
        Self {
            effect,
            res: effect == Effect::DenyOverride,
            first_allow: None,
            decided_by: None,
        }
    }

    /// Feeds a matching rule; `true` when the answer is final.
    fn push(&mut self, eft: Eft, i: usize) -> bool {
        match (self.effect, eft) {
            (Effect::AllowOverride, Eft::Allow) => {
                self.res = true;
                self.decided_by = Some(i);
                true
            }
            (Effect::DenyOverride, Eft::Deny) => {
                self.res = false;
                self.decided_by = Some(i);
                true
            }
            (Effect::AllowAndDeny, Eft::Allow) => {
                self.res = true;
                self.first_allow.get_or_insert(i);
                false
            }
            (Effect::AllowAndDeny, Eft::Deny) => {
                self.res = false;
                self.decided_by = Some(i);
                true
            }
            _ => false,
        }
    }

    /// The answer and the explain index casbin-rs reports first.
    fn finish(self) -> (bool, Option<usize>) {
        (self.res, self.first_allow.or(self.decided_by))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// casbin-rs's own key_match2, the reference.
    fn reference(key1: &str, key2: &str) -> bool {
        casbin::function_map::key_match2(key1, key2)
    }

    #[test]
    fn path_pieces_match_like_casbin() {
        for (pattern, inputs) in [
            (
                "/users/:id",
                vec!["/users/1", "/users/", "/users/1/x", "/users/\u{e4}\u{e4}"],
            ),
            (
                "/users/:id/*",
                vec!["/users/1/", "/users/1/a/b", "/users/1", "/users//a"],
            ),
            ("/*", vec!["/", "/a", "/a\nb", ""]),
            ("/a/*/b", vec!["/a/x/b", "/a//b", "/a/b", "/a/x/y/b"]),
            ("/:", vec!["/x", "/"]),
            ("/res1/:id", vec!["/res1/42", "/res10/42"]),
        ] {
            let pieces = key2_pieces(pattern).unwrap();
            for i in inputs {
                assert_eq!(
                    path_match(&pieces, i),
                    reference(i, pattern),
                    "{pattern} vs {i:?}"
                );
            }
        }
        assert!(
            key2_pieces("/a.b/:id").is_none(),
            "regex syntax keeps the regex"
        );
    }

    proptest! {
        #[test]
        fn path_pieces_equal_casbin(pattern in "(/(:[a-z]{0,3}|[a-z]{1,3}|\\*)){1,4}", input in "(/[a-z0-9\n]{0,3}){0,5}") {
            if let Some(pieces) = key2_pieces(&pattern) {
                prop_assert_eq!(path_match(&pieces, &input), reference(&input, &pattern), "{} vs {:?}", pattern, input);
            }
        }
    }
}
