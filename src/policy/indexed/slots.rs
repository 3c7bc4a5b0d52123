//! The compiled rules, each in a fixed slot that the index names. Slots are
//! grouped in chunks that snapshots share and copy on write: an incremental
//! update copies the chunks it touches, never the whole policy.

use std::sync::Arc;

use super::rule::Rule;

/// Rules per chunk: a change copies at most this many (cheap: a rule is a
/// few reference counts).
const CHUNK: usize = 256;

#[derive(Clone, Default)]
pub(super) struct Slots {
    chunks: Vec<Arc<Vec<Option<Rule>>>>,
    /// Slots used (live or freed).
    used: usize,
    live: usize,
    /// Slot order is policy order (true after a full build; an insertion
    /// between two rules breaks it, a removal or an append does not).
    ordered: bool,
    last_order: Option<u64>,
}

impl Slots {
    pub(super) fn from_rules(rules: Vec<Rule>) -> Slots {
        let mut s = Slots {
            ordered: true,
            ..Slots::default()
        };
        let mut chunk = Vec::with_capacity(CHUNK);
        for r in rules {
            s.ordered &= s.last_order.is_none_or(|o| o < r.order);
            s.last_order = s.last_order.max(Some(r.order));
            chunk.push(Some(r));
            if chunk.len() == CHUNK {
                s.chunks.push(Arc::new(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(CHUNK),
                )));
            }
        }
        if !chunk.is_empty() {
            chunk.shrink_to_fit();
            s.chunks.push(Arc::new(chunk));
        }
        s.used = s.chunks.iter().map(|c| c.len()).sum();
        s.live = s.used;
        s
    }

    /// The rule in slot `i`; `None` for a freed slot.
    #[inline]
    pub(super) fn get(&self, i: u32) -> Option<&Rule> {
        let i = i as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)?.as_ref()
    }

    /// Slots used, live or freed: every slot number is below this.
    pub(super) fn used(&self) -> u32 {
        self.used as u32
    }

    pub(super) fn ordered(&self) -> bool {
        self.ordered
    }

    /// Any live rule (the first in slot order).
    pub(super) fn any(&self) -> Option<&Rule> {
        self.chunks.iter().flat_map(|c| c.iter()).flatten().next()
    }

    /// Every live slot, in policy order.
    pub(super) fn in_order(&self) -> Vec<u32> {
        let mut out: Vec<u32> = (0..self.used())
            .filter(|i| self.get(*i).is_some())
            .collect();
        if !self.ordered {
            out.sort_unstable_by_key(|i| self.get(*i).map(|r| r.order));
        }
        out
    }

    /// Adds a rule in a new slot, copying at most the last chunk.
    pub(super) fn push(&mut self, rule: Rule) -> u32 {
        self.ordered &= self.last_order.is_none_or(|o| o < rule.order);
        self.last_order = self.last_order.max(Some(rule.order));
        let at = self.used;
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(Some(rule)),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(Some(rule));
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.used += 1;
        self.live += 1;
        at as u32
    }

    /// Frees slot `i`, copying its chunk; the rule that was there.
    pub(super) fn remove(&mut self, i: u32) -> Option<Rule> {
        let i = i as usize;
        let chunk = self.chunks.get_mut(i / CHUNK)?;
        chunk.get(i % CHUNK)?.as_ref()?;
        let taken = Arc::make_mut(chunk)[i % CHUNK].take();
        self.live -= 1;
        taken
    }

    /// Slots freed since the last full build.
    pub(super) fn freed(&self) -> u32 {
        (self.used - self.live) as u32
    }

    /// Freed slots, as a share of all slots used.
    pub(super) fn waste(&self) -> f64 {
        match self.used {
            0 => 0.0,
            n => (n - self.live) as f64 / n as f64,
        }
    }
}
