//! Evaluation: a query against the index, rule by rule in policy order, with the effect deciding.

use std::{cell::RefCell, net::IpAddr};

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

use super::{
    ast::{Arg, Expr, GetFrom, Pattern, RField},
    build::FastPolicy,
    compile::compile,
    effect::Stream,
    functions::first_segment,
    index::{Index, Keyed, segment_hash},
    patterns::NameMatching,
    roles::{Closure, Cx, MAX_DEPTH, RoleType, links_in},
    rule::Rule,
};
use crate::policy::query::{Enforced, EvalError, Query};

impl FastPolicy {
    /// Evaluates `q` exactly as casbin-rs would with `q.roles` as `g` lines.
    pub fn enforce(&self, q: &Query<'_>) -> Result<Enforced, EvalError> {
        let overlay = self.roles.iter().position(|r| r.overlay).unwrap_or(0);
        let closure = match self.uses_closure {
            true => {
                let dom = self.roles.get(overlay).is_some_and(|r| r.domain);
                Some(self.reach(overlay, q.subject, dom.then_some(q.domain), q)?)
            }
            false => None,
        };
        let cx = Cx {
            q,
            closure: closure.as_ref(),
            reached: RefCell::new(Vec::new()),
        };
        let mut verdict = Stream::new(self.effect);
        let mut check = |i: u32| -> Result<bool, EvalError> {
            let Some(rule) = self.rules.get(i) else {
                return Ok(false);
            };
            if self.eval(&self.matcher, rule, &cx)? {
                Ok(verdict.push(rule.eft, i as usize))
            } else {
                Ok(false)
            }
        };
        let index = match &self.index {
            Some(index)
                if index
                    .ip_keys
                    .iter()
                    .all(|f| field(q, *f).parse::<IpAddr>().is_ok())
                    && !self.escaped(index, &cx)? =>
            {
                Some(index)
            }
            _ => None,
        };
        let stopped = match index {
            // The buckets of the subject (`r.sub == p.X`) or of its whole role
            // closure (`g`), merged and sorted: policy order decides the first
            // match and the explain line.
            Some(index) => {
                let group = match index.group {
                    Some((rt, key, dom)) => {
                        let (start, dom) = (field(q, key), dom.map(|d| field(q, d)));
                        Some(cx.reached(rt, start, dom, |a, d| self.reach(rt, a, d, q))?)
                    }
                    None => None,
                };
                // A held pattern role (`g, alice, /book/*`) can reach names no
                // bucket is keyed by: then every rule is checked, in order.
                let held_pattern = group.as_ref().is_some_and(|g| !g.linked.is_empty())
                    || (index.keyed == Keyed::Role
                        && closure.as_ref().is_some_and(|c| !c.linked.is_empty()));
                // One segment (no allocation) unless a group test asks for several.
                let (one, many): ([u32; 1], Vec<u32>);
                let segments: &[u32] = match &group {
                    None => {
                        one = [segment_hash(first_segment(q.resource))];
                        &one
                    }
                    Some(group) => {
                        many = group.seen.iter().map(|g| segment_hash(g)).collect();
                        &many
                    }
                };
                let mut c: Vec<u32> = match (index.keyed, &closure) {
                    _ if held_pattern => self.rules.in_order(),
                    (Keyed::Role, Some(closure)) => {
                        let mut c: Vec<u32> = closure
                            .seen
                            .iter()
                            .filter_map(|s| index.buckets.get(*s))
                            .flat_map(|b| b.candidates_in(segments))
                            .collect();
                        // Rules for a role pattern (`p, team-*, …`) that a
                        // reached name matches.
                        if let Some(nm) = self.roles[overlay].names.as_deref() {
                            let mut held: Vec<u32> = Vec::new();
                            for r in &closure.seen {
                                for i in index.pattern_segments.candidates(r) {
                                    let key = &index.pattern_keys[i as usize];
                                    let hit = match nm.compiled(key) {
                                        Some(p) => p.matches(nm.func, r)?,
                                        None => false,
                                    };
                                    if hit {
                                        held.push(i);
                                    }
                                }
                            }
                            held.sort_unstable();
                            held.dedup();
                            for i in held {
                                let key = &index.pattern_keys[i as usize];
                                if let Some(b) = index.buckets.get(key) {
                                    c.extend(b.candidates_in(segments));
                                }
                            }
                        }
                        c
                    }
                    (Keyed::Whole, _) => index
                        .buckets
                        .get("")
                        .into_iter()
                        .flat_map(|b| b.candidates_in(segments))
                        .collect(),
                    _ => index
                        .buckets
                        .get(q.subject)
                        .into_iter()
                        .flat_map(|b| b.candidates_in(segments))
                        .collect(),
                };
                // The literal branches of a keying `||` (`p.sub == "self"`).
                if !held_pattern {
                    for k in &index.literal_keys {
                        if let Some(b) = index.buckets.get(k) {
                            c.extend(b.candidates_in(segments));
                        }
                    }
                }
                // Slot order is policy order unless a rule was inserted
                // between two others since the last full build.
                match self.rules.ordered() {
                    true => c.sort_unstable(),
                    false => c.sort_unstable_by_key(|i| self.rules.get(*i).map(|r| r.order)),
                }
                // Two groups can share a hash: a rule is still checked once.
                c.dedup();
                c.into_iter()
                    .map(&mut check)
                    .find(|r| !matches!(r, Ok(false)))
            }
            None => self
                .rules
                .in_order()
                .into_iter()
                .map(&mut check)
                .find(|r| !matches!(r, Ok(false))),
        };
        if let Some(Err(e)) = stopped {
            return Err(e);
        }
        let (allowed, at) = verdict.finish();
        Ok(Enforced {
            allowed,
            matched: at
                .and_then(|i| self.rules.get(i as u32))
                .map(|r| r.values.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default(),
        })
    }

    /// Whether a rule-independent `||` branch holds for this request (then
    /// every rule matches and the index cannot be used).
    pub(super) fn escaped<'a>(&'a self, index: &Index, cx: &Cx<'a>) -> Result<bool, EvalError> {
        let (Expr::Or(xs), Some(any_rule)) = (&*self.matcher, self.rules.any()) else {
            return Ok(false);
        };
        for &i in &index.escapes {
            if self.eval(&xs[i], any_rule, cx)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Everything `start` reaches through role links in `dom` (itself
    /// included), with the request's roles linked from its subject.
    pub(super) fn reach<'a>(
        &'a self,
        rt: usize,
        start: &'a str,
        dom: Option<&'a str>,
        q: &'a Query<'a>,
    ) -> Result<Closure<'a>, EvalError> {
        let Some(role) = self.roles.get(rt) else {
            let seen = std::iter::once(start).collect();
            return Ok(Closure {
                seen,
                linked: Vec::new(),
            });
        };
        if role.names.is_none() && role.domains.is_none() {
            return Ok(self.reach_plain(role, start, dom, q));
        }
        let mut seen: HashSet<&str> = HashSet::new();
        seen.insert(start);
        let mut linked: Vec<&str> = Vec::new();
        // The domains whose links count here: `dom`, and with domain
        // matching every domain pattern it matches.
        let dom = dom.unwrap_or("");
        // Without domain matching (the common case) one domain, no allocation.
        let (one_dom, one_graph): ([&'a str; 1], [&'a HashMap<String, Vec<String>>; 1]);
        let (many_doms, many_graphs): (Vec<&'a str>, Vec<&'a HashMap<String, Vec<String>>>);
        let (doms, graphs): (&[&'a str], &[&'a HashMap<String, Vec<String>>]) = match &role.domains
        {
            None => {
                one_dom = [dom];
                match role.graph.get(dom) {
                    Some(g) => {
                        one_graph = [g];
                        (&one_dom, &one_graph)
                    }
                    None => (&one_dom, &[]),
                }
            }
            Some(dm) => {
                many_doms = match dm.inherits.get(dom) {
                    Some(list) => list.iter().map(String::as_str).collect(),
                    None => {
                        let mut v = Vec::new();
                        for (d, c) in &dm.patterns {
                            if c.matches(dm.func, dom)? {
                                v.push(d.as_str());
                            }
                        }
                        v
                    }
                };
                many_graphs = many_doms
                    .iter()
                    .filter_map(|d| role.graph.get(*d))
                    .collect();
                (&many_doms, &many_graphs)
            }
        };
        // casbin-rs's overlay links live in the request's domain only.
        let overlay = role.overlay && (!role.domain || dom == q.domain);
        let claims = |node: &str| {
            (overlay && node == q.subject)
                .then_some(q.roles)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .filter(|r| self.known.as_ref().is_none_or(|k| k.contains_key(*r)))
        };
        // A name in the lines of the domains that count (else, in Go
        // Casbin, not a node of this domain's role manager).
        let is_node = |n: &str, nm: &NameMatching| {
            doms.iter()
                .any(|d| nm.nodes.get(*d).is_some_and(|set| set.contains(n)))
        };
        let mut level: Vec<&str> = vec![start];
        // INVARIANT: after k rounds, `seen` holds every node linked within k edges.
        for _ in 0..MAX_DEPTH {
            let mut next: Vec<&str> = Vec::new();
            let mut visit = |n: &'a str, next: &mut Vec<&'a str>| {
                if seen.insert(n) {
                    next.push(n);
                }
            };
            for node in level {
                for n in links_in(graphs, node) {
                    visit(n, &mut next);
                    // A held pattern: every name matching it is held too.
                    if let Some(members) = role
                        .names
                        .as_ref()
                        .and_then(|nm| nm.matched.get(n).map(|m| (nm, m)))
                    {
                        let (nm, members) = members;
                        if !linked.contains(&n) {
                            linked.push(n);
                        }
                        for x in members {
                            if is_node(x, nm) {
                                visit(x, &mut next);
                            }
                        }
                        for c in claims(q.subject) {
                            if c != n && nm.patterns[n].matches(nm.func, c)? {
                                visit(c, &mut next);
                            }
                        }
                    }
                }
                // A claim role is a name, never a pattern.
                for c in claims(node) {
                    visit(c, &mut next);
                }
                // The links of every pattern this node matches.
                if let Some(nm) = &role.names {
                    match nm.matched_by.get(node) {
                        Some(ids) => {
                            for &i in ids {
                                for n in links_in(graphs, &nm.sources[i as usize]) {
                                    visit(n, &mut next);
                                }
                            }
                        }
                        None if nm.nodes.values().any(|set| set.contains(node)) => {}
                        None => {
                            for i in nm.by_segment.candidates(node) {
                                let p = &nm.sources[i as usize];
                                if p != node && nm.patterns[p].matches(nm.func, node)? {
                                    for n in links_in(graphs, p) {
                                        visit(n, &mut next);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Ok(Closure { seen, linked })
    }

    /// `reach` for a role type without pattern matching (the common case):
    /// plain links, one domain.
    pub(super) fn reach_plain<'a>(
        &'a self,
        role: &'a RoleType,
        start: &'a str,
        dom: Option<&'a str>,
        q: &'a Query<'a>,
    ) -> Closure<'a> {
        let edges = role.graph.get(dom.unwrap_or(""));
        // casbin-rs's overlay links live in the request's domain only.
        let overlay = role.overlay && (!role.domain || dom == Some(q.domain));
        let mut seen: HashSet<&str> = HashSet::new();
        seen.insert(start);
        let mut level: Vec<&str> = vec![start];
        // INVARIANT: after k rounds, `seen` holds every node linked within k edges.
        for _ in 0..MAX_DEPTH {
            let mut next: Vec<&str> = Vec::new();
            for node in level {
                let stored = edges.and_then(|e| e.get(node)).into_iter().flatten();
                let claimed = (overlay && node == q.subject)
                    .then_some(q.roles)
                    .into_iter()
                    .flatten()
                    .filter(|r| {
                        self.known
                            .as_ref()
                            .is_none_or(|k| k.contains_key(r.as_str()))
                    });
                for n in stored.chain(claimed) {
                    if seen.insert(n) {
                        next.push(n);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Closure {
            seen,
            linked: Vec::new(),
        }
    }

    /// Whether a closure of role type `rt` holds `b` (Go Casbin's `HasLink`).
    pub(super) fn holds(&self, rt: usize, c: &Closure<'_>, b: &str) -> Result<bool, EvalError> {
        if c.seen.contains(b) {
            return Ok(true);
        }
        let Some(nm) = self.roles.get(rt).and_then(|r| r.names.as_deref()) else {
            return Ok(false);
        };
        // `b` as a pattern: a reached name matching it.
        if let Some(p) = nm.pattern_of(b)? {
            for r in &c.seen {
                if p.matches(nm.func, r)? {
                    return Ok(true);
                }
            }
        }
        // `b` matching a held pattern.
        for v in &c.linked {
            if *v != b && nm.patterns[*v].matches(nm.func, b)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(super) fn val<'a>(&'a self, a: &'a Arg, rule: &'a Rule, q: &'a Query<'a>) -> &'a str {
        match a {
            Arg::R(f) => field(q, *f),
            Arg::P(i) => &rule.values[*i],
            Arg::Lit(s) => s,
            Arg::Get(g) => {
                let key = self.val(&g.key, rule, q);
                let var = self.val(&g.var, rule, q);
                let got = match &g.from {
                    GetFrom::Rule { slot } => rule.patterns[*slot].get(key, var),
                    GetFrom::Fixed(_, c) => c.0.get(key, var),
                };
                // A value read out of a folded resource, in the case the
                // upstream handler receives it.
                q.unfold(got)
            }
        }
    }

    pub(super) fn eval<'a>(
        &'a self,
        e: &'a Expr,
        rule: &'a Rule,
        cx: &Cx<'a>,
    ) -> Result<bool, EvalError> {
        let q = cx.q;
        Ok(match e {
            // Both short-circuit left to right, as in casbin-rs (Rhai).
            Expr::And(xs) => {
                for x in xs {
                    if !self.eval(x, rule, cx)? {
                        return Ok(false);
                    }
                }
                true
            }
            Expr::Or(xs) => {
                for x in xs {
                    if self.eval(x, rule, cx)? {
                        return Ok(true);
                    }
                }
                false
            }
            Expr::Not(x) => !self.eval(x, rule, cx)?,
            Expr::Eq(a, b, want) => (self.val(a, rule, q) == self.val(b, rule, q)) == *want,
            Expr::In(a, list) => {
                let a = self.val(a, rule, q);
                list.iter().any(|x| self.val(x, rule, q) == a)
            }
            Expr::Role { rt, args } => {
                let b = self.val(&args[1], rule, q);
                let overlay = self.roles.get(*rt).is_some_and(|r| r.overlay);
                let anchored = matches!(args[0], Arg::R(_))
                    && matches!(args.get(2), None | Some(Arg::R(_) | Arg::Lit(_)));
                let a = self.val(&args[0], rule, q);
                let dom = args.get(2).map(|d| self.val(d, rule, q));
                match (
                    overlay && args[0] == Arg::R(RField::Sub),
                    args.get(2),
                    cx.closure,
                ) {
                    (true, None | Some(Arg::R(RField::Dom)), Some(closure)) => {
                        self.holds(*rt, closure, b)?
                    }
                    // Anchored on the request (`g2(r.obj, p.obj)`): the same
                    // closure for every rule, computed once per request.
                    _ if anchored => {
                        a == b || {
                            let c = cx.reached(*rt, a, dom, |a, d| self.reach(*rt, a, d, q))?;
                            self.holds(*rt, &c, b)?
                        }
                    }
                    _ => a == b || self.holds(*rt, &self.reach(*rt, a, dom, q)?, b)?,
                }
            }
            Expr::Call { func, key, pattern } => {
                let key = self.val(key, rule, q);
                match pattern {
                    Pattern::Rule { slot } => rule.patterns[*slot].matches(*func, key)?,
                    Pattern::Fixed(c) => c.matches(*func, key)?,
                    Pattern::Live(f) => compile(*func, field(q, *f), &mut HashMap::new())
                        .map_err(EvalError)?
                        .matches(*func, key)?,
                }
            }
        })
    }
}

pub(super) fn field<'a>(q: &Query<'a>, f: RField) -> &'a str {
    match f {
        RField::Sub => q.subject,
        RField::Dom => q.domain,
        RField::Obj => q.resource,
        RField::Act => q.action,
        RField::Attr(i) => q.attributes.get(usize::from(i)).map_or("", String::as_str),
    }
}
