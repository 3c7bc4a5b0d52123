//! `[decision_log]`: where decision records go.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// `stdout`, `off`, or a file path (appended to).
    #[serde(default = "default_log_output")]
    pub output: String,
    /// Records buffered between the request path and the writer task.
    #[serde(default = "default_log_buffer")]
    pub buffer: usize,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            output: default_log_output(),
            buffer: default_log_buffer(),
        }
    }
}

fn default_log_output() -> String {
    "stdout".into()
}
fn default_log_buffer() -> usize {
    16_384
}
