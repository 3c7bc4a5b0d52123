//! Connection hygiene for both ports (`docs/configuration.md`, `[server]`):
//! an accept loop over hyper-util that caps concurrent connections and
//! HTTP/2 streams, and closes connections that hold resources without
//! sending requests.
//!
//! Each connection has a watchdog with two rules:
//! - **header read**: a request head must arrive within
//!   `header_read_timeout` of the connection's accept and, on HTTP/1, of the
//!   first byte read after the connection went idle (a slow or half-sent
//!   head, the "slowloris" attack);
//! - **idle**: with no request in flight, a connection is closed
//!   `idle_timeout` after its last request finished.
//!
//! An expired connection is shut down gracefully (HTTP/2 `GOAWAY`, in-flight
//! requests finish); one that has not closed [`GRACE`] later (an HTTP/1 head
//! still being read) is dropped. hyper's own HTTP/1 header timeout is not
//! used: it also runs while a keep-alive connection idles, which would make
//! the idle timeout no longer than the header timeout.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinSet,
    time::Instant,
};
use tower::ServiceExt as _;

/// How long an expired connection may take to close gracefully before it is dropped.
const GRACE: Duration = Duration::from_secs(1);

/// What a listener enforces (from `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_concurrent_streams: u32,
    /// gRPC: HTTP/2 only (prior knowledge). Otherwise HTTP/1.1 and HTTP/2.
    pub http2_only: bool,
}

impl Limits {
    pub fn of(cfg: &crate::config::ServerConfig, http2_only: bool) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(cfg.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(cfg.idle_timeout_secs),
            max_connections: cfg.max_connections,
            max_concurrent_streams: cfg.max_concurrent_streams,
            http2_only,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then closes every
/// connection gracefully and waits for them (bounded).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams);
    let builder = if limits.http2_only {
        builder.http2_only()
    } else {
        builder
    };
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        // INVARIANT: a connection holds its slot until its task ends, so at
        // most `max_connections` are open; past that, accepting waits.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => p,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, or a connection reset before accept: wait and go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (router, builder, stop) = (router.clone(), Arc::clone(&builder), stop_rx.clone());
        conns.spawn(async move {
            connection(stream, router, &builder, limits, stop).await;
            drop(permit);
        });
        // Reap finished connection tasks without waiting.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while conns.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::warn!("connections still open 10 s after shutdown; closing them");
    }
    Ok(())
}

/// What the watchdog knows about one connection, kept up to date by the
/// connection's reads ([`Watched`]) and requests (the service below).
struct ConnState {
    opened: Instant,
    /// Milliseconds since `opened`, plus one (0 = none): when a request head
    /// started to arrive on an idle HTTP/1 connection.
    head_started: AtomicU64,
    /// Milliseconds since `opened` when the last request finished.
    last_done: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    http2: AtomicBool,
}

impl ConnState {
    fn ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn begin(&self, http2: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
    }

    fn end(&self) {
        self.last_done.store(self.ms(), Ordering::Relaxed);
        // Body bytes of the request just answered are not a new head.
        self.head_started.store(0, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
            && !self.http2.load(Ordering::Relaxed)
        {
            self.head_started.store(self.ms() + 1, Ordering::Relaxed);
        }
    }

    /// How long until a rule could expire this connection (it is checked
    /// again then: a request in between moves the deadline). While a
    /// request is in flight nothing can expire; look again within a second.
    fn until_due(&self, limits: &Limits) -> Duration {
        let now = self.ms();
        let head = u64::try_from(limits.header_read_timeout.as_millis()).unwrap_or(u64::MAX);
        let idle = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let due_in = if self.requests.load(Ordering::Relaxed) == 0 {
            head.saturating_sub(now)
        } else if self.in_flight.load(Ordering::Relaxed) > 0 {
            1000
        } else {
            match self.head_started.load(Ordering::Relaxed) {
                0 => {
                    let last = self.last_done.load(Ordering::Relaxed);
                    // A head may start meanwhile: then the header timeout, sooner.
                    idle.saturating_sub(now.saturating_sub(last)).min(head)
                }
                started => head.saturating_sub(now.saturating_sub(started - 1)),
            }
        };
        Duration::from_millis(due_in.clamp(10, 1000))
    }

    /// Why the connection should close now, if it should.
    fn expired(&self, limits: &Limits) -> Option<&'static str> {
        let now = self.ms();
        let head = u64::try_from(limits.header_read_timeout.as_millis()).unwrap_or(u64::MAX);
        let idle = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        if self.requests.load(Ordering::Relaxed) == 0 {
            return (now >= head).then_some("no request head within the header read timeout");
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let started = self.head_started.load(Ordering::Relaxed);
        if started > 0 {
            // A head is arriving: only the header read timeout applies.
            return (now.saturating_sub(started - 1) >= head)
                .then_some("request head not completed within the header read timeout");
        }
        let last = self.last_done.load(Ordering::Relaxed);
        (now.saturating_sub(last) >= idle).then_some("idle")
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let state = Arc::new(ConnState {
        opened: Instant::now(),
        head_started: AtomicU64::new(0),
        last_done: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        requests: AtomicU64::new(0),
        http2: AtomicBool::new(false),
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        state: Arc::clone(&state),
    });
    let svc_state = Arc::clone(&state);
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let state = Arc::clone(&svc_state);
        state.begin(req.version() == hyper::Version::HTTP_2);
        let call = router.clone().oneshot(req.map(Body::new));
        async move {
            let resp = call.await;
            state.end();
            resp
        }
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // The watchdog is its own task with one timer, set to the next moment a
    // rule could expire: the connection's own future is polled alone (plus
    // a notification), so requests pay nothing for it.
    let fire = Arc::new(tokio::sync::Notify::new());
    let watchdog = {
        let (state, fire) = (Arc::clone(&state), Arc::clone(&fire));
        tokio::spawn(async move {
            let why = loop {
                tokio::select! {
                    () = tokio::time::sleep(state.until_due(&limits)) => {
                        if let Some(why) = state.expired(&limits) {
                            break why;
                        }
                    }
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            break "server shutting down";
                        }
                    }
                }
            };
            tracing::debug!(why, "closing connection");
            // Stored as a permit if the connection is not waiting yet.
            fire.notify_one();
        })
    };
    let fired = fire.notified();
    tokio::pin!(fired);
    tokio::select! {
        biased;
        _ = &mut conn => {
            watchdog.abort();
            return;
        }
        () = &mut fired => {}
    }
    conn.as_mut().graceful_shutdown();
    // A graceful close waits for a request being read; past the grace, drop it.
    let _ = tokio::time::timeout(GRACE, conn).await;
}

/// The connection's socket, noting when bytes arrive.
struct Watched {
    inner: tokio::net::TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.read_some();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10,
            max_concurrent_streams: 10,
            http2_only: false,
        }
    }

    fn state(opened_ago: Duration) -> ConnState {
        ConnState {
            opened: Instant::now() - opened_ago,
            head_started: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            http2: AtomicBool::new(false),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_rules() {
        let l = limits();
        // No request yet: the header timeout runs from accept.
        assert_eq!(state(Duration::from_secs(9)).expired(&l), None);
        assert!(state(Duration::from_secs(10)).expired(&l).is_some());
        // A request in flight is never cut off.
        let s = state(Duration::from_secs(100));
        s.begin(false);
        assert_eq!(s.expired(&l), None);
        // Finished: idle from then on.
        s.end();
        assert_eq!(s.expired(&l), None);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(s.expired(&l), None);
        // A byte on the idle HTTP/1 connection starts a head: 10 s to finish it.
        s.read_some();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(s.expired(&l), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            s.expired(&l),
            Some("request head not completed within the header read timeout")
        );
        // HTTP/2 frames between requests (pings, window updates) are no head.
        let s = state(Duration::from_secs(1));
        s.begin(true);
        s.end();
        s.read_some();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(s.expired(&l), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(s.expired(&l), Some("idle"));
    }
}
