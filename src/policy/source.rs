//! Where the policy lines come from: a file ([`file`]), or a shared store
//! every replica follows ([`postgres`], [`http`]; `docs/fleet.md`).
//!
//! A store only ever yields policy *text* in the CSV form of a policy file;
//! the snapshot builder does not care where it came from, and the revision is
//! the hash of that text, so replicas reading the same rows report the same
//! revision. [`initial`] is the first read at start, with the `cache_file`
//! fallback; `policy::follow` keeps a server's snapshot current.

pub mod file;
pub mod http;
pub mod postgres;
pub mod url;

pub use url::{StoreKind, redact};

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use parking_lot::Mutex;

use crate::config::PolicyConfig;

/// What went wrong talking to a store. The message never holds the URL as
/// configured, only [`redact`]ed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("policy store {store}: {message}")]
pub struct StoreError {
    pub store: String,
    pub message: String,
}

/// Policy text read from a store, with what each line came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// The policy in the CSV form of a policy file, one rule per line.
    pub text: String,
    /// For each line, the row it came from (its `id`, when the table has one).
    pub rows: Vec<Option<String>>,
}

/// What one read of a store found.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// The whole policy.
    Full(Fetched),
    /// Only the rows that changed since the last read, in commit order
    /// (PostgreSQL's change log).
    Rows(Vec<RowChange>),
}

/// One change-log entry: the row `id` is now present with these values, or
/// is gone (its values as they were).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChange {
    pub present: bool,
    pub id: i64,
    pub ptype: String,
    pub values: Vec<String>,
}

/// A connection to a store: reads the policy, and for stores that push,
/// waits for the next change.
pub enum Client {
    Postgres(Box<postgres::Follower>),
    Http(http::Poller),
}

/// Why [`Client::changed`] returned.
pub enum Wake {
    /// The store said something changed.
    Notified,
    /// The connection that carries notifications was lost.
    Lost(String),
}

impl Client {
    pub fn new(cfg: &PolicyConfig) -> Result<Client, StoreError> {
        let url = cfg.store.as_deref().unwrap_or_default();
        match StoreKind::of(url) {
            Some(StoreKind::Postgres) => {
                Ok(Client::Postgres(Box::new(postgres::Follower::new(cfg)?)))
            }
            Some(StoreKind::Http) => Ok(Client::Http(http::Poller::new(cfg)?)),
            None => Err(StoreError {
                store: redact(url),
                message: "not a store URL".into(),
            }),
        }
    }

    /// Reads the policy, or what changed in it. `Ok(None)`: a cheap check
    /// says nothing changed since the last read (`force` skips that check
    /// and reads the whole policy).
    pub async fn sync(&mut self, force: bool) -> Result<Option<Read>, StoreError> {
        match self {
            Client::Postgres(p) => p.sync(force).await,
            Client::Http(h) => Ok(h.sync(force).await?.map(Read::Full)),
        }
    }

    /// Waits for the store to say it changed; never returns for stores that do not push.
    pub async fn changed(&mut self) -> Wake {
        match self {
            Client::Postgres(p) => p.changed().await,
            Client::Http(_) => std::future::pending().await,
        }
    }

    /// Drops the connection; the next [`sync`](Self::sync) reconnects.
    pub fn disconnect(&mut self) {
        if let Client::Postgres(p) = self {
            p.disconnect();
        }
    }
}

/// Where the text being served came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Nothing yet: checks answer `policy_unavailable`.
    None,
    Store,
    CacheFile,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::None => "none",
            Origin::Store => "store",
            Origin::CacheFile => "cache_file",
        }
    }
}

/// What a server knows about its store, shared with `/v1/policy`.
#[derive(Debug)]
pub struct StoreStatus {
    pub kind: StoreKind,
    /// The URL, [`redact`]ed.
    pub url: String,
    inner: Mutex<Inner>,
    /// Asks the follower for a full read now (SIGHUP).
    kick: tokio::sync::Notify,
    /// Unix milliseconds since which reads fail (0: the last one succeeded):
    /// read on every check under `max_staleness_secs`, so no lock.
    failing_since_ms: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    latest: Option<Arc<Fetched>>,
    /// Row changes read since `latest` (the text is composed when asked for).
    pending: Vec<RowChange>,
    /// When the cache file was last written after row changes.
    cache_written: Option<std::time::Instant>,
    origin: Origin,
    connected: bool,
    last_sync: Option<SystemTime>,
    failing_since: Option<SystemTime>,
    error: Option<String>,
    last_attempt: Option<std::time::Instant>,
}

/// A point-in-time copy of [`StoreStatus`] for reporting.
#[derive(Debug, Clone)]
pub struct StatusView {
    pub origin: Origin,
    pub connected: bool,
    pub last_sync: Option<SystemTime>,
    pub failing_since: Option<SystemTime>,
    pub error: Option<String>,
}

impl StoreStatus {
    pub fn new(cfg: &PolicyConfig) -> Option<StoreStatus> {
        let url = cfg.store.as_deref()?;
        crate::metrics::store_configured();
        Some(StoreStatus {
            kind: StoreKind::of(url)?,
            url: redact(url),
            inner: Mutex::new(Inner {
                latest: None,
                pending: Vec::new(),
                cache_written: None,
                origin: Origin::None,
                connected: false,
                last_sync: None,
                failing_since: None,
                error: None,
                last_attempt: None,
            }),
            kick: tokio::sync::Notify::new(),
            failing_since_ms: AtomicU64::new(0),
        })
    }

    /// Resolves when [`kick`](Self::kick) was called (the follower's wake-up).
    pub(crate) async fn kicked(&self) {
        self.kick.notified().await;
    }

    /// Asks the follower to read the whole store now.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// The newest text read (from the store, else the cache file), valid or
    /// not, with the row changes read since applied (composing it costs a
    /// pass over the whole text: a full reload or a cache write asks, a row
    /// change applied incrementally does not).
    pub fn latest(&self) -> Option<Arc<Fetched>> {
        let mut i = self.inner.lock();
        if !i.pending.is_empty()
            && let Some(base) = i.latest.as_deref()
        {
            let composed = compose(base, &i.pending);
            i.latest = Some(Arc::new(composed));
            i.pending.clear();
        }
        i.latest.clone()
    }

    /// Whether the cache file is due a rewrite (at most every `every`);
    /// counts this call as the write when it is.
    pub(crate) fn cache_due(&self, every: Duration) -> bool {
        let mut i = self.inner.lock();
        let due = i.cache_written.is_none_or(|t| t.elapsed() >= every);
        if due {
            i.cache_written = Some(std::time::Instant::now());
        }
        due
    }

    /// Row changes read from the store, on top of the latest text.
    pub(crate) fn push_changes(&self, changes: &[RowChange]) {
        let mut i = self.inner.lock();
        i.pending.extend_from_slice(changes);
        i.origin = Origin::Store;
    }

    pub fn view(&self) -> StatusView {
        let i = self.inner.lock();
        StatusView {
            origin: i.origin,
            connected: i.connected,
            last_sync: i.last_sync,
            failing_since: i.failing_since,
            error: i.error.clone(),
        }
    }

    pub(crate) fn set_latest(&self, fetched: Fetched, origin: Origin) {
        let mut i = self.inner.lock();
        i.latest = Some(Arc::new(fetched));
        i.pending.clear();
        i.origin = origin;
    }

    /// A read succeeded (`changed`: it returned new text).
    pub(crate) fn synced(&self, changed: bool) {
        let now = SystemTime::now();
        {
            let mut i = self.inner.lock();
            i.connected = true;
            i.last_sync = Some(now);
            i.failing_since = None;
            i.error = None;
            i.last_attempt = Some(std::time::Instant::now());
        }
        self.failing_since_ms.store(0, Ordering::Relaxed);
        crate::metrics::store_synced(if changed { "ok" } else { "unchanged" }, now);
    }

    /// How long reads have been failing (`None` while the store answers):
    /// what `max_staleness_secs` bounds. Lock-free, for the request path.
    pub fn failing_for(&self, now: SystemTime) -> Option<Duration> {
        match self.failing_since_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                now.duration_since(UNIX_EPOCH + Duration::from_millis(ms))
                    .unwrap_or_default(),
            ),
        }
    }

    pub(crate) fn failed(&self, e: &StoreError) {
        let now = SystemTime::now();
        {
            let mut i = self.inner.lock();
            i.connected = false;
            let since = *i.failing_since.get_or_insert(now);
            i.error = Some(e.to_string());
            i.last_attempt = Some(std::time::Instant::now());
            let ms = since
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_millis().max(1));
            self.failing_since_ms
                .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        crate::metrics::store_synced("error", now);
    }

    /// Whether a read is due (Lambda: checked on invocation, at most every `every`).
    pub fn due(&self, every: Duration) -> bool {
        self.inner
            .lock()
            .last_attempt
            .is_none_or(|t| t.elapsed() >= every)
    }
}

/// The first read at start. On failure the cache file stands in, if set and
/// readable; else nothing does and checks answer `policy_unavailable` until
/// the store answers. Returns the client for `policy::follow::follow` to keep using.
pub async fn initial(status: &StoreStatus, cfg: &PolicyConfig) -> Option<Client> {
    let mut client = match Client::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            status.failed(&e);
            return None;
        }
    };
    match tokio::time::timeout(START_TIMEOUT, client.sync(true)).await {
        // A forced read is a full read.
        Ok(Ok(Some(Read::Full(fetched)))) => {
            tracing::info!(store = %status.url, lines = fetched.rows.len(), "policy read from the store");
            status.synced(true);
            status.set_latest(fetched, Origin::Store);
            return Some(client);
        }
        Ok(Ok(None | Some(Read::Rows(_)))) => status.synced(false),
        Ok(Err(e)) => status.failed(&e),
        Err(_) => status.failed(&StoreError {
            store: status.url.clone(),
            message: format!("no answer within {} s", START_TIMEOUT.as_secs()),
        }),
    }
    client.disconnect();
    use_cache(status, cfg);
    Some(client)
}

/// `base` (rows in id order, each line's id in `rows`) with `changes`
/// applied in order: what a full read would now return.
fn compose(base: &Fetched, changes: &[RowChange]) -> Fetched {
    let mut touched: std::collections::BTreeMap<i64, Option<&RowChange>> =
        std::collections::BTreeMap::new();
    for c in changes {
        touched.insert(c.id, c.present.then_some(c));
    }
    let mut out = Fetched {
        text: String::with_capacity(base.text.len()),
        rows: Vec::with_capacity(base.rows.len()),
    };
    let mut pending = touched.iter().peekable();
    let emit = |out: &mut Fetched, c: &RowChange| {
        let mut line = String::new();
        if postgres::render(&mut line, &c.ptype, &c.values).is_ok() {
            out.text.push_str(&line);
            out.rows.push(Some(c.id.to_string()));
        }
    };
    for (line, id) in base.text.lines().zip(&base.rows) {
        let id: Option<i64> = id.as_deref().and_then(|i| i.parse().ok());
        if let Some(id) = id {
            while let Some(&(&at, c)) = pending.peek()
                && at < id
            {
                if let Some(c) = c {
                    emit(&mut out, c);
                }
                pending.next();
            }
            if touched.contains_key(&id) {
                continue;
            }
        }
        out.text.push_str(line);
        out.text.push('\n');
        out.rows.push(id.map(|i| i.to_string()));
    }
    for (_, c) in pending {
        if let Some(c) = c {
            emit(&mut out, c);
        }
    }
    out
}

/// Serves the cache file in place of the store, if there is one.
pub fn use_cache(status: &StoreStatus, cfg: &PolicyConfig) {
    let error = status.view().error.unwrap_or_default();
    match cfg.cache_file.as_deref().map(read_cache) {
        Some(Ok(fetched)) => {
            tracing::warn!(%error, cache_file = %cfg.cache_file.as_deref().unwrap_or(Path::new("")).display(), "policy store unreachable at start; serving the cached policy");
            status.set_latest(fetched, Origin::CacheFile);
        }
        Some(Err(e)) => {
            tracing::error!(%error, cache_error = %e, "policy store unreachable and the cache file unreadable: no policy; checks answer 503 policy_unavailable");
        }
        None => {
            tracing::error!(%error, "policy store unreachable at start and no cache_file: no policy; checks answer 503 policy_unavailable");
        }
    }
}

/// How long the first read at start may take before the cache file stands in.
const START_TIMEOUT: Duration = Duration::from_secs(5);

fn read_cache(path: &Path) -> std::io::Result<Fetched> {
    let text = std::fs::read_to_string(path)?;
    // The rows' ids, when the cache file was written from a store that has them.
    if let Some((first, rest)) = text.split_once('\n')
        && let Some(ranges) = first.strip_prefix(ROW_IDS)
        && let Some(ids) = parse_ranges(ranges)
        && ids.len() == rest.lines().count()
    {
        return Ok(Fetched {
            text: rest.to_string(),
            rows: ids.into_iter().map(|i| Some(i.to_string())).collect(),
        });
    }
    let rows = vec![None; text.lines().count()];
    Ok(Fetched { text, rows })
}

/// The first line of a cache file written from rows with ids: a comment
/// (policy readers skip it) listing them as ranges, so a replica starting
/// from the cache computes the revision the rows have.
const ROW_IDS: &str = "# authzd row ids: ";

/// What the cache file holds for `fetched`: its text, after the row ids.
pub(crate) fn cache_text(fetched: &Fetched) -> String {
    let ids: Option<Vec<i64>> = fetched
        .rows
        .iter()
        .map(|r| r.as_deref()?.parse().ok())
        .collect();
    let Some(ids) = ids.filter(|i| !i.is_empty()) else {
        return fetched.text.clone();
    };
    let mut out = String::with_capacity(fetched.text.len() + 64);
    out.push_str(ROW_IDS);
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        if i > 0 {
            out.push(',');
        }
        match j > i {
            true => out.push_str(&format!("{}-{}", ids[i], ids[j])),
            false => out.push_str(&ids[i].to_string()),
        }
        i = j + 1;
    }
    out.push('\n');
    out.push_str(&fetched.text);
    out
}

/// `1-3,7` → `[1, 2, 3, 7]`; `None` if malformed or absurdly large.
fn parse_ranges(text: &str) -> Option<Vec<i64>> {
    let mut out = Vec::new();
    for part in text.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i64>().ok()?, b.parse::<i64>().ok()?),
            None => {
                let a = part.parse::<i64>().ok()?;
                (a, a)
            }
        };
        if b < a || b - a > 100_000_000 || out.len() > 100_000_000 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// Writes `text` to the cache file: a new file renamed over the old, so a
/// crash mid-write never leaves half a policy.
pub(crate) fn write_cache(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Writes one CSV field the way casbin's reader takes it back: quoted when it
/// holds a comma or surrounding blanks. That reader has no escape for `"`
/// and no multi-line fields, so a value with a quote or a line break is refused.
pub(crate) fn push_field(out: &mut String, v: &str) -> Result<(), &'static str> {
    if v.contains('"') {
        return Err("a value holds a double quote, which casbin's CSV form cannot carry");
    }
    if v.contains(['\n', '\r']) {
        return Err("a value holds a line break");
    }
    if v.contains(',') || v.trim() != v {
        out.push('"');
        out.push_str(v);
        out.push('"');
    } else {
        out.push_str(v);
    }
    Ok(())
}

/// One policy line's fields, as casbin reads them: split at commas outside
/// `"…"`, each trimmed, surrounding quotes removed.
pub fn split_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut raw = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (at, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                raw.push(&line[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("unterminated `\"`");
    }
    raw.push(&line[start..]);
    Ok(raw
        .into_iter()
        .map(|f| {
            let t = f.trim();
            match t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                Some(inner) => inner.to_string(),
                None => t.to_string(),
            }
        })
        .collect())
}

/// The rules of a policy CSV file as fields (`ptype` first), as casbin reads
/// them: blank lines and `#` comments skipped, fields trimmed, `"…"` quoting a
/// field that holds commas. `Err((line, message))` for what a table cannot hold.
pub fn csv_lines(text: &str) -> Result<Vec<Vec<String>>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_line(line).map_err(|m| (i + 1, m.to_string()))?;
        out.push(fields);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_signatures_are_redacted() {
        assert_eq!(
            redact("postgres://authzd:s3cret@db.internal:5432/authz?sslmode=require"),
            "postgres://authzd:***@db.internal:5432/authz?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db/authz?user=a&password=s3cret"),
            "postgresql://db/authz?user=a&password=***"
        );
        assert_eq!(
            redact(
                "https://bucket.s3.amazonaws.com/policy.csv?X-Amz-Signature=abc&X-Amz-Credential=k"
            ),
            "https://bucket.s3.amazonaws.com/policy.csv?X-Amz-Signature=***&X-Amz-Credential=***"
        );
        assert_eq!(
            redact("https://u:p@w@h/x"),
            "https://u:***@h/x",
            "the host starts after the last @"
        );
        assert_eq!(redact("host=db password=x"), "<not a URL>");
    }

    #[test]
    fn csv_lines_read_like_casbin() {
        let text = "# comment\n\np, alice, /x/*, GET\n  g , bob,admin\np, \"a,b\", \" pad\"\n";
        assert_eq!(
            csv_lines(text).unwrap(),
            vec![
                vec!["p", "alice", "/x/*", "GET"],
                vec!["g", "bob", "admin"],
                vec!["p", "a,b", " pad"],
            ]
        );
        assert_eq!(csv_lines("p, \"open, x\n").unwrap_err().0, 1);
    }

    #[test]
    fn store_kinds() {
        assert_eq!(StoreKind::of("postgres://x"), Some(StoreKind::Postgres));
        assert_eq!(StoreKind::of("PostgreSQL://x"), Some(StoreKind::Postgres));
        assert_eq!(StoreKind::of("https://x"), Some(StoreKind::Http));
        assert_eq!(StoreKind::of("s3://x"), None);
        assert_eq!(StoreKind::of("policy.csv"), None);
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let mut s = String::new();
        for v in ["alice", "a,b", " pad", "/x/*"] {
            push_field(&mut s, v).unwrap();
            s.push('|');
        }
        assert_eq!(s, "alice|\"a,b\"|\" pad\"|/x/*|");
        assert!(push_field(&mut s, "say \"hi\"").is_err());
        assert!(push_field(&mut s, "two\nlines").is_err());
    }
}
