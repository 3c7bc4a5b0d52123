//! The decision log (SPEC §9): one JSON line per check, written off the request path.
//!
//! The request path only pushes an `Arc` into a bounded channel; a writer task
//! formats and writes. A full buffer is never silent: the record is counted in
//! `authzd_decision_log_dropped_total` and a warning is logged. The token is
//! never part of a record, only its fingerprint.

use std::{
    io::Write,
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde::Serialize;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::decision::{Decision, Reason};

/// Which interface a check came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Grpc,
    Http,
    EnvoyGrpc,
    EnvoyHttp,
    ForwardAuth,
    Cli,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Grpc => "grpc",
            Source::Http => "http",
            Source::EnvoyGrpc => "envoy_grpc",
            Source::EnvoyHttp => "envoy_http",
            Source::ForwardAuth => "forward_auth",
            Source::Cli => "cli",
        }
    }
}

/// A decision plus the facts of the check it answered: what transports return and the log writes.
#[derive(Debug)]
pub struct Outcome {
    pub decision: Decision,
    pub decision_id: String,
    pub source: Source,
    pub time: SystemTime,
    pub latency: Duration,
}

/// The JSON shape of one log line (field names are the contract).
#[derive(Serialize)]
struct Record<'a> {
    time: String,
    decision_id: &'a str,
    allowed: bool,
    status: u16,
    reason: Reason,
    source: Source,
    subject: Option<&'a str>,
    issuer: Option<&'a str>,
    roles: &'a [String],
    scopes: &'a [String],
    resource: &'a str,
    action: &'a str,
    route: Option<&'a str>,
    policy_revision: &'a str,
    matched_policy: &'a [String],
    latency_us: u64,
    token_sha256: Option<&'a str>,
    detail: &'a str,
}

impl Outcome {
    /// One log line, without the trailing newline.
    pub fn to_json_line(&self) -> String {
        let d = &self.decision;
        let r = Record {
            time: humantime::format_rfc3339_micros(self.time).to_string(),
            decision_id: &self.decision_id,
            allowed: d.allowed,
            status: d.status,
            reason: d.reason,
            source: self.source,
            subject: d.subject.as_deref(),
            issuer: d.issuer.as_deref(),
            roles: &d.roles,
            scopes: &d.scopes,
            resource: &d.resource,
            action: &d.action,
            route: d.route.as_deref(),
            policy_revision: &d.revision,
            matched_policy: &d.matched_policy,
            latency_us: u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX),
            token_sha256: d.token_sha256.as_deref(),
            detail: &d.detail,
        };
        serde_json::to_string(&r).unwrap_or_default()
    }
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
    File(std::path::PathBuf),
    Off,
}

impl Output {
    pub fn from_config(s: &str) -> Output {
        match s {
            "stdout" => Output::Stdout,
            "off" => Output::Off,
            path => Output::File(path.into()),
        }
    }
}

/// The request-path end of the log.
#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: Option<mpsc::Sender<Arc<Outcome>>>,
}

impl AuditSink {
    /// A sink that writes nothing (`output = "off"`).
    pub fn off() -> Self {
        Self { tx: None }
    }

    /// Queues `outcome`; never blocks. A full buffer is counted and reported.
    pub fn record(&self, outcome: Arc<Outcome>) {
        let Some(tx) = &self.tx else { return };
        if let Err(mpsc::error::TrySendError::Full(o) | mpsc::error::TrySendError::Closed(o)) =
            tx.try_send(outcome)
        {
            let total = crate::metrics::decision_log_dropped();
            // Log the first drop and then every 1000th, so a flood cannot flood the logs too.
            if total == 0 || total.is_multiple_of(1000) {
                tracing::warn!(decision_id = %o.decision_id, dropped_total = total + 1, "decision log buffer full; record dropped");
            }
        }
    }
}

/// Starts the writer task. The task ends, after writing everything queued,
/// once every [`AuditSink`] clone is dropped; await the handle to flush.
pub fn spawn(
    output: Output,
    buffer: usize,
) -> std::io::Result<(AuditSink, Option<JoinHandle<()>>)> {
    let mut out: Box<dyn Write + Send> = match &output {
        Output::Off => return Ok((AuditSink::off(), None)),
        Output::Stdout => Box::new(std::io::stdout()),
        Output::Stderr => Box::new(std::io::stderr()),
        Output::File(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
    };
    let (tx, mut rx) = mpsc::channel::<Arc<Outcome>>(buffer.max(1));
    let handle = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(64 * 1024);
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(o) = next {
                batch.extend_from_slice(o.to_json_line().as_bytes());
                batch.push(b'\n');
                next = if batch.len() < 60 * 1024 {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if let Err(e) = out.write_all(&batch).and_then(|()| out.flush()) {
                tracing::error!(error = %e, "cannot write decision log");
            }
            batch.clear();
        }
    });
    Ok((AuditSink { tx: Some(tx) }, Some(handle)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Decision;

    fn outcome(id: &str) -> Arc<Outcome> {
        let mut d = Decision::pending("/r", "GET", &Arc::from("rev"));
        d.conclude(Reason::TokenMissing, "no token".into());
        Arc::new(Outcome {
            decision: d,
            decision_id: id.into(),
            source: Source::Http,
            time: SystemTime::now(),
            latency: Duration::from_micros(3),
        })
    }

    #[test]
    fn a_full_buffer_is_counted_not_silent() {
        let (tx, mut rx) = mpsc::channel(1);
        let sink = AuditSink { tx: Some(tx) };
        let before = crate::metrics::render();
        let count = |text: &str| {
            text.lines()
                .find(|l| l.starts_with("authzd_decision_log_dropped_total"))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        sink.record(outcome("a"));
        sink.record(outcome("b"));
        assert_eq!(count(&crate::metrics::render()), count(&before) + 1);
        assert_eq!(rx.try_recv().unwrap().decision_id, "a");
    }

    #[test]
    fn record_line_has_the_contract_fields() {
        let line: serde_json::Value = serde_json::from_str(&outcome("x").to_json_line()).unwrap();
        assert_eq!(line["reason"], "token_missing");
        assert_eq!(line["source"], "http");
        assert_eq!(line["latency_us"], 3);
        assert_eq!(line["policy_revision"], "rev");
    }
}
