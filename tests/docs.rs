//! `docs/` is the users' copy of the contract; this keeps it honest. Every
//! reason code of the enum, every key of the typed config (as serde itself
//! lists them) and every metric the process registers must be documented,
//! and nothing the users read may point outside the repository.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

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

/// The pull-request gate of `docs/policy-changes.md` is `examples/ci/policy.yml`
/// word for word, and its commands do what the docs say when run against
/// the demo: `live` the bundled config, `candidate` a copy with a change.
#[test]
fn the_ci_recipe_runs_against_the_demo() {
    let yml = read("examples/ci/policy.yml");
    assert!(
        read("docs/policy-changes.md").contains(&format!("```yaml\n{yml}```")),
        "docs/policy-changes.md does not show examples/ci/policy.yml as it is"
    );
    let doc: serde_norway::Value = serde_norway::from_str(&yml).unwrap();
    let steps = doc["jobs"]["policy"]["steps"].as_sequence().unwrap();
    let step = |name: &str| -> (String, Option<String>) {
        let s = steps
            .iter()
            .find(|s| s["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no step `{name}`"));
        (
            s["run"].as_str().unwrap().to_string(),
            s["if"].as_str().map(String::from),
        )
    };
    // `authzd` on the PATH, as the install step leaves it.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_authzd"), bin.path().join("authzd")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let run = |work: &Path, script: &str| -> (i32, BTreeMap<String, String>) {
        let output = work.join("github_output");
        std::fs::write(&output, "").unwrap();
        let status = std::process::Command::new("bash")
            .args(["-e", "-c", script])
            .current_dir(work)
            .env("PATH", &path)
            .env("GITHUB_OUTPUT", &output)
            .status()
            .unwrap();
        let outputs = std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (status.code().unwrap(), outputs)
    };
    for (change, want_code, want_new) in [
        ("", "0", "false"),
        ("p, auditor, /AdminUser, GET\n", "1", "true"),
    ] {
        let work = tempfile::tempdir().unwrap();
        for side in ["live", "candidate"] {
            let dir = work.path().join(side);
            for sub in ["policies", "examples/demo"] {
                std::fs::create_dir_all(dir.join(sub)).unwrap();
            }
            for f in [
                "authzd.toml",
                "policies/model.conf",
                "policies/policy.csv",
                "policies/tests.toml",
                "examples/demo/jwks.json",
            ] {
                std::fs::copy(root().join(f), dir.join(f)).unwrap();
            }
        }
        let policy = work.path().join("candidate/policies/policy.csv");
        let text = std::fs::read_to_string(&policy).unwrap();
        std::fs::write(&policy, format!("{text}{change}")).unwrap();
        for name in ["Validate the candidate", "Run its policy tests"] {
            assert_eq!(run(work.path(), &step(name).0).0, 0, "{name}");
        }
        let (code, outputs) = run(work.path(), &step("Diff against the base branch").0);
        assert_eq!(code, 0, "the diff step itself");
        assert_eq!(outputs["code"], want_code);
        assert_eq!(outputs["newly_allowed"], want_new);
        assert!(work.path().join("diff.md").is_file());
        let (script, condition) = step("New access needs the access-approved label");
        assert_eq!(
            condition.as_deref(),
            Some(
                "steps.diff.outputs.newly_allowed == 'true' && !contains(github.event.pull_request.labels.*.name, 'access-approved')"
            )
        );
        if want_new == "true" {
            assert_eq!(
                run(work.path(), &script).0,
                1,
                "new access without the label fails"
            );
        }
        let junit = std::fs::read_to_string(work.path().join("policy-tests.xml")).unwrap();
        assert!(
            junit.contains("<testsuite ") && junit.contains("failures=\"0\""),
            "{junit}"
        );
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(work.path().join("validate.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(v["ok"], true);
    }
}
