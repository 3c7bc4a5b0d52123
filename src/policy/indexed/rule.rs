//! One compiled policy line and its effect.

use super::compile::Compiled;
use std::sync::Arc;

/// One policy line. Small on purpose: a 100k-rule policy is 100k of these.
pub(super) struct Rule {
    /// Interned: subjects and actions repeat across many lines.
    pub(super) values: Box<[Arc<str>]>,
    /// One compiled pattern per `Pattern::Rule` slot of the matcher.
    pub(super) patterns: Box<[Compiled]>,
    pub(super) eft: Eft,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Eft {
    Allow,
    Deny,
    Indeterminate,
}
