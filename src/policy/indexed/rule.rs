//! One compiled policy line and its effect.

use super::compile::Compiled;
use std::sync::Arc;

/// One policy line. Small on purpose: a million-rule policy is a million of these.
#[derive(Clone)]
pub(super) struct Rule {
    /// Interned: subjects and actions repeat across many lines.
    pub(super) values: Box<[Arc<str>]>,
    /// One compiled pattern per `Pattern::Rule` slot of the matcher.
    pub(super) patterns: Box<[Compiled]>,
    pub(super) eft: Eft,
    /// Where the line stands in policy order (the order a first-match effect
    /// and the explain line follow): unique, increasing with the order.
    /// A line added later between two others gets a key between theirs.
    pub(super) order: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Eft {
    Allow,
    Deny,
    Indeterminate,
}
