//! What the decision explorer (`docs/explorer.md`) reads: the most recent
//! decisions, in a bounded ring of the same records the log writes, and
//! per-minute counts for the last 24 hours ([`stats`]).
//!
//! The request path pays nothing: the decision log's writer hands each
//! batch it takes to [`Explorer::record`] on its own thread ([`crate::audit::Tap`]),
//! so the explorer holds exactly the records the log writes. Pages read
//! under the same lock, briefly. Nothing here holds the token: an
//! [`Outcome`] never does.

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

    /// Adds a batch of decisions, as the decision log writer takes them
    /// (off the request path). The decisions pushed out of the ring are
    /// freed after the lock is released.
    pub fn record(&self, batch: &[Arc<Outcome>]) {
        let mut evicted = Vec::new();
        let mut inner = self.inner.lock();
        for o in batch {
            if inner.ring.len() == inner.capacity
                && let Some(old) = inner.ring.pop_front()
            {
                evicted.push(old);
            }
            inner.ring.push_back(Arc::clone(o));
            inner.next += 1;
            inner.stats.add(o);
        }
        drop(inner);
        drop(evicted);
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
    /// A reader more than `limit` records behind skips to the newest
    /// `limit`: a page shows the latest decisions, not an ever-growing backlog.
    pub fn since(&self, after: u64, filter: &Filter, limit: usize) -> (Vec<Arc<Outcome>>, u64) {
        let inner = self.inner.lock();
        let first = inner.next - inner.ring.len() as u64;
        let newest = inner.next.saturating_sub(limit as u64);
        let start = after.max(first).max(newest);
        let skip = usize::try_from(start - first).unwrap_or(usize::MAX);
        let mut next = start;
        let mut out = Vec::new();
        for o in inner.ring.iter().skip(skip) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Decision;

    fn outcome(i: usize, allowed: bool) -> Arc<Outcome> {
        let mut d = Decision::pending(&format!("/r{i}"), "GET", &Arc::from("rev"));
        d.allowed = allowed;
        d.subject = Some(format!("user{}", i % 3));
        Arc::new(Outcome {
            decision: d,
            decision_id: format!("id{i}"),
            source: crate::audit::Source::Http,
            time: SystemTime::now(),
            latency: Duration::from_micros(100),
            trace: None,
            shadow: None,
        })
    }

    #[test]
    fn ring_keeps_the_newest_and_readers_follow() {
        let e = Explorer::new(5);
        for i in 0..8 {
            e.record(&[outcome(i, i % 2 == 0)]);
        }
        assert_eq!(e.size(), (5, 5));
        let (recent, next) = e.recent(&Filter::default(), 10);
        assert_eq!(next, 8);
        let ids: Vec<_> = recent.iter().map(|(_, o)| o.decision_id.as_str()).collect();
        assert_eq!(ids, ["id7", "id6", "id5", "id4", "id3"]);
        assert!(e.find("id2").is_none() && e.find("id3").is_some());
        // A reader from 6 gets 6 and 7; one from before the ring gets the ring.
        let (got, next) = e.since(6, &Filter::default(), 100);
        assert_eq!(got.len(), 2);
        assert_eq!(next, 8);
        let (got, _) = e.since(0, &Filter::default(), 100);
        assert_eq!(got[0].decision_id, "id3");
        // Far behind: only the newest `limit`.
        let (got, next) = e.since(3, &Filter::default(), 2);
        let ids: Vec<_> = got.iter().map(|o| o.decision_id.as_str()).collect();
        assert_eq!((ids, next), (vec!["id6", "id7"], 8));
        // Filters apply to both.
        let denied = Filter {
            allowed: Some(false),
            subject: Some("user1".into()),
            ..Filter::default()
        };
        let (got, _) = e.recent(&denied, 10);
        let ids: Vec<_> = got.iter().map(|(_, o)| o.decision_id.as_str()).collect();
        assert_eq!(ids, ["id7"]);
        let (got, next) = e.since(8, &denied, 10);
        assert!(got.is_empty());
        assert_eq!(next, 8);
    }

    #[test]
    fn overview_counts_what_was_recorded() {
        let e = Explorer::new(100);
        let batch: Vec<_> = (0..10).map(|i| outcome(i, i < 7)).collect();
        e.record(&batch);
        let o = e.overview(Duration::from_secs(300), SystemTime::now());
        assert_eq!((o.total, o.allowed, o.denied), (10, 7, 3));
        assert_eq!(o.series.len(), 5);
        assert_eq!(
            o.series.iter().map(|s| s.allowed + s.denied).sum::<u64>(),
            10
        );
        assert_eq!(
            o.top_denied_subjects.iter().map(|c| c.count).sum::<u64>(),
            3
        );
        assert!(
            o.latency_ms.p50 > 0.09 && o.latency_ms.p50 < 0.13,
            "{:?}",
            o.latency_ms
        );
    }
}
