//! The path canonicalizer: arbitrary bytes as a request path must never panic,
//! the canonical form must be a fixed point (fed back, it is accepted
//! unchanged), and an accepted path may never hold what an upstream resolves
//! elsewhere (a dot segment, `//`, `\`, `;`, a control character, a
//! character that NFKC turns into ASCII).
#![no_main]

use authzd::{
    config::{Noncanonical, PathCase, RequestConfig, TrailingSlash},
    request::{canonical, canonical_path, nfkc_reaches_ascii},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    let rules = RequestConfig {
        noncanonical: if flags & 1 == 0 { Noncanonical::Reject } else { Noncanonical::Normalize },
        path_case: if flags & 2 == 0 { PathCase::Sensitive } else { PathCase::Insensitive },
        trailing_slash: if flags & 4 == 0 { TrailingSlash::Same } else { TrailingSlash::Distinct },
        ..RequestConfig::default()
    };
    let _ = canonical("POST", path, &[Some(path), None, None], None, &rules);
    let Ok(c) = canonical_path(path, &rules) else {
        return;
    };
    assert!(c.starts_with('/'), "{path:?} -> {c:?}");
    assert!(!c.contains("//") && !c.contains('\\') && !c.contains(';'), "{path:?} -> {c:?}");
    assert!(!c.chars().any(char::is_control), "{path:?} -> {c:?}");
    // Nothing an NFKC-normalizing upstream would turn into ASCII.
    assert!(!c.chars().any(nfkc_reaches_ascii), "{path:?} -> {c:?}");
    for seg in c.split('/') {
        assert!(seg != "." && seg != "..", "{path:?} -> {c:?}");
    }
    // Re-encoded (`%` as `%25`), the canonical form is accepted as itself.
    if !c.contains(['?', '#', ' ']) {
        let again = c.replace('%', "%25");
        let twice = canonical_path(&again, &rules).map(|t| t.into_owned());
        assert_eq!(twice.as_deref(), Ok(c.as_ref()), "{path:?}");
    }
});
