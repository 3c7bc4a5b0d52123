//! The route table: API Gateway path syntax and most-specific matching (`docs/configuration.md`).
//!
//! Pure: compiled once per snapshot, matched per request without allocation.
//! Paths arrive in canonical form ([`crate::request`]) and are compared
//! segment by segment as they are, so the path a route sees is the path the
//! policy sees.

use crate::config::{Config, ConfigError, RouteAuth, RouteConfig};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("invalid route path `{path}`: {why}")]
    Path { path: String, why: String },
    #[error("invalid route method `{0}`: use an HTTP method name (GET, POST, …) or `ANY`")]
    Method(String),
    #[error("invalid route scopes: {0}")]
    Scope(String),
    #[error(
        "`{label}` is the same route as route[{first}] `{first_label}`: only one of them could ever be chosen, and the other's scopes would never apply"
    )]
    Duplicate {
        at: usize,
        label: String,
        first: usize,
        first_label: String,
    },
}

/// The methods of the IANA HTTP Method Registry (RFC 9110, WebDAV, and
/// the others registered): a route's method is one of these, or `ANY`.
const METHODS: [&str; 39] = [
    "ACL",
    "BASELINE-CONTROL",
    "BIND",
    "CHECKIN",
    "CHECKOUT",
    "CONNECT",
    "COPY",
    "DELETE",
    "GET",
    "HEAD",
    "LABEL",
    "LINK",
    "LOCK",
    "MERGE",
    "MKACTIVITY",
    "MKCALENDAR",
    "MKCOL",
    "MKREDIRECTREF",
    "MKWORKSPACE",
    "MOVE",
    "OPTIONS",
    "ORDERPATCH",
    "PATCH",
    "POST",
    "PRI",
    "PROPFIND",
    "PROPPATCH",
    "PUT",
    "QUERY",
    "REBIND",
    "REPORT",
    "SEARCH",
    "TRACE",
    "UNBIND",
    "UNCHECKOUT",
    "UNLINK",
    "UNLOCK",
    "UPDATE",
    "UPDATEREDIRECTREF",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param,
    /// `{name+}`: one or more segments; always last.
    Greedy,
}

/// A route as an automaton over characters ([`Route::may_overlap`]).
#[derive(Debug, Clone, Copy)]
enum Tok {
    Char(char),
    /// One or more characters: not `/` for `{param}`, any for `{proxy+}`.
    Run {
        slash: bool,
    },
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Upper-case method, or `None` for `ANY`.
    method: Option<String>,
    segments: Vec<Segment>,
    /// `METHOD /path` as configured, for logs and responses.
    pub label: String,
    /// The path template as configured (`/items/{id}`).
    pub path: String,
    pub public: bool,
    pub scopes: Vec<String>,
    /// Specificity rank per segment (literal 2, param 1, greedy 0), compared lexicographically.
    rank: Vec<u8>,
}

impl Route {
    pub fn compile(cfg: &RouteConfig) -> Result<Route, RouteError> {
        let method = match cfg.method.to_ascii_uppercase().as_str() {
            "ANY" => None,
            m if METHODS.contains(&m) => Some(m.to_string()),
            _ => return Err(RouteError::Method(cfg.method.clone())),
        };
        let err = |why: &str| RouteError::Path {
            path: cfg.path.clone(),
            why: why.to_string(),
        };
        let rest = cfg
            .path
            .strip_prefix('/')
            .ok_or_else(|| err("it must start with `/`"))?;
        let mut segments = Vec::new();
        if !rest.is_empty() {
            let parts: Vec<&str> = rest.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                let seg =
                    if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                        let (name, greedy) = match inner.strip_suffix('+') {
                            Some(n) => (n, true),
                            None => (inner, false),
                        };
                        if name.is_empty()
                            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        {
                            return Err(err("a parameter name is letters, digits and `_`"));
                        }
                        if greedy && i + 1 != parts.len() {
                            return Err(err("a greedy segment must be last"));
                        }
                        if greedy {
                            Segment::Greedy
                        } else {
                            Segment::Param
                        }
                    } else if part.contains('{') || part.contains('}') {
                        return Err(err("a parameter must be a whole segment, like `{id}`"));
                    } else {
                        literal(part, i + 1 == parts.len()).map_err(|why| err(&why))?;
                        Segment::Literal((*part).to_string())
                    };
                segments.push(seg);
            }
        }
        let rank = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 2,
                Segment::Param => 1,
                Segment::Greedy => 0,
            })
            .collect();
        for scope in &cfg.scopes {
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(RouteError::Scope(format!(
                    "scope `{scope}` can never be held: a token's scopes are split at spaces, and none is empty"
                )));
            }
        }
        if cfg.auth == RouteAuth::None && !cfg.scopes.is_empty() {
            return Err(RouteError::Scope(
                "a public route (`auth = \"none\"`) takes no token, so its `scopes` would never be checked".into(),
            ));
        }
        Ok(Route {
            label: format!("{} {}", method.as_deref().unwrap_or("ANY"), cfg.path),
            path: cfg.path.clone(),
            method,
            segments,
            public: cfg.auth == RouteAuth::None,
            scopes: cfg.scopes.clone(),
            rank,
        })
    }

    /// The route's method and paths: two routes with the same key match
    /// the same requests, whatever their parameters are called.
    fn key(&self) -> (Option<&str>, &[Segment]) {
        (self.method.as_deref(), &self.segments)
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(method)
        {
            return false;
        }
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        if self.segments.is_empty() {
            return rest.is_empty();
        }
        let mut parts = rest.split('/');
        for seg in &self.segments {
            match seg {
                Segment::Greedy => return parts.any(|p| !p.is_empty()),
                Segment::Param => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(l) => match parts.next() {
                    Some(p) if p == l => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }

    /// Upper-case method, or `None` for `ANY`.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The paths a route-level decision is taken on: the template, and for a
    /// greedy route also the template with its greedy segment twice, so a
    /// pattern that matches one segment (`/a/:id`) cannot pass for
    /// `/a/{proxy+}`, whose paths may be deeper.
    pub fn witnesses(&self) -> Vec<String> {
        let mut out = vec![self.path.clone()];
        if matches!(self.segments.last(), Some(Segment::Greedy))
            && let Some((_, last)) = self.path.rsplit_once('/')
        {
            out.push(format!("{}/{last}", self.path));
        }
        out
    }

    /// This route's paths with each parameter (a greedy one too, as one
    /// segment) replaced by one of `values`: every combination, at most
    /// `limit` of them. Empty for a literal route.
    pub fn instances(&self, values: &[&str], limit: usize) -> Vec<String> {
        if self.is_literal() || values.is_empty() {
            return Vec::new();
        }
        let mut out = vec![String::new()];
        for s in &self.segments {
            out = match s {
                Segment::Literal(l) => out.into_iter().map(|p| format!("{p}/{l}")).collect(),
                Segment::Param | Segment::Greedy => out
                    .iter()
                    .flat_map(|p| values.iter().map(move |v| format!("{p}/{v}")))
                    .take(limit)
                    .collect(),
            };
        }
        out
    }

    /// Whether `other` matches exactly the paths this route matches.
    pub fn same_paths(&self, other: &Route) -> bool {
        self.segments == other.segments
    }

    /// Whether the path has no parameter: it matches exactly one path.
    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// The path with every parameter as `*`, as an `execute-api` ARN writes it.
    pub fn glob(&self) -> String {
        if self.segments.is_empty() {
            return "/".into();
        }
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param | Segment::Greedy => out.push('*'),
            }
        }
        out
    }

    /// Whether some path this route matches is also matched by `glob`
    /// (`*` any characters, `/` included; `?` any one character), as IAM
    /// matches `execute-api` ARNs. Greedy segments are taken as any non-empty
    /// text: a superset, so a `false` here is always right.
    pub fn may_overlap(&self, glob: &str) -> bool {
        // Cheap first: both sides' literal prefixes must agree as far as both go.
        let glob_lit = &glob[..glob.find(['*', '?']).unwrap_or(glob.len())];
        let route_lit = self.literal_prefix();
        let n = glob_lit.len().min(route_lit.len());
        // INVARIANT: both are prefixes of what they match, so a difference
        // within their common length means no path is matched by both.
        if glob_lit.as_bytes()[..n] != route_lit.as_bytes()[..n] {
            return false;
        }
        let route = self.tokens();
        let g: Vec<char> = glob.chars().collect();
        // Characters worth trying: every literal of either side, `/`, and one neither names.
        let mut alphabet: Vec<char> = g
            .iter()
            .copied()
            .filter(|c| !matches!(c, '*' | '?'))
            .collect();
        alphabet.extend(route.iter().filter_map(|t| match t {
            Tok::Char(c) => Some(*c),
            Tok::Run { .. } => None,
        }));
        alphabet.extend(['/', '\u{1}']);
        alphabet.sort_unstable();
        alphabet.dedup();
        // The glob positions reachable from `gi` without reading (over `*`s).
        let close = |gi: usize| {
            let mut end = gi;
            while g.get(end) == Some(&'*') {
                end += 1;
            }
            gi..=end
        };
        // State: (glob position, route token, inside a run that has a character).
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![(0usize, 0usize, false)];
        while let Some(state) = todo.pop() {
            if !seen.insert(state) {
                continue;
            }
            let (gi, ri, inrun) = state;
            let route_done = (!inrun && ri == route.len()) || (inrun && ri + 1 == route.len());
            if route_done && close(gi).any(|p| p == g.len()) {
                return true;
            }
            for &c in &alphabet {
                let mut glob_next = Vec::new();
                for p in close(gi) {
                    match g.get(p) {
                        Some('*') => glob_next.push(p),
                        Some('?') => glob_next.push(p + 1),
                        Some(&lit) if lit == c => glob_next.push(p + 1),
                        _ => {}
                    }
                }
                let mut route_next = Vec::new();
                let mut from = |ri: usize| match route.get(ri) {
                    Some(Tok::Char(x)) if *x == c => route_next.push((ri + 1, false)),
                    Some(Tok::Run { slash }) if *slash || c != '/' => route_next.push((ri, true)),
                    _ => {}
                };
                if inrun {
                    // Go on with the run, or leave it for the next token.
                    from(ri);
                    from(ri + 1);
                } else {
                    from(ri);
                }
                for &gn in &glob_next {
                    for &(rn, r_in) in &route_next {
                        todo.push((gn, rn, r_in));
                    }
                }
            }
        }
        false
    }

    /// The compiled path up to its first parameter (`/items/` for
    /// `/items/{id}`), from the segments, so case folding is taken into account.
    fn literal_prefix(&self) -> String {
        let mut out = String::new();
        if self.segments.is_empty() {
            out.push('/');
        }
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param | Segment::Greedy => break,
            }
        }
        out
    }

    /// The route as tokens over characters, for [`Route::may_overlap`].
    fn tokens(&self) -> Vec<Tok> {
        let mut out = Vec::new();
        if self.segments.is_empty() {
            out.push(Tok::Char('/'));
        }
        for s in &self.segments {
            out.push(Tok::Char('/'));
            match s {
                Segment::Literal(l) => out.extend(l.chars().map(Tok::Char)),
                Segment::Param => out.push(Tok::Run { slash: false }),
                Segment::Greedy => out.push(Tok::Run { slash: true }),
            }
        }
        out
    }

    /// Greater is more specific: literal > `{param}` > `{proxy+}` segment by
    /// segment, then a named method over `ANY`.
    fn specificity(&self) -> (&[u8], bool) {
        (&self.rank, self.method.is_some())
    }
}

/// Checks a literal segment of a route path: it must be written in
/// API Gateway syntax and in the canonical form request paths are decided
/// in, or the route could never match (and its scopes never apply).
fn literal(part: &str, last: bool) -> Result<(), String> {
    if let Some(name) = part.strip_prefix(':') {
        return Err(format!(
            "`{part}` is policy (keyMatch2) syntax; a route writes a parameter as `{{{}}}` and any number of segments as `{{proxy+}}`",
            name.trim_end_matches(['*', '+'])
        ));
    }
    if part.contains('*') {
        return Err(format!(
            "`{part}` holds `*`, which routes read literally: write `{{proxy+}}` for any number of segments"
        ));
    }
    if part.is_empty() {
        return Err(match last {
            true => "a trailing `/` never matches: request paths are decided without one".into(),
            false => "an empty segment (`//`) never matches a request path".into(),
        });
    }
    let path = format!("/{part}");
    match crate::request::canonical_path(&path, &crate::config::RequestConfig::default()) {
        Ok(c) if c == path => Ok(()),
        Ok(c) => Err(format!(
            "`{part}` never matches: request paths are decided decoded, so write `{}`",
            &c[1..]
        )),
        Err(why) => Err(format!(
            "`{part}` never matches: a request whose {why} is refused"
        )),
    }
}

/// All routes of a snapshot.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// The route table of `config`; a bad route is a config error naming
    /// its file and key (`route[2]`).
    pub fn of_config(config: &Config, fold_case: bool) -> Result<RouteTable, ConfigError> {
        for (i, route) in config.routes.iter().enumerate() {
            Route::compile(route)
                .map_err(|e| config.invalid(format!("route[{i}]"), e.to_string()))?;
        }
        Self::compile_folded(&config.routes, fold_case).map_err(|e| match e {
            RouteError::Duplicate { at, .. } => {
                config.invalid(format!("route[{at}]"), e.to_string())
            }
            e => config.invalid("route", e.to_string()),
        })
    }

    pub fn compile(cfgs: &[RouteConfig]) -> Result<RouteTable, RouteError> {
        Self::compile_folded(cfgs, false)
    }

    /// With `fold_case`, literal segments are lower-cased to match the
    /// lower-cased request paths of `path_case = "insensitive"`.
    pub fn compile_folded(cfgs: &[RouteConfig], fold_case: bool) -> Result<RouteTable, RouteError> {
        let mut routes: Vec<Route> = cfgs.iter().map(Route::compile).collect::<Result<_, _>>()?;
        if fold_case {
            for seg in routes.iter_mut().flat_map(|r| r.segments.iter_mut()) {
                if let Segment::Literal(l) = seg {
                    *l = crate::request::fold_case(l).into_owned();
                }
            }
        }
        let mut seen = std::collections::HashMap::new();
        for (i, r) in routes.iter().enumerate() {
            if let Some(&first) = seen.get(&r.key()) {
                return Err(RouteError::Duplicate {
                    at: i,
                    label: r.label.clone(),
                    first,
                    first_label: routes[first].label.clone(),
                });
            }
            seen.insert(r.key(), i);
        }
        Ok(RouteTable { routes })
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The most specific route matching `method` and `path` (query already removed).
    pub fn find(&self, method: &str, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.matches(method, path))
            .max_by(|a, b| a.specificity().cmp(&b.specificity()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_route_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["model.conf", "policy.csv"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let text = "[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n[[route]]\npath = \"/api/{proxy+}/x\"\n";
        let config = Config::from_toml(text, &dir.path().join("authzd.toml")).unwrap();
        let e = RouteTable::of_config(&config, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("route[0]") && e.contains("greedy"), "{e}");
        assert!(e.contains("authzd.toml"), "{e}");
    }

    use super::*;
    use proptest::prelude::*;

    fn route(method: &str, path: &str) -> RouteConfig {
        RouteConfig {
            method: method.into(),
            path: path.into(),
            scopes: vec![],
            auth: RouteAuth::Jwt,
        }
    }

    fn table(routes: &[(&str, &str)]) -> RouteTable {
        RouteTable::compile(&routes.iter().map(|(m, p)| route(m, p)).collect::<Vec<_>>()).unwrap()
    }

    fn found<'a>(t: &'a RouteTable, m: &str, p: &str) -> Option<&'a str> {
        t.find(m, p).map(|r| r.label.as_str())
    }

    #[test]
    fn most_specific_wins() {
        let t = table(&[
            ("ANY", "/api/{proxy+}"),
            ("GET", "/api/{proxy+}"),
            ("ANY", "/api/items/{id}"),
            ("GET", "/api/items/special"),
            ("ANY", "/api/v1/{proxy+}"),
            ("ANY", "/"),
        ]);
        assert_eq!(
            found(&t, "GET", "/api/items/special"),
            Some("GET /api/items/special")
        );
        assert_eq!(
            found(&t, "POST", "/api/items/special"),
            Some("ANY /api/items/{id}")
        );
        assert_eq!(
            found(&t, "DELETE", "/api/items/7"),
            Some("ANY /api/items/{id}")
        );
        assert_eq!(
            found(&t, "GET", "/api/items/7/parts"),
            Some("GET /api/{proxy+}")
        );
        assert_eq!(
            found(&t, "PUT", "/api/items/7/parts"),
            Some("ANY /api/{proxy+}")
        );
        assert_eq!(found(&t, "PUT", "/api/v1/x"), Some("ANY /api/v1/{proxy+}"));
        assert_eq!(found(&t, "GET", "/"), Some("ANY /"));
        // Greedy needs at least one segment; `{id}` needs a non-empty one.
        assert_eq!(found(&t, "GET", "/api"), None);
        assert_eq!(found(&t, "GET", "/api/items/"), Some("GET /api/{proxy+}"));
        assert_eq!(found(&t, "GET", "/other"), None);
        assert_eq!(
            found(&t, "get", "/api/items/special"),
            Some("GET /api/items/special")
        );
    }

    #[test]
    fn paths_are_not_normalized() {
        let t = table(&[("GET", "/admin")]);
        assert_eq!(found(&t, "GET", "//admin"), None);
        assert_eq!(found(&t, "GET", "/admin/"), None);
        assert_eq!(found(&t, "GET", "/%61dmin"), None);
        assert_eq!(found(&t, "GET", "admin"), None);
    }

    #[test]
    fn globs_and_their_overlap_with_routes() {
        let r = |p: &str| Route::compile(&route("GET", p)).unwrap();
        assert_eq!(r("/items/{id}/parts").glob(), "/items/*/parts");
        assert_eq!(r("/api/{proxy+}").glob(), "/api/*");
        assert_eq!(r("/").glob(), "/");
        assert!(r("/a/b").is_literal() && !r("/a/{x}").is_literal());
        // `*` spans `/` in an ARN: `/items/*` reaches `/items/{id}/secret`'s paths.
        assert!(r("/items/{id}/secret").may_overlap("/items/*"));
        // But `/items/*/secret` never matches a one-segment item.
        assert!(!r("/items/{id}").may_overlap("/items/*/secret"));
        assert!(r("/items/{id}").may_overlap("/items/*"));
        assert!(r("/api/{proxy+}").may_overlap("/api/admin"));
        assert!(!r("/api/{proxy+}").may_overlap("/api"));
        assert!(!r("/api/admin").may_overlap("/api/*/x"));
        assert!(r("/a/{x}/c").may_overlap("/a/?/c"));
        assert!(!r("/a/{x}/c").may_overlap("/a/?/d"));
        assert!(r("/").may_overlap("/"));
        assert!(!r("/").may_overlap("/*x"));
        assert!(r("/a").may_overlap("*"));
    }

    #[test]
    fn invalid_paths_are_explained() {
        for (p, why) in [
            ("/api/{proxy+}/x", "greedy"),
            ("api", "start with"),
            ("/a/{}", "parameter name"),
            ("/a/x{id}", "whole segment"),
            ("/a/{id", "whole segment"),
            ("/wish-list-service/:rest*", "policy (keyMatch2) syntax"),
            ("/users/:id", "`{id}`"),
            ("/api/*", "{proxy+}"),
            ("/a//b", "empty segment"),
            ("/a/", "trailing `/`"),
            ("/a/../b", "never matches"),
            ("/files/my%20file", "write `my file`"),
            ("/a\\b", "never matches"),
            ("/\u{ff41}dmin", "never matches"),
        ] {
            let e = Route::compile(&route("GET", p)).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(p), "{p}: {e}");
        }
        for m in ["GE T", "GETS", "FETCH", "", "get x"] {
            assert!(Route::compile(&route(m, "/")).is_err(), "{m}");
        }
        for m in ["GET", "get", "ANY", "any", "PROPFIND", "PATCH", "QUERY"] {
            assert!(Route::compile(&route(m, "/")).is_ok(), "{m}");
        }
        for ok in [
            "/",
            "/files/my file",
            "/a:b",
            "/v1/{id}",
            "/.well-known/jwks.json",
        ] {
            assert!(Route::compile(&route("GET", ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn scopes_that_can_never_be_held_are_refused() {
        let with = |scopes: &[&str], auth| RouteConfig {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            auth,
            ..route("GET", "/a")
        };
        for bad in [&[""][..], &["a b"], &["read", " "]] {
            assert!(
                Route::compile(&with(bad, RouteAuth::Jwt)).is_err(),
                "{bad:?}"
            );
        }
        assert!(Route::compile(&with(&["read"], RouteAuth::None)).is_err());
        assert!(Route::compile(&with(&["wishlist/write"], RouteAuth::Jwt)).is_ok());
    }

    #[test]
    fn the_same_route_twice_is_refused() {
        let cfgs =
            |routes: &[(&str, &str)]| routes.iter().map(|(m, p)| route(m, p)).collect::<Vec<_>>();
        for twice in [
            [("GET", "/a"), ("GET", "/a")],
            [("GET", "/a/{id}"), ("get", "/a/{x}")],
            [("ANY", "/api/{proxy+}"), ("ANY", "/api/{rest+}")],
        ] {
            let e = RouteTable::compile(&cfgs(&twice)).unwrap_err().to_string();
            assert!(e.contains("same route as route[0]"), "{twice:?}: {e}");
        }
        // Case folding can make two routes one.
        let e = RouteTable::compile_folded(&cfgs(&[("GET", "/Admin"), ("GET", "/admin")]), true);
        assert!(e.is_err());
        assert!(RouteTable::compile(&cfgs(&[("GET", "/Admin"), ("GET", "/admin")])).is_ok());
        assert!(
            RouteTable::compile(&cfgs(&[("GET", "/a"), ("ANY", "/a"), ("GET", "/a/{id}")])).is_ok()
        );
    }

    proptest! {
        /// A literal route always beats a parameter route, which always beats
        /// a greedy one, for any path they all match.
        #[test]
        fn literal_beats_param_beats_greedy(a in "[a-z]{1,6}", b in "[a-z]{1,6}") {
            let t = table(&[("ANY", "/{p+}"), ("ANY", &format!("/{a}/{{id}}")), ("ANY", &format!("/{a}/{b}"))]);
            prop_assert_eq!(t.find("GET", &format!("/{a}/{b}")).unwrap().label.clone(), format!("ANY /{a}/{b}"));
            prop_assert_eq!(t.find("GET", &format!("/{a}/{b}x")).unwrap().label.clone(), format!("ANY /{a}/{{id}}"));
            prop_assert_eq!(t.find("GET", &format!("/{a}x/{b}")).unwrap().label.clone(), "ANY /{p+}".to_string());
        }

        /// Greedy matches any non-empty remainder of any depth, and the answer
        /// does not depend on the order routes are listed.
        #[test]
        fn greedy_and_order_independence(segs in proptest::collection::vec("[a-z]{1,4}", 1..6)) {
            let path = format!("/api/{}", segs.join("/"));
            let r1 = table(&[("ANY", "/api/{proxy+}"), ("GET", "/api/{x}")]);
            let r2 = table(&[("GET", "/api/{x}"), ("ANY", "/api/{proxy+}")]);
            let a = r1.find("GET", &path).map(|r| r.label.clone());
            let b = r2.find("GET", &path).map(|r| r.label.clone());
            prop_assert_eq!(&a, &b);
            let want = if segs.len() == 1 { "GET /api/{x}" } else { "ANY /api/{proxy+}" };
            prop_assert_eq!(a.as_deref(), Some(want));
        }

        #[test]
        fn matching_never_panics(path in "\\PC{0,40}", method in "[A-Za-z]{0,8}") {
            let t = table(&[("ANY", "/api/{proxy+}"), ("GET", "/{a}/{b}"), ("ANY", "/")]);
            let _ = t.find(&method, &path);
        }
    }
}
