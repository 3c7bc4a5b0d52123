//! `docs/` is the users' copy of the contract; this keeps it honest. Every
//! reason code of the enum, every key of the typed config (as serde itself
//! lists them) and every metric the process registers must be documented,
//! and nothing the users read may point outside the repository.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap()
}

fn docs() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            all.push_str(&std::fs::read_to_string(p).unwrap());
        }
    }
    all
}

#[test]
fn every_reason_code_is_documented_with_its_status() {
    let pipeline = read("docs/pipeline.md");
    for r in authzd::decision::Reason::ALL {
        let row = format!("| `{}` | {} |", r.as_str(), r.status());
        assert!(
            pipeline.contains(&row),
            "docs/pipeline.md lacks the row `{row}`"
        );
    }
}

/// The fields serde expects in one table, read from its `deny_unknown_fields` error.
fn fields_of(table: &str) -> Vec<String> {
    let text = format!("{table}\nzz_not_a_key = 1\n");
    let text = if table.is_empty() || !text.contains("[policy]") {
        format!("{text}\n[policy]\nmodel = \"m\"\npolicy = \"p\"\n")
    } else {
        text
    };
    // Keys of an array of tables must come before the next table header.
    let err = authzd::config::Config::from_toml(&text, Path::new("authzd.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("zz_not_a_key"), "{table}: {err}");
    let expected = err
        .split("expected")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    let fields: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect();
    assert!(!fields.is_empty(), "{err}");
    fields
}

#[test]
fn every_config_key_is_documented() {
    let doc = read("docs/configuration.md");
    let tables = [
        ("", "top level"),
        ("[server]", "[server]"),
        ("[[issuer]]\nissuer = \"https://i\"", "[[issuer]]"),
        ("[[route]]\npath = \"/\"", "[[route]]"),
        ("[policy]\nmodel = \"m\"\npolicy = \"p\"", "[policy]"),
        ("[roles]", "[roles]"),
        ("[roles.lookup]\nurl = \"http://d/{sub}\"", "[roles.lookup]"),
        ("[decision_log]", "[decision_log]"),
        ("[request]", "[request]"),
        ("[tracing]", "[tracing]"),
        ("[shadow]\nmodel = \"m\"\npolicy = \"p\"", "[shadow]"),
        ("[admin]\naddr = \"127.0.0.1:1\"", "[admin]"),
        (
            "[policy]\nmodel = \"m\"\npolicy = \"p\"\n[policy.attributes]\nt = { claim = \"/t\", zz_not_a_key = 1 }",
            "[policy.attributes] entry",
        ),
    ];
    let mut count = 0;
    for (table, name) in tables {
        for field in fields_of(table) {
            count += 1;
            let as_key = [
                format!("\n{field} ="),
                format!("\n# {field} ="),
                format!("[{field}]"),
                format!("[{field}."),
                format!("[[{field}]]"),
                format!("[roles.{field}]"),
            ];
            assert!(
                as_key.iter().any(|k| doc.contains(k.as_str())),
                "docs/configuration.md does not show `{field}` of {name}"
            );
        }
    }
    assert!(count > 40, "only {count} keys found: the enumeration broke");
}

#[test]
fn every_metric_is_documented() {
    // A family renders once it has a sample: touch each (this test is its own process).
    authzd::metrics::decision("http", "allowed", 0.0);
    authzd::metrics::jwks_fetched("https://i", true);
    authzd::metrics::policy_reloaded("ok", "rev");
    authzd::metrics::role_lookup("ok");
    authzd::metrics::decision_log_dropped();
    authzd::metrics::store_configured();
    authzd::metrics::store_synced("ok", std::time::SystemTime::now());
    authzd::metrics::spans("exported", 1);
    authzd::metrics::shadow("same");
    let text = authzd::metrics::render();
    let doc = read("docs/metrics.md");
    let mut n = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        let exposed = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        assert!(
            doc.contains(&format!("`{exposed}`")),
            "docs/metrics.md lacks `{exposed}`"
        );
        n += 1;
    }
    assert!(n >= 7, "{text}");
}

#[test]
fn users_are_never_sent_outside_the_repository() {
    let mut files: Vec<PathBuf> = vec![root().join("README.md")];
    for dir in [
        "docs", "src", "examples", "proto", "policies", "tests", "benches",
    ] {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
    }
    // Built from pieces so this file does not match itself.
    let needles = [
        ["SPEC", ".md"].concat(),
        ["SPEC", " §"].concat(),
        ["../", "shared"].concat(),
    ];
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for n in &needles {
            assert!(!text.contains(n.as_str()), "{} mentions `{n}`", f.display());
        }
    }
    // And every relative link in the docs resolves.
    let all = docs() + read("README.md").as_str();
    for link in all.split("](").skip(1) {
        let target = link.split([')', '#']).next().unwrap();
        if target.is_empty() || target.starts_with("http") {
            continue;
        }
        let base = if root().join("docs").join(target).exists() {
            root().join("docs").join(target)
        } else {
            root().join(target)
        };
        assert!(base.exists(), "broken link `{target}`");
    }
}
