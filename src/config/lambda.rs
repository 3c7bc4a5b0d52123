//! `[lambda]`: how `authzd lambda` answers API Gateway.

use serde::Deserialize;

/// `[lambda]`: the Lambda authorizer's answers (`docs/lambda.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    #[serde(default)]
    pub response: LambdaResponse,
    #[serde(default)]
    pub policy_scope: LambdaPolicyScope,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaResponse {
    /// An IAM policy document.
    #[default]
    Iam,
    /// `{"isAuthorized": …}` (HTTP API with simple responses enabled).
    Simple,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaPolicyScope {
    /// Every route of the route table this principal may call: safe to cache.
    #[default]
    Routes,
    /// The current route only: needs an authorizer TTL of 0, or the route
    /// among the identity sources.
    Request,
}
