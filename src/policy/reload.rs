//! Publishing snapshots: build a complete new one off the request path, then
//! swap it in atomically. Requests never wait for a reload, and a change that
//! does not build is rejected whole while the previous revision keeps serving.
//!
//! [`watch`] reloads when the config, model or policy file changes: it
//! watches their directories (not the files), so editors that write a new
//! file and rename it, and Kubernetes' `..data` symlink swap, are seen too.

use std::{
    collections::HashSet,
    ffi::OsString,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher as _};
use parking_lot::{Mutex, RwLock};

use super::{
    snapshot::{Snapshot, SnapshotError, Sources},
    source::StoreStatus,
};
use crate::config::{Config, ServerConfig};

/// The live snapshot plus what the last reload attempt said.
pub struct PolicyStore {
    current: ArcSwap<Snapshot>,
    config_path: PathBuf,
    last_error: Mutex<Option<String>>,
    /// Settings read once at start; a reload that changes them needs a restart.
    started_with: StartupSettings,
    restart_required: Mutex<Option<String>>,
    /// When the files were last read (by a watcher event, SIGHUP or a poll), and the result.
    last_check: Mutex<Option<(SystemTime, &'static str)>>,
    /// The last [`HISTORY`] loads and rejected reloads, oldest first.
    history: Mutex<std::collections::VecDeque<ReloadEvent>>,
    /// The shared store the policy follows, when it does not come from a file.
    store_status: Option<Arc<StoreStatus>>,
    /// One reload at a time (the file watcher, SIGHUP and the store follower
    /// all call it): a slower, older build never swaps in after a newer one.
    reloading: tokio::sync::Mutex<()>,
}

/// How many reloads [`PolicyStore::history`] keeps.
const HISTORY: usize = 50;

/// One load of the policy, or one rejected attempt.
#[derive(Debug, Clone)]
pub struct ReloadEvent {
    pub at: SystemTime,
    /// `start`, `ok` (a new revision serves) or `error` (rejected; the old one serves).
    pub result: &'static str,
    /// The revision serving after this event.
    pub revision: Arc<str>,
    pub rules: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct StartupSettings {
    server: ServerConfig,
    decision_log: String,
    tracing: crate::config::TracingConfig,
    admin: Option<crate::config::AdminConfig>,
    /// Which store is followed and how: the follower is set up once.
    store: (bool, Option<String>, String, String, u64, Option<PathBuf>),
}

impl StartupSettings {
    fn of(c: &Config) -> Self {
        let p = &c.policy;
        Self {
            server: c.server.clone(),
            decision_log: c.decision_log.output.clone(),
            tracing: c.tracing.clone(),
            admin: c.admin.clone(),
            store: (
                p.policy.is_some(),
                p.store.clone(),
                p.table.clone(),
                p.channel.clone(),
                p.poll_secs,
                p.cache_file.clone(),
            ),
        }
    }
}

impl PolicyStore {
    pub fn new(snapshot: Snapshot, config_path: &Path) -> Self {
        Self::following(snapshot, config_path, None)
    }

    /// A store whose policy text comes from the shared store behind `status`.
    pub fn following(
        snapshot: Snapshot,
        config_path: &Path,
        store_status: Option<Arc<StoreStatus>>,
    ) -> Self {
        let first = ReloadEvent {
            at: snapshot.loaded_at,
            result: "start",
            revision: Arc::clone(&snapshot.revision),
            rules: snapshot.policy.rules,
            error: None,
        };
        Self {
            history: Mutex::new(std::collections::VecDeque::from([first])),
            store_status,
            reloading: tokio::sync::Mutex::new(()),
            started_with: StartupSettings::of(&snapshot.config),
            current: ArcSwap::from_pointee(snapshot),
            config_path: config_path.to_owned(),
            last_error: Mutex::new(None),
            restart_required: Mutex::new(None),
            last_check: Mutex::new(None),
        }
    }

    /// When the files were last read for a reload, and what came of it
    /// (`ok`, `error` or `unchanged`).
    pub fn last_check(&self) -> Option<(SystemTime, &'static str)> {
        *self.last_check.lock()
    }

    fn checked(&self, result: &'static str) {
        let now = SystemTime::now();
        *self.last_check.lock() = Some((now, result));
        let snap = self.load();
        crate::metrics::policy_reloaded(result, &snap.revision);
        if result != "unchanged" {
            let mut h = self.history.lock();
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(ReloadEvent {
                at: now,
                result,
                revision: Arc::clone(&snap.revision),
                rules: snap.policy.rules,
                error: self.last_error(),
            });
        }
    }

    /// The last loads and rejected reloads, oldest first.
    pub fn history(&self) -> Vec<ReloadEvent> {
        self.history.lock().iter().cloned().collect()
    }

    /// The snapshot a new request should use. Wait-free.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The shared store the policy follows, if any.
    pub fn store_status(&self) -> Option<&Arc<StoreStatus>> {
        self.store_status.as_ref()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The error of the last failed reload, cleared by a successful one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Set when a loaded config changed settings that only a restart applies.
    pub fn restart_required(&self) -> Option<String> {
        self.restart_required.lock().clone()
    }

    /// Rebuilds from disk and swaps the result in if its content differs.
    /// `Ok(None)`: nothing changed. On failure the current snapshot keeps serving.
    pub async fn reload(&self) -> Result<Option<Arc<Snapshot>>, SnapshotError> {
        // Reading and hashing the files is cheap; building the snapshot is not
        // (~0.3 s and a second copy of the rules at 100k rules), so it only
        // happens when the content changed, and off the runtime's worker
        // threads, which keep answering from the current snapshot.
        let _one_at_a_time = self.reloading.lock().await;
        let store_text = self.store_status.as_ref().and_then(|s| s.latest());
        let built = match Sources::read(&self.config_path, store_text.as_deref()) {
            Ok(sources) if sources.content == self.load().content => {
                // Reverting a bad edit to the serving content clears the error.
                *self.last_error.lock() = None;
                self.checked("unchanged");
                return Ok(None);
            }
            Ok(sources) => {
                let handle = tokio::runtime::Handle::current();
                let current = self.load();
                tokio::task::spawn_blocking(move || {
                    // Only the policy file's lines changed: update the
                    // current policy in place of a full build when it can.
                    let started = std::time::Instant::now();
                    let sources = match sources.apply_to(&current) {
                        Ok(next) => {
                            tracing::info!(
                                ms = started.elapsed().as_secs_f64() * 1e3,
                                "policy file change applied incrementally"
                            );
                            return Ok(next);
                        }
                        Err((sources, why)) => {
                            tracing::info!(why = %why, "building the policy whole");
                            sources
                        }
                    };
                    handle.block_on(sources.build())
                })
                .await
                .unwrap_or_else(|e| Err(SnapshotError::Aborted(e.to_string())))
            }
            Err(e) => Err(e),
        };
        match built {
            Ok(next) => {
                let next = Arc::new(next);
                self.note_restart_settings(&next.config);
                for w in next.warnings() {
                    tracing::warn!("{w}");
                }
                let old = self.current.swap(Arc::clone(&next));
                *self.last_error.lock() = None;
                self.checked("ok");
                tracing::info!(from = %old.revision, to = %next.revision, rules = next.policy.rules, routes = next.routes.len(), evaluator = %next.policy.evaluator, "policy reloaded");
                Ok(Some(next))
            }
            Err(e) => {
                *self.last_error.lock() = Some(e.to_string());
                self.checked("error");
                tracing::error!(error = %e, serving = %self.load().revision, "policy reload rejected; previous revision keeps serving");
                Err(e)
            }
        }
    }

    /// Applies a store's row changes to the current snapshot incrementally
    /// and swaps the result in; when they cannot be applied so, reloads
    /// whole from the store's latest text. `Ok(None)`: nothing changed.
    pub async fn apply_rows(
        &self,
        changes: &[super::source::RowChange],
    ) -> Result<Option<Arc<Snapshot>>, SnapshotError> {
        let why = {
            let _one_at_a_time = self.reloading.lock().await;
            let current = self.load();
            let started = std::time::Instant::now();
            match current.with_rows(changes) {
                Ok(next) if next.content == current.content => {
                    self.checked("unchanged");
                    return Ok(None);
                }
                Ok(next) => {
                    let next = Arc::new(next);
                    let old = self.current.swap(Arc::clone(&next));
                    *self.last_error.lock() = None;
                    self.checked("ok");
                    tracing::info!(from = %old.revision, to = %next.revision, rows = changes.len(), rules = next.policy.rules, ms = started.elapsed().as_secs_f64() * 1e3, "policy store rows applied incrementally");
                    return Ok(Some(next));
                }
                Err(why) => why,
            }
        };
        tracing::info!(why = %why, "reading the store's policy whole");
        self.reload().await
    }

    fn note_restart_settings(&self, config: &Config) {
        let now = StartupSettings::of(config);
        let msg = (now != self.started_with).then(|| {
            format!(
                "[server] settings, decision_log.output, [tracing], [admin], or where policy comes from (policy/store/table/channel/poll_secs/cache_file) changed ({:?} -> {:?}); restart authzd to apply them",
                self.started_with, now
            )
        });
        if let Some(m) = &msg {
            tracing::warn!("{m}");
        }
        *self.restart_required.lock() = msg;
    }
}

/// How long the files must be quiet before a reload (editors write in bursts).
const DEBOUNCE: Duration = Duration::from_millis(25);

/// A running file watcher; dropping it stops watching.
pub struct PolicyWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PolicyWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The directories to watch and the file names in them that matter: each
/// file's own directory, and, when the file is a symlink, its target's
/// directory too (an in-place edit of the target is not an event in the link's directory).
fn targets(snap: &Snapshot, config_path: &Path) -> (HashSet<PathBuf>, HashSet<OsString>) {
    let mut dirs = HashSet::new();
    let mut names = HashSet::new();
    let shadow = snap.config.shadow.as_ref();
    let files = [
        Some(config_path),
        Some(snap.config.policy.model.as_path()),
        snap.config.policy.policy.as_deref(),
        shadow.map(|s| s.model.as_path()),
        shadow.map(|s| s.policy.as_path()),
    ];
    for file in files.into_iter().flatten() {
        let canonical = std::fs::canonicalize(file).ok();
        for f in std::iter::once(file).chain(canonical.as_deref()) {
            let dir = match f.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                _ => PathBuf::from("."),
            };
            dirs.insert(dir);
            if let Some(n) = f.file_name() {
                names.insert(n.to_owned());
            }
        }
    }
    (dirs, names)
}

/// Whether an event touches a watched file, or a `..`-prefixed entry (Kubernetes' `..data` swap).
fn relevant(event: &notify::Event, names: &HashSet<OsString>) -> bool {
    if event.kind.is_access() {
        return false;
    }
    event.paths.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| names.contains(n) || n.to_string_lossy().starts_with(".."))
    })
}

/// Starts watching; `after` runs after each successful reload (e.g. to fetch new issuers' keys).
pub fn watch(
    store: Arc<PolicyStore>,
    after: impl Fn(&Arc<Snapshot>) + Send + 'static,
) -> Result<PolicyWatcher, notify::Error> {
    let (dirs, names) = targets(&store.load(), store.config_path());
    let names = Arc::new(RwLock::new(names));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let filter = Arc::clone(&names);
    let initial = tx.clone();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            // A full channel means a reload is already pending: nothing is lost.
            Ok(event) if relevant(&event, &filter.read()) => {
                let _ = tx.try_send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        })?;
    // A directory can vanish between reading the snapshot and watching it
    // (a ConfigMap's old `..2026_…` directory, removed by the swap): watch
    // what is there, and let the first reload, below, find the rest.
    let mut watched = HashSet::new();
    let mut failed = None;
    for d in &dirs {
        match watcher.watch(d, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(d.clone());
            }
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory");
                failed = Some(e);
            }
        }
    }
    if let (true, Some(e)) = (watched.is_empty(), failed) {
        return Err(e);
    }
    tracing::info!(dirs = ?watched, "watching policy files");
    // A change between the snapshot's load and the watch's start raised no
    // event: look once now (a no-op when nothing changed).
    let _ = initial.try_send(());
    let task = tokio::spawn(async move {
        let mut watched = watched;
        while rx.recv().await.is_some() {
            // Debounce: wait for a quiet period.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let Ok(changed) = store.reload().await else {
                continue;
            };
            // The config may now name model/policy files elsewhere, and a
            // symlinked file may now resolve into another directory (a
            // ConfigMap swap), even when the content did not change.
            let (dirs, new_names) = targets(&store.load(), store.config_path());
            // A directory that cannot be watched now is tried again next time.
            let mut next = HashSet::new();
            for d in &dirs {
                if watched.contains(d) {
                    next.insert(d.clone());
                    continue;
                }
                match watcher.watch(d, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        next.insert(d.clone());
                    }
                    Err(e) => {
                        tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory");
                    }
                }
            }
            for d in watched.difference(&dirs) {
                let _ = watcher.unwatch(d);
            }
            watched = next;
            *names.write() = new_names;
            if let Some(snap) = changed {
                after(&snap);
            }
        }
    });
    Ok(PolicyWatcher { task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::{
        Event, EventKind,
        event::{AccessKind, CreateKind, ModifyKind},
    };

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_watched_files_and_configmap_swaps_are_relevant() {
        let names: HashSet<OsString> = ["policy.csv", "authzd.toml"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let modify = EventKind::Modify(ModifyKind::Any);
        assert!(relevant(&event(modify, "/etc/authzd/policy.csv"), &names));
        assert!(relevant(
            &event(EventKind::Create(CreateKind::File), "/etc/authzd/..data"),
            &names
        ));
        // The decision log often lives next to the config: its writes must not trigger reloads.
        assert!(!relevant(
            &event(modify, "/etc/authzd/decisions.log"),
            &names
        ));
        assert!(!relevant(
            &event(modify, "/etc/authzd/.policy.csv.swp"),
            &names
        ));
        assert!(!relevant(
            &event(EventKind::Access(AccessKind::Any), "/etc/authzd/policy.csv"),
            &names
        ));
    }
}
