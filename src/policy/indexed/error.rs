//! Why a model or policy is not compiled: outside the indexed subset (the
//! caller falls back to casbin-rs), or invalid (the load fails).

/// Why a model stays on casbin-rs.
pub type Unsupported = String;

/// Why a model in the subset cannot be compiled.
#[derive(Debug)]
pub enum CompileError {
    /// Outside the indexed subset: casbin-rs evaluates it.
    Unsupported(Unsupported),
    /// A policy line casbin-rs would panic on when it reaches it (or, for a
    /// role type matching patterns, a name that is no valid pattern).
    InvalidRule {
        /// `p`, `g`, `g2`, …
        ptype: String,
        values: Vec<String>,
        message: String,
    },
    /// `[policy] role_matching` / `domain_matching` do not fit the model.
    Matching(String),
}

impl From<String> for CompileError {
    fn from(s: String) -> Self {
        CompileError::Unsupported(s)
    }
}

impl From<&str> for CompileError {
    fn from(s: &str) -> Self {
        CompileError::Unsupported(s.to_string())
    }
}

pub(super) fn invalid((ptype, values): (String, Vec<String>), message: String) -> CompileError {
    CompileError::InvalidRule {
        ptype,
        values,
        message,
    }
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileError::Unsupported(why) => write!(f, "{why} is outside the indexed subset"),
            CompileError::InvalidRule {
                ptype,
                values,
                message,
            } => write!(f, "`{ptype}, {}`: {message}", values.join(", ")),
            CompileError::Matching(m) => f.write_str(m),
        }
    }
}
