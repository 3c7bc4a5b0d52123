//! The rule index: buckets by subject and first path segment, and how a matcher decides which rules can be skipped exactly.

use std::sync::Arc;

use super::{
    ast::{Arg, Expr, Pattern, RField},
    functions::{Func, first_segment},
    patterns::Segments,
    rule::Rule,
    sharded::Sharded,
};
use foldhash::{HashMap, HashMapExt as _};

/// One subject's rules, split by the literal first path segment their object
/// pattern demands; rules that demand none go to `any`.
///
/// Segments are kept as 32-bit hashes in one sorted array (8 bytes a rule,
/// against about 100 for a map of strings to vectors): a collision only adds
/// candidates, and every candidate is still evaluated in full.
#[derive(Default, Clone)]
pub(super) struct Bucket {
    /// `(segment hash, rule index)`, sorted.
    pub(super) by_segment: Vec<(u32, u32)>,
    pub(super) any: Vec<u32>,
}

impl Bucket {
    /// The rules filed under any of `segments`, then those filed under none.
    pub(super) fn candidates_in<'s>(
        &'s self,
        segments: &'s [u32],
    ) -> impl Iterator<Item = u32> + 's {
        segments
            .iter()
            .flat_map(move |&segment| {
                let start = self.by_segment.partition_point(|(h, _)| *h < segment);
                self.by_segment[start..]
                    .iter()
                    .take_while(move |(h, _)| *h == segment)
                    .map(|(_, i)| *i)
            })
            .chain(self.any.iter().copied())
    }
}

/// A stable 32-bit hash of a path segment.
pub(super) fn segment_hash(segment: &str) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    segment.hash(&mut h);
    h.finish() as u32
}

/// Which conjunct fixes the first path segment of a matching request.
#[derive(Clone, Copy)]
pub(super) enum SegmentBy {
    /// `r.obj == p.X`.
    Field(usize),
    /// A keyMatch/keyMatch2/keyMatch3 pattern in this slot.
    Slot(usize),
    /// `g2(r.obj, p.X)` (any role type but the subject's closure): rules keyed
    /// by the whole `p.X`, looked up for every group the request value reaches.
    Group {
        rt: usize,
        key: RField,
        dom: Option<RField>,
        field: usize,
    },
}

#[derive(Clone)]
pub(super) struct Index {
    /// Which bucket(s) a request reads.
    pub(super) keyed: Keyed,
    /// How a bucket's rules are narrowed: by the request path's first segment
    /// (`None`), or by the groups a request value reaches.
    pub(super) group: Option<(usize, RField, Option<RField>)>,
    pub(super) buckets: Sharded<Arc<str>, Bucket>,
    /// Where a rule is filed: the field keying its bucket (none: one
    /// bucket, `""`) and what fixes its segment. Kept for incremental updates.
    pub(super) key_at: Option<usize>,
    pub(super) segment_of: Option<SegmentBy>,
    /// For a matcher `X || Y…` whose `Y…` read no policy field (`|| r.sub ==
    /// "root"`, `|| r.obj in [...]`): their positions in the `||`. The index
    /// serves `X`; when one of them holds, every rule matches and all are scanned.
    pub(super) escapes: Vec<usize>,
    /// Request fields that `ipMatch` reads: only an IP address cannot fail
    /// there, so for anything else every rule is evaluated, as casbin-rs does.
    pub(super) ip_keys: Vec<RField>,
    /// `Keyed::Role` with role matching: the bucket keys that are patterns
    /// (held by matching, not by a link), filed by segment.
    pub(super) pattern_keys: Vec<Arc<str>>,
    pub(super) pattern_segments: Segments,
    /// Buckets read for every request besides the subject's or its
    /// closure's: the literals of a keying `||` (`(p.sub == "self" && …) ||
    /// g(r.sub, p.sub)`: the `self` bucket).
    pub(super) literal_keys: Vec<Arc<str>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Keyed {
    /// `g(r.sub, p.X…)`: the buckets of the subject's whole role closure.
    Role,
    /// `r.sub == p.X`: the subject's bucket.
    Subject,
    /// No subject test: one bucket, split by the object's first segment only.
    Whole,
}

/// The request fields `ipMatch` takes as its address.
pub(super) fn collect_ip_keys(e: &Expr, out: &mut Vec<RField>) {
    match e {
        Expr::Call {
            func: Func::Ip,
            key: Arg::R(f),
            ..
        } if !out.contains(f) => out.push(*f),
        Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| collect_ip_keys(x, out)),
        Expr::Not(x) => collect_ip_keys(x, out),
        _ => {}
    }
}

/// Whether `e` reads a policy field anywhere.
pub(super) fn reads_rule(e: &Expr) -> bool {
    let p = |a: &Arg| a.reads_rule();
    e.any(&|x| match x {
        Expr::Eq(a, b, _) => p(a) || p(b),
        Expr::In(a, xs) => p(a) || xs.iter().any(p),
        Expr::Role { args, .. } => args.iter().any(p),
        Expr::Call { key, pattern, .. } => p(key) || matches!(pattern, Pattern::Rule { .. }),
        Expr::And(_) | Expr::Or(_) | Expr::Not(_) => false,
    })
}

/// The segment hash a rule is filed under (`None`: a candidate for every path).
pub(super) fn segment(
    segment_of: Option<SegmentBy>,
    r: &Rule,
    is_pattern: &dyn Fn(usize, &str) -> bool,
) -> Option<u32> {
    match segment_of {
        Some(SegmentBy::Field(i)) => Some(segment_hash(first_segment(&r.values[i]))),
        Some(SegmentBy::Slot(slot)) => r.patterns[slot].segment().map(segment_hash),
        // A group pattern (`g2, /book/:id, …` asked as `p.obj`) is held by
        // matching, under no name of its own: always a candidate.
        Some(SegmentBy::Group { rt, field, .. }) if is_pattern(rt, &r.values[field]) => None,
        Some(SegmentBy::Group { field, .. }) => Some(segment_hash(&r.values[field])),
        None => None,
    }
}

/// Buckets the rules when a top-level conjunct selects on the subject (and,
/// if one tests `r.obj` against a pattern with a literal first segment, by
/// that segment). `None` when no conjunct selects, or when a term could fail
/// at request time (skipping rules would then hide a failure casbin-rs reports).
pub(super) fn build_index(
    expr: &Expr,
    rules: &[Rule],
    is_closure: &dyn Fn(usize, &[Arg]) -> bool,
    is_pattern: &dyn Fn(usize, &str) -> bool,
) -> Option<Index> {
    // A request-time failure must not be skipped over: patterns taken from
    // the request, and `ipMatch` on anything but a request field (those are
    // checked per request, see `ip_keys`).
    let can_fail = expr.any(&|e| {
        matches!(
            e,
            Expr::Call {
                pattern: Pattern::Live(_),
                ..
            }
        ) || matches!(e, Expr::Call { func: Func::Ip, key, .. } if !matches!(key, Arg::R(_)))
    });
    if can_fail {
        return None;
    }
    let mut ip_keys = Vec::new();
    collect_ip_keys(expr, &mut ip_keys);
    // `X || Y…` with `Y…` independent of the rule: index `X`.
    let (core, escapes) = match expr {
        Expr::Or(xs) => {
            let (free, bound): (Vec<usize>, Vec<usize>) =
                (0..xs.len()).partition(|i| !reads_rule(&xs[*i]));
            match bound.as_slice() {
                [one] if !free.is_empty() => (&xs[*one], free),
                _ => (expr, Vec::new()),
            }
        }
        _ => (expr, Vec::new()),
    };
    let conjuncts = core.conjuncts();
    let keying = |c: &Expr| match c {
        Expr::Role { rt, args } if is_closure(*rt, args) => match args[1] {
            Arg::P(i) => Some((Keyed::Role, i, Some(*rt))),
            _ => None,
        },
        Expr::Eq(Arg::R(RField::Sub), Arg::P(i), true)
        | Expr::Eq(Arg::P(i), Arg::R(RField::Sub), true) => Some((Keyed::Subject, *i, None)),
        _ => None,
    };
    let mut literal_keys: Vec<Arc<str>> = Vec::new();
    let by_subject = conjuncts.iter().find_map(keying).or_else(|| {
        // `(p.X == "self" && …) || (g(r.sub, p.X) && …)`: every branch
        // selects on the same `p.X`, by the subject's closure or a literal.
        conjuncts.iter().find_map(|c| {
            let Expr::Or(branches) = c else { return None };
            let mut found: Option<(Keyed, usize, Option<usize>)> = None;
            let mut literals = Vec::new();
            for b in branches {
                let branch = b.conjuncts();
                if let Some(k) = branch.iter().find_map(keying) {
                    match found {
                        Some(f) if f != k => return None,
                        _ => found = Some(k),
                    }
                    continue;
                }
                let lit = branch.iter().find_map(|x| match x {
                    Expr::Eq(Arg::P(i), Arg::Lit(s), true)
                    | Expr::Eq(Arg::Lit(s), Arg::P(i), true) => Some((*i, s.as_str())),
                    _ => None,
                })?;
                literals.push(lit);
            }
            let (k, i, rt) = found?;
            if literals.iter().any(|(at, _)| *at != i) {
                return None;
            }
            literal_keys = literals.into_iter().map(|(_, s)| Arc::from(s)).collect();
            Some((k, i, rt))
        })
    });
    // The literal first segment each rule's object test demands, if any.
    let segment_of = conjuncts.iter().find_map(|c| match c {
        Expr::Eq(Arg::R(RField::Obj), Arg::P(i), true)
        | Expr::Eq(Arg::P(i), Arg::R(RField::Obj), true) => Some(SegmentBy::Field(*i)),
        Expr::Call {
            func: Func::KeyMatch | Func::KeyMatch2 | Func::KeyMatch3,
            key: Arg::R(RField::Obj),
            pattern: Pattern::Rule { slot },
        } => Some(SegmentBy::Slot(*slot)),
        _ => None,
    });
    // Else a group test on a request value: `g2(r.obj, p.X[, r.dom])`.
    let segment_of = segment_of.or_else(|| {
        conjuncts.iter().find_map(|c| match c {
            Expr::Role { rt, args } if !is_closure(*rt, args) => {
                match (&args[0], &args[1], args.get(2)) {
                    (Arg::R(key), Arg::P(field), None) => Some(SegmentBy::Group {
                        rt: *rt,
                        key: *key,
                        dom: None,
                        field: *field,
                    }),
                    (Arg::R(key), Arg::P(field), Some(Arg::R(d))) => Some(SegmentBy::Group {
                        rt: *rt,
                        key: *key,
                        dom: Some(*d),
                        field: *field,
                    }),
                    _ => None,
                }
            }
            _ => None,
        })
    });
    let (keyed, p_sub) = match (by_subject, segment_of) {
        (Some((k, i, _)), _) => (k, Some(i)),
        (None, Some(_)) => (Keyed::Whole, None),
        (None, None) => return None,
    };
    let whole: Arc<str> = Arc::from("");
    let mut buckets: HashMap<Arc<str>, Bucket> = HashMap::new();
    for (i, r) in rules.iter().enumerate() {
        let key = p_sub.map_or_else(|| Arc::clone(&whole), |at| Arc::clone(&r.values[at]));
        let bucket = buckets.entry(key).or_default();
        match segment(segment_of, r, is_pattern) {
            Some(seg) => bucket.by_segment.push((seg, i as u32)),
            None => bucket.any.push(i as u32),
        }
    }
    for b in buckets.values_mut() {
        b.by_segment.sort_unstable();
        b.by_segment.shrink_to_fit();
        b.any.shrink_to_fit();
    }
    let group = match segment_of {
        Some(SegmentBy::Group { rt, key, dom, .. }) => Some((rt, key, dom)),
        _ => None,
    };
    let pattern_keys = match by_subject {
        Some((Keyed::Role, _, Some(rt))) => {
            let mut keys: Vec<Arc<str>> = buckets
                .keys()
                .filter(|k| is_pattern(rt, k))
                .cloned()
                .collect();
            keys.sort();
            keys
        }
        _ => Vec::new(),
    };
    Some(Index {
        keyed,
        group,
        buckets: buckets.into_iter().collect(),
        key_at: p_sub,
        segment_of,
        escapes,
        ip_keys,
        pattern_keys,
        pattern_segments: Segments::default(),
        literal_keys,
    })
}

// ---------------------------------------------------------------------------
// The matcher grammar.
