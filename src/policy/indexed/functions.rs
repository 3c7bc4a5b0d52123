//! The Casbin functions themselves: `keyMatch`..`keyMatch5` path matching, their parameter syntaxes, and the small path matcher that replaces a regex.

use std::sync::OnceLock;

use regex::Regex;

/// casbin-rs's `key_match` on bytes: where casbin-rs would slice the request
/// mid-character (and panic), the bytes differ anyway, so this answers false.
pub(super) fn key_match(key1: &str, key2: &str) -> bool {
    let Some(i) = key2.find('*') else {
        return key1 == key2;
    };
    let (k1, k2) = (key1.as_bytes(), key2.as_bytes());
    if k1.len() > i {
        k1[..i] == k2[..i]
    } else {
        k1 == &k2[..i]
    }
}

/// A piece of a keyMatch2/3/5 pattern after casbin-rs's transformation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Literal(Box<str>),
    /// `[^/]+`, from a parameter.
    Segment,
    /// `.*`, from `/*`: anything but a newline (regex `.`).
    Any,
}

/// How a pattern spells a parameter.
#[derive(Clone, Copy)]
pub(super) enum Params {
    /// keyMatch2: `:[^/]*`.
    Colon,
    /// keyMatch3: `\{[^/]*\}` (greedy: to the last `}` before the next `/`).
    Braces,
    /// keyMatch5: `\{[^/]+?\}` (lazy: to the first `}` after at least one character).
    LazyBraces,
}

/// Splits a pattern into pieces when its literal text holds no regex syntax
/// (the usual `/users/:id/*`); `None` means a regex is needed.
pub(super) fn pieces(pattern: &str, params: Params) -> Option<Box<[Piece]>> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        let param_len = match (params, c) {
            (Params::Colon, ':') => Some(after.find('/').unwrap_or(after.len())),
            (Params::Braces, '{') => {
                let run = &after[..after.find('/').unwrap_or(after.len())];
                run.rfind('}').map(|j| j + 1)
            }
            (Params::LazyBraces, '{') => {
                let first = after.chars().next().filter(|&f| f != '/')?;
                let tail = &after[first.len_utf8()..];
                let run = &tail[..tail.find('/').unwrap_or(tail.len())];
                run.find('}').map(|j| first.len_utf8() + j + 1)
            }
            _ => None,
        };
        if let Some(len) = param_len {
            pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
            pieces.push(Piece::Segment);
            rest = &after[len..];
            continue;
        }
        match c {
            '/' if after.starts_with('*') => {
                literal.push('/');
                pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
                pieces.push(Piece::Any);
                rest = &after[1..];
                continue;
            }
            c if "\\.+*?()|[]{}^$#&-~".contains(c) || c.is_whitespace() => return None,
            c => literal.push(c),
        }
        rest = after;
    }
    pieces.push(Piece::Literal(literal.into()));
    pieces.retain(|p| !matches!(p, Piece::Literal(l) if l.is_empty()));
    Some(pieces.into_boxed_slice())
}

/// Matches `input` against pieces exactly as the anchored regex would.
pub(super) fn path_match(pieces: &[Piece], input: &str) -> bool {
    match pieces.split_first() {
        None => input.is_empty(),
        Some((Piece::Literal(l), rest)) => input
            .strip_prefix(&**l)
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

#[expect(clippy::expect_used, reason = "constant patterns that always compile")]
pub(super) fn constant(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("constant regex"))
}

/// The expressions casbin-rs uses to find parameters.
pub(super) fn key2_params() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    constant(&RE, r":[^/]*")
}

/// Go Casbin's (and casbin-rs's) `keyGet2` parameters: one or more characters.
pub(super) fn get2_params() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    constant(&RE, r":[^/]+")
}

pub(super) fn key3_params() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    constant(&RE, r"\{[^/]*\}")
}

pub(super) fn key4_params() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    constant(&RE, r"\{[^/]+?\}")
}

/// casbin-rs's built-in matching functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    KeyMatch,
    KeyMatch2,
    KeyMatch3,
    KeyMatch4,
    KeyMatch5,
    Regex,
    Glob,
    Ip,
    /// The getters: a value out of the key, not a test.
    KeyGet,
    KeyGet2,
    KeyGet3,
}

impl Func {
    pub(super) fn by_name(name: &str) -> Option<Func> {
        Some(match name {
            "keyMatch" => Func::KeyMatch,
            "keyMatch2" => Func::KeyMatch2,
            "keyMatch3" => Func::KeyMatch3,
            "keyMatch4" => Func::KeyMatch4,
            "keyMatch5" => Func::KeyMatch5,
            "regexMatch" => Func::Regex,
            "globMatch" => Func::Glob,
            "ipMatch" => Func::Ip,
            _ => return None,
        })
    }

    /// `keyGet`, `keyGet2`, `keyGet3`: functions whose value is a string.
    pub(super) fn getter_by_name(name: &str) -> Option<Func> {
        Some(match name {
            "keyGet" => Func::KeyGet,
            "keyGet2" => Func::KeyGet2,
            "keyGet3" => Func::KeyGet3,
            _ => return None,
        })
    }
}

/// Go Casbin's `KeyGet`: what `key` holds after the part of `pattern` before
/// its first `*`, when `key` is longer and starts with that part; else `""`.
/// `prefix` is that part (`None`: the pattern has no `*`).
pub(super) fn key_get<'k>(key: &'k str, prefix: Option<&str>) -> &'k str {
    match prefix {
        Some(p) if key.len() > p.len() && key.as_bytes().starts_with(p.as_bytes()) => {
            // `p` ends on a character boundary, so `key` does too there.
            key.get(p.len()..).unwrap_or("")
        }
        _ => "",
    }
}

/// The first path segment: `/a/b` → `a`, `/` → ``; other strings are their own segment.
pub(super) fn first_segment(s: &str) -> &str {
    match s.strip_prefix('/') {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None => s,
    }
}
