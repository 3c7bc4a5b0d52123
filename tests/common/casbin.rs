//! Casbin fixtures shared by the evaluator tests (included by path where
//! the rest of `common` is not needed).
#![allow(dead_code)]

/// A file of `tests/fixtures/casbin-examples/` (casbin-rs's examples).
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/casbin-examples")
            .join(name),
    )
    .unwrap()
}

/// `text` with each repeated line dropped after its first occurrence: the
/// reference casbin-rs moves a repeat to its last place, Go and Python
/// Casbin (and authzd) keep the first.
pub fn first_occurrences(text: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter(|l| seen.insert(l.split(',').map(str::trim).collect::<Vec<_>>()))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The line that decided, from casbin-rs's `enforce_ex` lines: it lists every
/// allow it saw before a deny under allow-and-deny, and the deny decided
/// (authzd reports that deny, as Go Casbin does); otherwise one line.
pub fn decided(allowed: bool, lines: Vec<Vec<String>>) -> Vec<String> {
    match allowed {
        true => lines.into_iter().next(),
        false => lines.into_iter().last(),
    }
    .unwrap_or_default()
}
