//! Per-minute counts of the last 24 hours for the explorer's overview: by
//! reason, latency in a log-linear histogram (each bucket a quarter octave,
//! so a percentile is within 19 % of the truth), and the most denied routes
//! and subjects.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, SystemTime},
};

use serde::Serialize;

use crate::{audit::Outcome, reason::Reason};

/// Minutes kept: 24 hours.
const KEPT: u64 = 24 * 60;
/// Names counted per minute for the top lists; past this, denials count as "other".
const NAMES_PER_MINUTE: usize = 200;
/// Bytes of names kept per minute and list: unrouted denials are named by
/// their path, which the client chose, so 24 hours of them stay bounded
/// (at most 2 × 16 KiB a minute, about 46 MiB a day in the worst case).
const NAME_BYTES_PER_MINUTE: usize = 16 * 1024;
/// Latency buckets: 4 per octave of microseconds, up to about a minute.
const BUCKETS: usize = 104;

#[derive(Default)]
pub struct Minutes {
    minutes: VecDeque<Minute>,
}

struct Minute {
    /// Minutes since the Unix epoch.
    at: u64,
    reasons: [u32; Reason::ALL.len()],
    allowed: u32,
    latency: [u32; BUCKETS],
    denied_routes: HashMap<String, u32>,
    denied_subjects: HashMap<String, u32>,
    /// Denials whose route or subject did not fit in the maps above.
    denied_other: u32,
}

impl Minute {
    fn new(at: u64) -> Self {
        Self {
            at,
            reasons: [0; Reason::ALL.len()],
            allowed: 0,
            latency: [0; BUCKETS],
            denied_routes: HashMap::new(),
            denied_subjects: HashMap::new(),
            denied_other: 0,
        }
    }
}

fn bump(map: &mut HashMap<String, u32>, key: &str) -> bool {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
        true
    } else if map.len() < NAMES_PER_MINUTE
        && map.keys().map(String::len).sum::<usize>() + key.len() <= NAME_BYTES_PER_MINUTE
    {
        map.insert(key.to_owned(), 1);
        true
    } else {
        false
    }
}

/// The histogram bucket of a latency.
fn bucket(latency: Duration) -> usize {
    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    if us < 4 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize;
    let sub = ((us >> (octave - 2)) & 3) as usize;
    (4 + (octave - 2) * 4 + sub).min(BUCKETS - 1)
}

/// The upper bound of a bucket, in microseconds.
fn bucket_upper_us(i: usize) -> u64 {
    if i < 4 {
        return i as u64 + 1;
    }
    let (octave, sub) = ((i - 4) / 4 + 2, (i - 4) % 4);
    (5 + sub as u64) << (octave - 2)
}

/// What the overview page draws.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub window_secs: u64,
    pub total: u64,
    pub allowed: u64,
    pub denied: u64,
    /// Every reason seen, most frequent first.
    pub by_reason: Vec<Count>,
    /// The 401 reasons alone: a burst of `signature_invalid` is an attack.
    pub token_failures: Vec<Count>,
    /// Allowed and denied per slot, oldest first.
    pub series: Vec<Slot>,
    pub slot_secs: u64,
    pub top_denied_routes: Vec<Count>,
    pub top_denied_subjects: Vec<Count>,
    /// Denials not attributed to a route or subject in the lists above.
    pub denied_other: u64,
    pub latency_ms: Percentiles,
}

#[derive(Debug, Serialize)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct Slot {
    /// Unix milliseconds at the slot's start.
    pub start_ms: u64,
    pub allowed: u64,
    pub denied: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

impl Minutes {
    pub fn add(&mut self, o: &Outcome) {
        let at = minute_of(o.time);
        // Records arrive in time order but for a few milliseconds of races: a
        // record for an older minute counts in the newest one.
        if self.minutes.back().is_none_or(|m| m.at < at) {
            self.minutes.push_back(Minute::new(at));
            while self.minutes.front().is_some_and(|m| m.at + KEPT <= at) {
                self.minutes.pop_front();
            }
        }
        let Some(m) = self.minutes.back_mut() else {
            return;
        };
        let d = &o.decision;
        m.reasons[d.reason.index()] += 1;
        m.allowed += u32::from(d.allowed);
        m.latency[bucket(o.latency)] += 1;
        if !d.allowed {
            let route = d.route.as_deref().unwrap_or(&d.resource);
            let counted = bump(&mut m.denied_routes, route)
                & d.subject
                    .as_deref()
                    .is_none_or(|s| bump(&mut m.denied_subjects, s));
            if !counted {
                m.denied_other += 1;
            }
        }
    }

    pub fn overview(&self, window: Duration, now: SystemTime) -> Overview {
        let now_min = minute_of(now);
        let span = (window.as_secs() / 60).clamp(1, KEPT);
        let from = now_min + 1 - span;
        let slot_min = (span / 60).max(1);
        let slots = span.div_ceil(slot_min);
        let mut series: Vec<Slot> = (0..slots)
            .map(|i| Slot {
                start_ms: (from + i * slot_min) * 60_000,
                allowed: 0,
                denied: 0,
            })
            .collect();
        let mut reasons = [0u64; Reason::ALL.len()];
        let mut latency = [0u64; BUCKETS];
        let (mut routes, mut subjects) = (HashMap::<&str, u64>::new(), HashMap::<&str, u64>::new());
        let mut denied_other = 0;
        for m in self
            .minutes
            .iter()
            .filter(|m| m.at >= from && m.at <= now_min)
        {
            let mut all = 0u64;
            for (i, n) in m.reasons.iter().enumerate() {
                reasons[i] += u64::from(*n);
                all += u64::from(*n);
            }
            let allowed = u64::from(m.allowed);
            let denied = all - allowed;
            if let Some(s) = series.get_mut(((m.at - from) / slot_min) as usize) {
                s.allowed += allowed;
                s.denied += denied;
            }
            for (i, n) in m.latency.iter().enumerate() {
                latency[i] += u64::from(*n);
            }
            for (k, n) in &m.denied_routes {
                *routes.entry(k).or_default() += u64::from(*n);
            }
            for (k, n) in &m.denied_subjects {
                *subjects.entry(k).or_default() += u64::from(*n);
            }
            denied_other += u64::from(m.denied_other);
        }
        let counts = |pick: &dyn Fn(Reason) -> bool| {
            let mut v: Vec<Count> = Reason::ALL
                .iter()
                .zip(reasons)
                .filter(|(r, n)| *n > 0 && pick(**r))
                .map(|(r, n)| Count {
                    name: r.as_str().to_string(),
                    count: n,
                })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
            v
        };
        let top = |m: HashMap<&str, u64>| {
            let mut v: Vec<Count> = m
                .into_iter()
                .map(|(k, n)| Count {
                    name: k.to_string(),
                    count: n,
                })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
            v.truncate(10);
            v
        };
        let total: u64 = reasons.iter().sum();
        let allowed: u64 = series.iter().map(|s| s.allowed).sum();
        Overview {
            window_secs: span * 60,
            total,
            allowed,
            denied: total - allowed,
            by_reason: counts(&|_| true),
            token_failures: counts(&Reason::is_token_failure),
            series,
            slot_secs: slot_min * 60,
            top_denied_routes: top(routes),
            top_denied_subjects: top(subjects),
            denied_other,
            latency_ms: percentiles(&latency),
        }
    }
}

fn percentiles(h: &[u64; BUCKETS]) -> Percentiles {
    let total: u64 = h.iter().sum();
    if total == 0 {
        return Percentiles::default();
    }
    let at = |q: f64| {
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in h.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_upper_us(i) as f64 / 1000.0;
            }
        }
        0.0
    };
    Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: at(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_bound_their_values() {
        let mut last = 0;
        for us in [
            0u64, 1, 3, 4, 5, 7, 8, 100, 999, 1000, 65_000, 1_000_000, 60_000_000,
        ] {
            let b = bucket(Duration::from_micros(us));
            assert!(b >= last, "{us}");
            last = b;
            assert!(bucket_upper_us(b) > us || b == BUCKETS - 1, "{us} -> {b}");
            // Within a quarter octave: the bound is at most 25 % above the value (plus one).
            assert!(
                bucket_upper_us(b) as f64 <= (us as f64) * 1.25 + 1.0,
                "{us}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut h = [0u64; BUCKETS];
        for us in 1..=100u64 {
            h[bucket(Duration::from_micros(us * 100))] += 1;
        }
        let p = percentiles(&h);
        assert!((5.0..=6.3).contains(&p.p50), "{p:?}");
        assert!((9.9..=12.5).contains(&p.p99), "{p:?}");
    }
}
