//! Prometheus metrics (`docs/metrics.md`), declared once with help text.
//!
//! Process-wide, like the process they describe: every counter is reachable
//! through the functions below, and [`render`] writes the text format.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicI64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    source: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabels {
    issuer: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
}

struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    duration: Histogram,
    jwks_fetch: Family<IssuerLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    revision: Family<RevisionLabels, Gauge>,
    log_dropped: Counter,
    role_lookups: Family<ResultLabels, Counter>,
    store_syncs: Family<ResultLabels, Counter>,
    spans: Family<ResultLabels, Counter>,
    shadow: Family<ResultLabels, Counter>,
}

/// When the policy store was last read successfully, in Unix milliseconds:
/// `NO_STORE` while policy comes from files, `NEVER` before the first success.
static STORE_SYNCED_AT: AtomicI64 = AtomicI64::new(NO_STORE);
const NO_STORE: i64 = -2;
const NEVER: i64 = -1;

fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds since the last successful store read, computed at scrape time;
/// absent while policy comes from files, `+Inf` before the first success.
#[derive(Debug)]
struct SinceSync;

impl Collector for SinceSync {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let at = STORE_SYNCED_AT.load(Ordering::Relaxed);
        if at == NO_STORE {
            return Ok(());
        }
        let seconds = if at == NEVER {
            f64::INFINITY
        } else {
            (unix_millis(SystemTime::now()) - at).max(0) as f64 / 1000.0
        };
        let gauge = ConstGauge::new(seconds);
        let m = encoder.encode_descriptor(
            "authzd_policy_store_seconds_since_sync",
            "Seconds since the policy store was last read successfully",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(m)
    }
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "authzd_decisions",
            "Decisions made, by caller interface and reason code",
            decisions.clone(),
        );
        // Decisions take microseconds; buckets from 10 µs to ~2.6 s.
        let duration = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            1e-5, 2.0, 19,
        ));
        registry.register(
            "authzd_decision_duration_seconds",
            "Time to decide one check, including key fetches",
            duration.clone(),
        );
        let jwks_fetch = Family::<IssuerLabels, Counter>::default();
        registry.register(
            "authzd_jwks_fetch",
            "Issuer key set fetches, by issuer and result",
            jwks_fetch.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "authzd_policy_reload",
            "Policy reload attempts, by result",
            reloads.clone(),
        );
        let revision = Family::<RevisionLabels, Gauge>::default();
        registry.register(
            "authzd_policy_revision_info",
            "The policy revision being served (value 1)",
            revision.clone(),
        );
        let log_dropped = Counter::default();
        registry.register(
            "authzd_decision_log_dropped",
            "Decision log records dropped because the buffer was full",
            log_dropped.clone(),
        );
        let role_lookups = Family::<ResultLabels, Counter>::default();
        registry.register(
            "authzd_role_lookup",
            "Role directory lookups (cache misses), by result",
            role_lookups.clone(),
        );
        let store_syncs = Family::<ResultLabels, Counter>::default();
        registry.register(
            "authzd_policy_store_sync",
            "Reads of the shared policy store, by result (ok, unchanged, error)",
            store_syncs.clone(),
        );
        let spans = Family::<ResultLabels, Counter>::default();
        registry.register(
            "authzd_trace_spans",
            "Decision spans for the OTLP collector, by result (exported, dropped_queue_full, dropped_export_failed)",
            spans.clone(),
        );
        let shadow = Family::<ResultLabels, Counter>::default();
        registry.register(
            "authzd_shadow_decisions",
            "Checks the [shadow] candidate also decided, by how its answer compares (same, newly_allowed, newly_denied)",
            shadow.clone(),
        );
        registry.register_collector(Box::new(SinceSync));
        Metrics {
            shadow,
            spans,
            registry,
            store_syncs,
            decisions,
            duration,
            jwks_fetch,
            reloads,
            revision,
            log_dropped,
            role_lookups,
        }
    })
}

pub fn decision(source: &'static str, reason: &'static str, seconds: f64) {
    let m = metrics();
    m.decisions
        .get_or_create(&DecisionLabels { source, reason })
        .inc();
    m.duration.observe(seconds);
}

pub fn jwks_fetched(issuer: &str, ok: bool) {
    let labels = IssuerLabels {
        issuer: issuer.to_string(),
        result: if ok { "ok" } else { "error" },
    };
    metrics().jwks_fetch.get_or_create(&labels).inc();
}

/// A reload attempt: `result` is `ok` (a new revision serves), `error` (rejected,
/// the previous one keeps serving) or `unchanged` (the content was the same).
pub fn policy_reloaded(result: &'static str, serving: &str) {
    metrics()
        .reloads
        .get_or_create(&ResultLabels { result })
        .inc();
    revision_serving(serving);
}

pub fn revision_serving(revision: &str) {
    let m = metrics();
    m.revision.clear();
    m.revision
        .get_or_create(&RevisionLabels {
            revision: revision.to_string(),
        })
        .set(1);
}

pub fn role_lookup(result: &'static str) {
    metrics()
        .role_lookups
        .get_or_create(&ResultLabels { result })
        .inc();
}

/// Policy comes from a store: the seconds-since-sync gauge appears (`+Inf` until the first read).
pub fn store_configured() {
    let _ = STORE_SYNCED_AT.compare_exchange(NO_STORE, NEVER, Ordering::Relaxed, Ordering::Relaxed);
}

/// A read of the policy store: `ok` (new content), `unchanged` or `error`.
pub fn store_synced(result: &'static str, at: SystemTime) {
    metrics()
        .store_syncs
        .get_or_create(&ResultLabels { result })
        .inc();
    if result != "error" {
        STORE_SYNCED_AT.store(unix_millis(at), Ordering::Relaxed);
    }
}

/// Decision spans by what became of them: `exported`, `dropped_queue_full`
/// (the exporter fell behind) or `dropped_export_failed` (the collector
/// refused, timed out or is unreachable).
pub fn spans(result: &'static str, n: u64) {
    metrics()
        .spans
        .get_or_create(&ResultLabels { result })
        .inc_by(n);
}

/// A check the `[shadow]` candidate also decided: `same`, `newly_allowed`
/// or `newly_denied` (the candidate's answer against the live one).
pub fn shadow(result: &'static str) {
    metrics()
        .shadow
        .get_or_create(&ResultLabels { result })
        .inc();
}

pub fn decision_log_dropped() -> u64 {
    metrics().log_dropped.inc()
}

/// The Prometheus text exposition.
pub fn render() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &metrics().registry);
    out
}
