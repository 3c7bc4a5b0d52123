//! casbin-rs's role manager with per-request roles: claim roles must behave
//! exactly as if the policy held `g, <sub>, <role>` for one request, and
//! mutating the shared role graph would leak them between concurrent
//! requests. [`OverlayRoleManager`] answers from the policy's own graph plus
//! a thread-local overlay that [`Overlay::install`] sets for the duration of
//! one synchronous `enforce` call.

use std::cell::RefCell;

use casbin::{DefaultRoleManager, MatchingFn, RoleManager};

use super::Query;

/// The per-request roles of the enforce call running on this thread.
struct ActiveOverlay {
    subject: String,
    roles: Vec<String>,
    /// `Some(d)`: the overlay links exist in domain `d` only (three-field `g`).
    domain: Option<String>,
}

thread_local! {
    static OVERLAY: RefCell<Option<ActiveOverlay>> = const { RefCell::new(None) };
}

/// Installs the overlay for one enforce call and removes it on drop, even on error.
pub(super) struct Overlay;

impl Overlay {
    pub(super) fn install(q: &Query<'_>, with_domain: bool) -> Overlay {
        OVERLAY.with(|o| {
            *o.borrow_mut() = (!q.roles.is_empty()).then(|| ActiveOverlay {
                subject: q.subject.to_string(),
                roles: q.roles.to_vec(),
                domain: with_domain.then(|| q.domain.to_string()),
            });
        });
        Overlay
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        OVERLAY.with(|o| *o.borrow_mut() = None);
    }
}

/// casbin-rs's default role manager plus this thread's per-request links.
///
/// `has_link(a, b)` in the combined graph is true when it is true in the
/// policy graph, or when `a` reaches the request subject (or is it) and some
/// request role reaches `b`: exactly the paths that `g, sub, role` lines add.
pub(super) struct OverlayRoleManager {
    inner: DefaultRoleManager,
}

impl Default for OverlayRoleManager {
    fn default() -> Self {
        // casbin-rs's own default hierarchy depth.
        Self {
            inner: DefaultRoleManager::new(10),
        }
    }
}

impl RoleManager for OverlayRoleManager {
    fn clear(&mut self) {
        self.inner.clear()
    }
    fn add_link(&mut self, name1: &str, name2: &str, domain: Option<&str>) {
        self.inner.add_link(name1, name2, domain)
    }
    fn matching_fn(&mut self, role: Option<MatchingFn>, domain: Option<MatchingFn>) {
        self.inner.matching_fn(role, domain)
    }
    fn delete_link(
        &mut self,
        name1: &str,
        name2: &str,
        domain: Option<&str>,
    ) -> casbin::Result<()> {
        self.inner.delete_link(name1, name2, domain)
    }
    fn has_link(&self, name1: &str, name2: &str, domain: Option<&str>) -> bool {
        if self.inner.has_link(name1, name2, domain) {
            return true;
        }
        OVERLAY.with(|o| {
            let o = o.borrow();
            let Some(ov) = o.as_ref() else { return false };
            if ov.domain.as_deref() != domain {
                return false;
            }
            let from_subject =
                name1 == ov.subject || self.inner.has_link(name1, &ov.subject, domain);
            from_subject
                && ov
                    .roles
                    .iter()
                    .any(|r| self.inner.has_link(r, name2, domain))
        })
    }
    fn get_roles(&self, name: &str, domain: Option<&str>) -> Vec<String> {
        self.inner.get_roles(name, domain)
    }
    fn get_users(&self, name: &str, domain: Option<&str>) -> Vec<String> {
        self.inner.get_users(name, domain)
    }
}
