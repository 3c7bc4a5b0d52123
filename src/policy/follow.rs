//! The first policy read at start ([`start`], with a store's `cache_file`
//! fallback), and following a shared store: a server's snapshot kept on the store's newest
//! content ([`follow`]: notifications, polls, reconnects), and a Lambda
//! instance's read on invocation ([`refresh_if_due`]). Reading a store is
//! [`super::source`]'s job; publishing a snapshot is [`super::reload`]'s.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::snapshot::{SnapshotError, Sources};
use super::{
    reload::PolicyStore,
    snapshot::Snapshot,
    source::{self, Client, Origin, Read, StoreError, StoreStatus, Wake, cache_text, write_cache},
};
use crate::config::PolicyConfig;

/// How long notifications must pause before a reload, and the most a burst delays one.
const QUIET: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_millis(300);

/// Reconnect delays: doubling from 250 ms up to 10 s, each with up to 50 % jitter.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(Self::MAX);
        base + base.mul_f64(jitter() * 0.5)
    }
}

/// A number in `[0, 1)`, different per call and per process (no RNG crate for this).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Keeps `store`'s snapshot on the store's newest content: reloads on
/// notification (bursts coalesced), checks every `poll_secs`, reconnects with
/// backoff and rereads on reconnect. `after` runs after each new revision.
pub fn follow(
    store: Arc<PolicyStore>,
    client: Option<Client>,
    after: impl Fn(&Arc<Snapshot>) + Send + Sync + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    let status = Arc::clone(store.store_status()?);
    let cfg = store.load().config.policy.clone();
    // The client of the read at start listened before it read: nothing
    // since is lost, and its next read looks only for changes (a full read
    // of a million rows again would cost a second). A new client reads whole.
    let mut force = client.is_none();
    let mut client = match client.map_or_else(|| Client::new(&cfg), Ok) {
        Ok(c) => c,
        Err(e) => {
            status.failed(&e);
            return None;
        }
    };
    let poll = Duration::from_secs(cfg.poll_secs);
    tracing::info!(store = %status.url, poll_secs = cfg.poll_secs, "following the policy store");
    Some(tokio::spawn(async move {
        // What the read at start found goes to the cache file now.
        if status.view().origin == Origin::Store {
            refresh_cache(&status, &cfg);
        }
        let mut backoff = Backoff::new();
        loop {
            match client.sync(force).await {
                Ok(Some(read)) => apply(&store, &status, &cfg, read, &after).await,
                Ok(None) => status.synced(false),
                Err(e) => {
                    if status.view().error.as_deref() != Some(&e.to_string()) {
                        tracing::warn!(error = %e, serving = %store.load().revision, "policy store unreachable; the last good revision keeps serving");
                    }
                    status.failed(&e);
                    client.disconnect();
                    tokio::time::sleep(backoff.next()).await;
                    force = true;
                    continue;
                }
            }
            backoff.reset();
            force = false;
            let woke = tokio::select! {
                w = tokio::time::timeout(poll, client.changed()) => w,
                () = status.kicked() => {
                    tracing::info!(store = %status.url, "SIGHUP: rereading the policy store");
                    force = true;
                    continue;
                }
            };
            match woke {
                Ok(Wake::Notified) => {
                    // The client remembers the notification: the next read
                    // skips its cheap check (a change log is still read
                    // rather than the whole table).
                    coalesce(&mut client).await;
                }
                Ok(Wake::Lost(message)) => {
                    let e = StoreError {
                        store: status.url.clone(),
                        message,
                    };
                    tracing::warn!(error = %e, "policy store connection lost; reconnecting");
                    status.failed(&e);
                    client.disconnect();
                    force = true;
                }
                Err(_) => {} // the poll: a cheap change check
            }
        }
    }))
}

/// Waits until notifications pause for [`QUIET`], at most [`MAX_DELAY`]: a
/// burst of commits becomes one reload.
async fn coalesce(client: &mut Client) {
    let deadline = tokio::time::Instant::now() + MAX_DELAY;
    loop {
        let wait = QUIET.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        if wait.is_zero() {
            return;
        }
        match tokio::time::timeout(wait, client.changed()).await {
            Ok(Wake::Notified) => continue,
            // A lost connection shows again at the next read.
            Ok(Wake::Lost(_)) | Err(_) => return,
        }
    }
}

/// Counts the read (`ok` only when the text differs from the last one read:
/// a forced reread of the same rows is `unchanged`), serves what it read if
/// it builds (row changes incrementally when they can be), and writes the
/// cache file when it does (after row changes at most every [`CACHE_EVERY`]).
async fn apply(
    store: &PolicyStore,
    status: &StoreStatus,
    cfg: &PolicyConfig,
    read: Read,
    after: &impl Fn(&Arc<Snapshot>),
) {
    let full = match read {
        Read::Full(fetched) => {
            let new = status.latest().is_none_or(|l| l.text != fetched.text);
            status.synced(new);
            status.set_latest(fetched, Origin::Store);
            match store.reload().await {
                Ok(Some(snap)) => after(&snap),
                // The text read is the one serving (perhaps since start).
                Ok(None) => {}
                Err(_) => return,
            }
            true
        }
        Read::Rows(changes) => {
            status.synced(true);
            status.push_changes(&changes);
            match store.apply_rows(&changes).await {
                Ok(Some(snap)) => after(&snap),
                Ok(None) => {}
                Err(_) => return,
            }
            false
        }
    };
    if full || status.cache_due(CACHE_EVERY) {
        refresh_cache(status, cfg);
    }
}

/// Writes the store's latest policy to the cache file, unless it holds it already.
fn refresh_cache(status: &StoreStatus, cfg: &PolicyConfig) {
    let Some(path) = &cfg.cache_file else { return };
    let Some(latest) = status.latest() else {
        return;
    };
    let text = cache_text(&latest);
    if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str())
        && let Err(e) = write_cache(path, &text)
    {
        tracing::warn!(cache_file = %path.display(), error = %e, "cannot write the policy cache file");
    }
}

/// After row changes, the cache file is rewritten at most this often (each
/// write is the whole policy).
const CACHE_EVERY: Duration = Duration::from_secs(30);

/// Lambda: reads the store on invocation when `poll_secs` have passed since
/// the last read (a frozen instance runs no background task).
pub async fn refresh_if_due(store: &PolicyStore, client: &tokio::sync::Mutex<Option<Client>>) {
    let Some(status) = store.store_status() else {
        return;
    };
    let cfg = store.load().config.policy.clone();
    if !status.due(Duration::from_secs(cfg.poll_secs)) {
        return;
    }
    let mut guard = client.lock().await;
    if guard.is_none() {
        match Client::new(&cfg) {
            Ok(c) => *guard = Some(c),
            Err(e) => return status.failed(&e),
        }
    }
    let Some(c) = guard.as_mut() else { return };
    match c.sync(false).await {
        Ok(Some(read)) => apply(store, status, &cfg, read, &|_| {}).await,
        Ok(None) => status.synced(false),
        Err(e) => {
            tracing::warn!(error = %e, serving = %store.load().revision, "policy store unreachable; the last good revision keeps serving");
            status.failed(&e);
            c.disconnect();
        }
    }
}

/// The first snapshot. With a `store`: read it once (else the cache file,
/// else an unavailable snapshot: checks answer `policy_unavailable` and the
/// follower keeps trying). A store whose content does not build at start is
/// treated like one that does not answer.
pub async fn start(
    path: &Path,
) -> Result<(Snapshot, Option<Arc<StoreStatus>>, Option<source::Client>), SnapshotError> {
    let config = crate::config::Config::load(path)?;
    let Some(status) = StoreStatus::new(&config.policy).map(Arc::new) else {
        return Ok((Snapshot::load(path).await?, None, None));
    };
    let client = source::initial(&status, &config.policy).await;
    let latest = status.latest();
    let snapshot = match Sources::read(path, latest.as_deref())?.build().await {
        Ok(s) => s,
        Err(e @ SnapshotError::Policy(_)) => {
            tracing::error!(error = %e, "the store's policy does not load");
            source::use_cache(&status, &config.policy);
            let cached = status.latest().filter(|c| Some(c) != latest.as_ref());
            match Sources::read(path, cached.as_deref())?.build().await {
                Ok(s) => s,
                Err(_) => Sources::read(path, None)?.build().await?,
            }
        }
        Err(e) => return Err(e),
    };
    if !snapshot.available {
        tracing::error!(store = %status.url, "no policy: checks answer 503 policy_unavailable until the store answers");
    }
    Ok((snapshot, Some(status), client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new();
        let first = b.next();
        assert!(first >= Backoff::FIRST && first <= Backoff::FIRST.mul_f64(1.5));
        for _ in 0..20 {
            let d = b.next();
            assert!(d <= Backoff::MAX.mul_f64(1.5), "{d:?}");
        }
        b.reset();
        assert!(b.next() <= Backoff::FIRST.mul_f64(1.5));
    }
}
