//! Reading verified claims through RFC 6901 JSON Pointers.

use serde_json::{Map, Value};

/// The value at `pointer` in `claims` (RFC 6901, `~0` and `~1` escapes).
pub fn at<'a>(claims: &'a Map<String, Value>, pointer: &str) -> Option<&'a Value> {
    let rest = pointer.strip_prefix('/')?;
    let mut segments = rest.split('/');
    let first = unescape(segments.next()?);
    let mut value = claims.get(first.as_ref())?;
    for seg in segments {
        let seg = unescape(seg);
        value = match value {
            Value::Object(m) => m.get(seg.as_ref())?,
            Value::Array(a) => a.get(parse_index(&seg)?)?,
            _ => return None,
        };
    }
    Some(value)
}

fn unescape(seg: &str) -> std::borrow::Cow<'_, str> {
    if seg.contains('~') {
        seg.replace("~1", "/").replace("~0", "~").into()
    } else {
        seg.into()
    }
}

/// RFC 6901 array index: digits, no leading zero.
fn parse_index(s: &str) -> Option<usize> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// Strings at `pointer`: an array of strings (non-strings ignored), or one
/// string split on whitespace (OAuth `scope`, Keycloak-style role strings).
pub fn strings_at<'a>(claims: &'a Map<String, Value>, pointer: &str) -> Vec<&'a str> {
    match at(claims, pointer) {
        Some(Value::String(s)) => s.split_whitespace().collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// The union, in first-seen order without duplicates, of the strings at each pointer.
pub fn union_at(claims: &Map<String, Value>, pointers: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in pointers {
        for s in strings_at(claims, p) {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// A single non-empty string at `pointer` (the subject, a domain). Numbers are
/// accepted as their decimal text, since some IdPs emit numeric user ids.
pub fn string_at(claims: &Map<String, Value>, pointer: &str) -> Option<String> {
    match at(claims, pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn cognito_keycloak_auth0_pointers() {
        let c = obj(json!({
            "cognito:groups": ["admin", "regular"],
            "realm_access": {"roles": ["editor"]},
            "https://example.com/roles": ["auditor"],
            "scope": "openid  wishlist/write",
            "scp": ["a", "b"],
            "a~b": "tilde",
        }));
        assert_eq!(strings_at(&c, "/cognito:groups"), ["admin", "regular"]);
        assert_eq!(strings_at(&c, "/realm_access/roles"), ["editor"]);
        assert_eq!(strings_at(&c, "/https:~1~1example.com~1roles"), ["auditor"]);
        assert_eq!(strings_at(&c, "/scope"), ["openid", "wishlist/write"]);
        assert_eq!(strings_at(&c, "/a~0b"), ["tilde"]);
        assert_eq!(
            union_at(&c, &["/scope".into(), "/scp".into(), "/scope".into()]).len(),
            4
        );
        assert!(strings_at(&c, "/missing/deep").is_empty());
        assert!(strings_at(&c, "/realm_access").is_empty());
    }

    #[test]
    fn array_indices_follow_rfc6901() {
        let c = obj(json!({"a": [["x"], ["y"]]}));
        assert_eq!(strings_at(&c, "/a/1"), ["y"]);
        assert!(strings_at(&c, "/a/01").is_empty());
        assert!(strings_at(&c, "/a/-").is_empty());
    }

    proptest! {
        /// Any key, however strange, is reachable through its escaped pointer.
        #[test]
        fn escaped_keys_round_trip(key in "[a-z/~:.]{1,12}", val in "[a-z]{1,8}") {
            let c = obj(json!({ key.clone(): val.clone() }));
            let ptr = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
            prop_assert_eq!(string_at(&c, &ptr), Some(val));
        }

        /// Lookup never panics on arbitrary pointers.
        #[test]
        fn arbitrary_pointers_do_not_panic(ptr in "\\PC{0,20}") {
            let c = obj(json!({"a": {"b": [1, "x"]}, "": 1}));
            let _ = at(&c, &ptr);
        }
    }
}
