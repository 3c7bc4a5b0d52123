//! Incremental updates: lines added and removed applied to a copy of the
//! policy that shares every untouched chunk of rules, bucket shard and role
//! table with the original (`slots`, `sharded`). What cannot be applied
//! exactly says why, and the caller builds the policy whole instead.

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt as _};

use super::{
    ast::Effect,
    build::{FastPolicy, KnownFrom, known_sources},
    index::segment,
    rule::Rule,
};
use crate::policy::change::{Change, Line};

/// Past this share of freed slots (and [`MIN_WASTED`] of them) a full build
/// compacts the rules.
const MAX_WASTE: f64 = 0.5;
const MIN_WASTED: u32 = 4096;

impl FastPolicy {
    /// A new policy with `change` applied, or why it cannot be applied
    /// incrementally (then build the new text whole).
    pub fn apply(&self, change: &Change) -> Result<FastPolicy, String> {
        if self.index.is_none() {
            return Err("the matcher is evaluated rule by rule (no index)".into());
        }
        if self.effect == Effect::Priority {
            return Err("a priority policy orders lines by priority".into());
        }
        if self
            .roles
            .iter()
            .any(|r| r.names.is_some() || r.domains.is_some())
        {
            return Err("`role_matching`/`domain_matching` patterns".into());
        }
        let mut next = self.clone();
        let mut regexes = HashMap::new();
        for line in &change.removed {
            match line.ptype.as_str() {
                "p" => next.remove_rule(line, &mut regexes)?,
                g => next.link(g, &line.values, false)?,
            }
        }
        // The rule fields whose values role calls ask about, found once.
        let overlay = self.roles.iter().position(|r| r.overlay);
        let known_fields: Vec<usize> = overlay
            .and_then(|rt| known_sources(&self.matcher, rt))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|from| match from {
                KnownFrom::Field(i) => Some(i),
                KnownFrom::Lit(_) => None,
            })
            .collect();
        for line in &change.added {
            match line.ptype.as_str() {
                "p" => next.add_rule(line, &known_fields, &mut regexes)?,
                g => next.link(g, &line.values, true)?,
            }
        }
        if next.rules.freed() > MIN_WASTED && next.rules.waste() > MAX_WASTE {
            return Err("more than half the rules were removed since the last full build".into());
        }
        Ok(next)
    }

    fn compiled(
        &self,
        line: &Line,
        regexes: &mut HashMap<String, Arc<regex::Regex>>,
    ) -> Result<Rule, String> {
        let values: Vec<Arc<str>> = line.values.iter().map(|v| Arc::from(v.as_str())).collect();
        self.shape
            .rule(values, line.order, regexes)
            .map_err(|e| e.to_string())
    }

    /// The bucket key and segment a rule is filed under.
    fn place(&self, rule: &Rule) -> (Arc<str>, Option<u32>) {
        let Some(index) = &self.index else {
            return (Arc::from(""), None);
        };
        let key = index
            .key_at
            .map_or_else(|| Arc::from(""), |at| Arc::clone(&rule.values[at]));
        (key, segment(index.segment_of, rule, &|_, _| false))
    }

    /// The slots filed where `rule` would be.
    fn neighbours(&self, rule: &Rule) -> Vec<u32> {
        let (key, seg) = self.place(rule);
        let Some(b) = self.index.as_ref().and_then(|i| i.buckets.get(&key)) else {
            return Vec::new();
        };
        match seg {
            Some(seg) => {
                let start = b.by_segment.partition_point(|(h, _)| *h < seg);
                b.by_segment[start..]
                    .iter()
                    .take_while(|(h, _)| *h == seg)
                    .map(|(_, i)| *i)
                    .collect()
            }
            None => b.any.clone(),
        }
    }

    fn remove_rule(
        &mut self,
        line: &Line,
        regexes: &mut HashMap<String, Arc<regex::Regex>>,
    ) -> Result<(), String> {
        let rule = self.compiled(line, regexes)?;
        let same = |r: &Rule| {
            r.values
                .iter()
                .map(|v| &**v)
                .eq(line.values.iter().map(String::as_str))
        };
        let slots = self.neighbours(&rule);
        let Some(slot) = slots.into_iter().find(|i| {
            self.rules
                .get(*i)
                .is_some_and(|r| r.order == line.order && same(r))
        }) else {
            return Err(format!(
                "removed line `{}` is not a loaded rule",
                line.values.join(", ")
            ));
        };
        let (key, seg) = self.place(&rule);
        let Some(index) = self.index.as_mut() else {
            return Err("no index".into());
        };
        let Some(b) = index.buckets.get_mut(&key) else {
            return Err("no bucket".into());
        };
        match seg {
            Some(seg) => b.by_segment.retain(|e| *e != (seg, slot)),
            None => b.any.retain(|i| *i != slot),
        }
        if b.by_segment.is_empty() && b.any.is_empty() {
            index.buckets.remove(&key);
        }
        self.rules.remove(slot);
        Ok(())
    }

    fn add_rule(
        &mut self,
        line: &Line,
        known_fields: &[usize],
        regexes: &mut HashMap<String, Arc<regex::Regex>>,
    ) -> Result<(), String> {
        let rule = self.compiled(line, regexes)?;
        if self
            .neighbours(&rule)
            .into_iter()
            .filter_map(|i| self.rules.get(i))
            .any(|r| r.values == rule.values)
        {
            // Which copy counts depends on their order: build whole.
            return Err(format!(
                "added line `{}` repeats a rule",
                line.values.join(", ")
            ));
        }
        if let Some(known) = self.known.as_mut() {
            for &i in known_fields {
                known.insert(Arc::clone(&rule.values[i]), ());
            }
        }
        let (key, seg) = self.place(&rule);
        let slot = self.rules.push(rule);
        let Some(index) = self.index.as_mut() else {
            return Err("no index".into());
        };
        let b = index.buckets.entry(key);
        match seg {
            Some(seg) => {
                let at = b.by_segment.partition_point(|e| *e < (seg, slot));
                b.by_segment.insert(at, (seg, slot));
            }
            None => b.any.push(slot),
        }
        Ok(())
    }

    /// Adds or removes one role link of role type `ptype`.
    fn link(&mut self, ptype: &str, values: &[String], add: bool) -> Result<(), String> {
        let Some(rt) = self.roles.iter().position(|r| r.name == ptype) else {
            return Err(format!(
                "policy type `{ptype}` is neither `p` nor a role type"
            ));
        };
        let domain = self.roles[rt].domain;
        let (Some(a), Some(b)) = (values.first(), values.get(1)) else {
            return Err(format!("short `{ptype}` line"));
        };
        let dom = match domain {
            true => values.get(2).cloned().unwrap_or_default(),
            false => String::new(),
        };
        let role = &mut Arc::make_mut(&mut self.roles)[rt];
        let edges = role.graph.entry(dom.clone()).or_default();
        if add {
            edges.entry(a.clone()).or_default().push(b.clone());
            if role.overlay
                && let Some(known) = self.known.as_mut()
            {
                known.insert(Arc::from(a.as_str()), ());
                known.insert(Arc::from(b.as_str()), ());
            }
            return Ok(());
        }
        let Some(list) = edges.get_mut(a) else {
            return Err(format!("removed link `{a}, {b}` is not loaded"));
        };
        let Some(at) = list.iter().position(|x| x == b) else {
            return Err(format!("removed link `{a}, {b}` is not loaded"));
        };
        list.remove(at);
        if list.is_empty() {
            edges.remove(a);
        }
        if edges.is_empty() {
            role.graph.remove(&dom);
        }
        Ok(())
    }
}
