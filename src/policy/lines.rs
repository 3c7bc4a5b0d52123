//! The policy text, line by line: each line checked against the model's
//! policy types and split into fields, and repeated lines found. Errors name
//! the line (casbin-rs would not).

use std::{collections::hash_map::Entry, hash::BuildHasher as _};

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

use super::{PolicyLoadError, source};

/// One rule or grouping line of the text.
#[derive(Debug)]
pub struct Parsed {
    /// 0-based line number in the text.
    pub at: usize,
    /// `ptype` first, then the values.
    pub fields: Vec<String>,
    /// An earlier line has the same fields: Casbin keeps the first.
    pub repeat: bool,
}

/// Every rule and grouping line of `text` (comments and blank lines
/// skipped), checked against `arity` (the fields each policy type takes).
pub fn parse(
    text: &str,
    name: &str,
    arity: &[(String, usize)],
) -> Result<Vec<Parsed>, PolicyLoadError> {
    let mut out = Vec::new();
    // Each line's fields hashed while they are in cache: repeats are found
    // among hashes, and only equal hashes compare fields.
    let mut hashes: Vec<u64> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = source::split_line(trimmed)
            .map_err(str::to_string)
            .and_then(|f| check(&f, arity).map(|()| f))
            .map_err(|message| PolicyLoadError::Line {
                path: name.to_string(),
                line: i + 1,
                message,
            })?;
        hashes.push(FIELDS.hash_one(&fields));
        out.push(Parsed {
            at: i,
            fields,
            repeat: false,
        });
    }
    // A repeated line keeps its first place, as in Go and Python Casbin
    // (casbin-rs 2.20 moves it to its last, which changes which line a
    // first-match effect picks).
    let mut first: HashMap<u64, usize> = HashMap::with_capacity(out.len());
    for i in 0..out.len() {
        match first.entry(hashes[i]) {
            Entry::Vacant(v) => {
                v.insert(i);
            }
            Entry::Occupied(o) if out[*o.get()].fields == out[i].fields => out[i].repeat = true,
            // Two different lines with one hash: compare every line exactly.
            Entry::Occupied(_) => return Ok(mark_repeats(out)),
        }
    }
    Ok(out)
}

/// The hasher for a line's fields (fixed: nothing outside this process sees it).
const FIELDS: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x11e5);

/// Marks repeats by comparing lines exactly (a hash collision's fallback).
fn mark_repeats(mut out: Vec<Parsed>) -> Vec<Parsed> {
    let mut seen: HashSet<Vec<String>> = HashSet::with_capacity(out.len());
    for p in &mut out {
        p.repeat = !seen.insert(p.fields.clone());
    }
    out
}

/// Whether `fields` (`ptype` first) is a line the model can hold.
pub fn check(fields: &[String], arity: &[(String, usize)]) -> Result<(), String> {
    let ptype = fields[0].as_str();
    let Some((_, want)) = arity.iter().find(|(p, _)| p == ptype) else {
        return Err(format!(
            "unknown policy type `{ptype}` (the model defines {})",
            names(arity)
        ));
    };
    let got = fields.len() - 1;
    if ptype.starts_with('g') && got > *want {
        // Casbin drops what a role definition has no place for: the link
        // would hold everywhere, not where the line says.
        return Err(format!(
            "`{ptype}` takes {want} fields (`{ptype} = {}`), this line has {got}: Casbin would drop `{}` and the link would hold {}",
            vec!["_"; *want].join(", "),
            fields[1 + want..].join(", "),
            if *want == 2 {
                "in every domain"
            } else {
                "beyond what the line says"
            }
        ));
    }
    if got != *want {
        return Err(format!(
            "`{ptype}` takes {want} fields, this line has {got}"
        ));
    }
    if fields[1..].iter().any(String::is_empty) {
        return Err("empty field".to_string());
    }
    Ok(())
}

fn names(arity: &[(String, usize)]) -> String {
    arity
        .iter()
        .map(|(p, _)| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Policy subjects that are also role names, and a subject and up to three
/// role names for the casbin-rs cost probe.
pub fn names_of(parsed: &[Parsed]) -> (Vec<String>, (String, Vec<String>)) {
    let roles: foldhash::HashSet<&str> = parsed
        .iter()
        .filter(|p| p.fields[0].starts_with('g'))
        .map(|p| p.fields[2].as_str())
        .collect();
    let mut shared: Vec<String> = parsed
        .iter()
        .filter(|p| !p.fields[0].starts_with('g') && roles.contains(p.fields[1].as_str()))
        .map(|p| p.fields[1].clone())
        .collect();
    shared.sort();
    shared.dedup();
    let subject = parsed
        .iter()
        .find(|p| !p.fields[0].starts_with('g'))
        .map_or("authzd-probe", |p| p.fields[1].as_str());
    let mut probe_roles: Vec<&str> = roles.into_iter().collect();
    probe_roles.sort_unstable();
    probe_roles.truncate(3);
    let probe = (
        subject.to_string(),
        probe_roles.into_iter().map(String::from).collect(),
    );
    (shared, probe)
}

/// The text without its repeated lines (what casbin-rs is handed), or
/// `None` when nothing repeats.
pub fn without_repeats(text: &str, parsed: &[Parsed]) -> Option<String> {
    let repeats: Vec<usize> = parsed.iter().filter(|p| p.repeat).map(|p| p.at).collect();
    if repeats.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        if repeats.binary_search(&i).is_err() {
            out.push_str(line);
            out.push('\n');
        }
    }
    Some(out)
}

/// The 1-based line of the first `p` line with these values (0 if not found).
pub fn find_line(text: &str, ptype: &str, values: &[String]) -> usize {
    text.lines()
        .position(|line| {
            let fields = source::split_line(line.trim()).unwrap_or_default();
            fields.first().is_some_and(|t| t == ptype) && fields[1..] == *values
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_marked_after_its_first_line_by_fields_not_spelling() {
        let arity = vec![("p".to_string(), 3), ("g".to_string(), 2)];
        let text = "p, a, /x, GET\ng, a, r\n# c\np,a,/x,GET\np, a, /x, POST\ng,  a , r\n";
        let parsed = parse(text, "t", &arity).unwrap();
        let repeats: Vec<(usize, bool)> = parsed.iter().map(|p| (p.at, p.repeat)).collect();
        assert_eq!(
            repeats,
            [(0, false), (1, false), (3, true), (4, false), (5, true)]
        );
        // The exact fallback agrees.
        let mut fresh = parse(text, "t", &arity).unwrap();
        for p in &mut fresh {
            p.repeat = false;
        }
        let exact: Vec<bool> = mark_repeats(fresh).iter().map(|p| p.repeat).collect();
        assert_eq!(exact, [false, false, true, false, true]);
    }
}
