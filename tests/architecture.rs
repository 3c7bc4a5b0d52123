//! The layering `src/lib.rs` describes, checked against the code's own
//! imports, so the map cannot drift from the territory:
//! - no file-level import circle anywhere in `src/` (a `use crate::…`,
//!   `super::…` or inline `crate::…` path that names another file's module is
//!   an edge; test modules are left out);
//! - `config` imports only leaves (modules that import nothing from the crate);
//! - no transport imports another: they share only `transport::answer` and
//!   `transport::ask`; the explorer (`admin`) and the transports never import
//!   each other; and nothing below the server imports the server;
//! - `lib.rs`'s `# Layout` names every module it declares.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use regex::Regex;

type Module = Vec<String>;

/// Every source file by module path (`crate::policy::indexed::eval` → `["policy", "indexed", "eval"]`).
fn files() -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    walk(&src, &mut all);
    all.into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "main.rs"))
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().with_extension("");
            let module: Module = if rel == Path::new("lib") {
                Vec::new()
            } else {
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            };
            (module, p)
        })
        .collect()
}

/// The source without its test module and comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match Regex::new(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")
        .unwrap()
        .find(&text)
    {
        Some(m) => text[..m.start()].to_string(),
        None => text,
    };
    Regex::new(r"(?m)//.*$")
        .unwrap()
        .replace_all(&text, "")
        .into_owned()
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).to_string()];
    };
    let (prefix, body) = (&tree[..open], &tree[open + 1..tree.rfind('}').unwrap()]);
    let (mut items, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for ch in body.chars() {
        match ch {
            ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
            '{' => {
                depth += 1;
                cur.push(ch);
            }
            '}' => {
                depth -= 1;
                cur.push(ch);
            }
            _ => cur.push(ch),
        }
    }
    items.push(cur);
    items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .flat_map(expand)
        .map(|e| {
            if e == "self" {
                prefix.trim_end_matches(':').to_string()
            } else {
                format!("{prefix}{e}")
            }
        })
        .collect()
}

/// The module paths a file's code names: `use` trees and inline `crate::`/`super::` paths.
fn paths(code: &str) -> Vec<String> {
    let uses = Regex::new(r"(?m)^\s*(?:pub(?:\([\w ]+\))?\s+)?use\s+([^;]+);").unwrap();
    let alias = Regex::new(r"\s+as\s+\w+").unwrap();
    let inline = Regex::new(r"(?:^|[^\w:])((?:crate|super|self)(?:::\w+)+)").unwrap();
    let mut out: Vec<String> = uses
        .captures_iter(code)
        .flat_map(|c| {
            let no_alias = alias.replace_all(&c[1], "");
            expand(&no_alias.split_whitespace().collect::<String>())
        })
        .collect();
    out.extend(inline.captures_iter(code).map(|c| c[1].to_string()));
    out
}

/// The file a path lands in: its longest prefix that is a module with a file.
fn resolve(files: &BTreeMap<Module, PathBuf>, from: &Module, path: &str) -> Option<Module> {
    let mut segs = path.split("::").peekable();
    let mut base: Module = match segs.peek() {
        Some(&"crate") => {
            segs.next();
            Vec::new()
        }
        Some(&"super") | Some(&"self") => from.clone(),
        _ => return None,
    };
    while let Some(&s) = segs.peek() {
        match s {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => break,
        }
        segs.next();
    }
    let mut best = files.contains_key(&base).then(|| base.clone());
    for s in segs {
        base.push(s.to_string());
        if files.contains_key(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let files = files();
    files
        .iter()
        .map(|(m, p)| {
            let targets = paths(&code(p))
                .iter()
                .filter_map(|path| resolve(&files, m, path))
                .filter(|t| t != m && !t.is_empty())
                .collect();
            (m.clone(), targets)
        })
        .collect()
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("/")
    }
}

/// Strongly connected components of more than one file (Tarjan).
fn circles(g: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    struct T<'g> {
        g: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'g> T<'g> {
        fn visit(&mut self, v: &'g Module) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            for w in self.g.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[w].min(self.low[v]);
                    self.low.insert(v, l);
                } else if self.stack.contains(&w) {
                    let l = self.index[w].min(self.low[v]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    comp.push(name(w));
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn no_file_level_import_circle() {
    let g = graph();
    assert!(g.len() > 40, "the walk found only {} files", g.len());
    assert_eq!(
        circles(&g),
        Vec::<Vec<String>>::new(),
        "import circles in src/"
    );
}

#[test]
fn the_checker_sees_circles_and_reads_use_trees() {
    // The checker itself: a graph with a circle is reported.
    let m = |s: &str| s.split('/').map(String::from).collect::<Module>();
    let g: BTreeMap<Module, BTreeSet<Module>> = [
        (m("a"), [m("b")].into()),
        (m("b"), [m("c")].into()),
        (m("c"), [m("a")].into()),
        (m("d"), [m("a")].into()),
    ]
    .into();
    assert_eq!(circles(&g), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        expand("a::{b, c::{d, e as f}, self}"),
        ["a::b", "a::c::d", "a::c::e", "a"]
    );
    assert_eq!(
        paths("use crate::{x::Y, z as w};\nfn f() { super::q::r(); }"),
        ["crate::x::Y", "crate::z", "super::q::r"]
    );
}

#[test]
fn config_imports_only_leaves() {
    let g = graph();
    let in_config = |m: &Module| m.first().map(String::as_str) == Some("config");
    // `config` and its folder (one file per table) may import each other and leaves.
    for (from, targets) in g.iter().filter(|(m, _)| in_config(m)) {
        for t in targets.iter().filter(|t| !in_config(t)) {
            assert!(
                g[t].is_empty(),
                "`{}` imports `{}`, which imports {:?}: config must stay the ground floor",
                name(from),
                name(t),
                g[t].iter().map(name).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn transports_never_import_each_other_nor_the_explorer_and_nothing_imports_the_server() {
    let g = graph();
    let shared = ["answer", "ask"];
    let transport_of = |m: &Module| -> Option<String> {
        (m.first().map(String::as_str) == Some("transport") && m.len() > 1).then(|| m[1].clone())
    };
    for (from, targets) in &g {
        for t in targets {
            if let (Some(a), Some(b)) = (transport_of(from), transport_of(t))
                && a != b
                && !shared.contains(&b.as_str())
            {
                panic!("transport `{}` imports transport `{}`", name(from), name(t));
            }
            let top = |m: &Module| {
                m.first()
                    .map(String::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            // The explorer is beside the transports: neither imports the other.
            assert!(
                ![top(from), top(t)]
                    .iter()
                    .all(|m| m == "admin" || m == "transport")
                    || top(from) == top(t),
                "`{}` imports `{}`: the explorer and the transports stay apart",
                name(from),
                name(t)
            );
            if t.first().map(String::as_str) == Some("server") {
                assert_eq!(
                    from.first().map(String::as_str),
                    Some("server"),
                    "`{}` imports the server, which sits above everything",
                    name(from)
                );
            }
        }
        if transport_of(from).is_some_and(|t| shared.contains(&t.as_str())) {
            for t in targets {
                assert!(
                    transport_of(t).is_none_or(|x| shared.contains(&x.as_str())),
                    "shared `{}` imports a transport `{}`",
                    name(from),
                    name(t)
                );
            }
        }
    }
}

#[test]
fn the_layout_names_every_module() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let layout = lib
        .split("# Layout")
        .nth(1)
        .expect("lib.rs has a `# Layout` section");
    for m in Regex::new(r"(?m)^pub mod (\w+);")
        .unwrap()
        .captures_iter(&lib)
    {
        assert!(
            layout.contains(&format!("[`{}`]", &m[1])),
            "lib.rs `# Layout` does not name `{}`",
            &m[1]
        );
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for m in Regex::new(r"(?m)^pub mod (\w+);")
        .unwrap()
        .captures_iter(&lib)
    {
        assert!(
            readme.contains(&format!("{}.rs", &m[1])),
            "README's layout does not name `{}.rs`",
            &m[1]
        );
    }
}
