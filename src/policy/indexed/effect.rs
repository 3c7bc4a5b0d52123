//! The effect stream: how the matched rules' effects combine into one
//! decision (casbin-rs's DefaultEffectStream, with its explain indices).

use super::{ast::Effect, rule::Eft};

/// casbin-rs's DefaultEffectStream, with its explain indices.
pub(super) struct Stream {
    pub(super) effect: Effect,
    pub(super) res: bool,
    pub(super) first_allow: Option<usize>,
    pub(super) decided_by: Option<usize>,
}

impl Stream {
    pub(super) fn new(effect: Effect) -> Self {
        Self {
            effect,
            res: effect == Effect::DenyOverride,
            first_allow: None,
            decided_by: None,
        }
    }

    /// Feeds a matching rule; `true` when the answer is final.
    pub(super) fn push(&mut self, eft: Eft, i: usize) -> bool {
        match (self.effect, eft) {
            (Effect::AllowOverride, Eft::Allow) | (Effect::Priority, Eft::Allow) => {
                self.res = true;
                self.decided_by = Some(i);
                true
            }
            (Effect::DenyOverride, Eft::Deny)
            | (Effect::AllowAndDeny, Eft::Deny)
            | (Effect::Priority, Eft::Deny) => {
                self.res = false;
                self.decided_by = Some(i);
                true
            }
            (Effect::AllowAndDeny, Eft::Allow) => {
                self.res = true;
                self.first_allow.get_or_insert(i);
                false
            }
            _ => false,
        }
    }

    /// The answer and the line that decided it: under allow-and-deny a
    /// matching deny, else the first allow, as Go Casbin reports it
    /// (casbin-rs 2.20 reports the first allow even when a deny decided).
    pub(super) fn finish(self) -> (bool, Option<usize>) {
        (self.res, self.decided_by.or(self.first_allow))
    }
}
