//! Route sets per caller: what [`route_set`](super::answer::route_set)
//! computed for one (policy revision, API and stage, principal), kept for
//! the warm instance's repeat callers. Every part that can change the
//! answer is in the key, spelled out (no hash that two callers could share),
//! and a new revision is a new key: an old entry can only age out. The
//! cache is bounded by the bytes of its ARNs.

use std::sync::Arc;

use super::{
    answer::{Statements, route_set},
    event::Event,
};
use crate::{decision::Principal, policy::snapshot::Snapshot};

/// The most ARN text held at once.
const MAX_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<String, Arc<Statements>> for ByBytes {
    fn weight(&self, key: &String, s: &Arc<Statements>) -> u64 {
        let arns: usize = s.allow.iter().chain(&s.deny).map(|a| a.len() + 24).sum();
        (key.len() + arns + 64) as u64
    }
}

pub struct RouteSets {
    cache: quick_cache::sync::Cache<String, Arc<Statements>, ByBytes>,
}

impl Default for RouteSets {
    fn default() -> Self {
        Self {
            cache: quick_cache::sync::Cache::with_weighter(4096, MAX_BYTES, ByBytes),
        }
    }
}

impl RouteSets {
    /// `route_set` for this caller, computed at most once per revision.
    pub fn get(&self, snap: &Snapshot, event: &Event, principal: Option<&Principal>) -> Statements {
        let key = key(snap, event, principal);
        if let Some(s) = self.cache.get(&key) {
            return (*s).clone();
        }
        let s = route_set(snap, event, principal);
        self.cache.insert(key, Arc::new(s.clone()));
        s
    }
}

/// Every input of a route set, each part length-prefixed.
fn key(snap: &Snapshot, event: &Event, principal: Option<&Principal>) -> String {
    let mut k = String::with_capacity(256);
    let mut put = |s: &str| {
        k.push_str(&s.len().to_string());
        k.push(':');
        k.push_str(s);
    };
    put(&snap.revision);
    put(&event.arn.base);
    match principal {
        None => put("-"),
        Some(p) => {
            put(&p.subject);
            put(&p.claim_subject);
            put(&p.issuer);
            put(p.domain.as_deref().unwrap_or("\u{0}"));
            put(p.attribute_missing.as_deref().unwrap_or("\u{0}"));
            for list in [&p.roles, &p.scopes, &p.attributes] {
                put(&list.len().to_string());
                for v in list {
                    put(v);
                }
            }
        }
    }
    k
}
