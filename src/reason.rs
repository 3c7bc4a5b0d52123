//! The reason codes of a decision and their HTTP status: part of the
//! contract (logs, responses, tests). A leaf: imports nothing from the crate.

use serde::Serialize;

/// Reason codes: part of the contract (logs, responses, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    RequestRejected,
    Allowed,
    CorsPreflight,
    PublicRoute,
    TokenMissing,
    TokenMalformed,
    IssuerUnknown,
    AlgorithmNotAllowed,
    KeyUnknown,
    IssuerUnavailable,
    SignatureInvalid,
    TokenExpired,
    TokenNotYetValid,
    AudienceMismatch,
    TokenUseMismatch,
    ScopeMissing,
    RoleLookupFailed,
    AttributeMissing,
    PolicyDenied,
    PolicyUnavailable,
}

impl Reason {
    pub const ALL: [Reason; 20] = [
        Reason::RequestRejected,
        Reason::Allowed,
        Reason::CorsPreflight,
        Reason::PublicRoute,
        Reason::TokenMissing,
        Reason::TokenMalformed,
        Reason::IssuerUnknown,
        Reason::AlgorithmNotAllowed,
        Reason::KeyUnknown,
        Reason::IssuerUnavailable,
        Reason::SignatureInvalid,
        Reason::TokenExpired,
        Reason::TokenNotYetValid,
        Reason::AudienceMismatch,
        Reason::TokenUseMismatch,
        Reason::ScopeMissing,
        Reason::RoleLookupFailed,
        Reason::AttributeMissing,
        Reason::PolicyDenied,
        Reason::PolicyUnavailable,
    ];

    /// This reason's place in [`Reason::ALL`] (for per-reason arrays of counts).
    pub fn index(self) -> usize {
        self as usize
    }

    /// A failure to present a valid token (401): what an attack with stolen
    /// or forged tokens looks like in the counts.
    pub fn is_token_failure(self) -> bool {
        self.status() == 401
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RequestRejected => "request_rejected",
            Reason::Allowed => "allowed",
            Reason::CorsPreflight => "cors_preflight",
            Reason::PublicRoute => "public_route",
            Reason::TokenMissing => "token_missing",
            Reason::TokenMalformed => "token_malformed",
            Reason::IssuerUnknown => "issuer_unknown",
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::KeyUnknown => "key_unknown",
            Reason::IssuerUnavailable => "issuer_unavailable",
            Reason::SignatureInvalid => "signature_invalid",
            Reason::TokenExpired => "token_expired",
            Reason::TokenNotYetValid => "token_not_yet_valid",
            Reason::AudienceMismatch => "audience_mismatch",
            Reason::TokenUseMismatch => "token_use_mismatch",
            Reason::ScopeMissing => "scope_missing",
            Reason::RoleLookupFailed => "role_lookup_failed",
            Reason::AttributeMissing => "attribute_missing",
            Reason::PolicyDenied => "policy_denied",
            Reason::PolicyUnavailable => "policy_unavailable",
        }
    }

    /// HTTP semantics of the outcome (`docs/pipeline.md`). A preflight is
    /// refused (403) unless step 1 answers it (204) or forwards it (200).
    pub fn status(self) -> u16 {
        match self {
            Reason::RequestRejected => 400,
            Reason::Allowed | Reason::PublicRoute => 200,
            Reason::ScopeMissing
            | Reason::AttributeMissing
            | Reason::PolicyDenied
            | Reason::CorsPreflight => 403,
            Reason::RoleLookupFailed | Reason::PolicyUnavailable | Reason::IssuerUnavailable => 503,
            _ => 401,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn index_is_the_place_in_all() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }
}
