//! `[tracing]`: a span per decision over OTLP.

use serde::Deserialize;

/// `[tracing]`: with `otlp_endpoint` set, one span per decision is exported
/// over OTLP/gRPC, off the request path. Nothing here changes a decision.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector, `http://host:port` or `https://host:port` (OTLP gRPC, usually port 4317).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute of every span.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Spans waiting for export; past this, new spans are dropped and counted.
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// How long one export may take before its spans are dropped and counted.
    #[serde(default)]
    pub export_timeout_ms: Option<u64>,
}

impl TracingConfig {
    pub const DEFAULT_SERVICE_NAME: &str = "authzd";
    pub const DEFAULT_QUEUE_SIZE: usize = 4096;
    pub const DEFAULT_EXPORT_TIMEOUT_MS: u64 = 5000;
}
