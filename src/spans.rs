//! One OpenTelemetry span per decision, exported over OTLP/gRPC off the
//! request path (`docs/tracing.md`).
//!
//! The request path hands the finished [`Outcome`] to a bounded queue
//! (`try_send`: no wait, no allocation beyond the `Arc` it already has). One
//! task turns queued outcomes into the SDK's span data and gives them to the
//! OTLP exporter in batches (at most [`MAX_BATCH`], at least every
//! [`BATCH_DELAY`]). Nothing here can change or slow a decision: a full queue
//! drops the new span, an export that fails or outlasts its timeout drops its
//! batch, and each drop is counted in `authzd_trace_spans_total` and warned
//! about at most once a minute.

use std::{
    borrow::Cow,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use opentelemetry::{
    KeyValue,
    trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks},
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{audit::Outcome, config::TracingConfig, metrics, telemetry::TraceContext};

/// Spans per export call.
const MAX_BATCH: usize = 512;
/// The longest a span waits in the queue before its batch is exported.
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// The instrumentation scope every span names.
const SCOPE: &str = "authzd";

#[derive(Debug, thiserror::Error)]
pub enum SpanError {
    #[error("tracing.otlp_endpoint `{endpoint}`: {message}")]
    Exporter { endpoint: String, message: String },
}

enum Msg {
    Span(Arc<Outcome>),
    /// Export everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The request-path end of the exporter; cheap to clone. `off()` does nothing.
#[derive(Clone, Default)]
pub struct SpanSink {
    tx: Option<mpsc::Sender<Msg>>,
}

impl SpanSink {
    /// Exports nothing; decisions then carry a trace only when the caller sent one.
    pub fn off() -> Self {
        Self::default()
    }

    /// Starts the exporter task for `cfg` (on the current Tokio runtime), or
    /// returns [`off`](Self::off) without an endpoint. The collector is
    /// dialled lazily: an unreachable one is not an error here, only dropped spans later.
    pub fn start(cfg: &TracingConfig) -> Result<(Self, Option<JoinHandle<()>>), SpanError> {
        let Some(endpoint) = &cfg.otlp_endpoint else {
            return Ok((Self::off(), None));
        };
        let timeout = Duration::from_millis(
            cfg.export_timeout_ms
                .unwrap_or(TracingConfig::DEFAULT_EXPORT_TIMEOUT_MS),
        );
        let mut builder = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(timeout);
        if endpoint.starts_with("https://") {
            builder = builder
                .with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
        }
        let mut exporter = builder.build().map_err(|e| SpanError::Exporter {
            endpoint: endpoint.clone(),
            message: e.to_string(),
        })?;
        let service = cfg
            .service_name
            .clone()
            .unwrap_or_else(|| TracingConfig::DEFAULT_SERVICE_NAME.to_string());
        exporter.set_resource(&Resource::builder_empty().with_service_name(service).build());
        let (tx, rx) = mpsc::channel(cfg.queue_size.unwrap_or(TracingConfig::DEFAULT_QUEUE_SIZE));
        let task = tokio::spawn(run(rx, exporter, timeout));
        tracing::info!(endpoint = %endpoint, "exporting a span per decision over OTLP/gRPC");
        Ok((Self { tx: Some(tx) }, Some(task)))
    }

    /// Whether spans are exported (a decision without a caller's trace then starts one).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues `o`'s span, or counts it dropped if the queue is full. Never waits.
    pub fn record(&self, o: &Arc<Outcome>) {
        let Some(tx) = &self.tx else { return };
        if !o.trace.as_ref().is_some_and(|t| t.sampled) {
            return;
        }
        if tx.try_send(Msg::Span(Arc::clone(o))).is_err() {
            dropped("dropped_queue_full", 1, "the span queue is full");
        }
    }

    /// Exports every span queued so far and waits for that export (or its
    /// timeout). The Lambda runtime calls this after answering an
    /// invocation, before the sandbox may be frozen.
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// The exporter task: batches until [`MAX_BATCH`] spans, [`BATCH_DELAY`], a
/// flush or the end of the queue, then exports. Ends when every sender is gone.
async fn run(mut rx: mpsc::Receiver<Msg>, exporter: SpanExporter, timeout: Duration) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut waiting = Vec::new();
    let mut open = true;
    while open {
        match rx.recv().await {
            Some(m) => take(m, &mut batch, &mut waiting),
            None => open = false,
        }
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while open && waiting.is_empty() && batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => take(m, &mut batch, &mut waiting),
                Ok(None) => open = false,
                Err(_) => break,
            }
        }
        export(&exporter, std::mem::take(&mut batch), timeout).await;
        for w in waiting.drain(..) {
            let _ = w.send(());
        }
    }
    let _ = exporter.shutdown();
}

fn take(m: Msg, batch: &mut Vec<SpanData>, waiting: &mut Vec<oneshot::Sender<()>>) {
    match m {
        Msg::Span(o) => {
            if let Some(s) = span_of(&o) {
                batch.push(s);
            }
        }
        Msg::Flush(w) => waiting.push(w),
    }
}

async fn export(exporter: &SpanExporter, batch: Vec<SpanData>, timeout: Duration) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    // The exporter bounds each attempt; this bounds its retries too.
    match tokio::time::timeout(timeout, exporter.export(batch)).await {
        Ok(Ok(())) => metrics::spans("exported", n),
        Ok(Err(e)) => dropped("dropped_export_failed", n, &e.to_string()),
        Err(_) => dropped("dropped_export_failed", n, "the export timed out"),
    }
}

/// Counts dropped spans; warns at most once a minute.
fn dropped(result: &'static str, n: u64, why: &str) {
    metrics::spans(result, n);
    static LAST: parking_lot::Mutex<Option<Instant>> = parking_lot::Mutex::new(None);
    let mut last = LAST.lock();
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(Instant::now());
        drop(last);
        tracing::warn!(
            spans = n,
            why,
            "decision spans dropped (counted in authzd_trace_spans_total); decisions are unaffected"
        );
    }
}

/// The span of one decision: a server span, child of the caller's span,
/// with the decision's facts as attributes and the pipeline's stages as events.
pub fn span_of(o: &Outcome) -> Option<SpanData> {
    let t: &TraceContext = o.trace.as_ref()?;
    let trace_id = TraceId::from_hex(&t.trace_id).ok()?;
    let span_id = SpanId::from_hex(&t.span_id).ok()?;
    let parent = t
        .parent_id
        .as_deref()
        .and_then(|p| SpanId::from_hex(p).ok())
        .unwrap_or(SpanId::INVALID);
    let state = t
        .tracestate
        .as_deref()
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let d = &o.decision;
    let end = o.time;
    let start = end.checked_sub(o.latency).unwrap_or(end);
    let mut attributes = vec![
        KeyValue::new("authzd.decision_id", o.decision_id.clone()),
        KeyValue::new("authzd.source", o.source.as_str()),
        KeyValue::new("authzd.allowed", d.allowed),
        KeyValue::new("authzd.reason", d.reason.as_str()),
        KeyValue::new("authzd.policy_revision", d.revision.to_string()),
        KeyValue::new("authzd.resource", d.resource.clone()),
        KeyValue::new("authzd.action", d.action.clone()),
        KeyValue::new("http.response.status_code", i64::from(d.status)),
    ];
    if let Some(r) = &d.route {
        attributes.push(KeyValue::new("http.route", r.clone()));
    }
    if let Some(s) = &d.subject {
        attributes.push(KeyValue::new("enduser.id", s.clone()));
    }
    let mut events = SpanEvents::default();
    events.events = stages(d, end);
    Some(SpanData {
        span_context: SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, state),
        parent_span_id: parent,
        parent_span_is_remote: t.parent_id.is_some(),
        span_kind: SpanKind::Server,
        name: Cow::Borrowed("authzd.check"),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: if d.status >= 500 {
            Status::error(d.reason.as_str())
        } else {
            Status::Unset
        },
        instrumentation_scope: opentelemetry::InstrumentationScope::builder(SCOPE)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    })
}

/// The pipeline stages the decision reached, in order, as span events
/// (`docs/pipeline.md`): the route, the token's principal, its scopes and
/// roles, the deciding policy line, and the reason.
fn stages(d: &crate::decision::Decision, at: SystemTime) -> Vec<Event> {
    let event = |name: &'static str, attrs: Vec<KeyValue>| Event::new(name, at, attrs, 0);
    let mut out = Vec::with_capacity(5);
    if let Some(r) = &d.route {
        out.push(event("route", vec![KeyValue::new("http.route", r.clone())]));
    }
    if let Some(iss) = &d.issuer {
        let mut attrs = vec![KeyValue::new("authzd.issuer", iss.clone())];
        if let Some(s) = &d.subject {
            attrs.push(KeyValue::new("enduser.id", s.clone()));
        }
        out.push(event("token", attrs));
    }
    if d.subject.is_some() {
        out.push(event(
            "principal",
            vec![
                KeyValue::new("authzd.scopes", d.scopes.join(" ")),
                KeyValue::new("authzd.roles", d.roles.join(",")),
            ],
        ));
    }
    if !d.matched_policy.is_empty() {
        out.push(event(
            "policy",
            vec![KeyValue::new(
                "authzd.matched_policy",
                d.matched_policy.join(", "),
            )],
        ));
    }
    out.push(event(
        "decision",
        vec![
            KeyValue::new("authzd.reason", d.reason.as_str()),
            KeyValue::new("authzd.detail", d.detail.clone()),
        ],
    ));
    out
}
