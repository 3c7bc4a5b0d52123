//! Method overrides carried in a request body (`docs/security.md`, "Method
//! overrides in the body"). Pure, and fuzzed (`fuzz/fuzz_targets/form.rs`).
//!
//! Rails (`Rack::MethodOverride`), Laravel (Symfony's `getMethod`) and
//! Spring's `HiddenHttpMethodFilter` run a `POST` whose form has a field
//! `_method=DELETE` as a `DELETE`; Laravel also reads `_method` from a JSON
//! body, since it serves JSON input through the same bag. Where the body
//! reaches authzd (Envoy ext_authz with `with_request_body`), such a field is
//! an override like the headers and the query parameter.
//!
//! The reader errs on the side of finding a field: it reads every encoding
//! one of those frameworks reads, so whatever a framework would take as an
//! override, this module reports (property-tested below against a model of
//! those readers):
//! - `application/x-www-form-urlencoded`, and a body with no content type
//!   (Rack parses a typeless `POST` as a form): fields split at `&` and `;`,
//!   names and values decoded (`+` and `%XX`);
//! - `multipart/*` with a `boundary`: each part's `Content-Disposition`
//!   `name` (quoted, token, or RFC 5987 `name*`);
//! - JSON (`application/json`, `…+json`, anything with `/json`): a
//!   top-level `_method` key;
//! - a name is `_method` in any ASCII case, with leading spaces dropped and,
//!   as PHP does, ` ` and `.` read as `_` (`.method` reaches Laravel as
//!   `_method`); `_method[]` and `_method[x]` count too.
//!
//! Other content types are not forms to any of these frameworks and carry no
//! override. A body the gateway cut short could hide the field past the cut,
//! so a cut form or JSON body is refused outright.

use std::borrow::Cow;

use super::Rejected;

/// A request body as the gateway forwarded it.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    /// The request's `Content-Type` header.
    pub content_type: Option<&'a str>,
    pub bytes: &'a [u8],
    /// The gateway cut it short (Envoy: `x-envoy-auth-partial-body: true`).
    pub partial: bool,
}

/// One `_method` field found in a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<'a> {
    /// A single value: the method it asks for (not yet checked to be one).
    Value(Cow<'a, str>),
    /// An array or object (`_method[]=…`, `{"_method": [..]}`): not one method.
    Unclear,
}

/// How a framework reads a body of this content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind<'a> {
    UrlEncoded,
    Multipart(Option<&'a str>),
    Json,
    /// Not a form to any framework that reads `_method`.
    Other,
}

fn kind(content_type: Option<&str>) -> Kind<'_> {
    let Some(ct) = content_type else {
        return Kind::UrlEncoded;
    };
    let (media, params) = ct.split_once(';').unwrap_or((ct, ""));
    let media = media.trim().to_ascii_lowercase();
    if media.is_empty() || media == "application/x-www-form-urlencoded" {
        Kind::UrlEncoded
    } else if media.starts_with("multipart/") {
        Kind::Multipart(boundary(params))
    } else if media.contains("/json") || media.ends_with("+json") {
        Kind::Json
    } else {
        Kind::Other
    }
}

/// The `boundary` parameter, unquoted; `None` when absent, empty or given twice.
fn boundary(params: &str) -> Option<&str> {
    let mut found = None;
    for p in params.split(';') {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            if found.is_some() {
                return None;
            }
            let v = v.trim();
            found = Some(
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v),
            );
        }
    }
    found.filter(|b| !b.is_empty())
}

/// Every `_method` field of `body`, in order; an error for a cut form body.
pub fn overrides<'a>(body: &Body<'a>) -> Result<Vec<Field<'a>>, Rejected> {
    let kind = kind(body.content_type);
    if kind == Kind::Other {
        return Ok(Vec::new());
    }
    if body.partial {
        return Err(Rejected::PartialBody);
    }
    if body.bytes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match kind {
        Kind::UrlEncoded => url_encoded(body.bytes),
        Kind::Multipart(Some(b)) => multipart(body.bytes, b.as_bytes()),
        Kind::Multipart(None) => return Err(Rejected::BadFormBody),
        Kind::Json => json(body.bytes),
        Kind::Other => Vec::new(),
    })
}

/// Whether a decoded field name reaches a framework as `_method`; `Some(true)`
/// when it does as an array or map (`_method[]`, `_method[x]`).
fn override_name(name: &str) -> Option<bool> {
    let name = name.trim_start_matches(' ');
    let (base, nested) = match name.find('[') {
        Some(i) => (&name[..i], true),
        None => (name, false),
    };
    let mut chars = base
        .chars()
        .map(|c| if c == ' ' || c == '.' { '_' } else { c });
    let is = "_method"
        .chars()
        .all(|want| chars.next().is_some_and(|c| c.eq_ignore_ascii_case(&want)))
        && chars.next().is_none();
    is.then_some(nested)
}

/// `+` as space, then `%XX`; malformed escapes stay as they are (PHP, Rack's lenient mode).
fn form_decode(raw: &[u8]) -> Cow<'_, str> {
    if !raw.contains(&b'+') {
        return percent_encoding::percent_decode(raw).decode_utf8_lossy();
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    Cow::Owned(
        percent_encoding::percent_decode(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

fn field(nested: bool, value: Cow<'_, str>) -> Field<'_> {
    if nested {
        Field::Unclear
    } else {
        Field::Value(value)
    }
}

fn url_encoded(bytes: &[u8]) -> Vec<Field<'_>> {
    bytes
        .split(|&b| b == b'&' || b == b';')
        .filter_map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let nested = override_name(&form_decode(name))?;
            Some(field(nested, form_decode(value)))
        })
        .collect()
}

fn multipart<'a>(bytes: &'a [u8], boundary: &[u8]) -> Vec<Field<'a>> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut out = Vec::new();
    // Parts are what lies between delimiters; the preamble before the first is not one.
    for part in split_on(bytes, &delimiter).skip(1) {
        if part.starts_with(b"--") {
            break;
        }
        let part = strip_line_end_start(part);
        let (head, content) = match find(part, b"\r\n\r\n") {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match find(part, b"\n\n") {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => (part, &[][..]),
            },
        };
        let Some(nested) = part_name(head).and_then(|n| override_name(&n)) else {
            continue;
        };
        let content = content
            .strip_suffix(b"\r\n")
            .or_else(|| content.strip_suffix(b"\n"))
            .unwrap_or(content);
        out.push(field(nested, String::from_utf8_lossy(content)));
    }
    out
}

fn strip_line_end_start(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\r\n")
        .or_else(|| b.strip_prefix(b"\n"))
        .unwrap_or(b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_on<'a>(mut hay: &'a [u8], sep: &[u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match find(hay, sep) {
            Some(i) => {
                let piece = &hay[..i];
                hay = &hay[i + sep.len()..];
                Some(piece)
            }
            None => {
                done = true;
                Some(hay)
            }
        }
    })
}

/// The field name of a part, from its `Content-Disposition` header (any case,
/// `name=` quoted or not, or RFC 5987 `name*=charset''%XX`).
fn part_name(head: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head);
    let line = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-disposition")
            .then_some(v)
    })?;
    let mut name = None;
    for param in params(line) {
        let (k, v) = param;
        if k.eq_ignore_ascii_case("name*") {
            let encoded = v.splitn(3, '\'').nth(2).unwrap_or(&v);
            return Some(
                percent_encoding::percent_decode_str(encoded)
                    .decode_utf8_lossy()
                    .into_owned(),
            );
        }
        if k.eq_ignore_ascii_case("name") && name.is_none() {
            name = Some(v);
        }
    }
    name
}

/// `key=value` parameters after the disposition type; quoted values unescaped.
fn params(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(';') {
        rest = &rest[i + 1..];
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().to_string();
        let v = v.trim_start();
        if let Some(quoted) = v.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((j, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = j + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            out.push((k, value));
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = v.find(';').unwrap_or(v.len());
            out.push((k, v[..end].trim().to_string()));
            rest = &v[end..];
        }
    }
    out
}

fn json(bytes: &[u8]) -> Vec<Field<'_>> {
    // Most JSON bodies never mention the field: skip parsing them. Any key
    // letter may be a `\u` escape, so a body with one is always parsed.
    let mentions = bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"method"))
        || bytes.windows(2).any(|w| w == b"\\u");
    if !mentions {
        return Vec::new();
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(bytes)
    else {
        return Vec::new();
    };
    map.into_iter()
        .filter(|(k, _)| override_name(k).is_some())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) if !k.contains('[') => Field::Value(Cow::Owned(s)),
            _ => Field::Unclear,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(ct: Option<&str>, body: &str) -> Vec<Field<'static>> {
        overrides(&Body {
            content_type: ct,
            bytes: body.as_bytes(),
            partial: false,
        })
        .unwrap()
        .into_iter()
        .map(|f| match f {
            Field::Value(v) => Field::Value(Cow::Owned(v.into_owned())),
            Field::Unclear => Field::Unclear,
        })
        .collect()
    }

    fn value(s: &str) -> Field<'static> {
        Field::Value(Cow::Owned(s.to_string()))
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn url_encoded_spellings_are_found() {
        for body in [
            "_method=DELETE",
            "title=x&_method=DELETE",
            "title=x;_method=DELETE",
            "%5Fmethod=DELETE",
            "%5fMETHOD=DELETE",
            "_METHOD=DELETE",
            " _method=DELETE",
            "+_method=DELETE",
            ".method=DELETE",
            "_method=DE%4CETE",
        ] {
            assert_eq!(found(FORM, body), [value("DELETE")], "{body}");
        }
        assert_eq!(found(FORM, "_method=delete"), [value("delete")]);
        assert_eq!(
            found(FORM, "_method=PUT&_method=DELETE"),
            [value("PUT"), value("DELETE")]
        );
        assert_eq!(found(FORM, "_method[]=DELETE"), [Field::Unclear]);
        assert_eq!(
            found(None, "_method=DELETE"),
            [value("DELETE")],
            "Rack reads a typeless POST as a form"
        );
        assert_eq!(
            found(
                Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
                "_method=DELETE"
            ),
            [value("DELETE")]
        );
    }

    #[test]
    fn mentions_and_other_types_are_not_overrides() {
        for body in [
            "note=_method%3DDELETE",
            "note=_method=DELETE",
            "x_method=DELETE",
            "_methods=DELETE",
            "method=DELETE",
            "",
        ] {
            assert!(found(FORM, body).is_empty(), "{body}");
        }
        for ct in ["text/plain", "application/octet-stream", "application/xml"] {
            assert!(found(Some(ct), "_method=DELETE").is_empty(), "{ct}");
        }
    }

    #[test]
    fn multipart_fields_are_found() {
        let ct = Some("multipart/form-data; boundary=XyZ");
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n";
        assert_eq!(found(ct, body), [value("DELETE")]);
        for disposition in [
            "form-data; name=_method",
            "form-data; name=\"_m\\ethod\"",
            "FORM-DATA; NAME=\"_METHOD\"",
            "form-data; name*=UTF-8''%5Fmethod",
            "form-data; filename=\"a\"; name=\".method\"",
        ] {
            let body = format!("--XyZ\nContent-Disposition: {disposition}\n\nDELETE\n--XyZ--");
            assert_eq!(found(ct, &body), [value("DELETE")], "{disposition}");
        }
        let quoted = Some("multipart/form-data; boundary=\"a b\"");
        assert_eq!(
            found(
                quoted,
                "--a b\r\ncontent-disposition: form-data; name=\"_method\"\r\n\r\nPUT\r\n--a b--"
            ),
            [value("PUT")]
        );
        // A part whose content only mentions the field is not one.
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nname=\"_method\"\r\n--XyZ--";
        assert!(found(ct, body).is_empty());
        // No boundary: refused, not guessed.
        let e = overrides(&Body {
            content_type: Some("multipart/form-data"),
            bytes: b"x",
            partial: false,
        });
        assert_eq!(e, Err(Rejected::BadFormBody));
    }

    #[test]
    fn json_bodies_as_laravel_reads_them() {
        let ct = Some("application/json");
        assert_eq!(
            found(ct, r#"{"title":"x","_method":"DELETE"}"#),
            [value("DELETE")]
        );
        assert_eq!(
            found(Some("application/vnd.api+json"), r#"{"_method":"PUT"}"#),
            [value("PUT")]
        );
        assert_eq!(found(ct, r#"{"_method":["DELETE"]}"#), [Field::Unclear]);
        // Escaped key letters still name the field (the fast path must not skip them).
        assert_eq!(
            found(ct, r#"{"\u005f\u006dethod":"DELETE"}"#),
            [value("DELETE")]
        );
        assert_eq!(found(ct, r#"{"_\u004DETHOD":"DELETE"}"#), [value("DELETE")]);
        assert!(found(ct, r#"{"note":"_method=DELETE"}"#).is_empty());
        assert!(found(ct, r#"[{"_method":"DELETE"}]"#).is_empty());
        assert!(found(ct, "not json").is_empty());
    }

    /// Any spelling of the name a framework decodes to `_method`, anywhere among
    /// other fields, with either separator, is found; arbitrary bytes never panic.
    mod props {
        use super::*;
        use proptest::prelude::*;

        fn spelling() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("_method".to_string()),
                Just("%5Fmethod".to_string()),
                Just("%5fMeThOd".to_string()),
                Just(".method".to_string()),
                Just("+_method".to_string()),
                Just("_%6Dethod".to_string()),
                Just("_METHOD".to_string()),
            ]
        }

        proptest! {
            #[test]
            fn an_override_among_other_fields_is_always_found(
                before in proptest::collection::vec("[a-z]{1,6}=[a-zA-Z0-9%+]{0,8}", 0..5),
                after in proptest::collection::vec("[a-z]{1,6}=[a-zA-Z0-9%+]{0,8}", 0..5),
                name in spelling(),
                sep in prop_oneof![Just("&"), Just(";")],
            ) {
                let mut fields = before.clone();
                fields.push(format!("{name}=DELETE"));
                fields.extend(after);
                let body = fields.join(sep);
                let got = overrides(&Body { content_type: FORM, bytes: body.as_bytes(), partial: false }).unwrap();
                prop_assert!(got.contains(&value("DELETE")), "{body}: {got:?}");
            }

            #[test]
            fn arbitrary_bodies_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..300),
                ct in prop_oneof![
                    Just(None),
                    Just(Some("application/x-www-form-urlencoded")),
                    Just(Some("multipart/form-data; boundary=b")),
                    Just(Some("application/json")),
                ],
                partial in any::<bool>(),
            ) {
                let _ = overrides(&Body { content_type: ct, bytes: &bytes, partial });
            }
        }
    }

    #[test]
    fn a_cut_form_is_refused_and_a_cut_upload_is_not_a_form() {
        let cut = |ct| {
            overrides(&Body {
                content_type: ct,
                bytes: b"title=x",
                partial: true,
            })
        };
        assert_eq!(cut(FORM), Err(Rejected::PartialBody));
        assert_eq!(cut(Some("application/json")), Err(Rejected::PartialBody));
        assert_eq!(
            cut(Some("multipart/form-data; boundary=x")),
            Err(Rejected::PartialBody)
        );
        assert_eq!(cut(Some("image/png")), Ok(Vec::new()));
    }
}
