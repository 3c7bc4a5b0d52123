//! What a model and its policy lines must mean before they load
//! (`docs/security.md`, "What authzd refuses to load"). A type checker,
//! not a linter: each finding is an error naming the file, the line or
//! section, and the text, and the revision is refused. Warnings about cost
//! live elsewhere; a mistake is never one.
//!
//! Casbin evaluates a matcher lazily and a policy line as data, so text
//! that cannot mean what it says usually loads fine and then quietly
//! denies everything (a misspelt function), or quietly allows more than it
//! says (a line whose extra field Casbin drops). This module reads the
//! matcher the way casbin-rs's expression engine will, and each line the
//! way the function that receives it will, and refuses:
//! - a call to a function authzd does not have, or with the wrong number
//!   of arguments; a name that is no request or policy field (a string
//!   written without quotes); a method or property on a value; `=`, `&`
//!   or `|` where `==`, `&&` or `||` was meant; unbalanced brackets;
//! - a policy field the matcher never reads (every line would grant for
//!   any value of it), a request attribute or domain it never reads, and
//!   role lines of a type the matcher never asks;
//! - an `eft` other than `allow` or `deny`;
//! - a pattern its function reads differently from how it is written:
//!   route syntax (`{id}`, `{proxy+}`) in a keyMatch2 pattern, `:id` in a
//!   keyMatch3/4/5 pattern, parameters in a keyMatch pattern, a `*` that
//!   is a regex repetition rather than a wildcard, a regular expression
//!   that does not compile;
//! - the same for the rules `eval(p.…)` evaluates.

use casbin::{DefaultModel, Model};

use super::{PolicyLoadError, indexed, lines::Parsed};

/// The functions a matcher may call besides its role definitions, and how
/// many arguments each takes (casbin-rs's function map, plus `eval`).
const FUNCTIONS: [(&str, usize); 12] = [
    ("keyMatch", 2),
    ("keyMatch2", 2),
    ("keyMatch3", 2),
    ("keyMatch4", 2),
    ("keyMatch5", 2),
    ("keyGet", 2),
    ("keyGet2", 3),
    ("keyGet3", 3),
    ("regexMatch", 2),
    ("globMatch", 2),
    ("ipMatch", 2),
    ("eval", 1),
];

/// The model sections the checks read.
#[derive(Debug, Clone)]
struct Sections {
    r: Vec<String>,
    p: Vec<String>,
    /// Role definitions and their field counts (`g = _, _`: 2).
    roles: Vec<(String, usize)>,
    matcher: String,
}

impl Sections {
    fn of(model: &DefaultModel) -> Option<Sections> {
        let m = model.get_model();
        let one = |sec: &str| m.get(sec).and_then(|s| s.get(sec));
        let mut roles: Vec<(String, usize)> = m
            .get("g")
            .map(|g| {
                g.iter()
                    .map(|(n, a)| (n.clone(), a.value.matches('_').count()))
                    .collect()
            })
            .unwrap_or_default();
        roles.sort_unstable();
        Some(Sections {
            r: one("r")?.tokens.clone(),
            p: one("p")?.tokens.clone(),
            roles,
            matcher: one("m")?.value.clone(),
        })
    }
}

/// What each policy line must satisfy, read once from the model: kept with
/// the policy so that a line added by an incremental update is checked as
/// a full load would check it.
#[derive(Debug, Clone)]
pub(super) struct LineRules {
    sections: Sections,
    eft_at: Option<usize>,
    /// (function, policy field) for each pattern a function takes from a line.
    patterns: Vec<(String, usize)>,
    /// Policy fields `eval(p.…)` evaluates.
    evals: Vec<usize>,
    /// Role types the matcher calls.
    called: Vec<String>,
}

impl LineRules {
    /// What is wrong with one line (`ptype` first, then its values).
    pub(super) fn line(&self, fields: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let ptype = fields[0].as_str();
        let values = &fields[1..];
        if ptype.starts_with('g') {
            if !self.called.iter().any(|c| c == ptype) {
                out.push(format!(
                    "`{ptype}` lines are never asked: the matcher never calls `{ptype}(…)`, so this role would be ignored"
                ));
            }
            return out;
        }
        if ptype != "p" {
            return out; // `p2`…: a type the model defines for other readers
        }
        if let Some(v) = self.eft_at.and_then(|at| values.get(at))
            && v != "allow"
            && v != "deny"
        {
            out.push(format!(
                "`eft` is `{v}`: it must be `allow` or `deny` (Casbin would ignore the line)"
            ));
        }
        for (func, field) in &self.patterns {
            if let Some(v) = values.get(*field)
                && let Err(m) = pattern(func, v)
            {
                out.push(m);
            }
        }
        for field in &self.evals {
            let Some(rule) = values.get(*field) else {
                continue;
            };
            let rule = escape(rule);
            if let Err(problems) = read_matcher(&rule, &self.sections) {
                for m in problems {
                    out.push(format!(
                        "rule `{}` (evaluated by `eval`): {m}",
                        shown(&rule)
                    ));
                }
            }
        }
        out
    }
}

/// Everything wrong with `model` and its `lines`, each naming where; and,
/// when the model itself is sound, the rules each line must satisfy.
pub(super) fn check(
    model: &DefaultModel,
    model_name: &str,
    lines: &[Parsed],
    policy_name: &str,
) -> (Vec<PolicyLoadError>, Option<LineRules>) {
    let Some(s) = Sections::of(model) else {
        return (Vec::new(), None); // `request_fields` already names the missing section
    };
    let model_err = |message: String| PolicyLoadError::Model {
        path: model_name.to_string(),
        message,
    };
    let mut out = Vec::new();
    let read = match read_matcher(&s.matcher, &s) {
        Ok(read) => read,
        Err(problems) => {
            out.extend(
                problems
                    .into_iter()
                    .map(|m| model_err(format!("matcher `{}`: {m}", shown(&s.matcher)))),
            );
            return (out, None);
        }
    };
    for f in s.r.iter().filter(|f| !read.names.contains(f)) {
        if f != "r_sub" && f != "r_obj" && f != "r_act" {
            out.push(model_err(format!(
                "the matcher never reads request field `{}`: {}",
                shown(f),
                if f == "r_dom" {
                    "every grant would hold in every domain"
                } else {
                    "the attribute would be filled and never compared"
                }
            )));
        }
    }
    for f in s.p.iter().filter(|f| !read.names.contains(f)) {
        // `eft` is read by the effect, `priority` orders the lines.
        if f != "p_eft" && f != "p_priority" {
            out.push(model_err(format!(
                "the matcher never reads policy field `{}`: every line would hold for any value of it",
                shown(f)
            )));
        }
    }
    let rules = LineRules {
        eft_at: s.p.iter().position(|t| t == "p_eft"),
        patterns: read.patterns,
        evals: read.evals,
        called: read.calls.into_iter().map(|c| c.name).collect(),
        sections: s,
    };
    // One complaint per unused role type, at its first line.
    let mut unused_roles: Vec<&str> = Vec::new();
    for line in lines {
        for message in rules.line(&line.fields) {
            let ptype = line.fields[0].as_str();
            if message.contains("are never asked") {
                if unused_roles.contains(&ptype) {
                    continue;
                }
                unused_roles.push(ptype);
            }
            out.push(PolicyLoadError::Line {
                path: policy_name.to_string(),
                line: line.at + 1,
                message,
            });
        }
    }
    (out, Some(rules))
}

/// Casbin's escaping of a rule: `r.sub` → `r_sub` (what `eval` evaluates).
fn escape(rule: &str) -> String {
    let mut out = String::with_capacity(rule.len());
    for (i, c) in rule.char_indices() {
        if c == '.' && i > 0 {
            // `r.`/`p.`/`r2.`… at the start of a word.
            let head = rule[..i]
                .rsplit(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .next();
            if let Some(h) = head
                && (h.starts_with('r') || h.starts_with('p'))
                && h[1..].bytes().all(|d| d.is_ascii_digit())
            {
                out.push('_');
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// A name as the model's author wrote it (`r_sub` → `r.sub`).
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if start && (b[i] == b'r' || b[i] == b'p') {
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j < b.len() && b[j] == b'_' {
                out.push_str(&s[i..j]);
                out.push('.');
                i = j + 1;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('?');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// What a matcher reads: the names it uses, its calls, which policy field
/// each pattern function receives, and the fields `eval` evaluates.
#[derive(Default)]
struct Read {
    names: Vec<String>,
    calls: Vec<Call>,
    /// (function, policy field index) for a pattern taken from a line.
    patterns: Vec<(String, usize)>,
    /// Policy field indexes of `eval(p.…)` arguments.
    evals: Vec<usize>,
}

struct Call {
    name: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Num,
    Punct(char),
    /// `==`, `!=`, `&&`, `||`, `<=`, `>=`.
    Op(&'static str),
}

fn tokens(m: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = m.chars().peekable();
    while let Some(c) = it.next() {
        let tok = match c {
            c if c.is_whitespace() => continue,
            '"' | '`' => {
                let mut s = String::new();
                loop {
                    match it.next() {
                        Some(q) if q == c => break,
                        Some('\\') => {
                            if let Some(e) = it.next() {
                                s.push(e);
                            }
                        }
                        Some(ch) => s.push(ch),
                        None => return Err("a string that is never closed".into()),
                    }
                }
                Tok::Str(s)
            }
            '\'' => {
                return Err("`'`: strings are written in double quotes (`\"admin\"`)".into());
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some(&n) = it.peek() {
                    if !(n.is_ascii_alphanumeric() || n == '_') {
                        break;
                    }
                    s.push(n);
                    it.next();
                }
                Tok::Name(s)
            }
            c if c.is_ascii_digit() => {
                while it
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '.')
                {
                    it.next();
                }
                Tok::Num
            }
            '=' | '!' | '<' | '>' | '&' | '|' => {
                let two = match (c, it.peek()) {
                    ('=', Some('=')) => Some("=="),
                    ('!', Some('=')) => Some("!="),
                    ('<', Some('=')) => Some("<="),
                    ('>', Some('=')) => Some(">="),
                    ('&', Some('&')) => Some("&&"),
                    ('|', Some('|')) => Some("||"),
                    _ => None,
                };
                match two {
                    Some(op) => {
                        it.next();
                        Tok::Op(op)
                    }
                    None => match c {
                        '=' => return Err("a single `=`: comparison is written `==`".into()),
                        '&' => return Err("a single `&`: \"and\" is written `&&`".into()),
                        '|' => return Err("a single `|`: \"or\" is written `||`".into()),
                        other => Tok::Punct(other),
                    },
                }
            }
            other => Tok::Punct(other),
        };
        out.push(tok);
    }
    Ok(out)
}

/// Reads `m` (escaped: `r_sub`) against the model's sections.
fn read_matcher(m: &str, s: &Sections) -> Result<Read, Vec<String>> {
    let toks = tokens(m).map_err(|e| vec![e])?;
    let mut read = Read::default();
    let mut problems = Vec::new();
    // Brackets balance.
    let mut stack = Vec::new();
    for t in &toks {
        match t {
            Tok::Punct(c @ ('(' | '[')) => stack.push(*c),
            Tok::Punct(c @ (')' | ']')) => {
                let want = if *c == ')' { '(' } else { '[' };
                if stack.pop() != Some(want) {
                    problems.push(format!("an unmatched `{c}`"));
                }
            }
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        problems.push(format!("a `{open}` that is never closed"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let known_fn = |name: &str| -> Option<usize> {
        FUNCTIONS
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, n)| *n)
            .or_else(|| s.roles.iter().find(|(g, _)| g == name).map(|(_, n)| *n))
    };
    for (i, t) in toks.iter().enumerate() {
        let Tok::Name(name) = t else {
            if let Tok::Punct(c) = t
                && !"()[],.!<>+-*/%".contains(*c)
            {
                problems.push(format!("`{c}` is not part of a matcher"));
            }
            continue;
        };
        let after_dot = i > 0 && toks[i - 1] == Tok::Punct('.');
        let is_call = toks.get(i + 1) == Some(&Tok::Punct('('));
        if after_dot {
            problems.push(format!(
                "`.{name}`: request and policy values are strings, with no methods or properties"
            ));
            continue;
        }
        if is_call {
            let args = arguments(&toks, i + 1);
            match known_fn(name) {
                None => problems.push(format!(
                    "calls `{name}`, which authzd does not have (it has {}{})",
                    FUNCTIONS.map(|(f, _)| format!("`{f}`")).join(", "),
                    s.roles
                        .iter()
                        .map(|(g, _)| format!(", `{g}`"))
                        .collect::<String>()
                )),
                Some(n) if n != args.len() => problems.push(format!(
                    "calls `{name}` with {} argument{}; it takes {n}",
                    args.len(),
                    if args.len() == 1 { "" } else { "s" }
                )),
                Some(_) => {
                    let field_of = |arg: &[Tok]| match arg {
                        [Tok::Name(f)] => s.p.iter().position(|p| p == f),
                        _ => None,
                    };
                    if name == "eval" {
                        read.evals.extend(args.first().and_then(|a| field_of(a)));
                    } else if !s.roles.iter().any(|(g, _)| g == name) {
                        // The pattern: the second argument.
                        match args.get(1).map(|a| a.as_slice()) {
                            Some([Tok::Str(lit)]) => {
                                if let Err(m) = pattern(name, lit) {
                                    problems.push(m);
                                }
                            }
                            Some(a) => {
                                if let Some(f) = field_of(a) {
                                    read.patterns.push((name.clone(), f));
                                }
                            }
                            None => {}
                        }
                    }
                    read.calls.push(Call { name: name.clone() });
                }
            }
            continue;
        }
        match name.as_str() {
            "true" | "false" | "in" => continue,
            _ => {}
        }
        if s.r.contains(name) || s.p.contains(name) {
            if !read.names.contains(name) {
                read.names.push(name.clone());
            }
            continue;
        }
        let fields: Vec<String> =
            s.r.iter()
                .chain(&s.p)
                .map(|f| format!("`{}`", shown(f)))
                .collect();
        problems.push(if name.starts_with("r_") || name.starts_with("p_") {
            format!(
                "names `{}`, which the request and policy definitions do not have (they have {})",
                shown(name),
                fields.join(", ")
            )
        } else {
            format!(
                "names `{name}`, which is no field ({}): a string is written in double quotes (`\"{name}\"`)",
                fields.join(", ")
            )
        });
    }
    match problems.is_empty() {
        true => Ok(read),
        false => Err(problems),
    }
}

/// The top-level arguments of the call whose `(` is at `open`.
fn arguments(toks: &[Tok], open: usize) -> Vec<Vec<Tok>> {
    let mut args = Vec::new();
    let mut cur = Vec::new();
    let mut depth = 0usize;
    for t in &toks[open + 1..] {
        match t {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct(')' | ']') if depth == 0 => break,
            Tok::Punct(')' | ']') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                args.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(t.clone());
    }
    if !cur.is_empty() || !args.is_empty() {
        args.push(cur);
    }
    args
}

/// A pattern as `func` will read it, refused where that differs from how
/// it is written (the message names the pattern and what to write).
fn pattern(func: &str, p: &str) -> Result<(), String> {
    let segments = || p.split('/');
    let braces = |s: &str| s.starts_with('{') && s.ends_with('}') && s.len() > 2;
    let colon = |s: &str| s.len() > 1 && s.starts_with(':');
    match func {
        "keyMatch" => {
            if let Some(s) = segments().find(|s| braces(s) || colon(s)) {
                return Err(format!(
                    "keyMatch pattern `{p}` has the parameter `{s}`, which keyMatch reads literally: use keyMatch2 (`:id`) or keyMatch3 (`{{id}}`)"
                ));
            }
        }
        "keyMatch2" | "keyGet2" => {
            if let Some(s) = segments().find(|s| braces(s)) {
                return Err(format!(
                    "{func} pattern `{p}` has `{s}`, route syntax that {func} reads literally: write `:{}`{}",
                    s.trim_matches(['{', '}', '+']),
                    if s.ends_with("+}") {
                        " for one segment, or `*` for any number"
                    } else {
                        ""
                    }
                ));
            }
            stray_star(func, p)?;
        }
        "keyMatch3" | "keyMatch4" | "keyMatch5" | "keyGet3" => {
            if let Some(s) = segments().find(|s| colon(s)) {
                return Err(format!(
                    "{func} pattern `{p}` has `{s}`, keyMatch2 syntax that {func} reads literally: write `{{{}}}`",
                    &s[1..]
                ));
            }
            if let Some(s) = segments().find(|s| braces(s) && s.ends_with("+}")) {
                return Err(format!(
                    "{func} pattern `{p}` has `{s}`: in {func} it matches one segment, not many as in a route; write `*` for any number of segments"
                ));
            }
            stray_star(func, p)?;
        }
        _ => {}
    }
    indexed::check_pattern(func, p)
}

/// In keyMatch2…5, only `/*` means "anything"; any other `*` repeats the
/// character before it as a regex would (`/files*` matches `/file`).
fn stray_star(func: &str, p: &str) -> Result<(), String> {
    let b = p.as_bytes();
    match b
        .iter()
        .enumerate()
        .find(|&(i, &c)| c == b'*' && (i == 0 || b[i - 1] != b'/'))
    {
        Some(_) => Err(format!(
            "{func} pattern `{p}` has a `*` that does not follow `/`: {func} reads it as a regex repetition of the character before it, not as \"anything\"; write `/*`"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn problems(model: &str, policy: &str) -> Vec<String> {
        let m = DefaultModel::from_str(model).await.unwrap();
        let arity = super::super::model::arities(&m);
        let parsed = super::super::lines::parse(policy, "policy.csv", &arity).unwrap();
        check(&m, "model.conf", &parsed, "policy.csv")
            .0
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    const HEAD: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\n";

    #[tokio::test]
    async fn the_demo_shapes_load() {
        for (m, obj) in [
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act",
                "/x/:id",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == \"*\")",
                "/x/*",
            ),
            (
                "m = r.sub == p.sub && regexMatch(r.obj, p.obj) && r.act in [\"GET\", p.act] || g(r.sub, \"root\")",
                "^/x/[0-9]+$",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch3(r.obj, p.obj) && r.act == p.act && 1 == 1",
                "/x/{id}/*",
            ),
        ] {
            let got = problems(
                &format!("{HEAD}{m}"),
                &format!("p, a, {obj}, GET\ng, u, a\n"),
            )
            .await;
            assert!(got.is_empty(), "{m}: {got:?}");
        }
    }

    #[tokio::test]
    async fn mistakes_are_named() {
        for (m, policy, want) in [
            (
                "m = g(r.sub, p.sub) && keyMatch9(r.obj, p.obj) && r.act == p.act",
                "",
                "calls `keyMatch9`",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.action",
                "",
                "`p.action`",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == GET",
                "",
                "names `GET`",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act = p.act",
                "",
                "single `=`",
            ),
            (
                "m = g(r.sub, p.sub) & keyMatch2(r.obj, p.obj) && r.act == p.act",
                "",
                "single `&`",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj && r.act == p.act",
                "",
                "never closed",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj) && r.act == p.act",
                "",
                "with 1 argument",
            ),
            (
                "m = g(r.sub, p.sub, r.obj) && keyMatch2(r.obj, p.obj) && r.act == p.act",
                "",
                "with 3 arguments",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act.len() > 0 && r.act == p.act",
                "",
                "`.len`",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj)",
                "",
                "never reads policy field `p.act`",
            ),
            (
                "m = r.sub == p.sub && keyMatch2(r.obj, p.obj) && r.act == p.act",
                "g, alice, admin\n",
                "never calls `g(…)`",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act",
                "p, a, /users/{id}, GET\n",
                "route syntax",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act",
                "p, a, /files*, GET\n",
                "does not follow `/`",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch3(r.obj, p.obj) && r.act == p.act",
                "p, a, /users/:id, GET\n",
                "keyMatch2 syntax",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch3(r.obj, p.obj) && r.act == p.act",
                "p, a, /api/{proxy+}, GET\n",
                "matches one segment",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && r.act == p.act",
                "p, a, /users/:id, GET\n",
                "reads literally",
            ),
            (
                "m = g(r.sub, p.sub) && regexMatch(r.obj, p.obj) && r.act == p.act",
                "p, a, /x(, GET\n",
                "regex",
            ),
            (
                "m = g(r.sub, p.sub) && keyMatch2(r.obj, \"/a/{id}\") && r.act == p.act && p.obj == p.obj",
                "",
                "route syntax",
            ),
        ] {
            let got = problems(&format!("{HEAD}{m}"), policy).await;
            assert!(
                got.iter().any(|g| g.contains(want)),
                "{m} / {policy}: want {want:?}, got {got:?}"
            );
        }
    }

    #[tokio::test]
    async fn eft_and_eval_rules_are_read_too() {
        let m = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = r.sub == p.sub && keyMatch2(r.obj, p.obj) && r.act == p.act\n";
        let got = problems(m, "p, a, /x, GET, alow\np, a, /y, GET, deny\n").await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("line 1") && got[0].contains("`alow`"),
            "{got:?}"
        );
        let m = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub_rule, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = eval(p.sub_rule) && r.obj == p.obj && r.act == p.act\n";
        assert!(
            problems(m, "p, r.sub == \"alice\", /x, GET\n")
                .await
                .is_empty()
        );
        let got = problems(m, "p, r.sub == alice, /x, GET\n").await;
        assert!(got.iter().any(|g| g.contains("names `alice`")), "{got:?}");
    }

    #[test]
    fn names_are_shown_as_written() {
        assert_eq!(shown("r_sub == p_obj && x_y"), "r.sub == p.obj && x_y");
        assert_eq!(escape("r.sub == \"a\" && p2.x"), "r_sub == \"a\" && p2_x");
    }
}
