//! Role closures at request time: the roles a subject reaches through `g` lines (and pattern roles), depth-limited like Casbin.

use std::{cell::RefCell, rc::Rc};

use foldhash::{HashMap, HashSet};

use super::patterns::{DomainMatching, NameMatching};
use crate::policy::query::{EvalError, Query};

/// One role definition's links.
#[derive(Clone)]
pub(super) struct RoleType {
    /// `g`, `g2`, …: the policy type of its lines.
    pub(super) name: String,
    /// Role edges by domain ("" without domains).
    pub(super) graph: HashMap<String, HashMap<String, Vec<String>>>,
    /// `g = _, _, _`: links live in domains.
    pub(super) domain: bool,
    /// `g` itself: the request's claim roles are links from its subject
    /// (authzd's role manager; the other role types have only their lines).
    pub(super) overlay: bool,
    /// `[policy] role_matching`: the names in this type's lines are patterns.
    pub(super) names: Option<Box<NameMatching>>,
    /// `[policy] domain_matching`: the domains in this type's lines are patterns.
    pub(super) domains: Option<Box<DomainMatching>>,
}

/// How many role links a subject may follow: a role is held when it is
/// linked within this many edges (claim roles are one edge from the
/// subject). This is Go and Python Casbin's documented `maxHierarchyLevel`
/// semantics, level by level; casbin-rs 2.20's BFS stops after visiting ten
/// nodes instead, which on a plain chain is one edge fewer, and elsewhere
/// depends on the graph's shape. Cycles are harmless: each node is visited once.
pub(super) const MAX_DEPTH: usize = 10;

/// The links of `n` in each of `graphs`.
pub(super) fn links_in<'g>(
    graphs: &[&'g HashMap<String, Vec<String>>],
    n: &str,
) -> impl Iterator<Item = &'g str> {
    graphs
        .iter()
        .filter_map(|g| g.get(n))
        .flatten()
        .map(String::as_str)
}

/// What one name reaches through one role type's links.
pub(super) struct Closure<'a> {
    /// Every name reached, the start included.
    pub(super) seen: HashSet<&'a str>,
    /// With role matching: the patterns among the links followed (`g, alice,
    /// /book/*`); a name matching one is held although no link reaches it.
    pub(super) linked: Vec<&'a str>,
}

pub(super) struct Cx<'a> {
    pub(super) q: &'a Query<'a>,
    /// What the request subject reaches in the request's domain, when the matcher needs it.
    pub(super) closure: Option<&'a Closure<'a>>,
    /// Closures of other request-anchored role calls, computed on first use.
    pub(super) reached: RefCell<Vec<Reached<'a>>>,
}

/// `(role type, start, domain)` and what it reaches.
pub(super) type Reached<'a> = ((usize, &'a str, Option<&'a str>), Rc<Closure<'a>>);

impl<'a> Cx<'a> {
    pub(super) fn reached(
        &self,
        rt: usize,
        start: &'a str,
        dom: Option<&'a str>,
        compute: impl FnOnce(&'a str, Option<&'a str>) -> Result<Closure<'a>, EvalError>,
    ) -> Result<Rc<Closure<'a>>, EvalError> {
        let key = (rt, start, dom);
        if let Some((_, set)) = self.reached.borrow().iter().find(|(k, _)| *k == key) {
            return Ok(Rc::clone(set));
        }
        let set = Rc::new(compute(start, dom)?);
        self.reached.borrow_mut().push((key, Rc::clone(&set)));
        Ok(set)
    }
}
