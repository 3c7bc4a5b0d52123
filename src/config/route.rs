//! `[[route]]`: the route table, API Gateway syntax.

use serde::Deserialize;

/// One row of the route table (`docs/configuration.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub auth: RouteAuth,
}

fn default_method() -> String {
    "ANY".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    #[default]
    Jwt,
    None,
}
