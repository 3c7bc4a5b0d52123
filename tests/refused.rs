//! What authzd refuses to load (`docs/security.md`, "What authzd refuses to
//! load"): a corpus of realistic configuration mistakes, each made to a copy
//! of the bundled demo. Each must be refused by `authzd validate` (exit 2,
//! the message naming the file and the text) and by a live reload (the old
//! revision keeps deciding, `/v1/policy` shows the error), whether the edit
//! reaches authzd as a full rebuild or as an incremental policy update.
//!
//! Every case here loaded silently before the checks existed and then
//! denied everything, or allowed more than it said.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::*;
use serde_json::{Value, json};

/// The whole file, for an edit that replaces it.
const ALL: &str = "\u{0}whole file\u{0}";

/// One mistake: its name, the edits (file, text, replacement) and what the
/// refusal must say.
struct Mistake {
    name: &'static str,
    edits: &'static [(&'static str, &'static str, &'static str)],
    says: &'static str,
}

const MODEL: &str = "model.conf";
const POLICY: &str = "policy.csv";
const CONFIG: &str = "authzd.toml";

const MISTAKES: &[Mistake] = &[
    Mistake {
        name: "a misspelt function",
        edits: &[(MODEL, "keyMatch2(r.obj, p.obj)", "keyMatch9(r.obj, p.obj)")],
        says: "calls `keyMatch9`",
    },
    Mistake {
        name: "a misspelt field",
        edits: &[(
            MODEL,
            "regexMatch(r.act, p.act)",
            "regexMatch(r.act, p.action)",
        )],
        says: "`p.action`",
    },
    Mistake {
        name: "a string without quotes",
        edits: &[(MODEL, "p.sub == \"self\" &&", "p.sub == self &&")],
        says: "names `self`",
    },
    Mistake {
        name: "`=` for `==`",
        edits: &[(MODEL, "p.sub != \"self\"", "p.sub = \"self\"")],
        says: "single `=`",
    },
    Mistake {
        name: "an unbalanced parenthesis",
        edits: &[(MODEL, "regexMatch(r.act, p.act)", "regexMatch(r.act, p.act")],
        says: "never closed",
    },
    Mistake {
        name: "a policy field the matcher never reads",
        edits: &[(MODEL, " && regexMatch(r.act, p.act)", "")],
        says: "never reads policy field `p.act`",
    },
    Mistake {
        name: "role lines the matcher never asks",
        edits: &[(MODEL, "g(r.sub, p.sub)", "r.sub == p.sub")],
        says: "never calls `g(…)`",
    },
    Mistake {
        name: "a role line with a field its definition has no place for",
        edits: &[(POLICY, "g, admin, regular", "g, admin, regular, tenant1")],
        says: "in every domain",
    },
    Mistake {
        name: "route syntax in a keyMatch2 pattern",
        edits: &[(
            POLICY,
            "/wish-list-service/items/:id",
            "/wish-list-service/items/{id}",
        )],
        says: "route syntax",
    },
    Mistake {
        name: "a `*` that is a regex repetition",
        edits: &[(
            POLICY,
            "p, admin, /AdminUser, GET",
            "p, admin, /Admin*, GET",
        )],
        says: "does not follow `/`",
    },
    Mistake {
        name: "a regular expression that does not compile",
        edits: &[(POLICY, "(GET)|(PUT)", "(GET|(PUT)")],
        says: "regex",
    },
    Mistake {
        name: "an `eft` of `alow`",
        edits: &[
            (MODEL, "p = sub, obj, act\n", "p = sub, obj, act, eft\n"),
            (POLICY, ALL, "p, admin, /AdminUser, GET, alow\n"),
        ],
        says: "`eft` is `alow`",
    },
    Mistake {
        name: "a route written in policy syntax",
        edits: &[(
            CONFIG,
            "path = \"/wish-list-service/{proxy+}\"",
            "path = \"/wish-list-service/:rest*\"",
        )],
        says: "policy (keyMatch2) syntax",
    },
    Mistake {
        name: "a route with a `*`",
        edits: &[(
            CONFIG,
            "path = \"/wish-list-service/{proxy+}\"",
            "path = \"/wish-list-service/*\"",
        )],
        says: "`{proxy+}`",
    },
    Mistake {
        name: "a method that is none",
        edits: &[(CONFIG, "method = \"POST\"", "method = \"GETS\"")],
        says: "`GETS`",
    },
    Mistake {
        name: "the same route twice",
        edits: &[(
            CONFIG,
            "[[route]]\nmethod = \"GET\"\npath = \"/RegularUser\"",
            "[[route]]\nmethod = \"GET\"\npath = \"/AdminUser\"",
        )],
        says: "same route as route[0]",
    },
    Mistake {
        name: "a route that never matches (trailing slash)",
        edits: &[(CONFIG, "path = \"/AdminUser\"", "path = \"/AdminUser/\"")],
        says: "trailing `/`",
    },
    Mistake {
        name: "a scope no token can hold",
        edits: &[(
            CONFIG,
            "scopes = [\"wishlist/write\"]\n\n[[route]]\nmethod = \"ANY\"",
            "scopes = [\"wishlist write\"]\n\n[[route]]\nmethod = \"ANY\"",
        )],
        says: "can never be held",
    },
    Mistake {
        name: "scopes on a public route",
        edits: &[(
            CONFIG,
            "auth = \"none\"",
            "auth = \"none\"\nscopes = [\"openid\"]",
        )],
        says: "never be checked",
    },
    Mistake {
        name: "a claim path that is not a JSON Pointer",
        edits: &[(
            CONFIG,
            "roles_claims = [\"/cognito:groups\"]",
            "roles_claims = [\"cognito:groups\"]",
        )],
        says: "JSON Pointer",
    },
    Mistake {
        name: "an attribute the model uses that is not mapped",
        edits: &[(CONFIG, "uid = { claim = \"/sub\" }", "")],
        says: "uid",
    },
    Mistake {
        name: "an attribute the matcher never compares",
        edits: &[(
            MODEL,
            "keyGet2(r.obj, p.obj, \"id\") == r.uid",
            "keyGet2(r.obj, p.obj, \"id\") != \"\"",
        )],
        says: "never reads request field `r.uid`",
    },
];

/// The demo, copied into a temporary directory with its files side by
/// side, on free ports, logging to a file, trusting the test key.
fn demo() -> (tempfile::TempDir, SigningKey) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let rsa = key("rsa.pem");
    std::fs::write(dir.path().join("jwks.json"), jwks_of(&[&rsa]).to_string()).unwrap();
    for f in [MODEL, POLICY] {
        std::fs::copy(root.join("policies").join(f), dir.path().join(f)).unwrap();
    }
    let text = std::fs::read_to_string(root.join(CONFIG))
        .unwrap()
        .replace("policies/", "")
        .replace("examples/demo/jwks.json", "jwks.json")
        .replace("https://demo.authzd.example", "https://rsa.example")
        .replace("authzd-demo", "app")
        .replace("127.0.0.1:50051", "127.0.0.1:0")
        .replace("127.0.0.1:8181", "127.0.0.1:0")
        .replace("output = \"stdout\"", "output = \"decisions.log\"");
    // The explorer is not what this is about.
    let text = text.split("\n[admin]").next().unwrap().to_string();
    std::fs::write(dir.path().join(CONFIG), text).unwrap();
    (dir, rsa)
}

/// `mistake` made to the files in `dir`.
fn apply(dir: &Path, mistake: &Mistake) {
    for (file, from, to) in mistake.edits {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = match *from {
            ALL => to.to_string(),
            from => {
                assert!(
                    text.contains(from),
                    "{}: `{from}` is not in {file}",
                    mistake.name
                );
                text.replacen(from, to, 1)
            }
        };
        std::fs::write(path, text).unwrap();
    }
}

fn validate(config: &Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args(["validate", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_refuses_every_mistake_naming_it() {
    let (dir, _) = demo();
    assert_eq!(
        validate(&dir.path().join(CONFIG)).0,
        0,
        "the demo copy loads"
    );
    for m in MISTAKES {
        let (dir, _) = demo();
        apply(dir.path(), m);
        let (code, err) = validate(&dir.path().join(CONFIG));
        assert_eq!(code, 2, "{}: validate said ok\n{err}", m.name);
        assert!(
            err.contains(m.says),
            "{}: the refusal does not say `{}`:\n{err}",
            m.name,
            m.says
        );
        assert!(
            [MODEL, POLICY, CONFIG]
                .iter()
                .any(|f| err.contains(&format!("{f}`"))),
            "{}: the refusal names no file:\n{err}",
            m.name
        );
    }
}

async fn status(srv: &Running) -> Value {
    reqwest::get(srv.url("/v1/policy"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until `/v1/policy` satisfies `ok`.
async fn until(srv: &Running, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let s = status(srv).await;
        if ok(&s) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{what}: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_reload_refuses_every_mistake_and_keeps_deciding() {
    let (dir, rsa) = demo();
    let good: Vec<(PathBuf, String)> = [MODEL, POLICY, CONFIG]
        .iter()
        .map(|f| {
            let p = dir.path().join(f);
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    let srv = Running::start(&dir.path().join(CONFIG)).await;
    let revision = status(&srv).await["revision"].as_str().unwrap().to_string();
    let mut c = claims("https://rsa.example", "alice");
    c["cognito:groups"] = json!(["admin"]);
    let admin = token(&rsa, &c);
    for m in MISTAKES {
        apply(dir.path(), m);
        let s = until(&srv, m.name, |s| {
            s["last_error"].as_str().is_some_and(|e| e.contains(m.says))
        })
        .await;
        assert_eq!(
            s["revision"],
            revision.as_str(),
            "{}: the old revision keeps serving",
            m.name
        );
        let v = srv
            .check(json!({"method": "GET", "path": "/AdminUser", "token": admin}))
            .await;
        assert_eq!(v["reason"], "allowed", "{}: {v}", m.name);
        assert_eq!(v["policy_revision"], revision.as_str());
        // Undone, the error clears.
        for (p, text) in &good {
            std::fs::write(p, text).unwrap();
        }
        until(&srv, m.name, |s| s["last_error"].is_null()).await;
    }
    srv.stop().await;
}
