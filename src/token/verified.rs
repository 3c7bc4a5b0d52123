//! Verified tokens, cached by the SHA-256 of the whole token (never by its
//! signature alone, which an attacker could pair with other claims), so a
//! token seen before costs a hash and a lookup instead of a signature check.
//!
//! An entry is used only while it is still true: for the policy revision it
//! was derived under, before `exp` (with leeway) and after `nbf`, and while
//! its key is still in the issuer's key set — a rotated-out key drops it.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::jwks::KeySet;
use crate::decision::Principal;

/// What a cached verification proved.
pub struct Verified {
    pub principal: Principal,
    pub revision: Arc<str>,
    pub kid: String,
    pub exp: i64,
    pub nbf: Option<i64>,
    pub leeway: i64,
}

impl Verified {
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
                    .any(|key| key.kid.as_deref() == Some(self.kid.as_str()))
            })
    }
}

/// Evict an entry when its token expires (at most a day).
struct UntilExp;

impl moka::Expiry<[u8; 32], Arc<Verified>> for UntilExp {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        v: &Arc<Verified>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let left = v
            .exp
            .saturating_add(v.leeway)
            .saturating_sub(now)
            .clamp(0, 86_400);
        Some(Duration::from_secs(left as u64))
    }
}

/// The cache, shared by every request. Bounded.
pub struct VerifiedCache {
    cache: moka::sync::Cache<[u8; 32], Arc<Verified>>,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl VerifiedCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build(),
        }
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<Arc<Verified>> {
        self.cache.get(digest)
    }

    pub fn insert(&self, digest: [u8; 32], v: Verified) {
        self.cache.insert(digest, Arc::new(v));
    }
}
