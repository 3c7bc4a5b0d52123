//! Step 4, token validation, and the claim half of step 6: from a raw token
//! to a verified [`Principal`], through the verified-token cache. Pure: keys
//! come from a [`KeySource`], and a miss asks the caller to fetch
//! ([`AuthFailure::NeedKeys`]).

use std::{sync::Arc, time::SystemTime};

use sha2::{Digest, Sha256};

use crate::{
    config::IssuerConfig,
    policy::snapshot::Snapshot,
    roles::Principal,
    token::{
        self, TokenError, claims,
        jwks::KeySet,
        verified::{Verified, VerifiedCache},
    },
};

/// Why authentication did not produce a principal.
#[derive(Debug)]
pub enum AuthFailure {
    Missing(String),
    Rejected(TokenError),
    NeedKeys(usize),
}

/// Read access to cached issuer keys, without I/O.
pub trait KeySource {
    fn keys(&self, issuer: &str) -> Option<Arc<KeySet>>;
    /// Why the issuer's most recent key fetch failed, when it did (the
    /// keys above, if any, are then older than the identity provider's).
    fn fetch_failure(&self, _issuer: &str) -> Option<String> {
        None
    }
}

impl KeySource for crate::token::jwks::Jwks {
    fn keys(&self, issuer: &str) -> Option<Arc<KeySet>> {
        self.get(issuer)
    }
    fn fetch_failure(&self, issuer: &str) -> Option<String> {
        self.last_failure(issuer)
    }
}

pub fn token_fingerprint(raw: &str) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    hex::encode(&digest[..8])
}

/// Steps 4 (validation) and the claim half of 6. On failure, also the issuer
/// when one was identified (for the log).
pub fn authenticate(
    snap: &Snapshot,
    raw: &str,
    keys: &dyn KeySource,
    tokens: Option<&VerifiedCache>,
    now: SystemTime,
    allow_fetch: bool,
) -> Result<Principal, (AuthFailure, Option<String>)> {
    let Some(cache) = tokens else {
        return verify_token(snap, raw, keys, now, allow_fetch).map(|(p, _)| p);
    };
    let digest: [u8; 32] = Sha256::digest(raw.as_bytes()).into();
    if let Some(hit) = cache.get(&digest) {
        let keys = keys.keys(&hit.issuer);
        if hit.usable(&snap.revision, keys.as_deref(), now) {
            return Ok(hit.principal());
        }
        cache.remove(&digest);
    }
    let (principal, facts) = verify_token(snap, raw, keys, now, allow_fetch)?;
    if let Some((kid, exp, nbf, leeway)) = facts {
        let entry = Verified::new(&principal, &snap.revision, &kid, exp, nbf, leeway);
        cache.insert(digest, entry);
    }
    Ok(principal)
}

/// (kid, exp, nbf, leeway) of a verified token with a `kid`: what a cache entry needs.
type CacheFacts = Option<(String, i64, Option<i64>, i64)>;

/// The full verification, without the cache.
fn verify_token(
    snap: &Snapshot,
    raw: &str,
    keys: &dyn KeySource,
    now: SystemTime,
    allow_fetch: bool,
) -> Result<(Principal, CacheFacts), (AuthFailure, Option<String>)> {
    let rejected = |e: TokenError, iss: Option<String>| (AuthFailure::Rejected(e), iss);
    let parsed = token::parse(raw).map_err(|e| rejected(e, None))?;
    let iss = parsed.iss().map_err(|e| rejected(e, None))?;
    let (idx, issuer) = find_issuer(&snap.config.issuers, iss).map_err(|e| rejected(e, None))?;
    let named = || Some(issuer.issuer.clone());
    // The algorithm allow-list and `crit` are checked before any key is fetched,
    // so `alg: none` or HS256 never costs a round trip to the IdP.
    token::key_alg(&parsed.header, issuer).map_err(|e| rejected(e, named()))?;
    // An identity-provider outage is not a bad token: with no key set, or
    // a `kid` that only a failed refetch could have brought, the answer is
    // 503 `issuer_unavailable` (clients retry), never 401 `key_unknown`.
    let unavailable = || {
        let why = keys
            .fetch_failure(&issuer.issuer)
            .unwrap_or_else(|| "no key set has been fetched".into());
        rejected(TokenError::IssuerUnavailable(why), named())
    };
    let Some(set) = keys.keys(&issuer.issuer) else {
        if allow_fetch {
            return Err((AuthFailure::NeedKeys(idx), named()));
        }
        return Err(unavailable());
    };
    match token::select_key(&parsed.header, issuer, &set) {
        Err(TokenError::KeyUnknown(_)) if allow_fetch => {
            return Err((AuthFailure::NeedKeys(idx), named()));
        }
        Err(TokenError::KeyUnknown(_)) if keys.fetch_failure(&issuer.issuer).is_some() => {
            return Err(unavailable());
        }
        Err(e) => return Err(rejected(e, named())),
        Ok(_) => {}
    }
    let kid = parsed.header.kid.clone();
    let verified = token::verify(parsed, issuer, &set, now).map_err(|e| rejected(e, named()))?;
    let c = &verified.claims;
    let date = |name: &str| {
        c.get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    let leeway = i64::try_from(issuer.leeway_secs).unwrap_or(i64::MAX);
    let facts = kid
        .zip(date("exp"))
        .map(|(kid, exp)| (kid, exp, date("nbf"), leeway));
    let subject = claims::string_at(c, &issuer.subject_claim).ok_or_else(|| {
        rejected(
            TokenError::Malformed(format!("no subject at `{}`", issuer.subject_claim)),
            named(),
        )
    })?;
    let pcfg = &snap.config.policy;
    let principal = Principal {
        subject: format!("{}{subject}", pcfg.subject_prefix),
        claim_subject: subject,
        issuer: issuer.issuer.clone(),
        roles: claims::union_at(c, &issuer.roles_claims)
            .into_iter()
            .map(|r| format!("{}{r}", pcfg.role_prefix))
            .collect(),
        scopes: claims::union_at(c, &issuer.scope_claims),
        domain: pcfg
            .domain_claim
            .as_deref()
            .and_then(|p| claims::string_at(c, p)),
        attributes: Vec::new(),
        attribute_missing: None,
    };
    let (attributes, missing) =
        crate::roles::attributes_from_claims(c, &snap.policy.attributes, &pcfg.attributes);
    let principal = Principal {
        attributes,
        attribute_missing: missing,
        ..principal
    };
    Ok((principal, facts))
}

/// Exact `iss` match; a trailing-slash near miss is named, but still rejected.
fn find_issuer<'c>(
    issuers: &'c [IssuerConfig],
    iss: &str,
) -> Result<(usize, &'c IssuerConfig), TokenError> {
    if let Some(found) = issuers.iter().enumerate().find(|(_, i)| i.issuer == iss) {
        return Ok(found);
    }
    let trimmed = iss.trim_end_matches('/');
    match issuers
        .iter()
        .find(|i| i.issuer.trim_end_matches('/') == trimmed)
    {
        Some(near) => Err(TokenError::IssuerTrailingSlash {
            iss: token::clip(iss),
            configured: near.issuer.clone(),
        }),
        None => Err(TokenError::IssuerUnknown {
            iss: token::clip(iss),
        }),
    }
}
