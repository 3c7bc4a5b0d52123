//! `[request]`: what the upstream treats as the same request (`docs/security.md`).

use serde::Deserialize;

/// `[request]`: what the upstream treats as the same request. Secure defaults;
/// see [`crate::request`] for what each setting does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// A path or method that is not in canonical form: refused, or normalized.
    #[serde(default)]
    pub noncanonical: Noncanonical,
    /// `X-HTTP-Method-Override` and friends: refused, or authorized as well.
    #[serde(default)]
    pub method_override: MethodOverride,
    /// Whether the upstream matches paths case-insensitively.
    #[serde(default)]
    pub path_case: PathCase,
    /// Whether the upstream routes `/a/` and `/a` differently.
    #[serde(default)]
    pub trailing_slash: TrailingSlash,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Noncanonical {
    #[default]
    Reject,
    /// Only where the gateway forwards the normalized path to the upstream.
    Normalize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodOverride {
    #[default]
    Reject,
    /// The overridden method must be allowed too.
    Authorize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathCase {
    #[default]
    Sensitive,
    /// Request paths, route paths and policy object patterns are lower-cased.
    Insensitive,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailingSlash {
    /// `/a/` is decided as `/a`.
    #[default]
    Same,
    Distinct,
}
