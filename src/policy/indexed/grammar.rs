//! The matcher grammar: tokens, then a syntax tree, with rhai's precedence (what casbin-rs evaluates).

use super::{
    ast::{Arg, Expr, GetFrom, Getter, Pattern, RField, Shared},
    compile::compile,
    error::Unsupported,
    functions::Func,
};
use foldhash::{HashMap, HashMapExt as _};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    And,
    Or,
    Not,
    Eq,
    Ne,
}

/// Splits casbin-rs's escaped matcher (`r.sub` already `r_sub`) into tokens.
pub(super) fn tokenize(m: &str) -> Result<Vec<Tok>, Unsupported> {
    let mut out = Vec::new();
    let mut chars = m.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let mut two = |second: char, tok: Tok| -> Result<Tok, Unsupported> {
            match chars.next_if(|&(_, n)| n == second) {
                Some(_) => Ok(tok),
                None => Err(format!("`{c}` at byte {i} of the matcher")),
            }
        };
        let tok = match c {
            c if c.is_whitespace() => continue,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '&' => two('&', Tok::And)?,
            '|' => two('|', Tok::Or)?,
            '=' => two('=', Tok::Eq)?,
            '!' => match chars.next_if(|&(_, n)| n == '=') {
                Some(_) => Tok::Ne,
                None => Tok::Not,
            },
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        // Rhai escapes: not worth reproducing.
                        Some((_, '\\')) | None => {
                            return Err("a string literal with escapes".into());
                        }
                        Some((_, c)) => s.push(c),
                    }
                }
                Tok::Str(s)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some((_, n)) =
                    chars.next_if(|&(_, n)| n.is_ascii_alphanumeric() || n == '_')
                {
                    s.push(n);
                }
                Tok::Ident(s)
            }
            other => return Err(format!("`{other}` in the matcher")),
        };
        out.push(tok);
    }
    Ok(out)
}

/// The request fields authzd fills itself; any other is an attribute.
pub(super) const STANDARD_FIELDS: [&str; 4] = ["r_sub", "r_dom", "r_obj", "r_act"];

/// A recursive-descent parser with Rhai's precedence: `!` binds tightest,
/// then `==`/`!=`, then `&&`, then `||`.
pub(super) struct Parser<'a> {
    pub(super) tokens: Vec<Tok>,
    pub(super) at: usize,
    pub(super) r_tokens: &'a [String],
    pub(super) p_tokens: &'a [String],
    /// Role definition name → (role type index, number of fields).
    pub(super) role_arity: &'a HashMap<&'a str, (usize, usize)>,
    /// `(function, policy field)` of each `Pattern::Rule` slot.
    pub(super) slots: Vec<(Func, usize)>,
}

/// An operand before we know whether it is compared.
pub(super) enum Operand {
    Value(Arg),
    Bool(Expr),
}

impl Parser<'_> {
    pub(super) fn parse(&mut self) -> Result<Expr, Unsupported> {
        let e = self.or()?;
        match self.tokens.get(self.at) {
            None => Ok(e),
            Some(t) => Err(format!("unexpected {t:?} in the matcher")),
        }
    }

    pub(super) fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    pub(super) fn eat(&mut self, t: &Tok) -> bool {
        let hit = self.peek() == Some(t);
        self.at += usize::from(hit);
        hit
    }

    pub(super) fn or(&mut self) -> Result<Expr, Unsupported> {
        let mut xs = vec![self.and()?];
        while self.eat(&Tok::Or) {
            xs.push(self.and()?);
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            Expr::Or(xs)
        })
    }

    pub(super) fn and(&mut self) -> Result<Expr, Unsupported> {
        let mut xs = vec![self.unary()?];
        while self.eat(&Tok::And) {
            xs.push(self.unary()?);
        }
        // Flatten `a && (b && c)`: same answers, and its conjuncts can index.
        let mut flat = Vec::with_capacity(xs.len());
        for x in xs {
            match x {
                Expr::And(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        Ok(if flat.len() == 1 {
            flat.remove(0)
        } else {
            Expr::And(flat)
        })
    }

    /// An operand, optionally compared; `!` applies to a boolean operand only.
    pub(super) fn unary(&mut self) -> Result<Expr, Unsupported> {
        if self.eat(&Tok::Not) {
            let inner = match self.operand()? {
                Operand::Bool(e) => e,
                Operand::Value(a) => return Err(format!("`!` on the value {a:?}")),
            };
            if matches!(self.peek(), Some(Tok::Eq | Tok::Ne)) {
                return Err("a comparison of a negation".into());
            }
            return Ok(Expr::Not(Box::new(inner)));
        }
        let left = self.operand()?;
        if self.peek() == Some(&Tok::Ident("in".into())) {
            self.at += 1;
            let Operand::Value(a) = left else {
                return Err("`in` after a condition".into());
            };
            let list = self.list()?;
            if matches!(self.peek(), Some(Tok::Eq | Tok::Ne)) {
                return Err("a comparison of an `in`".into());
            }
            return Ok(Expr::In(a, list));
        }
        let want = match self.peek() {
            Some(Tok::Eq) => true,
            Some(Tok::Ne) => false,
            _ => {
                return match left {
                    Operand::Bool(e) => Ok(e),
                    Operand::Value(a) => Err(format!("the value {a:?} used as a condition")),
                };
            }
        };
        self.at += 1;
        match (left, self.operand()?) {
            (Operand::Value(a), Operand::Value(b)) => {
                if matches!(self.peek(), Some(Tok::Eq | Tok::Ne)) {
                    return Err("chained comparisons".into());
                }
                Ok(Expr::Eq(a, b, want))
            }
            _ => Err("a comparison of conditions".into()),
        }
    }

    pub(super) fn operand(&mut self) -> Result<Operand, Unsupported> {
        let Some(t) = self.tokens.get(self.at).cloned() else {
            return Err("a matcher that ends early".into());
        };
        self.at += 1;
        match t {
            Tok::LParen => {
                let e = self.or()?;
                if !self.eat(&Tok::RParen) {
                    return Err("unbalanced parentheses".into());
                }
                Ok(Operand::Bool(e))
            }
            Tok::Not => {
                self.at -= 1;
                Ok(Operand::Bool(self.unary()?))
            }
            Tok::Str(s) => Ok(Operand::Value(Arg::Lit(s))),
            Tok::Ident(name) if self.eat(&Tok::LParen) => match Func::getter_by_name(&name) {
                Some(func) => self.getter(func, &name).map(Operand::Value),
                None => self.call(&name).map(Operand::Bool),
            },
            Tok::Ident(name) => self.arg_named(&name).map(Operand::Value),
            other => Err(format!("unexpected {other:?} in the matcher")),
        }
    }

    pub(super) fn arg_named(&self, name: &str) -> Result<Arg, Unsupported> {
        if self.r_tokens.iter().any(|t| t == name) {
            let f = match name {
                "r_sub" => RField::Sub,
                "r_dom" => RField::Dom,
                "r_obj" => RField::Obj,
                "r_act" => RField::Act,
                _ => {
                    let at = self
                        .r_tokens
                        .iter()
                        .filter(|t| !STANDARD_FIELDS.contains(&t.as_str()))
                        .position(|t| t == name)
                        .and_then(|i| u8::try_from(i).ok())
                        .ok_or_else(|| format!("request field `{name}`"))?;
                    RField::Attr(at)
                }
            };
            return Ok(Arg::R(f));
        }
        match self.p_tokens.iter().position(|t| t == name) {
            Some(i) => Ok(Arg::P(i)),
            None => Err(format!("matcher name `{name}`")),
        }
    }

    /// `[a, b, …]`: values only.
    pub(super) fn list(&mut self) -> Result<Vec<Arg>, Unsupported> {
        if !self.eat(&Tok::LBracket) {
            return Err("`in` without a `[…]` list".into());
        }
        let mut out = Vec::new();
        if self.eat(&Tok::RBracket) {
            return Ok(out);
        }
        loop {
            match self.operand()? {
                Operand::Value(a) => out.push(a),
                Operand::Bool(_) => return Err("a condition in an `in` list".into()),
            }
            if self.eat(&Tok::RBracket) {
                return Ok(out);
            }
            if !self.eat(&Tok::Comma) {
                return Err("an `in` list".into());
            }
        }
    }

    /// A getter whose `(` was just read: `keyGet(key, pattern)`,
    /// `keyGet2(key, pattern, name)`, `keyGet3(key, pattern, name)`.
    pub(super) fn getter(&mut self, func: Func, name: &str) -> Result<Arg, Unsupported> {
        let mut args = self.args(name)?;
        let var = match (func, args.len()) {
            (Func::KeyGet, 2) => Arg::Lit(String::new()),
            (Func::KeyGet2 | Func::KeyGet3, 3) => args.remove(2),
            (_, n) => return Err(format!("`{name}` with {n} arguments")),
        };
        let pattern = args.remove(1);
        let key = args.remove(0);
        let from = match pattern {
            Arg::P(field) => {
                self.slots.push((func, field));
                GetFrom::Rule {
                    slot: self.slots.len() - 1,
                }
            }
            Arg::Lit(s) => {
                let c = compile(func, &s, &mut HashMap::new())
                    .map_err(|e| format!("the matcher's {e}"))?;
                GetFrom::Fixed(s, Shared(std::sync::Arc::new(c)))
            }
            other => return Err(format!("`{name}` with the pattern {other:?}")),
        };
        Ok(Arg::Get(Box::new(Getter {
            func,
            key,
            from,
            var,
        })))
    }

    /// The values passed to a call whose `(` was just read.
    fn args(&mut self, name: &str) -> Result<Vec<Arg>, Unsupported> {
        let mut args = Vec::new();
        if !self.eat(&Tok::RParen) {
            loop {
                match self.operand()? {
                    Operand::Value(a) => args.push(a),
                    Operand::Bool(_) => return Err(format!("a condition passed to `{name}`")),
                }
                if self.eat(&Tok::RParen) {
                    break;
                }
                if !self.eat(&Tok::Comma) {
                    return Err(format!("the arguments of `{name}`"));
                }
            }
        }
        Ok(args)
    }

    /// The arguments of a call whose `(` was just read.
    pub(super) fn call(&mut self, name: &str) -> Result<Expr, Unsupported> {
        let args = self.args(name)?;
        if let Some(&(rt, n)) = self.role_arity.get(name) {
            return if n == args.len() {
                Ok(Expr::Role { rt, args })
            } else {
                Err(format!("`{name}` with {} arguments", args.len()))
            };
        }
        let func = Func::by_name(name).ok_or_else(|| format!("function `{name}`"))?;
        let [key, pattern] =
            <[Arg; 2]>::try_from(args).map_err(|_| format!("`{name}` without two arguments"))?;
        let pattern = match pattern {
            Arg::P(field) => {
                self.slots.push((func, field));
                Pattern::Rule {
                    slot: self.slots.len() - 1,
                }
            }
            Arg::Lit(s) => {
                let c = compile(func, &s, &mut HashMap::new())
                    .map_err(|e| format!("the matcher's {e}"))?;
                Pattern::Fixed(Box::new(c))
            }
            Arg::R(f) => Pattern::Live(f),
            Arg::Get(_) => return Err(format!("`{name}` with a computed pattern")),
        };
        Ok(Expr::Call { func, key, pattern })
    }
}

// ---------------------------------------------------------------------------
// The functions, compiled once per pattern; `Err` where casbin-rs would panic.

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(m: &str) -> Result<Expr, Unsupported> {
        let r = ["r_sub", "r_obj", "r_act"].map(String::from);
        let p = ["p_sub", "p_obj", "p_act"].map(String::from);
        let roles: HashMap<&str, (usize, usize)> =
            [("g", (0, 2)), ("g2", (1, 2))].into_iter().collect();
        let mut parser = Parser {
            tokens: tokenize(m)?,
            at: 0,
            r_tokens: &r,
            p_tokens: &p,
            role_arity: &roles,
            slots: Vec::new(),
        };
        parser.parse()
    }

    fn shape(e: &Expr) -> String {
        match e {
            Expr::And(xs) => format!(
                "and({})",
                xs.iter().map(shape).collect::<Vec<_>>().join(",")
            ),
            Expr::Or(xs) => format!("or({})", xs.iter().map(shape).collect::<Vec<_>>().join(",")),
            Expr::Not(x) => format!("not({})", shape(x)),
            Expr::Eq(_, _, true) => "eq".into(),
            Expr::Eq(_, _, false) => "ne".into(),
            Expr::Role { rt: 0, .. } => "g".into(),
            Expr::Role { .. } => "g2".into(),
            Expr::In(_, xs) => format!("in{}", xs.len()),
            Expr::Call { .. } => "call".into(),
        }
    }

    #[test]
    fn matcher_grammar_follows_rhai_precedence() {
        for (m, want) in [
            (
                "r_sub == p_sub || r_obj == p_obj && r_act == p_act",
                "or(eq,and(eq,eq))",
            ),
            (
                "(r_sub == p_sub || r_obj == p_obj) && r_act != p_act",
                "and(or(eq,eq),ne)",
            ),
            (
                "!g(r_sub, p_sub) && keyMatch(r_obj, p_obj)",
                "and(not(g),call)",
            ),
            (
                "!(r_sub == \"root\") || !!regexMatch(r_act, p_act)",
                "or(not(eq),not(not(call)))",
            ),
            (
                "g(r_sub, p_sub) && (r_obj == p_obj && r_act == p_act)",
                "and(g,eq,eq)",
            ),
            (
                "g(r_sub, p_sub) && g2(r_obj, p_obj) || r_obj in [\"a\", p_obj]",
                "or(and(g,g2),in2)",
            ),
            ("!(r_act in [])", "not(in0)"),
        ] {
            assert_eq!(shape(&parse(m).unwrap()), want, "{m}");
        }
        for m in [
            "!r_sub == p_sub",
            "r_sub",
            "r_sub == p_sub == p_obj",
            "g(r_sub, p_sub) == r_sub",
            "g(r_sub, p_sub, r_act)",
            "g3(r_sub, p_sub)",
            "r_obj in \"a\"",
            "r_obj in [\"a\"] == r_sub",
            "r_obj in [g(r_sub, p_sub)]",
            "g(r_sub, p_sub) in [\"a\"]",
            "keyGet(r_obj, p_obj)",
            "r_sub == p_sub & r_obj == p_obj",
            "r_sub == \"a\\\"b\"",
            "r_dom == p_sub",
            "(r_sub == p_sub",
            "r_sub == p_sub)",
            "regexMatch(r_obj, \"(\")",
        ] {
            assert!(parse(m).is_err(), "{m} should stay on casbin-rs");
        }
    }
}
