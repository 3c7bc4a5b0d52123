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

/// The ring and the counts, shared by the log writer and the admin pages.
pub struct Explorer {
    inner: Mutex<Inner>,
}

struct Inner {
    ring: VecDeque<Entry>,
    capacity: usize,
    /// The sequence number the next record gets; the ring's first record is
    /// `next - ring.len()`.
    next: u64,
    stats: stats::Minutes,
}

/// One recent decision: its log line (what the pages show) and what the
/// cheap filters read. The decision itself is not kept: it is a dozen
/// allocations that the writer would otherwise free at once, the line is one.
struct Entry {
    line: Arc<str>,
    ms: u64,
    allowed: bool,
    reason: Reason,
}

/// The record fields the text filters read, parsed from the line only when
/// one of them is set.
#[derive(serde::Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    subject: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    issuer: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    route: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    resource: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    roles: Vec<std::borrow::Cow<'a, str>>,
}

/// Which records a page asks for (its query string). Every field narrows;
/// text fields match exactly except `subject` and `route`, which match a part.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
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

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|w| !w.is_empty())
}

impl Filter {
    fn matches(&self, e: &Entry) -> bool {
        let cheap = self.allowed.is_none_or(|a| a == e.allowed)
            && set(&self.reason).is_none_or(|r| r == e.reason.as_str())
            && self.since.is_none_or(|s| e.ms >= s)
            && self.until.is_none_or(|u| e.ms <= u);
        if !cheap {
            return false;
        }
        let (subject, role, route, issuer) = (
            set(&self.subject),
            set(&self.role),
            set(&self.route),
            set(&self.issuer),
        );
        if subject.is_none() && role.is_none() && route.is_none() && issuer.is_none() {
            return true;
        }
        let Ok(f) = serde_json::from_str::<Fields<'_>>(&e.line) else {
            return false;
        };
        subject.is_none_or(|w| f.subject.as_deref().is_some_and(|g| g.contains(w)))
            && issuer.is_none_or(|w| f.issuer.as_deref() == Some(w))
            && route.is_none_or(|w| f.route.as_deref().unwrap_or(&f.resource).contains(w))
            && role.is_none_or(|w| f.roles.iter().any(|r| r == w))
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

    /// Adds a batch of decisions as the decision log writer takes them (off
    /// the request path), with their encoded lines: `lines` holds them one
    /// after another, each ending with a newline at the offsets in `ends`.
    pub fn record(&self, batch: &[Arc<Outcome>], lines: &[u8], ends: &[usize]) {
        let mut start = 0;
        let entries: Vec<(Entry, &Arc<Outcome>)> = batch
            .iter()
            .zip(ends)
            .map(|(o, &end)| {
                let bytes = lines.get(start..end.saturating_sub(1)).unwrap_or_default();
                start = end;
                let line: Arc<str> = Arc::from(String::from_utf8_lossy(bytes));
                let entry = Entry {
                    line,
                    ms: unix_ms(o.time),
                    allowed: o.decision.allowed,
                    reason: o.decision.reason,
                };
                (entry, o)
            })
            .collect();
        let mut evicted = Vec::new();
        let mut inner = self.inner.lock();
        for (entry, o) in entries {
            if inner.ring.len() == inner.capacity
                && let Some(old) = inner.ring.pop_front()
            {
                evicted.push(old);
            }
            inner.ring.push_back(entry);
            inner.next += 1;
            inner.stats.add(o);
        }
        drop(inner);
        drop(evicted);
    }

    /// Up to `limit` records (log lines) matching `filter`, newest first;
    /// and the sequence number the next record will get.
    pub fn recent(&self, filter: &Filter, limit: usize) -> (Vec<Arc<str>>, u64) {
        let inner = self.inner.lock();
        let found = inner
            .ring
            .iter()
            .rev()
            .filter(|e| filter.matches(e))
            .take(limit)
            .map(|e| Arc::clone(&e.line))
            .collect();
        (found, inner.next)
    }

    /// Records from sequence number `after` on (oldest first) matching
    /// `filter`; and the sequence number to ask from next. A reader more
    /// than `limit` records behind skips to the newest `limit`: a page shows
    /// the latest decisions, not an ever-growing backlog.
    pub fn since(&self, after: u64, filter: &Filter, limit: usize) -> (Vec<Arc<str>>, u64) {
        let inner = self.inner.lock();
        let first = inner.next - inner.ring.len() as u64;
        let newest = inner.next.saturating_sub(limit as u64);
        let start = after.max(first).max(newest);
        let skip = usize::try_from(start - first).unwrap_or(usize::MAX);
        let found = inner
            .ring
            .iter()
            .skip(skip)
            .filter(|e| filter.matches(e))
            .map(|e| Arc::clone(&e.line))
            .collect();
        (found, inner.next.max(start))
    }

    /// One record by its decision id (a UUID; anything else finds nothing).
    pub fn find(&self, decision_id: &str) -> Option<Arc<str>> {
        if decision_id.is_empty()
            || !decision_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'-')
        {
            return None;
        }
        let needle = format!("\"decision_id\":\"{decision_id}\"");
        let inner = self.inner.lock();
        inner
            .ring
            .iter()
            .rev()
            .find(|e| e.line.contains(&needle))
            .map(|e| Arc::clone(&e.line))
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
            decision_id: format!("{i:08x}-0000"),
            source: crate::audit::Source::Http,
            time: SystemTime::now(),
            latency: Duration::from_micros(100),
            trace: None,
            shadow: None,
        })
    }

    /// Hands `batch` over as the log writer does.
    fn record(e: &Explorer, batch: &[Arc<Outcome>]) {
        let (mut lines, mut ends) = (Vec::new(), Vec::new());
        for o in batch {
            lines.extend_from_slice(o.to_json_line().as_bytes());
            lines.push(b'\n');
            ends.push(lines.len());
        }
        e.record(batch, &lines, &ends);
    }

    fn ids(lines: &[Arc<str>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["decision_id"].as_str().unwrap()[..8]
                    .trim_start_matches('0')
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn ring_keeps_the_newest_and_readers_follow() {
        let e = Explorer::new(5);
        for i in 0..8 {
            record(&e, &[outcome(i, i % 2 == 0)]);
        }
        assert_eq!(e.size(), (5, 5));
        let (recent, next) = e.recent(&Filter::default(), 10);
        assert_eq!(next, 8);
        assert_eq!(ids(&recent), ["7", "6", "5", "4", "3"]);
        assert!(e.find("00000002-0000").is_none() && e.find("00000003-0000").is_some());
        assert!(e.find("3").is_none(), "a part of an id finds nothing");
        assert!(e.find("00000003-0000\",\"x").is_none());
        // A reader from 6 gets 6 and 7; one from before the ring gets the ring.
        let (got, next) = e.since(6, &Filter::default(), 100);
        assert_eq!((ids(&got), next), (vec!["6".to_string(), "7".into()], 8));
        let (got, _) = e.since(0, &Filter::default(), 100);
        assert_eq!(ids(&got)[0], "3");
        // Far behind: only the newest `limit`.
        let (got, next) = e.since(3, &Filter::default(), 2);
        assert_eq!((ids(&got), next), (vec!["6".to_string(), "7".into()], 8));
        // Filters apply to both: cheap ones, and ones that read the line.
        let denied = Filter {
            allowed: Some(false),
            subject: Some("user1".into()),
            ..Filter::default()
        };
        let (got, _) = e.recent(&denied, 10);
        assert_eq!(ids(&got), ["7"]);
        let route = Filter {
            route: Some("/r4".into()),
            ..Filter::default()
        };
        assert_eq!(ids(&e.recent(&route, 10).0), ["4"]);
        let (got, next) = e.since(8, &denied, 10);
        assert!(got.is_empty());
        assert_eq!(next, 8);
    }

    #[test]
    fn overview_counts_what_was_recorded() {
        let e = Explorer::new(100);
        let batch: Vec<_> = (0..10).map(|i| outcome(i, i < 7)).collect();
        record(&e, &batch);
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
