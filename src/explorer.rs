//! What the decision explorer (`docs/explorer.md`) reads: the most recent
//! decisions, in a bounded ring of the same records the log writes, and
//! per-minute counts for the last 24 hours ([`stats`]).
//!
//! The request path pays for one uncontended lock, an `Arc` clone and a few
//! counter increments; pages read under the same lock, briefly. Nothing here
//! holds the token: an [`Outcome`] never does.

pub mod stats;

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use parking_lot::Mutex;

use crate::{audit::Outcome, reason::Reason};

/// The ring and the counts, shared by the authorizer and the admin pages.
pub struct Explorer {
    inner: Mutex<Inner>,
}

struct Inner {
    ring: VecDeque<Arc<Outcome>>,
    capacity: usize,
    /// The sequence number the next record gets; the ring's first record is
    /// `next - ring.len()`.
    next: u64,
    stats: stats::Minutes,
}

/// Which records a page asks for. Every field narrows; text fields match
/// exactly except `subject` and `route`, which match a part.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub allowed: Option<bool>,
    pub reason: Option<String>,
    pub subject: Option<String>,
    pub role: Option<String>,
    pub route: Option<String>,
    pub issuer: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<u64>,
    pub until: Option<u64>,
}

impl Filter {
    pub fn matches(&self, o: &Outcome) -> bool {
        let d = &o.decision;
        let has = |want: &Option<String>, got: Option<&str>, part: bool| match want
            .as_deref()
            .filter(|w| !w.is_empty())
        {
            None => true,
            Some(w) => got.is_some_and(|g| if part { g.contains(w) } else { g == w }),
        };
        let ms = unix_ms(o.time);
        self.allowed.is_none_or(|a| a == d.allowed)
            && has(&self.reason, Some(d.reason.as_str()), false)
            && has(&self.subject, d.subject.as_deref(), true)
            && has(
                &self.route,
                Some(d.route.as_deref().unwrap_or(&d.resource)),
                true,
            )
            && has(&self.issuer, d.issuer.as_deref(), false)
            && self
                .role
                .as_deref()
                .filter(|r| !r.is_empty())
                .is_none_or(|r| d.roles.iter().any(|x| x == r))
            && self.since.is_none_or(|s| ms >= s)
            && self.until.is_none_or(|u| ms <= u)
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Explorer {
    /// Keeps the `capacity` most recent decisions.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(capacity.min(65_536)),
                capacity: capacity.max(1),
                next: 0,
                stats: stats::Minutes::default(),
            }),
        }
    }

    /// Adds one decision (the request path).
    pub fn record(&self, o: &Arc<Outcome>) {
        let mut inner = self.inner.lock();
        if inner.ring.len() == inner.capacity {
            inner.ring.pop_front();
        }
        inner.ring.push_back(Arc::clone(o));
        inner.next += 1;
        inner.stats.add(o);
    }

    /// Up to `limit` records matching `filter`, newest first, each with its
    /// sequence number; and the sequence number the next record will get.
    pub fn recent(&self, filter: &Filter, limit: usize) -> (Vec<(u64, Arc<Outcome>)>, u64) {
        let inner = self.inner.lock();
        let first = inner.next - inner.ring.len() as u64;
        let found = inner
            .ring
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, o)| filter.matches(o))
            .take(limit)
            .map(|(i, o)| (first + i as u64, Arc::clone(o)))
            .collect();
        (found, inner.next)
    }

    /// Records from sequence number `after` on (oldest first) matching
    /// `filter`, at most `limit`; and the sequence number to ask from next.
    /// Records that left the ring meanwhile are skipped.
    pub fn since(&self, after: u64, filter: &Filter, limit: usize) -> (Vec<Arc<Outcome>>, u64) {
        let inner = self.inner.lock();
        let first = inner.next - inner.ring.len() as u64;
        let start = after.max(first);
        let skip = usize::try_from(start - first).unwrap_or(usize::MAX);
        let mut next = start;
        let mut out = Vec::new();
        for o in inner.ring.iter().skip(skip) {
            if out.len() == limit {
                break;
            }
            next += 1;
            if filter.matches(o) {
                out.push(Arc::clone(o));
            }
        }
        (out, next.max(start))
    }

    /// One record by its decision id.
    pub fn find(&self, decision_id: &str) -> Option<Arc<Outcome>> {
        let inner = self.inner.lock();
        inner
            .ring
            .iter()
            .rev()
            .find(|o| o.decision_id == decision_id)
            .cloned()
    }

    /// Counts over the last `window`, ending now.
    pub fn overview(&self, window: Duration, now: SystemTime) -> stats::Overview {
        self.inner.lock().stats.overview(window, now)
    }

    /// How many records the ring holds, and at most.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.ring.len(), inner.capacity)
    }
}

/// Reason codes in the order of [`Reason::ALL`], for callers that count by index.
pub fn reason_at(i: usize) -> Option<Reason> {
    Reason::ALL.get(i).copied()
}
