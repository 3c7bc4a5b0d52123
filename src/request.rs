//! The canonical form of what the upstream will execute: its path and its
//! method (`docs/security.md`, "Canonical paths"). Pure, allocation-free for
//! paths that are already canonical, and fuzzed (`fuzz/fuzz_targets/path.rs`).
//!
//! Gateways hand authzd the raw request path, and upstream servers resolve it
//! their own way: dot segments, percent-encoding, `;` parameters, backslashes,
//! repeated slashes. A path that matches an allowed pattern literally but
//! resolves elsewhere is an authorization bypass, so a path is either in one
//! canonical spelling or it is refused; it is never matched as a raw string.
//!
//! The canonical spelling, and what the policy sees:
//! - it starts with `/`; the query string was removed before this module;
//! - no segment is `.` or `..`, plain or percent-encoded in any case mix, and
//!   no segment ends with `.` or a space (Windows servers drop those);
//! - no empty segment (`//`); one trailing `/` is folded away unless
//!   `trailing_slash = "distinct"`;
//! - no raw `\` or `;`, and no percent-encoded `/`, `\` or `;`;
//! - no control character (raw or encoded), no malformed escape (`%`, `%4`,
//!   `%zz`), and the decoded bytes are UTF-8 (so overlong forms like `%c0%ae`
//!   are refused);
//! - no `%25` that decodes into another escape (`%252e`): double decoding;
//! - no character that Unicode compatibility normalization (NFKC), which
//!   some upstreams apply, turns into ASCII (`／` → `/`, `︰` → `..`,
//!   `𝐚` → `a`): the set comes from the Unicode tables;
//! - in `reject` mode, no percent-encoded unreserved character (`%61` for `a`).
//!
//! Legitimate escapes keep working and are decoded for the policy:
//! `/files/my%20file` is decided as `/files/my file`, `/caf%C3%A9` and a raw
//! `/café` both as `/café`, `/100%25` as `/100%`. Routes and policy patterns
//! are written in that decoded form. With `path_case = "insensitive"` the
//! decoded path is lower-cased (and so are route and policy patterns).
//!
//! `normalize` mode (for gateways that normalize and forward the normalized
//! path) resolves what RFC 3986 normalization does instead of refusing it:
//! encoded unreserved characters are decoded, dot segments removed, repeated
//! slashes merged. Everything whose meaning differs between upstreams stays
//! refused in every mode.

pub mod body;

use std::borrow::Cow;

use crate::config::{MethodOverride, Noncanonical, PathCase, RequestConfig, TrailingSlash};

/// Headers that common frameworks execute as the request's method
/// (Rails, Express `method-override`, Laravel, Spring's `HiddenHttpMethodFilter`).
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The query parameter that Rails, Laravel and Express `method-override` read.
const METHOD_OVERRIDE_PARAM: &str = "_method";

/// Why a request is not in canonical form. `Display` is the decision's detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("path does not start with `/`")]
    NotAbsolute,
    #[error("path has a `.` or `..` segment (plain or percent-encoded)")]
    DotSegment,
    #[error("path has a segment ending in `.` or a space")]
    TrailingDot,
    #[error("path has an empty segment (`//`)")]
    EmptySegment,
    #[error("path has a backslash")]
    Backslash,
    #[error("path has an encoded `/` or `\\` (`%2F`, `%5C`)")]
    EncodedSlash,
    #[error("path has a `;` parameter (raw or `%3B`)")]
    Semicolon,
    #[error("path has a control character (raw or encoded)")]
    Control,
    #[error("path has a malformed percent-escape")]
    BadEscape,
    #[error("path is not UTF-8 once decoded")]
    NotUtf8,
    #[error("path percent-encodes an unreserved character (`{0}`)")]
    EncodedUnreserved(char),
    #[error("path has a double-encoded escape (`%25` followed by hex digits)")]
    DoubleEncoded,
    #[error("path has a character that Unicode normalization turns into ASCII (`{0}`)")]
    Lookalike(char),
    #[error("path is {0} bytes long; at most {MAX_PATH_BYTES} are decided")]
    TooLong(usize),
    #[error("method `{0}` is not an upper-case HTTP method name")]
    Method(String),
    #[error("`{0}` asks the upstream to execute another method")]
    MethodOverride(String),
    #[error("method overrides disagree: `{0}` and `{1}`")]
    ConflictingOverrides(String, String),
    #[error("form body was cut short by the gateway: a `_method` field could hide past the cut")]
    PartialBody,
    #[error("multipart body has no single `boundary`, so its fields cannot be read")]
    BadFormBody,
    #[error("body field `_method` is not a single method")]
    UnclearOverride,
}

/// A request's method and path in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical<'a> {
    pub method: Cow<'a, str>,
    pub path: Cow<'a, str>,
    /// A method the upstream may execute instead, which must be allowed too:
    /// an authorized override (`method_override = "authorize"`), or `GET` for `HEAD`.
    pub overridden: Option<String>,
}

/// The method-override values a request carries, by header (see
/// [`METHOD_OVERRIDE_HEADERS`]); the `_method` query parameter is read from the path.
pub type Overrides<'a> = [Option<&'a str>; 3];

/// Canonical method and path of an HTTP request (`raw_path` may carry a
/// query), with the overrides of its headers, query and, where the gateway
/// forwarded it, `body`.
pub fn canonical<'a>(
    method: &'a str,
    raw_path: &'a str,
    overrides: &Overrides<'a>,
    body: Option<&body::Body<'a>>,
    rules: &RequestConfig,
) -> Result<Canonical<'a>, Rejected> {
    let (path, query) = split_query(raw_path);
    let method = canonical_method(method, rules)?;
    let path = canonical_path(path, rules)?;
    // Most frameworks answer HEAD by running the GET handler (Express,
    // Flask, Spring, Go's ServeMux): a HEAD must be allowed as GET too, or a
    // rule that denies GET would leak the resource's headers.
    let overridden = override_method(overrides, query, body, rules)?
        .or_else(|| (method == "HEAD").then(|| "GET".to_string()));
    Ok(Canonical {
        method,
        path,
        overridden,
    })
}

/// The resource of a direct check: a URL path (starting with `/`) gets the
/// same protection as a request path; anything else is taken as it is.
pub fn canonical_resource<'a>(
    resource: &'a str,
    rules: &RequestConfig,
) -> Result<Cow<'a, str>, Rejected> {
    if resource.starts_with('/') {
        canonical_path(split_query(resource).0, rules)
    } else {
        Ok(Cow::Borrowed(resource))
    }
}

/// `(path, query)`: the query (without `?`) is `None` when absent. A fragment is dropped.
pub fn split_query(raw: &str) -> (&str, Option<&str>) {
    let raw = raw.split('#').next().unwrap_or(raw);
    match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    }
}

/// An HTTP method is a token (RFC 9110 §9.1). Upstreams differ on case, so a
/// lower-case method is refused (or upper-cased in `normalize` mode): a deny
/// rule on `DELETE` then holds for `delete`.
fn canonical_method<'a>(method: &'a str, rules: &RequestConfig) -> Result<Cow<'a, str>, Rejected> {
    let bad = || Rejected::Method(crate::token::clip(method));
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(bad());
    }
    if !method.bytes().any(|b| b.is_ascii_lowercase()) {
        return Ok(Cow::Borrowed(method));
    }
    match rules.noncanonical {
        Noncanonical::Reject => Err(bad()),
        Noncanonical::Normalize => Ok(Cow::Owned(method.to_ascii_uppercase())),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The method an override asks for, or a refusal (`method_override = "reject"`).
fn override_method(
    headers: &Overrides<'_>,
    query: Option<&str>,
    body: Option<&body::Body<'_>>,
    rules: &RequestConfig,
) -> Result<Option<String>, Rejected> {
    let from_query = query.and_then(query_override);
    let from_body = match body {
        Some(b) => body::overrides(b)?,
        None => Vec::new(),
    };
    let named = METHOD_OVERRIDE_HEADERS
        .iter()
        .zip(headers)
        .filter_map(|(name, v)| v.map(|v| ((*name).to_string(), Some(Cow::Borrowed(v)))))
        .chain(from_query.map(|v| (format!("?{METHOD_OVERRIDE_PARAM}="), Some(v))))
        .chain(from_body.into_iter().map(|f| {
            let value = match f {
                body::Field::Value(v) => Some(v),
                body::Field::Unclear => None,
            };
            (format!("body field `{METHOD_OVERRIDE_PARAM}`"), value)
        }));
    let mut found: Option<(String, String)> = None;
    for (name, value) in named {
        if rules.method_override == MethodOverride::Reject {
            return Err(Rejected::MethodOverride(name));
        }
        let value = value.ok_or(Rejected::UnclearOverride)?;
        let method = canonical_method(value.trim(), rules)?.into_owned();
        match &found {
            Some((_, m)) if *m != method => {
                return Err(Rejected::ConflictingOverrides(m.clone(), method));
            }
            _ => found = Some((name, method)),
        }
    }
    Ok(found.map(|(_, m)| m))
}

/// The value of `_method` in a query string (name matched after decoding, any case).
fn query_override(query: &str) -> Option<Cow<'_, str>> {
    query.split(['&', ';']).find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
        k.eq_ignore_ascii_case(METHOD_OVERRIDE_PARAM)
            .then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
    })
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The longest path (without its query) that is decided at all: longer ones
/// are refused, so unauthenticated input cannot make authzd hold, match or
/// log megabytes.
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// The canonical, decoded form of `path` (no query), or why there is none.
pub fn canonical_path<'a>(path: &'a str, rules: &RequestConfig) -> Result<Cow<'a, str>, Rejected> {
    if path.len() > MAX_PATH_BYTES {
        return Err(Rejected::TooLong(path.len()));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Rejected::NotAbsolute);
    };
    let normalize = rules.noncanonical == Noncanonical::Normalize;
    // Fast path: most paths have nothing to decode, resolve or fold.
    if is_plain(rest, rules) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    // Byte offsets in `out` where each kept segment starts (for `..` in normalize mode).
    let mut starts: Vec<usize> = Vec::new();
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut trailing = false;
    for (i, raw) in segments.iter().enumerate() {
        let (seg, encoded_unreserved) = decode_segment(raw)?;
        if seg.is_empty() {
            if i == last {
                trailing = i > 0;
                continue;
            }
            if normalize {
                continue;
            }
            return Err(Rejected::EmptySegment);
        }
        match seg.as_slice() {
            b"." | b".." if !normalize => return Err(Rejected::DotSegment),
            b"." => {
                trailing = i == last;
                continue;
            }
            b".." => {
                if let Some(start) = starts.pop() {
                    out.truncate(start);
                }
                trailing = i == last;
                continue;
            }
            s if s.ends_with(b".") || s.ends_with(b" ") => return Err(Rejected::TrailingDot),
            _ => {}
        }
        if let Some(c) = encoded_unreserved
            && !normalize
        {
            return Err(Rejected::EncodedUnreserved(c));
        }
        starts.push(out.len());
        out.push(b'/');
        out.extend_from_slice(&seg);
    }
    // The root, or a trailing `/` kept distinct.
    if out.is_empty() || (trailing && rules.trailing_slash == TrailingSlash::Distinct) {
        out.push(b'/');
    }
    let decoded = String::from_utf8(out).map_err(|_| Rejected::NotUtf8)?;
    check_chars(&decoded)?;
    Ok(Cow::Owned(decoded))
}

/// The form routes and policy patterns match a canonical path in: itself,
/// or under `path_case = "insensitive"` its lower case ([`fold_case`]).
pub fn matched_form<'a>(path: &'a str, rules: &RequestConfig) -> Cow<'a, str> {
    match rules.path_case {
        PathCase::Sensitive => Cow::Borrowed(path),
        PathCase::Insensitive => fold_case(path),
    }
}

/// Lower case, one character at a time (no context rules such as a final
/// sigma), so that every character of the result can be traced back to
/// the character it came from ([`folded_len`]). Paths, routes and policy
/// patterns are all folded with this one function.
pub fn fold_case(s: &str) -> Cow<'_, str> {
    let unchanged = match s.is_ascii() {
        true => !s.bytes().any(|b| b.is_ascii_uppercase()),
        false => s.chars().all(|c| c.to_lowercase().eq(std::iter::once(c))),
    };
    match unchanged {
        true => Cow::Borrowed(s),
        false => Cow::Owned(s.chars().flat_map(char::to_lowercase).collect()),
    }
}

/// The UTF-8 length of `c`'s lower case in [`fold_case`].
pub fn folded_len(c: char) -> usize {
    c.to_lowercase().map(char::len_utf8).sum()
}

/// True when `rest` (the path after its leading `/`) is already canonical as
/// it stands: printable ASCII without `%`, `\`, `;`, no empty, dot or
/// trailing-dot segment, no trailing `/` to fold.
fn is_plain(rest: &str, rules: &RequestConfig) -> bool {
    let b = rest.as_bytes();
    let ok_byte = |c: &u8| (0x21..0x7f).contains(c) && !matches!(c, b'%' | b'\\' | b';');
    if !b.iter().all(ok_byte) {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    let mut segs = rest.split('/').peekable();
    while let Some(s) = segs.next() {
        let last = segs.peek().is_none();
        if s.is_empty() {
            // A trailing `/` is plain only where it stays distinct.
            if !(last && rules.trailing_slash == TrailingSlash::Distinct) {
                return false;
            }
        } else if s.ends_with('.') {
            return false;
        }
    }
    true
}

/// Decodes one segment's escapes, refusing what upstreams resolve
/// differently; also says which unreserved character, if any, was encoded.
fn decode_segment(raw: &str) -> Result<(Vec<u8>, Option<char>), Rejected> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut encoded_unreserved = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' => return Err(Rejected::Backslash),
            b';' => return Err(Rejected::Semicolon),
            0..=0x1f | 0x7f => return Err(Rejected::Control),
            b'%' => {
                let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(Rejected::BadEscape);
                };
                let v = h * 16 + l;
                match v {
                    b'/' | b'\\' => return Err(Rejected::EncodedSlash),
                    b';' => return Err(Rejected::Semicolon),
                    0..=0x1f | 0x7f => return Err(Rejected::Control),
                    v if is_unreserved(v) => {
                        encoded_unreserved.get_or_insert(char::from(v));
                    }
                    _ => {}
                }
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Decoded once, the segment must hold no escape of its own: a
    // double-decoding upstream would decode it again (`%252e` and, once
    // unreserved characters are decoded, `%25%32%65` both become `%2e`).
    // Checked on the output, not the input (found by fuzz/path).
    if out
        .windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
    {
        return Err(Rejected::DoubleEncoded);
    }
    Ok((out, encoded_unreserved))
}

/// Characters that are not ASCII but that upstreams may turn into ASCII
/// path syntax: C1 controls, and every character whose compatibility
/// normalization (NFKC, applied by IIS, some Java and Python stacks and WAF
/// normalisers) differs from it and holds ASCII: `／` → `/`, `︰` → `..`,
/// `𝐚` → `a`, `℀` → `a/c`. The set is the Unicode tables' (see
/// [`nfkc_reaches_ascii`]), never a hand-written list. Precomposed letters
/// that stay non-ASCII (`é`) are their own NFKC form and pass.
fn check_chars(decoded: &str) -> Result<(), Rejected> {
    for c in decoded.chars().filter(|c| !c.is_ascii()) {
        if ('\u{80}'..='\u{9f}').contains(&c) {
            return Err(Rejected::Control);
        }
        if nfkc_reaches_ascii(c) || BEST_FIT_SLASHES.contains(&c) {
            return Err(Rejected::Lookalike(c));
        }
    }
    Ok(())
}

/// Slash and backslash look-alikes that NFKC leaves alone but Windows'
/// "best fit" conversion to a code page turns into `/` or `\` (the
/// conversion IIS and Win32 file APIs apply to non-Unicode paths).
const BEST_FIT_SLASHES: [char; 5] = ['\u{2044}', '\u{2215}', '\u{2216}', '\u{29f8}', '\u{29f9}'];

/// Whether `c` is not ASCII, its NFKC form differs from it, and that form
/// holds an ASCII character. Cheap for the usual character: the quick check
/// answers "already NFKC" from one table lookup.
pub fn nfkc_reaches_ascii(c: char) -> bool {
    use unicode_normalization::{IsNormalized, UnicodeNormalization as _, is_nfkc_quick};
    if c.is_ascii() || is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes {
        return false;
    }
    let (mut changed, mut ascii) = (false, false);
    for (i, d) in std::iter::once(c).nfkc().enumerate() {
        changed |= i > 0 || d != c;
        ascii |= d.is_ascii();
    }
    changed && ascii
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules(noncanonical: Noncanonical) -> RequestConfig {
        RequestConfig {
            noncanonical,
            ..RequestConfig::default()
        }
    }

    fn reject(p: &str) -> Result<String, Rejected> {
        canonical_path(p, &RequestConfig::default()).map(Cow::into_owned)
    }

    fn normalize(p: &str) -> Result<String, Rejected> {
        canonical_path(p, &rules(Noncanonical::Normalize)).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_pass_unchanged_and_borrowed() {
        for p in [
            "/",
            "/admin/secret",
            "/a-b_c~d/e.json",
            "/v1.2/x",
            "/api/items/7",
            "/a:b@c!$&'()*+,=",
            "/.well-known/jwks.json",
            "/..a/b..c",
        ] {
            let got = canonical_path(p, &RequestConfig::default()).unwrap();
            assert!(matches!(got, Cow::Borrowed(_)), "{p}");
            assert_eq!(got, p);
        }
    }

    #[test]
    fn legitimate_escapes_are_decoded() {
        assert_eq!(reject("/files/my%20file").unwrap(), "/files/my file");
        assert_eq!(reject("/caf%C3%A9").unwrap(), "/café");
        assert_eq!(reject("/caf%c3%a9").unwrap(), "/café");
        assert_eq!(reject("/café").unwrap(), "/café");
        assert_eq!(reject("/100%25").unwrap(), "/100%");
        assert_eq!(reject("/100%25x").unwrap(), "/100%x");
        assert_eq!(reject("/a%3Fb%23c").unwrap(), "/a?b#c");
        assert_eq!(reject("/%E6%97%A5%E6%9C%AC").unwrap(), "/日本");
    }

    #[test]
    fn trailing_slash_is_folded_by_default() {
        assert_eq!(reject("/admin/secret/").unwrap(), "/admin/secret");
        let distinct = RequestConfig {
            trailing_slash: TrailingSlash::Distinct,
            ..RequestConfig::default()
        };
        assert_eq!(canonical_path("/a/", &distinct).unwrap(), "/a/");
        assert_eq!(reject("/").unwrap(), "/");
        assert_eq!(reject("//"), Err(Rejected::EmptySegment));
    }

    #[test]
    fn case_is_folded_for_matching_only() {
        let ci = RequestConfig {
            path_case: PathCase::Insensitive,
            ..RequestConfig::default()
        };
        // The canonical path keeps its case: it is what the handler receives.
        assert_eq!(
            canonical_path("/Admin/SECRET", &ci).unwrap(),
            "/Admin/SECRET"
        );
        assert_eq!(matched_form("/Admin/SECRET", &ci), "/admin/secret");
        assert_eq!(matched_form("/ÄDMIN", &ci), "/ädmin");
        assert!(matches!(matched_form("/admin", &ci), Cow::Borrowed(_)));
        assert_eq!(matched_form("/Admin", &RequestConfig::default()), "/Admin");
        // One character at a time: every folded character traces back.
        for s in ["/ΣΑΣ", "/İstanbul", "/Straße", "/ǅ"] {
            let f = fold_case(s);
            assert_eq!(f.len(), s.chars().map(folded_len).sum::<usize>(), "{s}");
        }
    }

    /// Every spelling an attacker would try, and what it is refused as.
    #[test]
    fn hostile_paths_are_refused() {
        use Rejected::*;
        let cases: &[(&str, Rejected)] = &[
            ("admin", NotAbsolute),
            ("", NotAbsolute),
            ("*", NotAbsolute),
            ("http://x/admin", NotAbsolute),
            ("/public/../admin/secret", DotSegment),
            ("/public/./admin", DotSegment),
            ("/public/..", DotSegment),
            ("/..", DotSegment),
            ("/public/%2e%2e/admin/secret", DotSegment),
            ("/public/%2E%2e/admin", DotSegment),
            ("/public/.%2E/admin", DotSegment),
            ("/public/%2e/admin", DotSegment),
            ("/public/.../admin", TrailingDot),
            ("/admin./secret", TrailingDot),
            ("/admin%20/secret", TrailingDot),
            ("//admin/secret", EmptySegment),
            ("/admin//secret", EmptySegment),
            ("/public%2F..%2Fadmin", EncodedSlash),
            ("/public%2f..%2fadmin", EncodedSlash),
            ("/public%5C..%5Cadmin", EncodedSlash),
            ("/public\\..\\admin", Backslash),
            ("/admin\\secret", Backslash),
            ("/admin;x/secret", Semicolon),
            ("/public/..;/admin", Semicolon),
            ("/admin%3Bx/secret", Semicolon),
            ("/admin/secret;jsessionid=1", Semicolon),
            ("/admin%00/secret", Control),
            ("/admin\0/secret", Control),
            ("/admin%0a", Control),
            ("/admin%0D%0Ax-authz-subject:root", Control),
            ("/admin\t", Control),
            ("/admin%7f", Control),
            ("/a%C2%85", Control),
            ("/admin%", BadEscape),
            ("/admin%4", BadEscape),
            ("/admin%zz", BadEscape),
            ("/admin%%32%65", BadEscape),
            ("/public/%c0%ae%c0%ae/admin", NotUtf8),
            ("/%ff", NotUtf8),
            ("/%e0%80%af", NotUtf8),
            ("/%61dmin/secret", EncodedUnreserved('a')),
            ("/admin/%73ecret", EncodedUnreserved('s')),
            ("/a%2Db", EncodedUnreserved('-')),
            ("/a%7e", EncodedUnreserved('~')),
            ("/public/%252e%252e/admin", DoubleEncoded),
            ("/admin%252fsecret", DoubleEncoded),
            ("/a%25%32%65", DoubleEncoded),
            ("/a%25%41%42", DoubleEncoded),
            ("/%EF%BC%8Fadmin", Lookalike('／')),
            ("/public/%EF%BC%8E%EF%BC%8E/admin", Lookalike('．')),
            ("/ａｄｍｉｎ/secret", Lookalike('ａ')),
            ("/a\u{2215}b", Lookalike('\u{2215}')),
            ("/public/\u{2025}/admin", Lookalike('\u{2025}')),
            ("/public/%EF%B8%B0/AdminUser", Lookalike('\u{fe30}')),
            ("/\u{1d41a}dmin/secret", Lookalike('\u{1d41a}')),
            ("/%F0%9D%90%9Admin/secret", Lookalike('\u{1d41a}')),
            ("/a\u{2100}b", Lookalike('\u{2100}')),
            ("/x\u{fb01}le", Lookalike('\u{fb01}')),
            ("/v\u{b2}", Lookalike('\u{b2}')),
        ];
        for (p, want) in cases {
            assert_eq!(reject(p).as_ref(), Err(want), "{p:?}");
        }
    }

    /// Every code point the normalization tables know: a character is
    /// refused exactly when its NFKC form (computed here on the whole
    /// string, the oracle) differs from it and holds ASCII, in every mode,
    /// raw or percent-encoded; precomposed letters that stay non-ASCII pass.
    #[test]
    fn compatibility_characters_that_become_ascii_are_refused_in_every_mode() {
        use unicode_normalization::UnicodeNormalization as _;
        let modes = [Noncanonical::Reject, Noncanonical::Normalize].map(|n| RequestConfig {
            noncanonical: n,
            ..RequestConfig::default()
        });
        let mut refused = 0;
        for c in ('\u{a0}'..=char::MAX).filter(|c| !BEST_FIT_SLASHES.contains(c)) {
            let nfkc: String = c.to_string().nfkc().collect();
            let want = nfkc != c.to_string() && nfkc.chars().any(|d| d.is_ascii());
            let raw = format!("/a{c}b");
            let got = canonical_path(&raw, &modes[c as usize % 2]);
            if want {
                refused += 1;
                assert_eq!(got, Err(Rejected::Lookalike(c)), "{c:?} -> {nfkc:?}");
            } else {
                assert_eq!(got.as_deref(), Ok(raw.as_str()), "{c:?} -> {nfkc:?}");
            }
        }
        // 1,677 in the crate's tables; the hand list this replaced held 104.
        assert!(refused > 1500, "{refused}");
        for c in ['\u{fe30}', '\u{1d41a}', '\u{ff0f}', '\u{2100}'] {
            let encoded: String = c.to_string().bytes().map(|b| format!("%{b:02X}")).collect();
            for m in &modes {
                assert_eq!(
                    canonical_path(&format!("/a{encoded}"), m),
                    Err(Rejected::Lookalike(c))
                );
            }
        }
        for ok in ["/café", "/日本/東京", "/ñandú", "/Ærø", "/straße"] {
            assert_eq!(reject(ok).unwrap(), ok);
        }
    }

    #[test]
    fn paths_over_8_kib_are_refused() {
        let at_limit = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert_eq!(reject(&at_limit).unwrap(), at_limit);
        let over = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(reject(&over), Err(Rejected::TooLong(MAX_PATH_BYTES + 1)));
        assert_eq!(normalize(&over), Err(Rejected::TooLong(MAX_PATH_BYTES + 1)));
    }

    #[test]
    fn normalize_mode_resolves_what_rfc_3986_resolves() {
        assert_eq!(
            normalize("/public/../admin/secret").unwrap(),
            "/admin/secret"
        );
        assert_eq!(normalize("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalize("/a/./b/").unwrap(), "/a/b");
        assert_eq!(normalize("//admin//secret").unwrap(), "/admin/secret");
        assert_eq!(normalize("/%61dmin").unwrap(), "/admin");
        assert_eq!(normalize("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(normalize("/a/..").unwrap(), "/");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a");
        // What upstreams resolve differently stays refused.
        for p in [
            "/public/%25%32%65%25%32%65/admin",
            "/25%25%25%25%25%455%25",
            "/%25%45%35",
            "/public%2F..%2Fadmin",
            "/a\\b",
            "/admin;x",
            "/a%00",
            "/a%zz",
            "/%c0%ae",
            "/%252e",
            "/admin./x",
            "/%EF%BC%8F",
        ] {
            assert!(normalize(p).is_err(), "{p}");
        }
    }

    #[test]
    fn methods_are_tokens_in_upper_case() {
        let r = RequestConfig::default();
        assert_eq!(canonical_method("GET", &r).unwrap(), "GET");
        assert_eq!(canonical_method("M-SEARCH", &r).unwrap(), "M-SEARCH");
        for bad in ["get", "Delete", "", "GE T", "GET\r\n", "GÉT"] {
            assert!(canonical_method(bad, &r).is_err(), "{bad:?}");
        }
        let n = rules(Noncanonical::Normalize);
        assert_eq!(canonical_method("delete", &n).unwrap(), "DELETE");
        assert!(canonical_method("GE T", &n).is_err());
    }

    #[test]
    fn method_overrides_are_refused_or_authorized() {
        let r = RequestConfig::default();
        let none: Overrides<'_> = [None, None, None];
        assert_eq!(
            canonical("POST", "/a", &none, None, &r).unwrap().overridden,
            None
        );
        // HEAD runs the GET handler: it must be allowed as GET too.
        assert_eq!(
            canonical("HEAD", "/a", &none, None, &r)
                .unwrap()
                .overridden
                .as_deref(),
            Some("GET")
        );
        for h in 0..3 {
            let mut o: Overrides<'_> = [None, None, None];
            o[h] = Some("DELETE");
            let e = canonical("POST", "/a", &o, None, &r).unwrap_err();
            assert_eq!(
                e,
                Rejected::MethodOverride(METHOD_OVERRIDE_HEADERS[h].into())
            );
        }
        for q in [
            "/a?_method=DELETE",
            "/a?x=1&_METHOD=delete",
            "/a?%5Fmethod=PUT",
        ] {
            assert!(
                matches!(
                    canonical("POST", q, &none, None, &r),
                    Err(Rejected::MethodOverride(_))
                ),
                "{q}"
            );
        }
        let auth = RequestConfig {
            method_override: MethodOverride::Authorize,
            ..RequestConfig::default()
        };
        let c = canonical(
            "POST",
            "/a?_method=DELETE",
            &[Some(" DELETE "), None, None],
            None,
            &auth,
        );
        assert_eq!(c.unwrap().overridden.as_deref(), Some("DELETE"));
        assert!(matches!(
            canonical(
                "POST",
                "/a",
                &[Some("DELETE"), Some("PUT"), None],
                None,
                &auth
            ),
            Err(Rejected::ConflictingOverrides(..))
        ));
        assert!(matches!(
            canonical("POST", "/a", &[Some("delete"), None, None], None, &auth),
            Err(Rejected::Method(_))
        ));
    }

    #[test]
    fn query_and_fragment_are_split_off() {
        assert_eq!(split_query("/a/b?x=1#f"), ("/a/b", Some("x=1")));
        assert_eq!(split_query("/a#f?x"), ("/a", None));
        assert_eq!(split_query("/a?"), ("/a", Some("")));
    }

    #[test]
    fn resources_that_are_paths_are_canonicalized() {
        let r = RequestConfig::default();
        assert_eq!(canonical_resource("doc:42", &r).unwrap(), "doc:42");
        assert_eq!(canonical_resource("/a/b?x=1", &r).unwrap(), "/a/b");
        assert_eq!(
            canonical_resource("/public/../admin", &r),
            Err(Rejected::DotSegment)
        );
    }

    /// RFC 3986 §5.2.4 plus decoding, as an upstream resolves a path: the
    /// reference the property below compares with.
    fn resolve(path: &str) -> String {
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let decoded = decoded.replace('\\', "/");
        let mut out: Vec<&str> = Vec::new();
        for seg in decoded.split('/') {
            let seg = seg.split(';').next().unwrap_or("");
            match seg {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                s => out.push(s),
            }
        }
        format!("/{}", out.join("/"))
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a",
            "admin",
            "public",
            "secret",
            ".",
            "..",
            "%2e",
            "%2E%2e",
            "%2f",
            "%5c",
            "\\",
            ";x",
            "%3b",
            "%00",
            "%25",
            "%252e",
            "%61",
            "%20",
            "%",
            "%zz",
            "/",
            "//",
            "~",
            "%25%32%65",
            "%25%45",
            "2",
            "e",
        ])
    }

    proptest! {
        /// Whatever a path spells, the canonical form the policy sees is where
        /// an upstream lands (so a rule on that form holds for the upstream).
        #[test]
        fn accepted_paths_resolve_to_their_canonical_form(
            pieces in prop::collection::vec(piece(), 0..8),
            normalize_mode in any::<bool>(),
        ) {
            let path = format!("/{}", pieces.concat());
            let r = rules(if normalize_mode { Noncanonical::Normalize } else { Noncanonical::Reject });
            if let Ok(c) = canonical_path(&path, &r) {
                prop_assert_eq!(resolve(&path), c.as_ref(), "{}", path);
            }
        }

        /// No panic on any input; the output is canonical (accepted unchanged).
        #[test]
        fn canonical_output_is_a_fixed_point(path in "/\\PC{0,30}") {
            let r = RequestConfig::default();
            if let Ok(c) = canonical_path(&path, &r) {
                // The output is decoded; re-encode `%` so it reads as the same path.
                let again = c.replace('%', "%25");
                let twice = canonical_path(&again, &r).map(Cow::into_owned);
                if !c.contains(['?', '#', ' ']) {
                    prop_assert_eq!(twice.as_deref(), Ok(c.as_ref()));
                }
            }
        }
    }
}
