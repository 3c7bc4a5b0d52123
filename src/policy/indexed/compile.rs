//! Compiling one pattern for one function at load (path matchers without regex where possible); a pattern casbin-rs would panic on is refused here.

use std::{net::IpAddr, sync::Arc};

use foldhash::{HashMap, HashMapExt as _};
use globset::{GlobBuilder, GlobMatcher};
use ip_network::IpNetwork;
use regex::Regex;

use super::functions::{
    Func, Params, Piece, first_segment, key_match, key2_params, key3_params, key4_params,
    path_match, pieces,
};
use crate::policy::query::EvalError;

/// A keyMatch4 pattern: its regex and the parameter name of each group.
#[derive(Clone)]
pub(super) struct Key4 {
    pub(super) re: Regex,
    pub(super) names: Vec<String>,
}

/// One function pattern, ready to test.
#[derive(Clone)]
pub(super) enum Compiled {
    /// keyMatch: the text up to the first `*` is a prefix, or the whole text.
    Prefix(Box<str>),
    /// A keyMatch2/3/5 pattern with no regex syntax left: matched without a regex.
    Path(Box<[Piece]>),
    /// Shared, not cloned: every `Regex` clone carries its own cache pool
    /// (about 2.5 KiB, more once used), which at 100k rules is most of the heap.
    Regex(Arc<Regex>),
    /// keyMatch4: a regex plus the parameter name of each capture group.
    Key4(Box<Key4>),
    /// A keyMatch4 pattern whose regex does not compile: casbin-rs answers false.
    Never,
    Glob(Box<GlobMatcher>),
    Net(IpNetwork),
    Addr(IpAddr),
}

/// Compiles a pattern for `func`. `regexes` shares compiled expressions between
/// rules (a 100k-rule policy often repeats a handful of patterns).
pub(super) fn compile(
    func: Func,
    pattern: &str,
    regexes: &mut HashMap<String, Arc<Regex>>,
) -> Result<Compiled, String> {
    let mut regex = |expr: &str| -> Result<Arc<Regex>, String> {
        if let Some(re) = regexes.get(expr) {
            return Ok(Arc::clone(re));
        }
        let re = Regex::new(expr).map_err(|e| format!("{func:?} pattern `{pattern}`: {e}"))?;
        let re = Arc::new(re);
        regexes.insert(expr.to_string(), Arc::clone(&re));
        Ok(re)
    };
    let slash_any = || pattern.replace("/*", "/.*");
    Ok(match func {
        Func::KeyMatch => Compiled::Prefix(pattern.into()),
        Func::KeyMatch2 => match pieces(pattern, Params::Colon) {
            Some(p) => Compiled::Path(p),
            None => Compiled::Regex(regex(&format!(
                "^{}$",
                key2_params().replace_all(&slash_any(), "[^/]+")
            ))?),
        },
        Func::KeyMatch3 => match pieces(pattern, Params::Braces) {
            Some(p) => Compiled::Path(p),
            None => Compiled::Regex(regex(&format!(
                "^{}$",
                key3_params().replace_all(&slash_any(), "[^/]+")
            ))?),
        },
        Func::KeyMatch5 => match pieces(pattern, Params::LazyBraces) {
            Some(p) => Compiled::Path(p),
            None => Compiled::Regex(regex(&format!(
                "^{}$",
                key4_params().replace_all(&slash_any(), "[^/]+")
            ))?),
        },
        Func::KeyMatch4 => {
            let mut names = Vec::new();
            let source = slash_any();
            let expr = key4_params().replace_all(&source, |c: &regex::Captures<'_>| {
                let token = &c[0];
                names.push(token[1..token.len() - 1].to_string());
                "([^/]+)".to_string()
            });
            match Regex::new(&format!("^{expr}$")) {
                // casbin-rs panics when the groups are not exactly the parameters
                // (`tokens.len() != matches.len()`) or one took no part (it
                // unwraps each); alternatives and optional parameters allow that.
                Ok(re)
                    if re.captures_len() != names.len() + 1
                        || pattern.contains(['|', '?'])
                        || pattern.contains("}*") =>
                {
                    return Err(format!(
                        "keyMatch4 pattern `{pattern}` has groups or alternatives of its own"
                    ));
                }
                Ok(re) => Compiled::Key4(Box::new(Key4 { re, names })),
                Err(_) => Compiled::Never,
            }
        }
        Func::Regex => Compiled::Regex(regex(pattern)?),
        Func::Glob => {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("globMatch pattern `{pattern}`: {e}"))?;
            Compiled::Glob(Box::new(glob.compile_matcher()))
        }
        Func::Ip => {
            let bad = || format!("ipMatch pattern `{pattern}` is not an address or network");
            let (addr, mask) = match pattern.split_once('/') {
                Some((a, m)) => (a, Some(m)),
                None => (pattern, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            match mask {
                None => Compiled::Addr(addr),
                Some(m) => {
                    let m: u8 = m.parse().map_err(|_| bad())?;
                    Compiled::Net(IpNetwork::new_truncate(addr, m).map_err(|_| bad())?)
                }
            }
        }
    })
}

impl Compiled {
    pub(super) fn matches(&self, func: Func, key: &str) -> Result<bool, EvalError> {
        // keyMatch5 ignores the request's query string.
        let key = match func {
            Func::KeyMatch5 => key.split_once('?').map_or(key, |(path, _)| path),
            _ => key,
        };
        Ok(match self {
            Compiled::Prefix(p) => key_match(key, p),
            Compiled::Path(pieces) => path_match(pieces, key),
            Compiled::Regex(re) => re.is_match(key),
            Compiled::Key4(k4) => match k4.re.captures(key) {
                None => false,
                Some(caps) => {
                    let mut seen: HashMap<&str, &str> = HashMap::new();
                    let mut same = true;
                    for (name, m) in k4.names.iter().zip(caps.iter().skip(1)) {
                        let Some(m) = m else {
                            return Err(EvalError(format!(
                                "keyMatch4: parameter `{name}` took no part"
                            )));
                        };
                        same &= *seen.entry(name).or_insert(m.as_str()) == m.as_str();
                    }
                    same
                }
            },
            Compiled::Never => false,
            Compiled::Glob(g) => g.is_match(key),
            Compiled::Net(_) | Compiled::Addr(_) => {
                let ip: IpAddr = key
                    .parse()
                    .map_err(|_| EvalError(format!("ipMatch: `{key}` is not an IP address")))?;
                match self {
                    Compiled::Net(net) => net.contains(ip),
                    Compiled::Addr(IpAddr::V6(p)) if ip.is_ipv4() => match p.to_ipv4() {
                        Some(p4) => IpAddr::V4(p4) == ip,
                        None => false,
                    },
                    Compiled::Addr(a) => *a == ip,
                    _ => false,
                }
            }
        })
    }

    /// The literal first path segment every key matching this pattern has, if any.
    pub(super) fn segment(&self) -> Option<&str> {
        fn prefix_segment(prefix: &str, whole: bool) -> Option<&str> {
            match prefix
                .strip_prefix('/')
                .and_then(|rest| rest.split_once('/'))
            {
                Some((seg, _)) => Some(seg),
                None if whole => Some(first_segment(prefix)),
                None => None,
            }
        }
        match self {
            Compiled::Prefix(p) => match p.find('*') {
                None => Some(first_segment(p)),
                Some(i) => prefix_segment(&p[..i], false),
            },
            Compiled::Path(pieces) => match &**pieces {
                [Piece::Literal(l)] => prefix_segment(l, true),
                [Piece::Literal(l), ..] => prefix_segment(l, false),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use casbin::function_map as reference;
    use proptest::prelude::*;
    use std::cell::Cell;

    thread_local! {
        static QUIET: Cell<bool> = const { Cell::new(false) };
    }

    /// Runs casbin-rs's own function; `None` when it panics. The panic message
    /// is kept off stderr (only on this thread, only inside this call).
    fn casbin(func: Func, key: &str, pattern: &str) -> Option<bool> {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !QUIET.with(Cell::get) {
                    default(info);
                }
            }));
        });
        QUIET.with(|q| q.set(true));
        let r = std::panic::catch_unwind(|| match func {
            Func::KeyMatch => reference::key_match(key, pattern),
            Func::KeyMatch2 => reference::key_match2(key, pattern),
            Func::KeyMatch3 => reference::key_match3(key, pattern),
            Func::KeyMatch4 => reference::key_match4(key, pattern),
            Func::KeyMatch5 => reference::key_match5(key, pattern),
            Func::Regex => reference::regex_match(key, pattern),
            Func::Glob => reference::glob_match(key, pattern),
            Func::Ip => reference::ip_match(key, pattern),
        });
        QUIET.with(|q| q.set(false));
        r.ok()
    }

    /// Ours against casbin-rs's for one input. Where casbin-rs panics we must
    /// refuse the pattern at load or fail the call; keyMatch instead answers
    /// false (casbin-rs panics only when slicing mid-character, and the
    /// bytes differ then), and keyMatch4 refuses more patterns than panic.
    fn same(func: Func, key: &str, pattern: &str) -> Result<(), TestCaseError> {
        let want = casbin(func, key, pattern);
        let got = compile(func, pattern, &mut HashMap::new())
            .map(|c| c.matches(func, key).map_err(|e| e.0));
        match (got, want) {
            (Ok(Ok(g)), Some(w)) => prop_assert_eq!(g, w, "{:?}({:?}, {:?})", func, key, pattern),
            (Ok(Ok(false)), None) if func == Func::KeyMatch => {}
            (Ok(Err(_)) | Err(_), None) => {}
            (Err(_), Some(_)) if func == Func::KeyMatch4 => {}
            (g, w) => prop_assert!(
                false,
                "{:?}({:?}, {:?}): ours {:?}, casbin-rs {:?}",
                func,
                key,
                pattern,
                g,
                w
            ),
        }
        Ok(())
    }

    const PATH_FUNCS: [Func; 7] = [
        Func::KeyMatch,
        Func::KeyMatch2,
        Func::KeyMatch3,
        Func::KeyMatch4,
        Func::KeyMatch5,
        Func::Regex,
        Func::Glob,
    ];

    #[test]
    fn functions_match_like_casbin_on_known_cases() {
        let cases = [
            (
                "/users/:id",
                ["/users/1", "/users/", "/users/1/x", "/users/\u{e4}\u{e4}"],
            ),
            (
                "/users/:id/*",
                ["/users/1/", "/users/1/a/b", "/users/1", "/users//a"],
            ),
            ("/*", ["/", "/a", "/a\nb", ""]),
            ("/a/*/b", ["/a/x/b", "/a//b", "/a/b", "/a/x/y/b"]),
            ("/:", ["/x", "/", "/x/", "//"]),
            ("/res1/:id", ["/res1/42", "/res10/42", "/res1/", "/res1"]),
            (
                "/a/{id}/b/{id}",
                ["/a/1/b/1", "/a/1/b/2", "/a//b/", "/a/1/b/1?x=1"],
            ),
            ("/a/{x}{y}", ["/a/12", "/a/1", "/a/", "/a/1/2"]),
            ("/a/{}}/b", ["/a/x/b", "/a/}/b", "/a/xy}/b", "/a//b"]),
            ("/a.b/*", ["/a.b/c", "/axb/c", "/a.b", "/a.b/"]),
            ("/ab*", ["/ab", "/abc", "/a", "/a\u{e4}"]),
            (
                "*.example.com",
                [
                    "a.example.com",
                    "a.b.example.com",
                    ".example.com",
                    "example.com",
                ],
            ),
            ("/api/**", ["/api/a", "/api/a/b", "/api", "/apix"]),
            ("(", ["(", "x", "", "(("]),
            ("/a/{id}?", ["/a/1", "/a/", "/a", "/a/1?"]),
        ];
        for (pattern, keys) in cases {
            for func in PATH_FUNCS {
                for key in keys {
                    same(func, key, pattern).unwrap();
                }
            }
        }
        for (pattern, keys) in [
            (
                "192.168.2.0/24",
                ["192.168.2.123", "192.168.3.1", "::ffff:192.168.2.1", "x"],
            ),
            ("10.0.0.1", ["10.0.0.1", "10.0.0.2", "::1", ""]),
            (
                "::ffff:10.0.0.1",
                ["10.0.0.1", "::ffff:10.0.0.1", "10.0.0.2", "::1"],
            ),
            (
                "2001:db8::/32",
                ["2001:db8::1", "2001:db9::1", "10.0.0.1", "2001:db8::"],
            ),
            ("10.0.0.0/33", ["10.0.0.1", "x", "", "::1"]),
            ("10.0.0.0/x", ["10.0.0.1", "x", "", "::1"]),
            ("nonsense", ["10.0.0.1", "x", "", "::1"]),
        ] {
            for key in keys {
                same(Func::Ip, key, pattern).unwrap();
            }
        }
    }

    proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn path_functions_equal_casbin(
        pattern in "(/([a-z]{1,2}|:[a-z]{0,2}|\\{[a-z]{0,2}\\}|\\*|[.?|(){}*\u{e4}])){0,4}",
        key in "(/[a-z0-9{}.?*\u{e4}\n]{0,3}){0,4}(\\?[a-z=/]{0,3})?",
    ) {
        for func in PATH_FUNCS {
            same(func, &key, &pattern)?;
        }
    }

    #[test]
    fn ip_match_equals_casbin(
        a in prop::array::uniform4(prop::sample::select(vec![0u8, 1, 10, 127, 192, 255])),
        b in prop::array::uniform4(prop::sample::select(vec![0u8, 1, 10, 127, 192, 255])),
        mask in prop::option::of(0u8..40),
        v6 in any::<bool>(),
    ) {
        let key = std::net::Ipv4Addr::from(a).to_string();
        let addr = std::net::Ipv4Addr::from(b);
        let addr = if v6 { addr.to_ipv6_mapped().to_string() } else { addr.to_string() };
        let pattern = match mask {
            Some(m) => format!("{addr}/{m}"),
            None => addr,
        };
        same(Func::Ip, &key, &pattern)?;
    }    }
}
