//! The `authzd` binary as a user runs it (`docs/interfaces.md`), on the bundled demo.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_authzd");
const DEMO_ISS: &str = "https://demo.authzd.example";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn demo_token(extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "--key",
        "examples/demo/demo-private-key.pem",
        "--iss",
        DEMO_ISS,
        "--aud",
        "authzd-demo",
        "--sub",
        "alice",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn check(token: &str, method: &str, path: &str) -> (i32, Value) {
    let out = run(&[
        "check",
        "--config",
        "authzd.toml",
        "--token",
        token,
        "--method",
        method,
        "--path",
        path,
    ]);
    let code = out.status.code().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, v)
}

#[test]
fn demo_walkthrough_allows_and_denies_with_exit_codes() {
    let admin = demo_token(&["--groups", "admin"]);
    let (code, v) = check(&admin, "GET", "/AdminUser");
    assert_eq!((code, v["reason"].as_str()), (0, Some("allowed")), "{v}");
    assert_eq!(v["source"], "cli");
    assert_eq!(
        v["matched_policy"],
        serde_json::json!(["admin", "/AdminUser", "GET"])
    );
    assert!(
        !v.to_string().contains(&admin),
        "the token is never printed back"
    );

    let regular = demo_token(&["--groups", "regular"]);
    let (code, v) = check(&regular, "GET", "/AdminUser");
    assert_eq!((code, v["reason"].as_str()), (1, Some("policy_denied")));
    let (code, _) = check(&regular, "GET", "/RegularUser");
    assert_eq!(code, 0);

    // Wish list: public GET; POST needs the scope and the writer role.
    let (code, v) = check("", "GET", "/wish-list-service");
    assert_eq!((code, v["reason"].as_str()), (0, Some("public_route")));
    let writer = demo_token(&["--groups", "writer"]);
    assert_eq!(
        check(&writer, "POST", "/wish-list-service").1["reason"],
        "scope_missing"
    );
    let writer = demo_token(&["--groups", "writer", "--scope", "openid wishlist/write"]);
    assert_eq!(check(&writer, "POST", "/wish-list-service").0, 0);

    let expired = demo_token(&["--groups", "admin", "--ttl", "1s", "--claim", "exp=1000"]);
    assert_eq!(
        check(&expired, "GET", "/AdminUser").1["reason"],
        "token_expired"
    );
}

#[test]
fn check_with_a_bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[policy]\nmodel = \"m.conf\"\npolicy = \"p.csv\"\n[[route]]\npath = \"/a/{proxy+}/b\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("m.conf"), "").unwrap();
    std::fs::write(dir.path().join("p.csv"), "").unwrap();
    let cfg = cfg.to_str().unwrap();
    let out = run(&[
        "check",
        "--config",
        cfg,
        "--resource",
        "/a",
        "--action",
        "GET",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("route[0]") && err.contains("greedy"),
        "{err}"
    );
    let out = run(&["validate", "--config", cfg]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_reports_counts_and_the_role_name_warning() {
    // The demo sets `subject_prefix`, so it starts without a warning.
    let out = run(&["validate", "--config", "authzd.toml"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("policy rules") && text.contains("6 routes"),
        "{text}"
    );
    assert!(!text.contains("warning"), "{text}");
    // Without it, a role with its own lines could be any user's subject.
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(format!("{root}/authzd.toml")).unwrap();
    assert!(demo.contains("subject_prefix = \"user:\"\n"));
    let bare = demo
        .replace("subject_prefix = \"user:\"\n", "")
        .replace("\"policies/", &format!("\"{root}/policies/"))
        .replace("\"examples/", &format!("\"{root}/examples/"));
    let cfg = dir.path().join("authzd.toml");
    std::fs::write(&cfg, bare).unwrap();
    let out = run(&["validate", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("warning: policy subject `regular` is also a role name"),
        "{text}"
    );
}

#[test]
fn token_mints_es256_and_eddsa_and_jwks_prints_the_public_key() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (pem, alg) in [
        ("ec256.pem", "ES256"),
        ("ec384.pem", "ES384"),
        ("ed25519.pem", "EdDSA"),
        ("rsa.pem", "RS256"),
    ] {
        let key = format!("{root}/tests/fixtures/{pem}");
        let out = run(&[
            "token",
            "--key",
            &key,
            "--iss",
            "https://i",
            "--sub",
            "s",
            "--kid",
            "k1",
        ]);
        assert!(
            out.status.success(),
            "{pem}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = String::from_utf8(out.stdout).unwrap();
        let header = jsonwebtoken::decode_header(t.trim()).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        assert_eq!(header.kid.as_deref(), Some("k1"));
        let out = run(&["jwks", "--key", &key]);
        let jwks: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            jwks["keys"][0].get("d").is_none(),
            "private material must never be printed"
        );
        assert_eq!(jwks["keys"][0]["alg"], alg);
    }
    let out = run(&["token", "--key", "Cargo.toml", "--iss", "i", "--sub", "s"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn demo_jwks_kid_is_the_keys_thumbprint() {
    let t = demo_token(&[]);
    let header = jsonwebtoken::decode_header(&t).unwrap();
    let jwks: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/examples/demo/jwks.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(jwks["keys"][0]["kid"].as_str(), header.kid.as_deref());
}

#[test]
fn policy_tests_pass_fail_and_invalid_files() {
    let out = run(&["test", "policies/tests.toml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("PASS  regular user cannot reach the admin route")
            && text.contains("15 passed, 0 failed"),
        "{text}"
    );

    // A bare model and policy (no config, so no attributes): the demo's
    // roles without its ownership rule.
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        dir.path().join("model.conf"),
        "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)\n",
    )
    .unwrap();
    let cases = format!(
        "model = \"model.conf\"\npolicy = \"{root}/policies/policy.csv\"\n\
         [[case]]\nname = \"ok\"\nsubject = \"a\"\nroles = [\"admin\"]\nresource = \"/AdminUser\"\naction = \"GET\"\nexpect = \"allow\"\n\
         [[case]]\nname = \"wrong on purpose\"\nsubject = \"a\"\nroles = [\"regular\"]\nresource = \"/RegularUser\"\naction = \"GET\"\nexpect = \"deny\"\n\
         [[case]]\nname = \"wrong reason\"\nsubject = \"a\"\nresource = \"/x\"\naction = \"GET\"\nexpect = \"deny\"\nreason = \"scope_missing\"\n"
    );
    let file = dir.path().join("cases.toml");
    std::fs::write(&file, cases).unwrap();
    let out = run(&["test", file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("PASS  ok"), "{text}");
    assert!(
        text.contains("FAIL  wrong on purpose")
            && text.contains("expected deny, got allow (allowed)"),
        "{text}"
    );
    assert!(
        text.contains("matched `regular, /RegularUser, GET`"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  wrong reason")
            && text.contains("expected deny (scope_missing), got deny (policy_denied)"),
        "{text}"
    );
    assert!(text.contains("1 passed, 2 failed"), "{text}");

    std::fs::write(
        &file,
        "[[case]]\nname = \"x\"\nsubject = \"a\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = run(&["test", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give either `config`"));
}

async fn validate_online(env: &Env) -> (i32, String) {
    let out = tokio::process::Command::new(BIN)
        .args(["validate", "--online", "--config"])
        .arg(env.config())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn issuer_toml(iss: &str) -> String {
    format!("[[issuer]]\nissuer = \"{iss}\"\nalgorithms = [\"ES256\"]\njwks_timeout_ms = 1000\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_online_names_each_fault() {
    let ec = key("ec256.pem");
    let rsa = key("rsa.pem");
    let idp = Idp::start(&[&ec]).await;

    // Healthy.
    let env = Env::new(&issuer_toml(&idp.issuer()), DEMO_POLICY, "");
    let (code, text) = validate_online(&env).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("discovery ok") && text.contains("usable"),
        "{text}"
    );

    // The configured issuer has a trailing slash the IdP does not.
    let env = Env::new(&issuer_toml(&format!("{}/", idp.issuer())), DEMO_POLICY, "");
    let (code, text) = validate_online(&env).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("only by a trailing slash"), "{text}");

    // Unreachable.
    let env = Env::new(&issuer_toml("http://127.0.0.1:9"), DEMO_POLICY, "");
    let (code, text) = validate_online(&env).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("problem") && text.contains("cannot fetch"),
        "{text}"
    );

    // Discovery not JSON.
    *idp.discovery_body.lock() = Some("<html>login</html>".into());
    let env = Env::new(&issuer_toml(&idp.issuer()), DEMO_POLICY, "");
    let (code, text) = validate_online(&env).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not an OpenID discovery document"), "{text}");
    *idp.discovery_body.lock() = None;

    // No keys, then only keys that fit no allowed algorithm, then a key without kid.
    *idp.jwks.lock() = json!({"keys": []});
    let (code, text) = validate_online(&env).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no usable keys"), "{text}");
    idp.set_keys(&[&rsa]);
    let (code, text) = validate_online(&env).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("fits none of the allowed algorithms"),
        "{text}"
    );
    let mut jwk = serde_json::to_value(&ec.jwk).unwrap();
    jwk.as_object_mut().unwrap().remove("kid");
    *idp.jwks.lock() = json!({"keys": [jwk]});
    let (code, text) = validate_online(&env).await;
    assert_eq!(code, 0, "a missing kid is a warning: {text}");
    assert!(
        text.contains("warning") && text.contains("no `kid`"),
        "{text}"
    );
    // JWKS not JSON.
    *idp.jwks.lock() = json!("garbage");
    let (code, text) = validate_online(&env).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("is not a JWKS"), "{text}");
}

/// `[policy] role_matching` / `domain_matching` from a real config file, through
/// `authzd test`: patterns in the lines hold, claim roles stay names, and a
/// setting that does not fit the model names its key.
#[test]
fn role_matching_settings_apply_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let demo = std::fs::read_to_string(format!("{root}/authzd.toml")).unwrap();
    let model = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\ng2 = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && g2(r.obj, p.obj) && r.act == p.act\n";
    std::fs::write(dir.path().join("model.conf"), model).unwrap();
    std::fs::write(
        dir.path().join("policy.csv"),
        "p, reader, books, GET\ng2, /book/:id, books\n",
    )
    .unwrap();
    // Another model, without the demo's `uid` attribute.
    let demo = demo.replace("[policy.attributes]\nuid = { claim = \"/sub\" }\n", "");
    let demo = demo.replace(
        "jwks_file = \"examples/demo/jwks.json\"",
        &format!("jwks_file = \"{root}/examples/demo/jwks.json\""),
    );
    let config = |matching: &str| {
        demo.replace(
            "model = \"policies/model.conf\"\npolicy = \"policies/policy.csv\"\n",
            &format!(
                "model = \"{0}/model.conf\"\npolicy = \"{0}/policy.csv\"\n{matching}\n",
                dir.path().display()
            ),
        )
    };
    let cases = "config = \"authzd.toml\"\n\
        [[case]]\nname = \"a book matches the group pattern\"\nsubject = \"alice\"\nroles = [\"reader\"]\nresource = \"/book/7\"\naction = \"GET\"\nexpect = \"allow\"\n\
        [[case]]\nname = \"a pen does not\"\nsubject = \"alice\"\nroles = [\"reader\"]\nresource = \"/pen/7\"\naction = \"GET\"\nexpect = \"deny\"\n";
    std::fs::write(dir.path().join("cases.toml"), cases).unwrap();
    let cases_file = dir.path().join("cases.toml");
    let test = |matching: &str| {
        std::fs::write(dir.path().join("authzd.toml"), config(matching)).unwrap();
        run(&["test", cases_file.to_str().unwrap()])
    };

    let out = test("role_matching = { g2 = \"keyMatch2\" }");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("2 passed, 0 failed"), "{text}");

    // Without the setting `/book/:id` is a literal name: the first case fails.
    let out = test("");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  a book matches the group pattern"),
        "{text}"
    );

    for (bad, says) in [
        ("role_matching = { g3 = \"keyMatch2\" }", "`g3`"),
        ("role_matching = { g2 = \"keyMatch9\" }", "keyMatch9"),
        ("domain_matching = { g = \"keyMatch\" }", "domain_matching"),
    ] {
        let out = test(bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(says), "{bad}: {err}");
    }
}

/// `--config` and `--log-format` go after any command, nested ones included:
/// every spelling reaches the command (here: a config without a store, which
/// `store` refuses by name), none is a usage error (clap's exit 2 with
/// `unexpected argument`).
#[test]
fn config_and_log_format_are_accepted_after_any_command() {
    for args in [
        &["store", "init", "--config", "authzd.toml"][..],
        &[
            "store",
            "export",
            "--config",
            "authzd.toml",
            "--log-format",
            "json",
        ],
        &[
            "store",
            "import",
            "policies/policy.csv",
            "--config",
            "authzd.toml",
        ],
        &["store", "--config", "authzd.toml", "init"],
        &[
            "store",
            "init",
            "--log-format",
            "json",
            "--config",
            "authzd.toml",
        ],
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        assert!(
            err.contains("store"),
            "{args:?} reached the store command: {err}"
        );
        assert!(
            !out.status.success(),
            "{args:?}: the demo config has no store"
        );
    }
    for args in [
        &[
            "validate",
            "--config",
            "authzd.toml",
            "--log-format",
            "json",
        ][..],
        &[
            "validate",
            "--log-format",
            "json",
            "--config",
            "authzd.toml",
        ],
    ] {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `validate` speaks about Lambda only to those who run it: with `--lambda`,
/// or for a config with a `[lambda]` table (the AWS example's).
#[test]
fn validate_mentions_lambda_only_when_asked_or_configured() {
    let lambda_lines = |args: &[&str]| -> Vec<String> {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("lambda:"))
            .map(String::from)
            .collect()
    };
    assert!(lambda_lines(&["validate", "--config", "authzd.toml"]).is_empty());
    let asked = lambda_lines(&["validate", "--config", "authzd.toml", "--lambda"]);
    assert!(
        asked.iter().any(|l| l.contains("policy_scope")),
        "{asked:?}"
    );
    let env = Env::new("", DEMO_POLICY, "");
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write(
        "authzd.toml",
        &format!("{text}\n[lambda]\npolicy_scope = \"routes\"\n"),
    );
    let configured = lambda_lines(&["validate", "--config", env.config().to_str().unwrap()]);
    assert!(
        configured.iter().any(|l| l.contains("policy_scope")),
        "{configured:?}"
    );
}

/// Output into a closed pipe (`authzd validate | head -1`) ends quietly with
/// the command's own exit code: never a panic (exit 101), whatever the
/// command and however much it prints.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let key = "examples/demo/demo-private-key.pem";
    for (args, want) in [
        (&["validate", "--config", "authzd.toml"][..], 0),
        (
            &["validate", "--config", "authzd.toml", "--format", "json"],
            0,
        ),
        (&["test", "policies/tests.toml"], 0),
        (&["test", "policies/tests.toml", "--format", "junit"], 0),
        (&["jwks", "--key", key], 0),
        (
            &["token", "--key", key, "--iss", DEMO_ISS, "--sub", "alice"],
            0,
        ),
        (
            &[
                "check",
                "--subject",
                "alice",
                "--roles",
                "admin",
                "--method",
                "GET",
                "--path",
                "/AdminUser",
            ],
            0,
        ),
        (
            &[
                "diff",
                "--config",
                "authzd.toml",
                "--candidate",
                "authzd.toml",
            ],
            0,
        ),
    ] {
        // Several runs: whether the reader is gone before the first write is a race.
        for _ in 0..3 {
            let mut child = Command::new(BIN)
                .args(args)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            drop(child.stdout.take()); // the reader is gone, as `head -0`
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(want), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
        }
    }
}

/// `check --subject` decides for a stated principal exactly as a policy test
/// case does: claim roles, scopes, attributes from `--claim` (`sub` is the
/// subject unless a claim says otherwise), the same exit codes.
#[test]
fn check_decides_for_a_principal_without_a_token() {
    let principal = |args: &[&str]| -> (i32, Value) {
        let mut all = vec!["check", "--config", "authzd.toml"];
        all.extend_from_slice(args);
        let out = run(&all);
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap(), v)
    };
    let (code, v) = principal(&[
        "--subject",
        "alice",
        "--roles",
        "admin",
        "--method",
        "GET",
        "--path",
        "/AdminUser",
    ]);
    assert_eq!((code, v["reason"].as_str()), (0, Some("allowed")), "{v}");
    assert_eq!(v["subject"], "user:alice");
    assert_eq!(v["matched_policy"], json!(["admin", "/AdminUser", "GET"]));
    let (code, v) = principal(&[
        "--subject",
        "bob",
        "--roles",
        "regular",
        "--method",
        "GET",
        "--path",
        "/AdminUser",
    ]);
    assert_eq!(
        (code, v["reason"].as_str()),
        (1, Some("policy_denied")),
        "{v}"
    );
    // Scopes, as a route needs them.
    let post = ["--method", "POST", "--path", "/wish-list-service"];
    let (_, v) = principal(&[&["--subject", "w", "--roles", "writer"][..], &post].concat());
    assert_eq!(v["reason"], "scope_missing", "{v}");
    let (code, _) = principal(
        &[
            &[
                "--subject",
                "w",
                "--roles",
                "writer",
                "--scopes",
                "openid wishlist/write",
            ][..],
            &post,
        ]
        .concat(),
    );
    assert_eq!(code, 0);
    // Ownership: the `uid` attribute is the subject's `sub`, or a claim.
    let (code, _) = principal(&[
        "--subject",
        "alice",
        "--method",
        "PUT",
        "--path",
        "/users/alice",
    ]);
    assert_eq!(code, 0);
    let (code, _) = principal(&[
        "--subject",
        "alice",
        "--method",
        "PUT",
        "--path",
        "/users/bob",
    ]);
    assert_eq!(code, 1);
    let (code, _) = principal(&[
        "--subject",
        "alice",
        "--claim",
        "sub=bob",
        "--method",
        "PUT",
        "--path",
        "/users/bob",
    ]);
    assert_eq!(code, 0);
    // The same answers as the policy test file gives for the same cases.
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let cases = format!(
        "config = \"{root}/authzd.toml\"\n[[case]]\nname = \"a\"\nsubject = \"alice\"\nmethod = \"PUT\"\npath = \"/users/bob\"\nclaims = {{ sub = \"bob\" }}\nexpect = \"allow\"\n"
    );
    std::fs::write(dir.path().join("t.toml"), cases).unwrap();
    assert!(
        run(&["test", dir.path().join("t.toml").to_str().unwrap()])
            .status
            .success()
    );
    // A token and a subject at once is a usage error.
    let out = run(&[
        "check",
        "--token",
        "x",
        "--subject",
        "a",
        "--resource",
        "r",
        "--action",
        "a",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// `validate` and `test` speak JSON (and `test` JUnit XML) for CI: stable
/// snake_case keys, warnings and errors as codes with a message.
#[test]
fn validate_and_test_speak_json_and_junit() {
    let out = run(&["validate", "--config", "authzd.toml", "--format", "json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["evaluator"], "indexed");
    assert_eq!(v["routes"], 6);
    assert!(v["revision"].as_str().unwrap().len() >= 12);
    assert_eq!(v["errors"], json!([]));
    assert_eq!(v["warnings"], json!([]));
    // A refused config: every problem, each a code and a message.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("model.conf"),
        "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub && keyMatch9(r.obj, p.obj)\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("policy.csv"), "p, a, /x, GET, alow\n").unwrap();
    std::fs::write(
        dir.path().join("authzd.toml"),
        "[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n",
    )
    .unwrap();
    let cfg = dir.path().join("authzd.toml");
    let out = run(&[
        "validate",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let errors = v["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .all(|e| e["code"] == "model_invalid" && e["message"].is_string()),
        "{v:#}"
    );
    assert!(
        errors[0]["message"].as_str().unwrap().contains("keyMatch9"),
        "{v:#}"
    );
    // Keys are identifiers, never sentences.
    fn keys_are_identifiers(v: &Value) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                assert!(
                    k.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "key `{k}`"
                );
                keys_are_identifiers(v);
            }),
            Value::Array(a) => a.iter().for_each(keys_are_identifiers),
            _ => {}
        }
    }
    keys_are_identifiers(&v);
    // `test`: JSON and JUnit, a failing case included.
    let cases = dir.path().join("cases.toml");
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        &cases,
        format!(
            "config = \"{root}/authzd.toml\"\n\
             [[case]]\nname = \"admin <reads> & \\\"quotes\\\"\"\nsubject = \"a\"\nroles = [\"admin\"]\nmethod = \"GET\"\npath = \"/AdminUser\"\nexpect = \"allow\"\n\
             [[case]]\nname = \"wrong on purpose\"\nsubject = \"a\"\nmethod = \"GET\"\npath = \"/AdminUser\"\nexpect = \"allow\"\n"
        ),
    )
    .unwrap();
    let out = run(&["test", cases.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    keys_are_identifiers(&v);
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["cases"][1]["reason"], "policy_denied");
    assert_eq!(v["cases"][1]["passed"], false);
    let out = run(&["test", cases.to_str().unwrap(), "--format", "junit"]);
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(
        xml.contains("name=\"admin &lt;reads&gt; &amp; &quot;quotes&quot;\""),
        "{xml}"
    );
    assert!(xml.contains("failures=\"1\""), "{xml}");
    // Every element opened is closed (a well-formed document).
    for tag in ["testsuites", "testsuite", "failure"] {
        assert_eq!(
            xml.matches(&format!("<{tag} ")).count(),
            xml.matches(&format!("</{tag}>")).count(),
            "{tag}: {xml}"
        );
    }
}
