//! Verified tokens, cached by the SHA-256 of the whole token (never by its
//! signature alone, which an attacker could pair with other claims), so a
//! token seen before costs a hash and a lookup instead of a signature check.
//!
//! An entry is used only while it is still true: for the policy revision it
//! was derived under, before `exp` (with leeway) and after `nbf`, and while
//! its key is still in the issuer's key set — a rotated-out key drops it.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use super::jwks::KeySet;
use crate::roles::Principal;

/// What a cached verification proved: the principal, stored compactly (a
/// full cache holds 100k of these), and when it stops being true.
pub struct Verified {
    subject: Box<str>,
    /// `None` when it equals `subject` (no `subject_prefix`).
    claim_subject: Option<Box<str>>,
    pub issuer: Box<str>,
    roles: Box<[Box<str>]>,
    scopes: Box<[Box<str>]>,
    domain: Option<Box<str>>,
    attributes: Box<[Box<str>]>,
    attribute_missing: Option<Box<str>>,
    revision: Arc<str>,
    /// [`kid_hash`] of the verifying key's `kid`.
    kid: u64,
    exp: i64,
    nbf: Option<i64>,
    leeway: i64,
}

fn boxed(v: &[String]) -> Box<[Box<str>]> {
    v.iter().map(|s| s.as_str().into()).collect()
}

impl Verified {
    pub fn new(
        p: &Principal,
        revision: &Arc<str>,
        kid: &str,
        exp: i64,
        nbf: Option<i64>,
        leeway: i64,
    ) -> Verified {
        Verified {
            subject: p.subject.as_str().into(),
            claim_subject: (p.claim_subject != p.subject).then(|| p.claim_subject.as_str().into()),
            issuer: p.issuer.as_str().into(),
            roles: boxed(&p.roles),
            scopes: boxed(&p.scopes),
            domain: p.domain.as_deref().map(Into::into),
            attributes: boxed(&p.attributes),
            attribute_missing: p.attribute_missing.as_deref().map(Into::into),
            revision: Arc::clone(revision),
            kid: kid_hash(kid),
            exp,
            nbf,
            leeway,
        }
    }

    /// The principal this token proved.
    pub fn principal(&self) -> Principal {
        let strings = |v: &[Box<str>]| v.iter().map(|s| s.to_string()).collect();
        Principal {
            subject: self.subject.to_string(),
            claim_subject: self
                .claim_subject
                .as_deref()
                .unwrap_or(&self.subject)
                .to_string(),
            issuer: self.issuer.to_string(),
            roles: strings(&self.roles),
            scopes: strings(&self.scopes),
            domain: self.domain.as_deref().map(str::to_string),
            attributes: strings(&self.attributes),
            attribute_missing: self.attribute_missing.as_deref().map(str::to_string),
        }
    }

    /// Whether this entry may stand in for a fresh verification now.
    pub fn usable(&self, revision: &str, keys: Option<&KeySet>, now: SystemTime) -> bool {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        &*self.revision == revision
            && now <= self.exp.saturating_add(self.leeway)
            && self
                .nbf
                .is_none_or(|nbf| now.saturating_add(self.leeway) >= nbf)
            && keys.is_some_and(|k| {
                k.keys
                    .iter()
                    .any(|key| key.kid.as_deref().map(kid_hash) == Some(self.kid))
            })
    }
}

/// A stable 64-bit hash of a `kid`. Only keys the issuer published, with a
/// signature they verified, ever get here, so a collision would need two kids
/// of the same issuer to collide: then a token could outlive its key's
/// rotation until its own `exp`.
pub fn kid_hash(kid: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    kid.hash(&mut h);
    h.finish()
}

/// The cache, shared by every request. Bounded by entry count; an entry that
/// is no longer usable (expired, other revision, key rotated out) is removed
/// when it is next looked up, and otherwise ages out under the eviction policy.
///
/// quick_cache rather than moka here: this cache holds one entry per distinct
/// token, up to 100k of them, and moka's per-entry bookkeeping (about 270
/// bytes: access-order and timer nodes, hashed key) was larger than the entry
/// itself. Measured with `cargo bench --bench memory` at 100k tokens: 55 MiB
/// of RSS with moka, 31 MiB with quick_cache (S3-FIFO, sharded).
pub struct VerifiedCache {
    cache: quick_cache::sync::Cache<[u8; 32], Arc<Verified>>,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl VerifiedCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(capacity as usize),
        }
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<Arc<Verified>> {
        self.cache.get(digest)
    }

    /// Drops an entry found unusable.
    pub fn remove(&self, digest: &[u8; 32]) {
        self.cache.remove(digest);
    }

    pub fn insert(&self, digest: [u8; 32], v: Verified) {
        self.cache.insert(digest, Arc::new(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(prefix: &str) -> Principal {
        Principal {
            subject: format!("{prefix}alice"),
            claim_subject: "alice".into(),
            issuer: "https://idp.example".into(),
            roles: vec!["role:admin".into(), "role:dev".into()],
            scopes: vec!["read".into()],
            domain: Some("tenant-1".into()),
            attributes: vec!["acme".into()],
            attribute_missing: None,
        }
    }

    #[test]
    fn the_compact_entry_gives_back_the_same_principal() {
        let rev: Arc<str> = Arc::from("abc");
        for prefix in ["", "user:"] {
            let p = principal(prefix);
            let v = Verified::new(&p, &rev, "kid-1", 2_000_000_000, None, 0);
            assert_eq!(v.claim_subject.is_none(), prefix.is_empty());
            let back = v.principal();
            assert_eq!(
                (
                    back.subject,
                    back.claim_subject,
                    back.issuer,
                    back.roles,
                    back.scopes,
                    back.domain
                ),
                (
                    p.subject,
                    p.claim_subject,
                    p.issuer,
                    p.roles,
                    p.scopes,
                    p.domain
                )
            );
        }
    }

    #[test]
    fn an_entry_is_unusable_after_exp_under_another_revision_or_without_its_key() {
        let rev: Arc<str> = Arc::from("abc");
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        let v = Verified::new(&principal(""), &rev, "kid-1", 1_010, Some(990), 5);
        let jwks = |kid: &str| {
            let k = crate::devtoken::SigningKey::from_pem(
                include_bytes!("../../tests/fixtures/ec256.pem"),
                "ec256.pem",
            )
            .unwrap();
            let mut doc = k.jwks();
            doc["keys"][0]["kid"] = kid.into();
            KeySet::from_json(
                doc.to_string().as_bytes(),
                "t",
                std::time::Duration::from_secs(60),
            )
            .unwrap()
        };
        let (with, without) = (jwks("kid-1"), jwks("kid-2"));
        assert!(v.usable("abc", Some(&with), now));
        assert!(!v.usable("abd", Some(&with), now), "other revision");
        assert!(!v.usable("abc", Some(&without), now), "key rotated out");
        assert!(!v.usable("abc", None, now), "issuer has no keys");
        let later = now + std::time::Duration::from_secs(16);
        assert!(!v.usable("abc", Some(&with), later), "past exp + leeway");
        let early = now - std::time::Duration::from_secs(16);
        assert!(!v.usable("abc", Some(&with), early), "before nbf - leeway");
    }
}
