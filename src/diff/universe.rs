//! The requests `authzd diff` decides under both revisions: every
//! principal, request, claim value and path value either side can tell
//! apart (`docs/policy-changes.md`, "What diff guarantees").

use std::collections::{BTreeMap, BTreeSet};

use crate::policy::{snapshot::Snapshot, source::csv_lines};

/// The first value put in path parameters and claims.
pub const WITNESS: &str = "w";
/// A second value, different from the first: so that an equality between
/// a path value and an attribute is tried both true and false.
pub const OTHER: &str = "w2";
/// A subject no policy line names.
pub const NOBODY: &str = "authzd-nobody";
/// A domain no policy line names.
const OTHER_DOMAIN: &str = "authzd-other-domain";
/// The methods an `ANY` route or a wildcard action stands for.
pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Pairs of claim roles are enumerated only up to this many names.
const MAX_PAIR_NAMES: usize = 60;
/// Assignments of values to a request's path parameters (or of a
/// principal's claims) tried in full up to this many; past it, each one
/// is varied alone.
const MAX_PRODUCT: usize = 81;

/// What one policy file names, read with the loader's own CSV reader.
#[derive(Default)]
pub struct Names {
    pub subjects: BTreeSet<String>,
    pub roles: BTreeSet<String>,
    pub domains: BTreeSet<String>,
    /// (object, action) of every `p` line.
    pub objects: BTreeSet<(String, String)>,
    /// A deny or an order can undo an allow.
    pub denies: bool,
}

/// Field positions of `p = …` in the model text.
fn p_fields(model: &str) -> Vec<String> {
    let mut in_section = false;
    for line in model.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[policy_definition]";
            continue;
        }
        if in_section && let Some(rest) = line.strip_prefix("p =").or(line.strip_prefix("p=")) {
            return rest.split(',').map(|f| f.trim().to_string()).collect();
        }
    }
    vec!["sub".into(), "obj".into(), "act".into()]
}

/// The names `policy` uses under `model`. The text loaded already, so the
/// reader cannot fail on it; a line it could not read names nothing.
pub fn names_of(model: &str, policy: &str) -> Names {
    let fields = p_fields(model);
    let at = |name: &str| fields.iter().position(|f| f == name);
    let (sub, obj, act, dom) = (at("sub"), at("obj"), at("act"), at("dom"));
    let mut n = Names {
        denies: model.contains("deny") || model.contains("priority"),
        ..Names::default()
    };
    for f in csv_lines(policy).unwrap_or_default() {
        let get = |i: Option<usize>| i.and_then(|i| f.get(i + 1)).cloned();
        match f[0].as_str() {
            "p" => {
                if let Some(s) = get(sub) {
                    n.subjects.insert(s.clone());
                    n.roles.insert(s);
                }
                if let Some(d) = get(dom) {
                    n.domains.insert(d);
                }
                if let (Some(o), Some(a)) = (get(obj), get(act)) {
                    n.objects.insert((o, a));
                }
            }
            g if g.starts_with('g') => {
                if let (Some(a), Some(b)) = (f.get(1), f.get(2)) {
                    n.subjects.insert(a.clone());
                    n.roles.insert(b.clone());
                }
                if let Some(d) = f.get(3) {
                    n.domains.insert(d.clone());
                }
            }
            _ => {}
        }
    }
    n
}

/// The string literals of a model's matcher (values a path or claim may
/// be compared with: `"self"`, `"shared"`).
pub fn literals(model: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let matcher = model
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("m =") || l.starts_with("m="));
    for m in matcher {
        let mut rest = m;
        while let Some(start) = rest.find('"') {
            let tail = &rest[start + 1..];
            let Some(end) = tail.find('"') else { break };
            let lit = &tail[..end];
            if !lit.is_empty() && !lit.contains('/') {
                out.insert(lit.to_string());
            }
            rest = &tail[end + 1..];
        }
    }
    out
}

/// A principal as a token would state it: its subject claim, claim roles
/// and scopes (each revision adds its own prefixes), and the claims that
/// attributes and domains read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Who {
    pub subject: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// JSON Pointer → value; a pointer absent here is a claim the token lacks.
    pub claims: BTreeMap<String, String>,
}

/// The principals: every name either policy gives as a subject; a subject
/// no line names holding each role name as its one claim role, and (when
/// a deny or an order can undo an allow) every pair of them; each with no
/// scopes and with every scope a route names; each with every assignment
/// of `absent`, [`WITNESS`] and [`OTHER`] to the claims either config maps.
pub fn principals(live: &Snapshot, cand: &Snapshot, a: &Names, b: &Names) -> Vec<Who> {
    let (sp, rp) = (
        live.config.policy.subject_prefix.as_str(),
        live.config.policy.role_prefix.as_str(),
    );
    let names: BTreeSet<&String> = a
        .subjects
        .iter()
        .chain(&a.roles)
        .chain(&b.subjects)
        .chain(&b.roles)
        .collect();
    // A token's subject carries `subject_prefix` and its claim roles
    // `role_prefix`: only names with them can be either.
    let roles: Vec<String> = names
        .iter()
        .filter_map(|r| r.strip_prefix(rp))
        .map(String::from)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut claim_sets: Vec<(String, Vec<String>)> = names
        .iter()
        .filter_map(|n| n.strip_prefix(sp))
        .map(|n| (n.to_string(), Vec::new()))
        .chain(std::iter::once((NOBODY.to_string(), Vec::new())))
        .chain(roles.iter().map(|r| (NOBODY.to_string(), vec![r.clone()])))
        .collect();
    if (a.denies || b.denies) && roles.len() <= MAX_PAIR_NAMES {
        for (i, r1) in roles.iter().enumerate() {
            for r2 in &roles[i + 1..] {
                claim_sets.push((NOBODY.to_string(), vec![r1.clone(), r2.clone()]));
            }
        }
    }
    let scopes: BTreeSet<String> = live
        .routes
        .iter()
        .chain(cand.routes.iter())
        .flat_map(|r| r.scopes.iter().cloned())
        .collect();
    let scope_sets: Vec<Vec<String>> = match scopes.is_empty() {
        true => vec![Vec::new()],
        false => vec![Vec::new(), scopes.into_iter().collect()],
    };
    let pointers: Vec<String> = [live, cand]
        .iter()
        .flat_map(|s| {
            let p = &s.config.policy;
            p.attributes
                .values()
                .map(|a| a.claim.clone())
                .chain(p.domain_claim.clone())
        })
        .filter(|c| c != "/sub")
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let claim_values = [None, Some(WITNESS), Some(OTHER)];
    let assignments: Vec<BTreeMap<String, String>> = assignments(pointers.len(), &claim_values)
        .into_iter()
        .map(|values| {
            pointers
                .iter()
                .zip(values)
                .filter_map(|(p, v)| v.map(|v| (p.clone(), v.to_string())))
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for (subject, roles) in &claim_sets {
        for scopes in &scope_sets {
            for claims in &assignments {
                out.push(Who {
                    subject: subject.clone(),
                    roles: roles.clone(),
                    scopes: scopes.clone(),
                    claims: claims.clone(),
                });
            }
        }
    }
    out
}

/// Every way of giving `slots` slots one of `values`: all of them while
/// that is at most [`MAX_PRODUCT`], else the first value everywhere and
/// each slot varied alone.
pub fn assignments<T: Copy>(slots: usize, values: &[T]) -> Vec<Vec<T>> {
    let Some(&first) = values.first() else {
        return vec![Vec::new()];
    };
    let full = values.len().checked_pow(slots as u32).unwrap_or(usize::MAX);
    if full <= MAX_PRODUCT {
        let mut out = vec![Vec::new()];
        for _ in 0..slots {
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut next = prefix.clone();
                        next.push(*v);
                        next
                    })
                })
                .collect();
        }
        return out;
    }
    let mut out = vec![vec![first; slots]];
    for i in 0..slots {
        for v in &values[1..] {
            let mut a = vec![first; slots];
            a[i] = *v;
            out.push(a);
        }
    }
    out
}

/// A request of the universe.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ask {
    Http { method: String, path: String },
    Resource { resource: String, action: String },
}

/// A path with parameters still to fill: literal segments and slots.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Template {
    segments: Vec<Option<String>>,
}

impl Template {
    /// A route path (`{id}`, `{proxy+}`) or a policy pattern (`:id`,
    /// `{id}`, `*`); a parameter that is part of a segment becomes the
    /// witness in place, and a trailing `*` or greedy parameter also
    /// stands for two segments.
    fn parse(pattern: &str) -> Vec<Template> {
        let parts: Vec<&str> = pattern.split('/').skip(1).collect();
        let mut segments: Vec<Option<String>> = parts
            .iter()
            .map(|s| {
                let whole =
                    s.starts_with(':') || (s.starts_with('{') && s.ends_with('}')) || *s == "*";
                match whole {
                    true => None,
                    false => Some(s.replace('*', WITNESS)),
                }
            })
            .collect();
        if pattern == "/" {
            segments.clear();
        }
        let deeper = parts.last().is_some_and(|l| *l == "*" || l.ends_with("+}"));
        let mut out = vec![Template {
            segments: segments.clone(),
        }];
        if deeper {
            segments.push(None);
            out.push(Template { segments });
        }
        out
    }

    fn slots(&self) -> usize {
        self.segments.iter().filter(|s| s.is_none()).count()
    }

    /// The path with its slots filled from `values`, in order.
    fn fill(&self, values: &[&str]) -> String {
        if self.segments.is_empty() {
            return "/".into();
        }
        let mut next = values.iter();
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            out.push_str(match s {
                Some(l) => l,
                None => next.next().copied().unwrap_or(WITNESS),
            });
        }
        out
    }
}

/// The methods an action names: `GET`, `(GET)|(POST)`, `GET|HEAD`.
fn methods_of(action: &str) -> Vec<String> {
    let words: Vec<String> = action
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase()))
        .map(str::to_string)
        .collect();
    if words.is_empty() || action == "*" || action.contains(".*") {
        METHODS.iter().map(|m| m.to_string()).collect()
    } else {
        words
    }
}

/// The request shapes: every route of either table with each method it
/// takes, every policy object with each action its lines name.
pub fn shapes(live: &Snapshot, cand: &Snapshot, a: &Names, b: &Names) -> Vec<(String, Shape)> {
    let mut out: BTreeSet<(String, Shape)> = BTreeSet::new();
    for r in live.routes.iter().chain(cand.routes.iter()) {
        let methods: Vec<String> = match r.method() {
            Some(m) => vec![m.to_string()],
            None => METHODS.iter().map(|m| m.to_string()).collect(),
        };
        for t in Template::parse(&r.path) {
            for m in &methods {
                out.insert((m.clone(), Shape::Path(t.clone())));
            }
        }
    }
    for (object, action) in a.objects.iter().chain(&b.objects) {
        if object.starts_with('/') {
            for t in Template::parse(object) {
                for m in methods_of(action) {
                    out.insert((m, Shape::Path(t.clone())));
                }
            }
        } else {
            out.insert((action.clone(), Shape::Resource(object.clone())));
        }
    }
    out.into_iter().collect()
}

/// A request before its values are chosen.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    Path(Template),
    Resource(String),
}

/// The requests `who` is asked about: each shape with its path slots
/// filled from the values a matcher may compare them with (the two
/// witnesses, the principal's subject claim and subject, the matchers'
/// literals), and — when `spellings` — each path also as the spellings
/// `[request]` settings tell apart.
pub fn asks(
    shapes: &[(String, Shape)],
    who: &Who,
    subject: &str,
    literals: &BTreeSet<String>,
    spellings: bool,
) -> BTreeSet<Ask> {
    let mut values: Vec<&str> = vec![WITNESS, OTHER, &who.subject, subject];
    values.extend(literals.iter().map(String::as_str));
    values.extend(who.claims.values().map(String::as_str));
    let mut seen = BTreeSet::new();
    values.retain(|v| !v.is_empty() && !v.contains('/') && seen.insert(*v));
    let mut out = BTreeSet::new();
    for (method, shape) in shapes {
        match shape {
            Shape::Resource(r) => {
                out.insert(Ask::Resource {
                    resource: r.clone(),
                    action: method.clone(),
                });
            }
            Shape::Path(t) => {
                for fill in assignments(t.slots(), &values) {
                    let path = t.fill(&fill);
                    if spellings {
                        for s in spellings_of(&path) {
                            out.insert(Ask::Http {
                                method: method.clone(),
                                path: s,
                            });
                        }
                    }
                    out.insert(Ask::Http {
                        method: method.clone(),
                        path,
                    });
                }
            }
        }
    }
    out
}

/// The spellings of `path` that `path_case`, `trailing_slash` and
/// `noncanonical` decide differently: lower and upper case, a trailing
/// `/`, a doubled `/`, an unreserved character percent-encoded.
fn spellings_of(path: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(8);
    // Case and a trailing `/` together: each folds on its own setting.
    for p in [path.to_string(), path.to_lowercase(), path.to_uppercase()] {
        out.push(format!("{}/", p.trim_end_matches('/')));
        out.push(p);
    }
    // What `noncanonical = "normalize"` resolves and `"reject"` refuses.
    out.push(format!("/{path}"));
    if let Some(i) = path.find(|c: char| c.is_ascii_alphanumeric()) {
        out.push(format!(
            "{}%{:02X}{}",
            &path[..i],
            path.as_bytes()[i],
            &path[i + 1..]
        ));
    }
    out
}

/// The domains to ask in: every domain either policy names and one none
/// does, for models with domains.
pub fn domains(live: &Snapshot, cand: &Snapshot, a: &Names, b: &Names) -> Vec<Option<String>> {
    if !live.policy.has_domain() && !cand.policy.has_domain() {
        return vec![None];
    }
    a.domains
        .iter()
        .chain(&b.domains)
        .map(String::as_str)
        .chain(std::iter::once(OTHER_DOMAIN))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|d| Some(d.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_parameter_and_go_deeper_for_greedy_ones() {
        let t = Template::parse("/users/{id}/docs/:doc");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].slots(), 2);
        assert_eq!(t[0].fill(&["a", "b"]), "/users/a/docs/b");
        let t = Template::parse("/api/{proxy+}");
        assert_eq!(t.iter().map(Template::slots).collect::<Vec<_>>(), [1, 2]);
        let t = Template::parse("/files/*.pdf");
        assert_eq!(t[0].fill(&[]), "/files/w.pdf");
        assert_eq!(Template::parse("/")[0].fill(&[]), "/");
    }

    #[test]
    fn assignments_are_the_product_until_it_is_too_large() {
        assert_eq!(assignments(2, &[1, 2]).len(), 4);
        assert_eq!(assignments(0, &[1, 2]), vec![Vec::<i32>::new()]);
        // 3^5 = 243 > 81: the first everywhere, each slot varied alone.
        let a = assignments(5, &[0, 1, 2]);
        assert_eq!(a.len(), 1 + 5 * 2);
        assert!(a.contains(&vec![0, 0, 2, 0, 0]));
    }

    #[test]
    fn names_are_read_with_the_loaders_csv_reader() {
        let model = "[policy_definition]\np = sub, obj, act\n";
        let n = names_of(
            model,
            "p, regular, \"/internal/*\", DELETE\np, \"a,b\", /x, GET\n",
        );
        assert!(n.objects.contains(&("/internal/*".into(), "DELETE".into())));
        assert!(n.subjects.contains("a,b"));
        assert_eq!(
            literals("[matchers]\nm = p.sub == \"self\" && r.obj != \"/x\"\n"),
            ["self".to_string()].into()
        );
    }
}
