//! Bounds on client-supplied values (`docs/security.md`, "Bounded input").
//! A leaf: imports nothing from the crate.
//!
//! Whatever a client sends — a path, a method, a resource, a header, a
//! claim of a token that failed verification — is kept whole in a decision
//! record, the explorer, a metric label or a span only up to [`MAX_BYTES`].
//! Past that it is clipped at a character boundary and marked with `…`, so
//! unauthenticated input cannot grow authzd's memory or its log without
//! bound. Decisions themselves are taken on the whole value.

use std::borrow::Cow;

/// The most bytes of one client-supplied value that are kept.
pub const MAX_BYTES: usize = 1024;

/// The mark a clipped value ends with.
pub const MARK: char = '…';

/// `s` itself when it fits in [`MAX_BYTES`], else its longest prefix that
/// does (cut at a character boundary) followed by [`MARK`].
pub fn clip(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_BYTES {
        return Cow::Borrowed(s);
    }
    let mut end = MAX_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + MARK.len_utf8());
    out.push_str(&s[..end]);
    out.push(MARK);
    Cow::Owned(out)
}

/// Whether `s` is kept whole by [`clip`].
pub fn fits(s: &str) -> bool {
    s.len() <= MAX_BYTES
}

/// [`clip`], owned.
pub fn clipped(s: &str) -> String {
    clip(s).into_owned()
}

/// Whether `s` is a value that [`clip`] cut (it cannot be decided again
/// from the record: `authzd replay` skips it).
/// A value of up to [`MAX_BYTES`] that happens to end in the mark and
/// fill the bound counts as clipped too: skipping it is the safe side.
pub fn was_clipped(s: &str) -> bool {
    // A cut falls at most 3 bytes short of the bound (inside a 4-byte character).
    s.ends_with(MARK) && s.len() - MARK.len_utf8() + 3 >= MAX_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_bound_are_clipped_and_marked() {
        assert!(matches!(clip("short"), Cow::Borrowed("short")));
        let exact = "a".repeat(MAX_BYTES);
        assert_eq!(clip(&exact), exact);
        let long = "a".repeat(10 * MAX_BYTES);
        let c = clip(&long);
        assert_eq!(c.len(), MAX_BYTES + MARK.len_utf8());
        assert!(was_clipped(&c) && !was_clipped(&exact));
        // Never cut inside a character.
        let wide = "é".repeat(MAX_BYTES);
        let c = clip(&wide);
        assert!(c.len() <= MAX_BYTES + MARK.len_utf8());
        assert!(c.ends_with(MARK) && c.chars().filter(|&ch| ch == 'é').count() == MAX_BYTES / 2);
    }
}
