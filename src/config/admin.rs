//! `[admin]`: the decision explorer's listener (`docs/explorer.md`).

use std::net::SocketAddr;

use serde::Deserialize;

/// Where the explorer listens and who may sign in to it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Never one of the decision ports. Without `roles`, loopback only.
    pub addr: SocketAddr,
    /// A token from a configured issuer holding one of these roles signs in
    /// (roles as the pipeline gathers them: claims, lookup, and `g` lines).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Recent decisions kept in memory for the live page.
    #[serde(default = "default_recent")]
    pub recent: usize,
    /// How long a sign-in lasts (never past the token's own `exp`).
    #[serde(default = "default_session_secs")]
    pub session_secs: u64,
}

fn default_recent() -> usize {
    AdminConfig::DEFAULT_RECENT
}

fn default_session_secs() -> u64 {
    8 * 3600
}

impl AdminConfig {
    pub const DEFAULT_RECENT: usize = 10_000;

    /// Whether sign-in is required (it is whenever `roles` is set).
    pub fn signs_in(&self) -> bool {
        !self.roles.is_empty()
    }

    /// What is wrong with this table, as (key, message), given the decision ports.
    pub fn check(&self, decision_ports: &[SocketAddr]) -> Result<(), (&'static str, String)> {
        if decision_ports
            .iter()
            .any(|p| p.port() == self.addr.port() && self.addr.port() != 0)
        {
            return Err((
                "admin.addr",
                format!(
                    "`{}` shares a port with a decision listener: the explorer never listens there",
                    self.addr
                ),
            ));
        }
        if self.roles.is_empty() && !self.addr.ip().is_loopback() {
            return Err((
                "admin.addr",
                format!(
                    "`{}` is not a loopback address, and `admin.roles` is empty: without sign-in the explorer listens on loopback only",
                    self.addr
                ),
            ));
        }
        if let Some(r) = self.roles.iter().find(|r| r.trim().is_empty()) {
            return Err(("admin.roles", format!("`{r}` is not a role name")));
        }
        if self.recent == 0 || self.recent > 1_000_000 {
            return Err(("admin.recent", "must be between 1 and 1000000".into()));
        }
        if self.session_secs == 0 {
            return Err(("admin.session_secs", "must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(addr: &str, roles: &[&str]) -> AdminConfig {
        AdminConfig {
            addr: addr.parse().unwrap(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            recent: 100,
            session_secs: 60,
        }
    }

    #[test]
    fn open_listener_is_loopback_only() {
        let ports = ["127.0.0.1:8181".parse().unwrap()];
        assert!(admin("127.0.0.1:8182", &[]).check(&ports).is_ok());
        assert!(admin("[::1]:8182", &[]).check(&ports).is_ok());
        let (key, msg) = admin("0.0.0.0:8182", &[]).check(&ports).unwrap_err();
        assert_eq!(key, "admin.addr");
        assert!(msg.contains("loopback"), "{msg}");
        assert!(admin("0.0.0.0:8182", &["ops"]).check(&ports).is_ok());
    }

    #[test]
    fn never_on_a_decision_port() {
        let ports = ["127.0.0.1:8181".parse().unwrap()];
        let (_, msg) = admin("0.0.0.0:8181", &["ops"]).check(&ports).unwrap_err();
        assert!(msg.contains("decision listener"), "{msg}");
    }
}
