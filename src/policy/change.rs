//! A change to the policy lines, however it was found: the difference
//! between two revisions of a file (`policy::delta`) or the rows a store's
//! change log names. Both evaluators' incremental paths read it.

/// One policy line: its type (`p`, `g`, `g2`…), its values, and its place
/// in policy order (`order`: increasing with the line's position; for a
/// store, the row id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub ptype: String,
    pub values: Vec<String>,
    pub order: u64,
}

/// Lines removed and lines added; removals apply first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub removed: Vec<Line>,
    pub added: Vec<Line>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }

    pub fn len(&self) -> usize {
        self.removed.len() + self.added.len()
    }
}
