//! The decision log (`docs/decision-log.md`): one JSON line per check,
//! written off the request path.
//!
//! The request path pushes an `Arc` onto a bounded queue (one uncontended
//! lock, no system call, no wake-up); a writer thread wakes every
//! [`FLUSH_EVERY`], takes the whole queue at once, encodes it into one reused
//! buffer ([`encode`]) and writes it with one call. A full buffer is never
//! silent: the record is counted in `authzd_decision_log_dropped_total` and a
//! warning is logged. The writer follows log rotation: SIGHUP reopens the
//! file, and so does finding that the path now names another file or none.
//! The token is never part of a record, only its fingerprint.

mod encode;

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::decision::Decision;

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
    Lambda,
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
            Source::Lambda => "lambda",
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
    /// The caller's trace (a valid W3C `traceparent`), if it sent one.
    pub trace: Option<crate::telemetry::TraceContext>,
    /// What the `[shadow]` candidate decided, when it decided this check.
    pub shadow: Option<ShadowDecision>,
}

/// The `[shadow]` candidate's answer to a check: recorded, never enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowDecision {
    pub allowed: bool,
    pub reason: crate::reason::Reason,
    pub matched_policy: Vec<String>,
    pub revision: Arc<str>,
}

impl Outcome {
    /// One log line, without the trailing newline.
    pub fn to_json_line(&self) -> String {
        let mut out = Vec::with_capacity(512);
        encode::Encoder::default().line(self, &mut out);
        out.pop();
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
    File(PathBuf),
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

/// How often the writer wakes to write what was queued (at most this much
/// of the log is in memory at a time, and this is the log's lag).
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// How often the writer checks whether its file was renamed or removed.
const ROTATION_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the request path and the writer share.
struct Queue {
    /// Records not yet written. The writer swaps the whole vector out.
    pending: Mutex<Vec<Arc<Outcome>>>,
    capacity: usize,
    /// Set by SIGHUP: reopen the file before the next write.
    reopen: AtomicBool,
    /// The writer, to wake early when the queue passes half its capacity.
    writer: OnceLock<std::thread::Thread>,
}

/// The request-path end of the log.
#[derive(Clone)]
pub struct AuditSink {
    queue: Option<Arc<Queue>>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink")
            .field("on", &self.queue.is_some())
            .finish()
    }
}

impl AuditSink {
    /// A sink that writes nothing (`output = "off"`).
    pub fn off() -> Self {
        Self { queue: None }
    }

    /// Queues `outcome`; never blocks on I/O and makes no system call. A full
    /// buffer is counted and reported.
    pub fn record(&self, outcome: Arc<Outcome>) {
        let Some(q) = &self.queue else { return };
        let mut pending = q.pending.lock();
        let len = pending.len();
        if len >= q.capacity {
            drop(pending);
            let total = crate::metrics::decision_log_dropped();
            // Log the first drop and then every 1000th, so a flood cannot flood the logs too.
            if total == 0 || total.is_multiple_of(1000) {
                tracing::warn!(decision_id = %outcome.decision_id, dropped_total = total + 1, "decision log buffer full; record dropped");
            }
            return;
        }
        pending.push(outcome);
        drop(pending);
        // A burst (a large batch, say) wakes the writer before its timer does.
        if len + 1 == q.capacity / 2
            && let Some(t) = q.writer.get()
        {
            t.unpark();
        }
    }

    /// Reopens the log file before the next write (SIGHUP, after logrotate's `mv`).
    pub fn reopen(&self) {
        if let Some(q) = &self.queue {
            q.reopen.store(true, Ordering::Relaxed);
            if let Some(t) = q.writer.get() {
                t.unpark();
            }
        }
    }
}

/// The open destination.
enum Sink {
    Stdout,
    Stderr,
    File { path: PathBuf, file: File },
}

impl Sink {
    fn open(output: &Output) -> std::io::Result<Option<Sink>> {
        Ok(Some(match output {
            Output::Off => return Ok(None),
            Output::Stdout => Sink::Stdout,
            Output::Stderr => Sink::Stderr,
            Output::File(p) => Sink::File {
                file: open_append(p)?,
                path: p.clone(),
            },
        }))
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Sink::Stderr => std::io::stderr().lock().write_all(bytes),
            Sink::File { file, .. } => file.write_all(bytes),
        }
    }

    /// Reopens the configured path when asked to, or when the file being
    /// written is no longer the one at that path (renamed or removed).
    fn follow_rotation(&mut self, forced: bool) {
        let Sink::File { path, file } = self else {
            return;
        };
        if !forced && !moved(path, file) {
            return;
        }
        match open_append(path) {
            Ok(f) => {
                *file = f;
                tracing::info!(path = %path.display(), "decision log reopened");
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot reopen decision log; still writing to the old file");
            }
        }
    }
}

fn open_append(p: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
}

/// Whether `path` no longer names the open `file` (two `stat`s).
#[cfg(unix)]
fn moved(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(at_path), Ok(open)) => at_path.ino() != open.ino() || at_path.dev() != open.dev(),
        (Err(_), _) => true,
        (Ok(_), Err(_)) => false,
    }
}

#[cfg(not(unix))]
fn moved(_: &Path, _: &File) -> bool {
    false
}

/// Something else that reads every record the writer takes, on the
/// writer's thread, in batches (the decision explorer): the records, and
/// their log lines as encoded (`lines` holds them one after another, each
/// ending with `\n` at the offsets in `ends`).
pub type Tap = Box<dyn Fn(&[Arc<Outcome>], &[u8], &[usize]) + Send>;

/// Starts the writer. It ends, after writing everything queued, once every
/// [`AuditSink`] clone is dropped; await the handle to flush. With a `tap`,
/// the writer runs even when `output` is off, and hands the tap each batch
/// before writing it.
pub fn spawn(
    output: Output,
    buffer: usize,
    tap: Option<Tap>,
) -> std::io::Result<(AuditSink, Option<JoinHandle<()>>)> {
    let mut sink = match (Sink::open(&output)?, &tap) {
        (Some(s), _) => Some(s),
        (None, Some(_)) => None,
        (None, None) => return Ok((AuditSink::off(), None)),
    };
    let capacity = buffer.max(1);
    let queue = Arc::new(Queue {
        pending: Mutex::new(Vec::with_capacity(capacity.min(65_536))),
        capacity,
        reopen: AtomicBool::new(false),
        writer: OnceLock::new(),
    });
    let q = Arc::clone(&queue);
    let handle = tokio::task::spawn_blocking(move || {
        let _ = q.writer.set(std::thread::current());
        let mut encoder = encode::Encoder::default();
        let mut taken: Vec<Arc<Outcome>> = Vec::new();
        let mut bytes: Vec<u8> = Vec::with_capacity(256 * 1024);
        let mut ends: Vec<usize> = Vec::new();
        let mut last_rotation_check = std::time::Instant::now();
        loop {
            // INVARIANT: once the writer holds the only reference, no sink is
            // left to queue anything, so the take below is the last one.
            let last = Arc::strong_count(&q) == 1;
            std::mem::swap(&mut *q.pending.lock(), &mut taken);
            let reopen = q.reopen.swap(false, Ordering::Relaxed);
            if let Some(sink) = sink.as_mut()
                && (reopen || last_rotation_check.elapsed() >= ROTATION_CHECK_EVERY)
            {
                sink.follow_rotation(reopen);
                last_rotation_check = std::time::Instant::now();
            }
            ends.clear();
            for o in &taken {
                encoder.line(o, &mut bytes);
                ends.push(bytes.len());
            }
            if let Some(tap) = &tap
                && !taken.is_empty()
            {
                tap(&taken, &bytes, &ends);
            }
            taken.clear();
            if let Some(sink) = sink.as_mut()
                && !bytes.is_empty()
                && let Err(e) = sink.write(&bytes)
            {
                tracing::error!(error = %e, "cannot write decision log");
            }
            bytes.clear();
            if last {
                break;
            }
            std::thread::park_timeout(FLUSH_EVERY);
        }
    });
    Ok((AuditSink { queue: Some(queue) }, Some(handle)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Decision, Reason};

    fn outcome(id: &str) -> Arc<Outcome> {
        let mut d = Decision::pending("/r", "GET", &Arc::from("rev"));
        d.conclude(Reason::TokenMissing, "no token".into());
        Arc::new(Outcome {
            decision: d,
            decision_id: id.into(),
            source: Source::Http,
            time: SystemTime::now(),
            latency: Duration::from_micros(3),
            trace: None,
            shadow: None,
        })
    }

    fn queue(capacity: usize) -> Arc<Queue> {
        Arc::new(Queue {
            pending: Mutex::new(Vec::new()),
            capacity,
            reopen: AtomicBool::new(false),
            writer: OnceLock::new(),
        })
    }

    #[test]
    fn a_full_buffer_is_counted_not_silent() {
        let q = queue(1);
        let sink = AuditSink {
            queue: Some(Arc::clone(&q)),
        };
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
        let kept: Vec<_> = q
            .pending
            .lock()
            .iter()
            .map(|o| o.decision_id.clone())
            .collect();
        assert_eq!(kept, ["a"]);
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
