//! The decision explorer (`[admin]`, docs/explorer.md): sign-in, refusals
//! and headers over plain HTTP, then the pages in a real headless Chromium
//! (SKIPPED, loudly, without Debian's chromium and chromium-driver).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{browser::Browser, *};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

const ISS: &str = "https://rsa.example";

/// A server with the explorer on (sign-in with role `ops`) and its tokens:
/// (env, server, admin token, regular user's token, key).
async fn explorer() -> (Env, Running, String, String, SigningKey) {
    let (env, rsa) = rsa_env(DEMO_POLICY, "");
    env.append_config("[admin]\naddr = \"127.0.0.1:0\"\nroles = [\"ops\"]\n");
    let srv = Running::start(&env.config()).await;
    let mut admin = claims(ISS, "ada");
    admin["cognito:groups"] = json!(["ops"]);
    let mut user = claims(ISS, "bob");
    user["cognito:groups"] = json!(["regular"]);
    let (admin, user) = (token(&rsa, &admin), token(&rsa, &user));
    (env, srv, admin, user, rsa)
}

fn admin_url(srv: &Running, path: &str) -> String {
    format!("http://{}{path}", srv.admin.expect("the explorer listens"))
}

/// A client that neither follows redirects nor keeps cookies.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET path` on the explorer with a session cookie.
async fn get_with(srv: &Running, path: &str, cookie: &str) -> reqwest::Response {
    client()
        .get(admin_url(srv, path))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// The record of `decision_id` once the explorer lists it (within 2 s).
async fn listed(srv: &Running, cookie: &str, decision_id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let list: Value = get_with(srv, "/api/decisions", cookie)
            .await
            .json()
            .await
            .unwrap();
        if let Some(r) = list["records"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["decision_id"] == decision_id))
        {
            return r.clone();
        }
        assert!(std::time::Instant::now() < deadline, "never listed: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /login` with `token=<t>`, form-encoded, as the sign-in page sends it.
fn login(c: &reqwest::Client, srv: &Running, t: &str) -> reqwest::RequestBuilder {
    let enc = percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC);
    c.post(admin_url(srv, "/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={enc}"))
}

fn assert_hardened(resp: &reqwest::Response, what: &str) {
    let h = resp.headers();
    let csp = h
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store", "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refusals_and_headers() {
    let (env, srv, admin, user, _) = explorer().await;
    let c = client();
    // A decision to look at, made with the user's token.
    let d = srv
        .check(json!({"method": "GET", "path": "/AdminUser", "token": user}))
        .await;
    assert_eq!(d["reason"], "policy_denied");

    // Without sign-in: a browser is sent to sign in, an API caller gets 401.
    let r = c.get(admin_url(&srv, "/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/login");
    assert_hardened(&r, "redirect");
    for path in [
        "/api/decisions",
        "/api/overview",
        "/api/policy",
        "/api/stream",
    ] {
        let r = c.get(admin_url(&srv, path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_hardened(&r, path);
    }
    // A valid token without the admin role: 403, as a bearer and at sign-in.
    let r = c
        .get(admin_url(&srv, "/api/decisions"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_hardened(&r, "403");
    let r = login(&c, &srv, &user).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    // A forged token: 401, and the sign-in page says why without the token.
    let forged = format!("{}x", &admin[..admin.len() - 1]);
    let r = login(&c, &srv, &forged).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let page = r.text().await.unwrap();
    assert!(page.contains("signature_invalid"), "{page}");
    assert!(!page.contains(&forged));

    // Sign-in: a session cookie, HttpOnly and SameSite=Strict, that works.
    let r = login(&c, &srv, &admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("authzd_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(&admin));
    let session = cookie.split(';').next().unwrap().to_string();
    let r = get_with(&srv, "/api/decisions", &session).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The explorer reads what the log writer takes, every 10 ms.
    let first = listed(&srv, &session, d["decision_id"].as_str().unwrap()).await;
    assert_eq!(first["reason"], "policy_denied");

    // Cross-site state changes are refused, whoever is signed in.
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "http://evil.example"),
    ] {
        let r = login(&c, &srv, &admin)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(r.headers().get(header::SET_COOKIE).is_none());
        let r = c
            .post(admin_url(&srv, "/api/explain"))
            .header(header::COOKIE, &session)
            .header(name, value)
            .json(&json!({"method": "GET", "path": "/AdminUser", "token": user}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    // DNS rebinding: a loopback explorer answers only loopback names.
    let r = c
        .get(admin_url(&srv, "/api/decisions"))
        .header(header::HOST, "evil.example")
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);

    // Every page, asset and answer is hardened and never holds a raw token.
    let mut bodies = String::new();
    for path in [
        "/",
        "/overview",
        "/explain",
        "/policy",
        "/login",
        "/assets/app.js",
        "/assets/app.css",
        "/api/decisions",
        "/api/overview?window=5m",
        "/api/policy",
        "/api/whoami",
        "/nowhere",
    ] {
        let r = get_with(&srv, path, &session).await;
        assert!(
            r.status() == StatusCode::OK || path == "/nowhere",
            "{path}: {}",
            r.status()
        );
        assert_hardened(&r, path);
        bodies.push_str(&r.text().await.unwrap());
    }
    let r = c
        .post(admin_url(&srv, "/api/explain"))
        .header(header::COOKIE, &session)
        .json(&json!({"method": "GET", "path": "/AdminUser", "token": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_hardened(&r, "explain");
    let explained = r.text().await.unwrap();
    bodies.push_str(&explained);
    let explained: Value = serde_json::from_str(&explained).unwrap();
    assert_eq!(explained["decision"]["reason"], "policy_denied");
    assert_eq!(
        explained["would_allow"],
        json!(["p, admin, /AdminUser, GET"])
    );
    assert_eq!(explained["claims"]["sub"], "bob");
    // Explaining is not a decision: once a real check made after it is
    // listed (the writer keeps order), the ring holds the two checks only.
    let after = srv
        .check(json!({"method": "GET", "path": "/RegularUser", "token": user}))
        .await;
    listed(&srv, &session, after["decision_id"].as_str().unwrap()).await;
    let r: Value = get_with(&srv, "/api/decisions", &session)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["records"].as_array().unwrap().len(), 2, "{r}");

    // Signing out ends the session.
    let r = c
        .post(admin_url(&srv, "/logout"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = get_with(&srv, "/api/decisions", &session).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    srv.stop().await;
    let log = std::fs::read_to_string(env.dir.path().join("decisions.log")).unwrap();
    for t in [&admin, &user, &forged] {
        assert!(!bodies.contains(t.as_str()), "a response holds a raw token");
        assert!(
            !log.contains(t.as_str()),
            "the decision log holds a raw token"
        );
        // Not even the signature part.
        let sig = t.rsplit('.').next().unwrap();
        assert!(!bodies.contains(sig) && !log.contains(sig));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_explorer_is_loopback_only() {
    let (env, _) = rsa_env(DEMO_POLICY, "");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    env.write(
        "authzd.toml",
        &format!("{cfg}\n[admin]\naddr = \"0.0.0.0:0\"\n"),
    );
    let err = authzd::server::Server::bind(&env.config())
        .await
        .err()
        .expect("an open explorer on every interface must not start")
        .to_string();
    assert!(
        err.contains("admin.addr") && err.contains("loopback"),
        "{err}"
    );
    // On loopback, without roles, it serves without sign-in; and it sees
    // decisions with the decision log off too.
    let cfg = cfg.replace("output = \"decisions.log\"", "output = \"off\"");
    env.write(
        "authzd.toml",
        &format!("{cfg}\n[admin]\naddr = \"127.0.0.1:0\"\n"),
    );
    let srv = Running::start(&env.config()).await;
    let r = client()
        .get(admin_url(&srv, "/api/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_hardened(&r, "whoami");
    let d = srv
        .check(json!({"method": "GET", "path": "/AdminUser"}))
        .await;
    listed(&srv, "", d["decision_id"].as_str().unwrap()).await;
    assert!(!env.dir.path().join("decisions.log").exists());
    srv.stop().await;
}

/// Signs in through the page, as a person would.
async fn sign_in(b: &Browser, srv: &Running, token: &str) {
    b.goto(&admin_url(srv, "/")).await;
    assert!(b.url().await.ends_with("/login"), "not sent to sign in");
    let field = b.find("#token", Duration::from_secs(5)).await;
    b.type_into(&field, token).await;
    b.click(&b.find("#signin", Duration::from_secs(5)).await)
        .await;
    b.find("#rows", Duration::from_secs(5)).await;
}

fn shot(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/explorer")
        .join(format!("{name}.png"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_chromium() {
    let Some(b) = Browser::start("pages_in_chromium").await else {
        return;
    };
    let (env, srv, admin, user, rsa) = explorer().await;
    b.goto(&admin_url(&srv, "/login")).await;
    b.screenshot(&shot("login")).await;
    sign_in(&b, &srv, &admin).await;

    // Live: a check made now appears within 2 s, without reload.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = srv
        .check(json!({"method": "GET", "path": "/RegularUser", "token": user}))
        .await;
    let sel = format!("tr[data-id='{}']", d["decision_id"].as_str().unwrap());
    b.find(&sel, Duration::from_secs(2)).await;
    for (path, t) in [
        ("/AdminUser", &user),
        ("/AdminUser", &admin),
        ("/personal", &user),
    ] {
        srv.check(json!({"method": "GET", "path": path, "token": t}))
            .await;
    }
    let mut expired = claims(ISS, "mallory");
    expired["exp"] = json!(now() - 3600);
    srv.check(json!({"method": "GET", "path": "/AdminUser", "token": token(&rsa, &expired)}))
        .await;
    b.wait_text("#count", Duration::from_secs(3), |t| {
        t.starts_with("5 shown")
    })
    .await;
    // Once the rows' arrival highlight has faded.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    b.screenshot(&shot("live")).await;

    // Filter: denied decisions of user:bob… only bob's two denials remain.
    let subject = b.find("input[name=subject]", Duration::from_secs(2)).await;
    b.type_into(&subject, "bob").await;
    let allowed = b.find("select[name=allowed]", Duration::from_secs(2)).await;
    b.exec(
        "arguments[0].value = 'false';",
        json!([allowed.reference()]),
    )
    .await;
    b.click(&b.find("#apply", Duration::from_secs(2)).await)
        .await;
    b.wait_text("#count", Duration::from_secs(3), |t| {
        t.starts_with("2 shown")
    })
    .await;
    for cell in b.all("#rows td.subject").await {
        assert_eq!(b.text(&cell).await, "bob");
    }
    // One click opens the record's detail.
    let row = b.find("#rows tr.rec", Duration::from_secs(2)).await;
    b.click(&row).await;
    let detail = b
        .wait_text("#detail-json", Duration::from_secs(2), |t| {
            t.contains("decision_id")
        })
        .await;
    assert!(detail.contains("policy_denied"), "{detail}");

    // Explain a denied request: the deciding step and the lines that would allow it.
    b.goto(&admin_url(&srv, "/explain")).await;
    let path = b.find("#path", Duration::from_secs(2)).await;
    b.clear(&path).await;
    b.type_into(&path, "/AdminUser").await;
    b.type_into(&b.find("#token", Duration::from_secs(2)).await, &user)
        .await;
    b.click(&b.find("#run", Duration::from_secs(2)).await).await;
    let verdict = b
        .wait_text("#verdict", Duration::from_secs(5), |t| !t.is_empty())
        .await;
    assert!(
        verdict.contains("Denied") && verdict.contains("policy_denied"),
        "{verdict}"
    );
    let policy_step = b
        .wait_text("li[data-step=policy]", Duration::from_secs(2), |t| {
            !t.is_empty()
        })
        .await;
    assert!(
        policy_step.contains("no policy rule allows"),
        "{policy_step}"
    );
    let would = b
        .wait_text("#would-allow", Duration::from_secs(2), |t| !t.is_empty())
        .await;
    assert!(would.contains("p, admin, /AdminUser, GET"), "{would}");
    b.exec(
        "document.querySelector('li[data-step=scopes]').scrollIntoView();",
        json!([]),
    )
    .await;
    b.screenshot(&shot("explain")).await;

    // Overview: the counts are drawn.
    b.goto(&admin_url(&srv, "/overview")).await;
    b.wait_text("#k-total", Duration::from_secs(5), |t| t == "5")
        .await;
    b.find("#series svg rect", Duration::from_secs(2)).await;
    let tokens = b
        .wait_text("#tokens", Duration::from_secs(2), |t| {
            t.contains("token_expired")
        })
        .await;
    assert!(tokens.contains('1'), "{tokens}");
    b.screenshot(&shot("overview")).await;

    // Policy: an edit of the file shows as a new revision and a reload.
    b.goto(&admin_url(&srv, "/policy")).await;
    let before = b
        .wait_text("#p-revision", Duration::from_secs(5), |t| t.len() == 12)
        .await;
    env.write(
        "policy.csv",
        &format!("{DEMO_POLICY}p, regular, /reports, GET\n"),
    );
    let after = b
        .wait_text("#p-revision", Duration::from_secs(15), |t| {
            t.len() == 12 && t != before
        })
        .await;
    let history = b
        .wait_text("#p-history", Duration::from_secs(6), |t| t.contains(&after))
        .await;
    assert!(
        history.contains("ok") && history.contains(&before),
        "{history}"
    );
    let lines = b
        .text(&b.find("#p-lines", Duration::from_secs(2)).await)
        .await;
    assert!(lines.contains("p, regular, /reports, GET"), "{lines}");
    b.screenshot(&shot("policy")).await;

    // No page holds a raw token, even after one was typed into Explain.
    let html = b
        .exec("return document.documentElement.outerHTML;", json!([]))
        .await;
    assert!(!html.as_str().unwrap().contains(&user));
    b.quit().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_are_shown_as_text() {
    let Some(b) = Browser::start("hostile_values_are_shown_as_text").await else {
        return;
    };
    let (_env, srv, admin, _, rsa) = explorer().await;
    sign_in(&b, &srv, &admin).await;
    let script = "<script>window.__owned = 1</script>";
    let img = "\"><img src=x onerror=\"window.__owned = 2\">";
    let js = "javascript:window.__owned = 3";
    let mut evil = claims(ISS, script);
    evil["cognito:groups"] = json!([img, js]);
    let t = token(&rsa, &evil);
    srv.check(json!({"method": "GET", "path": format!("/api/{img}"), "token": t}))
        .await;
    srv.check(json!({"method": "GET", "path": "/AdminUser", "token": t}))
        .await;
    srv.check(json!({"method": "GET", "path": js, "token": t}))
        .await;
    b.wait_text("#count", Duration::from_secs(3), |t| {
        t.starts_with("3 shown")
    })
    .await;
    // The subject is shown, as typed.
    let mut subjects = Vec::new();
    for cell in b.all("#rows td.subject").await {
        subjects.push(b.text(&cell).await);
    }
    assert!(subjects.iter().any(|s| s == script), "{subjects:?}");
    // Open each record's detail, then look for anything injected.
    for row in b.all("#rows tr.rec").await {
        b.click(&row).await;
    }
    b.goto(&admin_url(&srv, "/explain")).await;
    b.type_into(&b.find("#token", Duration::from_secs(2)).await, &t)
        .await;
    b.click(&b.find("#run", Duration::from_secs(2)).await).await;
    let claims_text = b
        .wait_text("#claims", Duration::from_secs(5), |t| t.contains("owned"))
        .await;
    assert!(
        claims_text.contains(script) || claims_text.contains("<script>"),
        "{claims_text}"
    );
    b.goto(&admin_url(&srv, "/")).await;
    b.wait_text("#count", Duration::from_secs(3), |t| {
        t.starts_with("3 shown")
    })
    .await;
    for row in b.all("#rows tr.rec").await {
        b.click(&row).await;
    }
    let check = b
        .exec(
            "return {owned: window.__owned === undefined ? null : window.__owned, \
             imgs: document.querySelectorAll('img').length, \
             scripts: Array.from(document.scripts).filter(s => !s.src).length, \
             links: Array.from(document.querySelectorAll('a')).filter(a => a.protocol === 'javascript:').length};",
            json!([]),
        )
        .await;
    assert_eq!(
        check,
        json!({"owned": null, "imgs": 0, "scripts": 0, "links": 0})
    );
    b.quit().await;
    srv.stop().await;
}

/// Every metric the Grafana dashboard in `examples/grafana/` queries is one
/// authzd exports, and every reason code it names is a real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_real_metrics() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grafana/authzd.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    // A server with a shadow candidate, so its counter exists too.
    let (env, rsa) = rsa_env(DEMO_POLICY, "");
    env.write("candidate.csv", DEMO_POLICY);
    env.append_config("[shadow]\nmodel = \"model.conf\"\npolicy = \"candidate.csv\"\n");
    let srv = Running::start(&env.config()).await;
    let mut c = claims(ISS, "bob");
    c["cognito:groups"] = json!(["regular"]);
    srv.check(json!({"method": "GET", "path": "/RegularUser", "token": token(&rsa, &c)}))
        .await;
    // And a reload, so its counter exists.
    let revision = || async {
        let v: Value = reqwest::get(srv.url("/v1/policy"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["revision"].as_str().unwrap().to_string()
    };
    let before = revision().await;
    env.write(
        "policy.csv",
        &format!("{DEMO_POLICY}p, regular, /reports, GET\n"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while revision().await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the edit never loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = reqwest::get(srv.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let codes: Vec<&str> = authzd::reason::Reason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    for e in &exprs {
        let mut rest = e.as_str();
        let mut named = 0;
        while let Some(i) = rest.find("authzd_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                exported.contains(name.as_str()),
                "`{name}` (in `{e}`) is not in /metrics:\n{metrics}"
            );
            named += 1;
            rest = &rest[i + name.len()..];
        }
        assert!(named > 0, "`{e}` queries no authzd metric");
        if let Some(i) = e.find("reason=~\"").or_else(|| e.find("reason!~\"")) {
            let list = &e[i + 9..];
            for code in list[..list.find('"').unwrap()].split('|') {
                assert!(
                    codes.contains(&code),
                    "`{code}` in `{e}` is not a reason code"
                );
            }
        }
    }
    srv.stop().await;
}
