//! What changed between two revisions of a policy file, as a [`Change`]:
//! the lines between their common beginning and common end, removed and
//! added. Added rules get order keys between their neighbours' so policy
//! order stays what a full build of the new text would give.

use super::{
    change::{Change, Line},
    source::split_line,
};

/// Beyond this many changed lines a full build is as quick.
pub const MAX_CHANGED: usize = 50_000;

/// The change from `old` to `new`, and the order keys of `new`'s lines
/// (`old_orders`: one per line of `old`, 0 for a line holding no rule).
/// `Err` says why the change is not worth or not fit for an incremental
/// update (a line that does not parse is left to the full build to name).
pub fn diff(old: &str, old_orders: &[u64], new: &str) -> Result<(Change, Vec<u64>), String> {
    let (ob, nb) = (old.as_bytes(), new.as_bytes());
    // The common beginning, back to the start of its last line.
    let mut p = common_prefix(ob, nb);
    while p > 0 && ob[p - 1] != b'\n' {
        p -= 1;
    }
    // The common end (never overlapping the beginning), forward to the
    // start of a line in both texts.
    let room = ob.len().min(nb.len()) - p;
    let mut s = common_suffix(ob, nb).min(room);
    let starts_line = |b: &[u8], s: usize| b.len() - s == p || b[b.len() - s - 1] == b'\n';
    while s > 0 && !(starts_line(ob, s) && starts_line(nb, s)) {
        s -= 1;
    }
    let (old_mid, new_mid) = (&old[p..old.len() - s], &new[p..new.len() - s]);
    let before_lines = count_lines(&old[..p]);
    let after_lines = count_lines(&old[old.len() - s..]);
    let old_lines: Vec<&str> = old_mid.lines().collect();
    let new_lines: Vec<&str> = new_mid.lines().collect();
    if before_lines + old_lines.len() + after_lines != old_orders.len() {
        return Err("the previous text's order keys do not fit it".into());
    }
    let changed = old_lines.len() + new_lines.len();
    if changed > MAX_CHANGED {
        return Err(format!("{changed} lines changed (more than {MAX_CHANGED})"));
    }
    let (prefix, old_end) = (before_lines, before_lines + old_lines.len());
    let mut change = Change::default();
    for (i, text) in old_lines.iter().enumerate() {
        if let Some(fields) = fields_of(text)? {
            let (ptype, values) = split_type(fields);
            let order = old_orders[prefix + i];
            if ptype == "p" && order == 0 {
                return Err("a removed line was not a loaded rule".into());
            }
            change.removed.push(Line {
                ptype,
                values,
                order,
            });
        }
    }
    // The keys around the insertion point: the last rule before it and the
    // first after it, both unchanged.
    let before = old_orders[..prefix]
        .iter()
        .rev()
        .find(|o| **o != 0)
        .copied()
        .unwrap_or(0);
    let mut added = Vec::new();
    for text in &new_lines {
        added.push(fields_of(text)?.map(split_type));
    }
    let rules = added
        .iter()
        .filter(|l| l.as_ref().is_some_and(|(p, _)| p == "p"))
        .count() as u64;
    let after = old_orders[old_end..]
        .iter()
        .find(|o| **o != 0)
        .copied()
        .unwrap_or_else(|| before.saturating_add((rules + 1) << 20));
    let step = after.saturating_sub(before) / (rules + 1);
    if step == 0 && rules > 0 {
        return Err("no room left between the neighbouring lines' order keys".into());
    }
    let mut orders: Vec<u64> =
        Vec::with_capacity(old_orders.len() - old_lines.len() + new_lines.len());
    orders.extend_from_slice(&old_orders[..prefix]);
    let mut next = before;
    for line in added {
        match line {
            Some((ptype, values)) if ptype == "p" => {
                next += step;
                orders.push(next);
                change.added.push(Line {
                    ptype,
                    values,
                    order: next,
                });
            }
            Some((ptype, values)) => {
                orders.push(0);
                change.added.push(Line {
                    ptype,
                    values,
                    order: 0,
                });
            }
            None => orders.push(0),
        }
    }
    orders.extend_from_slice(&old_orders[old_end..]);
    Ok((change, orders))
}

/// How many leading bytes `a` and `b` share (compared a block at a time).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    let n = a.len().min(b.len());
    let mut at = 0;
    while at + BLOCK <= n && a[at..at + BLOCK] == b[at..at + BLOCK] {
        at += BLOCK;
    }
    at + a[at..n]
        .iter()
        .zip(&b[at..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// How many trailing bytes `a` and `b` share.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    let n = a.len().min(b.len());
    let (ea, eb) = (a.len(), b.len());
    let mut at = 0;
    while at + BLOCK <= n && a[ea - at - BLOCK..ea - at] == b[eb - at - BLOCK..eb - at] {
        at += BLOCK;
    }
    at + a[..ea - at]
        .iter()
        .rev()
        .zip(b[..eb - at].iter().rev())
        .take(n - at)
        .take_while(|(x, y)| x == y)
        .count()
}

/// Lines in `text` as [`str::lines`] counts them.
fn count_lines(text: &str) -> usize {
    let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count();
    newlines + usize::from(!text.is_empty() && !text.ends_with('\n'))
}

/// A line's fields (`ptype` first), `None` for a blank line or a comment.
fn fields_of(line: &str) -> Result<Option<Vec<String>>, String> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let fields = split_line(t).map_err(str::to_string)?;
    if fields.len() < 2 {
        return Err("a changed line has no values".into());
    }
    Ok(Some(fields))
}

fn split_type(mut fields: Vec<String>) -> (String, Vec<String>) {
    let ptype = fields.remove(0);
    (ptype, fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders(text: &str) -> Vec<u64> {
        text.lines()
            .enumerate()
            .map(|(i, l)| match l.starts_with("p,") {
                true => (i as u64 + 1) << 20,
                false => 0,
            })
            .collect()
    }

    #[test]
    fn an_insertion_gets_a_key_between_its_neighbours() {
        let old = "p, a, /x, GET\ng, a, r\np, b, /y, GET\n";
        let new = "p, a, /x, GET\ng, a, r\np, c, /z, GET\np, b, /y, GET\n";
        let (change, keys) = diff(old, &orders(old), new).unwrap();
        assert!(change.removed.is_empty());
        assert_eq!(change.added.len(), 1);
        let k = change.added[0].order;
        assert!(k > 1 << 20 && k < 3 << 20, "{k}");
        assert_eq!(keys, vec![1 << 20, 0, k, 3 << 20]);
    }

    #[test]
    fn a_replaced_line_is_removed_with_its_key_and_added_anew() {
        let old = "p, a, /x, GET\np, b, /y, GET\n";
        let new = "p, a, /x, POST\np, b, /y, GET\n";
        let (change, keys) = diff(old, &orders(old), new).unwrap();
        assert_eq!(change.removed[0].values, ["a", "/x", "GET"]);
        assert_eq!(change.removed[0].order, 1 << 20);
        assert_eq!(change.added[0].values, ["a", "/x", "POST"]);
        assert!(keys[0] > 0 && keys[0] < keys[1]);
    }

    #[test]
    fn appended_lines_follow_the_last_rule() {
        let old = "p, a, /x, GET\n# end\n";
        let new = "p, a, /x, GET\n# end\np, b, /y, GET\np, c, /z, GET\n";
        let (change, keys) = diff(old, &orders(old), new).unwrap();
        assert_eq!(change.added.len(), 2);
        assert!(keys[2] > keys[0] && keys[3] > keys[2]);
    }

    #[test]
    fn a_last_line_without_a_newline_and_crlf_endings_diff_by_whole_lines() {
        let old = "p, a, /x, GET\r\np, b, /y, GET";
        let new = "p, a, /x, GET\r\np, b, /y, GET\r\np, c, /z, GET\r\n";
        let (change, keys) = diff(old, &orders(old), new).unwrap();
        assert_eq!(change.removed.len(), 1);
        assert_eq!(change.removed[0].values, ["b", "/y", "GET"]);
        let added: Vec<&str> = change.added.iter().map(|l| l.values[0].as_str()).collect();
        assert_eq!(added, ["b", "c"]);
        assert_eq!(keys.len(), 3);
        assert!(keys[0] < keys[1] && keys[1] < keys[2]);
    }

    #[test]
    fn a_removed_line_that_held_no_rule_is_refused() {
        let old = "p, a, /x, GET\n";
        assert!(diff(old, &[0], "").is_err());
    }
}
