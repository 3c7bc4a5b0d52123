//! `[shadow]`: a candidate policy decided beside the live one.

use std::path::PathBuf;

use serde::Deserialize;

/// `[shadow]`: a candidate model and policy (same routes, issuers and
/// settings) that decides beside the live one; its answers are recorded and
/// counted, never enforced (`docs/policy-changes.md`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    pub model: PathBuf,
    pub policy: PathBuf,
    /// The fraction of decisions the candidate also decides, 0.0 to 1.0.
    #[serde(default = "default_sample")]
    pub sample: f64,
}

fn default_sample() -> f64 {
    1.0
}
