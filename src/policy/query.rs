//! The question an evaluator answers and its answer: shared by the indexed
//! evaluator and the casbin-rs path, below both.

/// One enforcement question.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub subject: &'a str,
    /// Per-request roles, already prefixed; applied as `g, subject, role[, domain]`.
    pub roles: &'a [String],
    pub domain: &'a str,
    /// The resource as patterns match it: case-folded under
    /// `path_case = "insensitive"`.
    pub resource: &'a str,
    pub action: &'a str,
    /// The model's attribute fields (`r = sub, obj, act, tenant`), in the
    /// request definition's order, taken from the verified token's claims.
    pub attributes: &'a [String],
    /// The resource before `path_case = "insensitive"` folded it (`None`:
    /// not folded). A value `keyGet*` reads out of the resource comes from
    /// here, so an identity in a path is compared as the upstream handler
    /// receives it: `alice` never owns `/users/ALICE`.
    pub unfolded: Option<&'a str>,
}

impl<'a> Query<'a> {
    /// The part of [`Self::unfolded`] that stands where `part` (a slice of
    /// [`Self::resource`]) stands in the folded resource; `part` itself when
    /// nothing was folded. `""` when the two cannot be lined up (a
    /// character whose lower case is longer, cut in the middle): a value
    /// that never equals an identity, so the check fails closed.
    pub fn unfold(&self, part: &'a str) -> &'a str {
        let Some(original) = self.unfolded else {
            return part;
        };
        let folded = self.resource;
        let (base, at) = (folded.as_ptr() as usize, part.as_ptr() as usize);
        if at < base || at + part.len() > base + folded.len() {
            return part; // not read from the resource
        }
        let (start, end) = (at - base, at - base + part.len());
        // Walk both in step: each original character folds to one or more.
        let (mut from, mut to) = (None, None);
        let mut f = 0;
        for (o, c) in original.char_indices() {
            if f == start {
                from.get_or_insert(o);
            }
            if f == end {
                to.get_or_insert(o);
            }
            f += crate::request::folded_len(c);
        }
        if f == start {
            from.get_or_insert(original.len());
        }
        if f == end {
            to.get_or_insert(original.len());
        }
        match (from, to) {
            (Some(a), Some(b)) if a <= b => &original[a..b],
            _ => "",
        }
    }
}

/// What Casbin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforced {
    pub allowed: bool,
    /// The policy line that decided (without its `p` type), empty when none matched.
    pub matched: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("policy evaluation failed: {0}")]
pub struct EvalError(pub(crate) String);
