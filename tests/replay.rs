//! `authzd replay`: a log recorded under revision A replays against A with
//! no difference — for records from every interface, model and request
//! setting —; against B it reports the flips `authzd diff` predicts for
//! the logged requests; broken lines (invalid UTF-8 too), foreign issuers
//! and token failures are skipped with their line and a code; a log of
//! which nothing can be compared exits 2; `.gz` files and stdin read the same.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;

use common::*;
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";

fn replay(config: &std::path::Path, logs: &[&str], stdin: Option<&[u8]>) -> (i32, Value) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args([
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
        ])
        .args(logs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_replays_unchanged_under_its_revision_and_with_the_diffs_flips_under_another() {
    let (env, rsa) = rsa_env(DEMO_POLICY, "");
    let srv = Running::start(&env.config()).await;
    let user = |sub: &str, groups: &[&str]| {
        let mut c = claims(ISS, sub);
        c["cognito:groups"] = json!(groups);
        token(&rsa, &c)
    };
    let (admin, regular) = (user("alice", &["admin"]), user("bob", &["regular"]));
    let mut n = 0;
    for (tok, method, path) in [
        (Some(&admin), "GET", "/AdminUser"),
        (Some(&admin), "GET", "/RegularUser"),
        (Some(&regular), "GET", "/AdminUser"),
        (Some(&regular), "GET", "/RegularUser"),
        (None, "GET", "/wish-list-service"),
        (None, "GET", "/AdminUser"),
        (Some(&regular), "GET", "/a/../AdminUser"),
    ] {
        let mut body = json!({"method": method, "path": path});
        if let Some(t) = tok {
            body["token"] = json!(t);
        }
        srv.check(body).await;
        n += 1;
    }
    srv.check(json!({"method": "GET", "path": "/AdminUser", "token": "not.a.jwt"}))
        .await;
    n += 1;
    srv.stop().await;
    let log = env.dir.path().join("decisions.log");
    assert_eq!(env.log_lines().len(), n);

    // Under the revision that wrote it: nothing changes.
    let (code, r) = replay(&env.config(), &[log.to_str().unwrap()], None);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["read"], n);
    assert_eq!(
        (r["newly_allowed"].as_u64(), r["newly_denied"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        r["skipped"], 2,
        "the rejected path and the malformed token: {r:#}"
    );
    assert_eq!(r["unchanged"], n - 2);

    // A candidate: `regular` may read /AdminUser, and the public route is no longer public.
    let cand_dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(env.config())
        .unwrap()
        .replace(
            "model = \"model.conf\"",
            &format!(
                "model = \"{}\"",
                env.dir.path().join("model.conf").display()
            ),
        )
        .replace(
            "rsa-jwks.json",
            &env.dir.path().join("rsa-jwks.json").display().to_string(),
        )
        .replace("decisions.log", "off")
        .replace("auth = \"none\"\n", "");
    let cand = cand_dir.path().join("authzd.toml");
    std::fs::write(&cand, text).unwrap();
    std::fs::write(
        cand_dir.path().join("policy.csv"),
        format!("{DEMO_POLICY}p, regular, /AdminUser, GET\n"),
    )
    .unwrap();
    let (code, r) = replay(&cand, &[log.to_str().unwrap()], None);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(
        (r["newly_allowed"].as_u64(), r["newly_denied"].as_u64()),
        (Some(1), Some(1)),
        "{r:#}"
    );
    let flips = r["flips"].as_array().unwrap();
    assert_eq!(flips[0]["route"], "GET /AdminUser");
    assert_eq!(flips[0]["subject"], "bob");
    assert_eq!(
        flips[0]["example"]["after"]["matched_policy"],
        json!(["regular", "/AdminUser", "GET"])
    );
    assert_eq!(flips[1]["route"], "GET /wish-list-service");
    assert_eq!(flips[1]["example"]["after"]["reason"], "token_missing");
    // `diff` predicts the same flip for bob's request.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args([
            "diff",
            "--config",
            env.config().to_str().unwrap(),
            "--candidate",
            cand.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let predicted = d["flips"].as_array().unwrap().iter().any(|f| {
        f["method"] == "GET"
            && f["path"] == "/AdminUser"
            && f["roles"] == json!(["regular"])
            && f["after"]["allowed"] == true
    });
    assert!(predicted, "{d:#}");
    let public_predicted = d["flips"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "/wish-list-service" && f["after"]["allowed"] == false);
    assert!(public_predicted, "{d:#}");

    // Broken lines and a foreign issuer are skipped, never fatal; gzip and stdin read alike.
    let text = std::fs::read_to_string(&log).unwrap();
    let foreign = text
        .lines()
        .next()
        .unwrap()
        .replace(ISS, "https://elsewhere.example");
    let messy = format!("{text}not json\n{{\"half\": \n{foreign}\n");
    let gz = cand_dir.path().join("decisions.log.1.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(messy.as_bytes()).unwrap();
    enc.finish().unwrap();
    let (_, r) = replay(&env.config(), &[gz.to_str().unwrap()], None);
    assert_eq!(r["read"], n + 3, "{r:#}");
    assert_eq!(r["skipped"], 5, "{r:#}");
    assert_eq!(r["skipped_by_code"]["issuer_untrusted"], 1, "{r:#}");
    assert_eq!(r["skipped_by_code"]["not_a_record"], 2, "{r:#}");
    // Each skip names its line.
    let skips = r["skips"].as_array().unwrap();
    assert!(
        skips
            .iter()
            .any(|s| s["code"] == "not_a_record" && s["line"] == n + 1),
        "{r:#}"
    );
    let (_, from_stdin) = replay(&env.config(), &["-"], Some(messy.as_bytes()));
    assert_eq!(from_stdin["read"], r["read"]);
    assert_eq!(from_stdin["unchanged"], r["unchanged"]);
}

/// Replay never passes by accident: a file of garbage, another program's
/// JSON log, records only from an issuer the candidate does not trust —
/// nothing compared, exit 2. A line that is not UTF-8 is skipped with its
/// number and the rest is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_of_which_nothing_can_be_compared_exits_2() {
    let (env, rsa) = rsa_env(DEMO_POLICY, "");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let garbage = write("garbage.log", b"\x00\x01 not a log\n{]\n\n");
    let foreign = write(
        "nginx.json",
        b"{\"time\":\"2026-01-01T00:00:00Z\",\"status\":200,\"request\":\"GET /\"}\n",
    );
    for log in [&garbage, &foreign] {
        let (code, r) = replay(&env.config(), &[log.as_str()], None);
        assert_eq!(code, 2, "{r:#}");
        assert_eq!(r["unchanged"], 0);
        assert!(r["skipped"].as_u64().unwrap() > 0);
    }
    // Records of an issuer the candidate does not trust.
    let srv = Running::start(&env.config()).await;
    let mut c = claims(ISS, "alice");
    c["cognito:groups"] = json!(["admin"]);
    let t = token(&rsa, &c);
    srv.check(json!({"method": "GET", "path": "/AdminUser", "token": t}))
        .await;
    srv.stop().await;
    let text = std::fs::read_to_string(env.dir.path().join("decisions.log")).unwrap();
    let untrusted = write(
        "untrusted.log",
        text.replace(ISS, "https://elsewhere.example").as_bytes(),
    );
    let (code, r) = replay(&env.config(), &[untrusted.as_str()], None);
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(r["skipped_by_code"]["issuer_untrusted"], 1, "{r:#}");
    // A crash-truncated line (invalid UTF-8) is skipped by number; the rest counts.
    let mut mixed = b"\xff\xfe{\"broken\n".to_vec();
    mixed.extend_from_slice(text.as_bytes());
    let mixed = write("mixed.log", &mixed);
    let (code, r) = replay(&env.config(), &[mixed.as_str()], None);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["unchanged"], 1, "{r:#}");
    assert_eq!(r["skips"][0]["code"], "not_utf8", "{r:#}");
    assert_eq!(r["skips"][0]["line"], 1, "{r:#}");
    // The text report says so too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args([
            "replay",
            "--config",
            env.config().to_str().unwrap(),
            &garbage,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing was compared"));
}

/// One request as each interface would send it; `None` where the
/// interface cannot carry it.
async fn send(
    srv: &Running,
    iface: usize,
    tok: &str,
    method: &str,
    path: &str,
    domain: &str,
    override_: Option<&str>,
) {
    let http = reqwest::Client::new();
    let auth = format!("Bearer {tok}");
    let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth)];
    if let Some(o) = override_ {
        headers.push(("x-http-method-override", o));
    }
    match iface {
        0 => {
            let mut body = json!({"method": method, "path": path, "token": tok, "domain": domain});
            if let Some(o) = override_ {
                body["headers"] = json!({"x-http-method-override": o});
            }
            srv.check(body).await;
        }
        1 => {
            http.post(srv.url("/v1/check/batch"))
                .json(&json!({"token": tok, "domain": domain, "items": [{"resource": path, "action": method}]}))
                .send()
                .await
                .unwrap();
        }
        2 => {
            let mut g = srv.grpc_client().await;
            g.check(authzd::pb::CheckRequest {
                method: method.into(),
                path: path.into(),
                token: tok.into(),
                domain: domain.into(),
                headers: override_
                    .map(|o| ("x-http-method-override".to_string(), o.to_string()))
                    .into_iter()
                    .collect(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        3 => {
            envoy_check(srv, envoy_request(method, path, &headers)).await;
        }
        4 => {
            let mut r = http.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                srv.url(&format!("/ext_authz{path}")),
            );
            for (k, v) in &headers {
                r = r.header(*k, *v);
            }
            r.send().await.unwrap();
        }
        _ => {
            let mut r = http
                .get(srv.url("/v1/forward-auth"))
                .header("x-forwarded-method", method)
                .header("x-forwarded-uri", path);
            for (k, v) in &headers {
                r = r.header(*k, *v);
            }
            r.send().await.unwrap();
        }
    }
}

/// Records hold everything a decision used: replayed under the config that
/// wrote them, records from every interface, for models with roles,
/// domains (the request's and the claim's), attributes (`log = false`
/// among them) and request settings (case folding, trailing slashes,
/// authorized method overrides), decide exactly as they did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_from_every_interface_and_model_replay_with_no_flip() {
    const DOMAIN_MODEL: &str = "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\np = sub, dom, obj, act\n[role_definition]\ng = _, _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)\n";
    const OWNER_MODEL: &str = "[request_definition]\nr = sub, obj, act, uid, email\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = ((p.sub == \"self\" && keyGet2(r.obj, p.obj, \"id\") == r.uid) || (p.sub != \"self\" && g(r.sub, p.sub))) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act) && r.email != \"blocked@x\"\n";
    let cases: [(&str, Option<&str>, &str, &str); 4] = [
        (
            "roles, overrides authorized",
            None,
            "p, admin, /AdminUser, (GET)|(DELETE)\np, regular, /RegularUser, GET\np, regular, /api/*, (GET)|(POST)\ng, admin, regular\n",
            "[request]\nmethod_override = \"authorize\"\n",
        ),
        (
            "domains, by request and by claim",
            Some(DOMAIN_MODEL),
            "p, admin, d1, /AdminUser, GET\np, regular, d2, /api/*, GET\ng, alice, admin, d1\n",
            "domain_claim = \"/tenant\"\n",
        ),
        (
            "attributes, one unlogged",
            Some(OWNER_MODEL),
            "p, self, /users/:id, (GET)|(PUT)\np, admin, /users/:id, GET\n",
            "[policy.attributes]\nuid = { claim = \"/sub\" }\nemail = { claim = \"/email\", default = \"none\" }\n[request]\npath_case = \"insensitive\"\n",
        ),
        (
            "trailing slashes distinct, paths normalized",
            None,
            "p, admin, /AdminUser, GET\np, regular, /api/*, GET\n",
            "[request]\ntrailing_slash = \"distinct\"\nnoncanonical = \"normalize\"\n",
        ),
    ];
    for (name, model, policy, extra) in cases {
        let (env, rsa) = rsa_env(policy, "");
        if let Some(m) = model {
            env.write("model.conf", m);
        }
        // `[policy]` keys go in the policy table, tables after it.
        let cfg = std::fs::read_to_string(env.config()).unwrap();
        let (keys, tables) = match extra.find('[') {
            Some(0) => ("", extra),
            Some(i) => extra.split_at(i),
            None => (extra, ""),
        };
        let cfg = cfg.replace(
            "policy = \"policy.csv\"\n",
            &format!("policy = \"policy.csv\"\n{keys}"),
        );
        env.write("authzd.toml", &format!("{cfg}\n{tables}"));
        let srv = Running::start(&env.config()).await;
        let mut tokens = Vec::new();
        for (sub, groups, tenant, email) in [
            ("alice", &["admin"][..], "d1", "alice@x"),
            ("bob", &["regular"][..], "d2", "blocked@x"),
            ("Carol", &[][..], "d1", ""),
        ] {
            let mut c = claims(ISS, sub);
            c["cognito:groups"] = json!(groups);
            c["tenant"] = json!(tenant);
            if !email.is_empty() {
                c["email"] = json!(email);
            }
            tokens.push(token(&rsa, &c));
        }
        let mut sent = 0;
        for iface in 0..6 {
            for tok in &tokens {
                for (method, path, domain, override_) in [
                    ("GET", "/AdminUser", "", None),
                    ("POST", "/AdminUser", "", Some("DELETE")),
                    ("POST", "/api/items/2", "", Some("DELETE")),
                    ("GET", "/api/items/1/", "d2", None),
                    ("GET", "/api/items/1", "d1", None),
                    ("GET", "/api/./items", "", None),
                    ("PUT", "/users/carol", "", None),
                    ("PUT", "/Users/Carol", "", None),
                    ("GET", "/users/alice", "d1", None),
                    ("HEAD", "/RegularUser", "", None),
                ] {
                    send(&srv, iface, tok, method, path, domain, override_).await;
                    sent += 1;
                }
            }
        }
        srv.stop().await;
        let log = env.dir.path().join("decisions.log");
        assert_eq!(env.log_lines().len(), sent, "{name}");
        let (code, r) = replay(&env.config(), &[log.to_str().unwrap()], None);
        assert_eq!(code, 0, "{name}: {r:#}");
        assert_eq!(
            (r["newly_allowed"].as_u64(), r["newly_denied"].as_u64()),
            (Some(0), Some(0)),
            "{name}: {r:#}"
        );
        // Only what the policy never saw is skipped: refused requests.
        let compared = r["unchanged"].as_u64().unwrap();
        assert!(compared * 2 > sent as u64, "{name}: {r:#}");
        for (code, _) in r["skipped_by_code"].as_object().unwrap() {
            assert_eq!(code, "decided_before_policy", "{name}: {r:#}");
        }
    }
}
