//! Shared policy stores (`docs/fleet.md`) against a real PostgreSQL started
//! by the tests, real `authzd` processes as replicas, and a real HTTP server
//! with ETags: changes reach every replica by notification, bursts coalesce,
//! the poll and the reconnect find what notifications missed, an outage keeps
//! the last good revision serving, a start without the store serves the cache
//! file or answers `policy_unavailable`, and the password never leaks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{fleet::*, pg::*, *};
use parking_lot::Mutex;
use serde_json::json;

async fn grant_row(c: &tokio_postgres::Client) {
    c.execute(
        "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ($1, $2, $3, $4)",
        &[
            &GRANT_VALUES[0],
            &GRANT_VALUES[1],
            &GRANT_VALUES[2],
            &GRANT_VALUES[3],
        ],
    )
    .await
    .unwrap();
}

/// A database with the table, the trigger and the base policy, set up with
/// the CLI as an operator would.
async fn prepared(pg: &Pg, db: &str, extra: &str) -> Fleet {
    let url = pg.create_db(db).await;
    let fleet = Fleet::new(&url, extra);
    for _ in 0..2 {
        let out = fleet.store_cmd(&["init"]);
        assert!(
            out.status.success(),
            "store init (idempotent) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fleet.import(BASE);
    fleet
}

/// One client per replica checking `POST /api/reports` with `token` continuously.
fn load(replicas: &[Replica], token: &str) -> Load {
    let urls: Vec<String> = replicas.iter().map(|r| r.url("/v1/check")).collect();
    Load::start(
        &urls,
        &json!({"method": "POST", "path": "/api/reports", "token": token}),
    )
}

async fn all_allowed(replicas: &[Replica], token: &str, want: bool) -> bool {
    for r in replicas {
        if r.allowed(token).await != want {
            return false;
        }
    }
    true
}

async fn revisions(replicas: &[Replica]) -> Vec<String> {
    let mut out = Vec::new();
    for r in replicas {
        out.push(r.revision().await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_follow_inserts_and_deletes_by_notification() {
    let Some(pg) = Pg::start() else { return };
    // A day-long poll: only the notification can deliver these changes.
    let fleet = prepared(&pg, "fleet", "poll_secs = 86400").await;
    let t = fleet.staff_token();
    let replicas = vec![
        Replica::start(&fleet.config()).await,
        Replica::start(&fleet.config()).await,
        Replica::start(&fleet.config()).await,
    ];
    assert!(all_allowed(&replicas, &t, false).await);
    let before = revisions(&replicas).await;
    assert!(before.iter().all(|r| *r == before[0]), "{before:?}");

    let load = load(&replicas, &t);
    // Inserted by an operator with psql.
    pg.psql(
        "fleet",
        "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'staff', '/api/reports', 'POST')",
    );
    let start = Instant::now();
    assert!(
        eventually(10, || all_allowed(&replicas, &t, true)).await,
        "the insert never reached every replica"
    );
    eprintln!("insert live on 3 replicas after {:?}", start.elapsed());
    let granted = revisions(&replicas).await;
    assert!(granted.iter().all(|r| *r == granted[0]), "{granted:?}");
    assert_ne!(granted[0], before[0]);

    // Deleted by an application, adapter style.
    let c = pg.client("fleet").await;
    c.execute(
        "DELETE FROM casbin_rule WHERE ptype = 'p' AND v0 = 'staff' AND v1 = '/api/reports'",
        &[],
    )
    .await
    .unwrap();
    assert!(
        eventually(10, || all_allowed(&replicas, &t, false)).await,
        "the delete never reached every replica"
    );
    let after = revisions(&replicas).await;
    assert!(after.iter().all(|r| *r == after[0]), "{after:?}");
    // Same rules, same revision: content hashes, not counters.
    assert_eq!(after[0], before[0]);
    let n = load.finish(&[&granted[0]]).await;
    assert!(n > 30, "only {n} checks ran");

    let p = replicas[0].policy().await;
    assert_eq!(p["store"]["kind"], "postgres");
    assert_eq!(p["store"]["serving_from"], "store");
    assert_eq!(p["store"]["connected"], true);
    assert!(p["store"]["last_sync"].is_string());
    assert!(p["policy"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_coalesce_into_few_reloads() {
    let Some(pg) = Pg::start() else { return };
    let fleet = prepared(&pg, "burst", "poll_secs = 86400").await;
    let replicas = vec![
        Replica::start(&fleet.config()).await,
        Replica::start(&fleet.config()).await,
    ];
    let ok = r#"authzd_policy_reload_total{result="ok"}"#;
    let mut before = Vec::new();
    for r in &replicas {
        before.push(r.counter(ok).await);
    }
    // 1,000 inserts, one statement each, in one transaction.
    let mut c = pg.client("burst").await;
    let tx = c.transaction().await.unwrap();
    for i in 0..1000 {
        tx.execute(
            "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', $1, '/api/x', 'GET')",
            &[&format!("user{i}")],
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    for (r, b) in replicas.iter().zip(&before) {
        assert!(
            eventually(10, || async { r.policy().await["rules"] == 1001 }).await,
            "the burst never arrived"
        );
        // Let any stray reload happen before counting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(r.counter(ok).await - b, 1.0, "one transaction, one reload");
    }

    // 100 separate transactions within about a second.
    let mut before = Vec::new();
    for r in &replicas {
        before.push(r.counter(ok).await);
    }
    for i in 0..100 {
        c.execute(
            "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', $1, '/api/y', 'GET')",
            &[&format!("late{i}")],
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for r in &replicas {
        assert!(eventually(10, || async { r.policy().await["rules"] == 1101 }).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (r, b) in replicas.iter().zip(&before) {
        let reloads = r.counter(ok).await - b;
        eprintln!("100 transactions: {reloads} reloads");
        assert!(
            (1.0..=15.0).contains(&reloads),
            "{reloads} reloads for 100 transactions in ~1 s: not coalesced"
        );
    }
    let revs = revisions(&replicas).await;
    assert_eq!(revs[0], revs[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_the_last_revision_and_the_reconnect_catches_up() {
    let Some(pg) = Pg::start() else { return };
    let fleet = prepared(&pg, "outage", "poll_secs = 86400").await;
    let t = fleet.staff_token();
    let r = Replica::start(&fleet.config()).await;
    let serving = r.revision().await;
    // Changes below raise no notification: only the reread on reconnect can find them.
    pg.psql(
        "outage",
        "ALTER TABLE casbin_rule DISABLE TRIGGER authzd_notify",
    );

    pg.stop_server();
    let load = load(std::slice::from_ref(&r), &t);
    assert!(
        eventually(10, || async {
            r.policy().await["store"]["connected"] == false
        })
        .await
    );
    let p = r.policy().await;
    assert_eq!(
        p["revision"],
        serving.as_str(),
        "the last good revision keeps serving"
    );
    assert!(p["store"]["unreachable_since"].is_string(), "{p}");
    assert!(p["store"]["error"].is_string(), "{p}");
    let metrics = r.metrics().await;
    assert!(metrics.contains(r#"authzd_policy_store_sync_total{result="error"}"#));
    let lag = |m: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix("authzd_policy_store_seconds_since_sync "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let lag1 = lag(&metrics);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        lag(&r.metrics().await) > lag1,
        "the gauge must grow while unreachable"
    );
    assert!(r.check(&t).await.0 == 200);

    pg.start_server();
    grant_row(&pg.client("outage").await).await;
    assert!(
        eventually(30, || r.allowed(&t)).await,
        "the change made while disconnected was never read"
    );
    let granted = r.revision().await;
    let n = load.finish(&[&granted]).await;
    assert!(n > 10);
    let p = r.policy().await;
    assert_eq!(p["store"]["connected"], true);
    assert!(p["store"]["error"].is_null());
    assert!(p["store"]["unreachable_since"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_finds_what_no_notification_announced() {
    let Some(pg) = Pg::start() else { return };
    let fleet = prepared(&pg, "poll", "poll_secs = 1").await;
    let t = fleet.staff_token();
    let r = Replica::start(&fleet.config()).await;
    pg.psql(
        "poll",
        "ALTER TABLE casbin_rule DISABLE TRIGGER authzd_notify",
    );
    let unchanged = r#"authzd_policy_store_sync_total{result="unchanged"}"#;
    let reloads = r#"authzd_policy_reload_total{result="ok"}"#;
    let (u0, ok0) = (r.counter(unchanged).await, r.counter(reloads).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Polls with nothing changed: counted as unchanged, no rebuild.
    assert!(r.counter(unchanged).await > u0);
    assert_eq!(r.counter(reloads).await, ok0);
    grant_row(&pg.client("poll").await).await;
    assert!(
        eventually(10, || r.allowed(&t)).await,
        "the poll never saw the insert"
    );
    // An update moves it too.
    pg.psql(
        "poll",
        "UPDATE casbin_rule SET v2 = 'PUT' WHERE v0 = 'staff'",
    );
    assert!(
        eventually(10, || async { !r.allowed(&t).await }).await,
        "the poll never saw the update"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_without_the_store() {
    let Some(pg) = Pg::start() else { return };
    let cache = tempfile::tempdir().unwrap();
    let cache_file = cache.path().join("policy-cache.csv");
    let fleet = prepared(
        &pg,
        "startdown",
        &format!(
            "poll_secs = 86400\ncache_file = \"{}\"",
            cache_file.display()
        ),
    )
    .await;
    grant_row(&pg.client("startdown").await).await;
    let t = fleet.staff_token();
    // A first replica, with the store up, writes the cache file.
    let first = Replica::start(&fleet.config()).await;
    let live = first.revision().await;
    assert!(first.allowed(&t).await);
    assert!(eventually(5, || async { cache_file.exists() }).await);
    drop(first);

    pg.stop_server();
    // With the cache file: serves the cached rules under the same revision.
    let cached = Replica::start(&fleet.config()).await;
    assert_eq!(cached.revision().await, live);
    assert!(cached.allowed(&t).await);
    let p = cached.policy().await;
    assert_eq!(p["store"]["serving_from"], "cache_file");
    assert!(
        reqwest::get(cached.url("/readyz"))
            .await
            .unwrap()
            .status()
            .is_success()
    );

    // Without: not ready, and every check is 503 policy_unavailable, never an allow.
    let text = std::fs::read_to_string(fleet.config()).unwrap();
    let no_cache = fleet.dir.path().join("nocache.toml");
    std::fs::write(
        &no_cache,
        text.replace(&format!("cache_file = \"{}\"", cache_file.display()), ""),
    )
    .unwrap();
    let bare = Replica::start(&no_cache).await;
    let ready = reqwest::get(bare.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let (status, body) = bare.check(&t).await;
    assert_eq!(status, 200, "the check call itself works: {body}");
    assert_eq!(body["allowed"], false);
    assert_eq!(body["reason"], "policy_unavailable");
    assert_eq!(body["status"], 503);
    // Through the other interfaces too.
    let fa = reqwest::Client::new()
        .get(bare.url("/ext_authz/api/reports"))
        .header("authorization", format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(fa.status(), 503);
    let fwd = reqwest::Client::new()
        .get(bare.url("/v1/forward-auth"))
        .header("x-forwarded-method", "POST")
        .header("x-forwarded-uri", "/api/reports")
        .header("authorization", format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(fwd.status(), 503);
    let mut envoy = envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient::connect(
        format!("http://{}", bare.grpc),
    )
    .await
    .unwrap();
    let auth = format!("Bearer {t}");
    let resp = envoy
        .check(envoy_request(
            "POST",
            "/api/reports",
            &[("authorization", &auth)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.status.unwrap().code, 14, "UNAVAILABLE");
    assert_eq!(bare.policy().await["store"]["serving_from"], "none");

    // The store comes up: ready, and deciding from its rules.
    pg.start_server();
    assert!(eventually(30, || bare.allowed(&t)).await, "never recovered");
    // (Its config text differs from the others', so its revision does too.)
    assert_ne!(bare.revision().await, "none");
    assert!(
        reqwest::get(bare.url("/readyz"))
            .await
            .unwrap()
            .status()
            .is_success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_is_rejected_whole_with_the_row_named() {
    let Some(pg) = Pg::start() else { return };
    let fleet = prepared(&pg, "badrow", "poll_secs = 86400").await;
    let t = fleet.staff_token();
    let r = Replica::start(&fleet.config()).await;
    let good = r.revision().await;
    let c = pg.client("badrow").await;
    // A good grant and a bad row in one transaction: neither may take effect.
    let row = c
        .query_one(
            "WITH a AS (INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'staff', '/api/reports', 'POST')) \
             INSERT INTO casbin_rule (ptype, v0, v1) VALUES ('p', 'mallory', '/api/*') RETURNING id",
            &[],
        )
        .await
        .unwrap();
    let bad_id: i64 = row.get(0);
    assert!(
        eventually(10, || async { r.policy().await["last_error"].is_string() }).await,
        "the bad row was never reported"
    );
    let p = r.policy().await;
    let err = p["last_error"].as_str().unwrap();
    assert!(err.contains(&format!("row id {bad_id}")), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert_eq!(p["revision"], good.as_str());
    assert!(!r.allowed(&t).await, "half a change must not serve");

    // A regex that cannot compile is refused the same way.
    c.execute("DELETE FROM casbin_rule WHERE v0 = 'mallory'", &[])
        .await
        .unwrap();
    assert!(eventually(10, || r.allowed(&t)).await);
    c.execute(
        "INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'staff', '/api/*', '(GET')",
        &[],
    )
    .await
    .unwrap();
    assert!(eventually(10, || async { r.policy().await["last_error"].is_string() }).await);
    assert!(r.allowed(&t).await, "the previous revision keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_table_with_extra_columns_and_nulls() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.create_db("adapter").await;
    // As gorm-adapter creates it: v0..v7 and more, NULLs where unused.
    pg.psql(
        "adapter",
        "CREATE TABLE casbin_rule (id bigserial PRIMARY KEY, ptype varchar(100), \
         v0 varchar(100), v1 varchar(100), v2 varchar(100), v3 varchar(100), v4 varchar(100), \
         v5 varchar(100), v6 varchar(25), v7 varchar(25), created_at timestamptz DEFAULT now());
         INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('p', 'reader', '/api/*', 'GET');
         INSERT INTO casbin_rule (ptype, v0, v1, v2, v3) VALUES ('p', 'staff', '/api/reports', 'POST', '');
         INSERT INTO casbin_rule (ptype, v0, v1) VALUES ('g', 'sam', 'staff');",
    );
    let fleet = Fleet::new(&url, "poll_secs = 1");
    let r = Replica::start(&fleet.config()).await;
    let mut c = claims(ISS, "sam");
    c["cognito:groups"] = json!([]);
    let t = token(&fleet.rsa, &c);
    assert!(r.allowed(&t).await, "{}", r.policy().await);
    let p = r.policy().await;
    assert_eq!(p["rules"], 2);
    assert_eq!(p["groupings"], 1);
    // A value in v6 is part of the rule, not silently cut off: here it makes the line too long.
    pg.psql(
        "adapter",
        "UPDATE casbin_rule SET v6 = 'x' WHERE v0 = 'staff'",
    );
    assert!(eventually(10, || async { r.policy().await["last_error"].is_string() }).await);
    // The export reads the same way.
    let out = fleet.store_cmd(&["export"]);
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.contains("p, staff, /api/reports, POST, , , , x"),
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_export_round_trip_and_init_refusals() {
    let Some(pg) = Pg::start() else { return };
    let fleet = prepared(&pg, "roundtrip", "").await;
    let policy = "# staff may post reports\np, staff, /api/reports, POST\n\np, \"ops, eu\", /api/*, GET\ng, sam, staff\n";
    fleet.import(policy);
    let out = fleet.store_cmd(&["export"]);
    assert!(out.status.success());
    let exported = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        exported,
        "p, staff, /api/reports, POST\np, \"ops, eu\", /api/*, GET\ng, sam, staff\n"
    );
    // The export imports back to the same rows.
    fleet.import(&exported);
    let again = String::from_utf8(fleet.store_cmd(&["export"]).stdout).unwrap();
    assert_eq!(again, exported);
    // And a replica reads the value with a comma as one field.
    let r = Replica::start(&fleet.config()).await;
    assert_eq!(r.policy().await["rules"], 2);

    // A file the model refuses is not imported at all.
    let bad = fleet.dir.path().join("bad.csv");
    std::fs::write(&bad, "p, staff, /api/x, GET\np, too, few\n").unwrap();
    let out = fleet.store_cmd(&["import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    let still = String::from_utf8(fleet.store_cmd(&["export"]).stdout).unwrap();
    assert_eq!(still, exported, "nothing was written");

    // `validate` and `check` read the store too.
    let out = fleet.authzd(&["validate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_leaks() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.create_db("secret").await;
    // Wrong password: every error path runs.
    let wrong = url.replace(PASSWORD, "Wr0ng-Passw0rd-99");
    let fleet = Fleet::new(&wrong, "poll_secs = 1");
    let r = Replica::start(&fleet.config()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let p = r.policy().await.to_string();
    assert!(p.contains("password authentication failed"), "{p}");
    let m = r.metrics().await;
    let out = fleet.store_cmd(&["export"]);
    let cli = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    let stderr = r.stderr.lock().clone();
    for (what, text) in [
        ("/v1/policy", &p),
        ("/metrics", &m),
        ("logs", &stderr),
        ("CLI", &cli),
    ] {
        assert!(
            !text.contains("Wr0ng-Passw0rd-99"),
            "{what} leaks the password: {text}"
        );
        assert!(!text.contains(PASSWORD), "{what} leaks a password");
    }
    assert!(p.contains("postgres:***@127.0.0.1"), "{p}");

    // And the right one, working: the URL still shows redacted.
    let good = Fleet::new(&url, "");
    let out = good.store_cmd(&["init"]);
    assert!(out.status.success());
    let r = Replica::start(&good.config()).await;
    let p = r.policy().await.to_string();
    assert!(
        !p.contains(PASSWORD) && !r.stderr.lock().contains(PASSWORD),
        "{p}"
    );
}

/// A web server holding a policy CSV with an ETag, as S3 or nginx serves one.
struct Object {
    addr: SocketAddr,
    body: Arc<Mutex<(String, u16)>>,
    full: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Object {
    async fn start(text: &str) -> Object {
        use axum::{extract::State, http::HeaderMap, response::IntoResponse, routing::get};
        type S = (
            Arc<Mutex<(String, u16)>>,
            Arc<AtomicUsize>,
            Arc<AtomicUsize>,
        );
        async fn serve(
            State((body, full, nm)): State<S>,
            headers: HeaderMap,
        ) -> axum::response::Response {
            let (text, status) = body.lock().clone();
            if status != 200 {
                return axum::http::StatusCode::from_u16(status)
                    .unwrap()
                    .into_response();
            }
            let etag = format!(
                "\"{:x}\"",
                text.len() * 7919 + text.bytes().map(usize::from).sum::<usize>()
            );
            if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                nm.fetch_add(1, Ordering::SeqCst);
                return axum::http::StatusCode::NOT_MODIFIED.into_response();
            }
            full.fetch_add(1, Ordering::SeqCst);
            ([("etag", etag)], text).into_response()
        }
        let body = Arc::new(Mutex::new((text.to_string(), 200)));
        let (full, nm) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let app = axum::Router::new()
            .route("/bucket/policy.csv", get(serve))
            .with_state((Arc::clone(&body), Arc::clone(&full), Arc::clone(&nm)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Object {
            addr,
            body,
            full,
            not_modified: nm,
            task,
        }
    }

    fn url(&self) -> String {
        format!(
            "http://{}/bucket/policy.csv?X-Amz-Signature=sig-Zz9",
            self.addr
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_store_with_etags() {
    let obj = Object::start(BASE).await;
    let fleet = Fleet::new(&obj.url(), "poll_secs = 1");
    let t = fleet.staff_token();
    let r = Replica::start(&fleet.config()).await;
    assert!(!r.allowed(&t).await);
    let reloads = r#"authzd_policy_reload_total{result="ok"}"#;
    let ok0 = r.counter(reloads).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        obj.not_modified.load(Ordering::SeqCst) >= 1,
        "If-None-Match was not sent"
    );
    assert_eq!(r.counter(reloads).await, ok0, "a 304 must not rebuild");
    let p = r.policy().await;
    assert_eq!(p["store"]["kind"], "http");
    assert!(
        !p.to_string().contains("sig-Zz9"),
        "the signature leaks: {p}"
    );

    // A change.
    obj.body.lock().0 = format!("{BASE}p, staff, /api/reports, POST\n");
    assert!(eventually(10, || r.allowed(&t)).await);
    let granted = r.revision().await;

    // Bad CSV: rejected, the previous revision serves.
    obj.body.lock().0 = "p, staff, /api/reports\n".into();
    assert!(eventually(10, || async { r.policy().await["last_error"].is_string() }).await);
    assert_eq!(r.revision().await, granted);
    assert!(r.allowed(&t).await);

    // Server errors and a server gone: the last good revision serves.
    obj.body.lock().1 = 500;
    assert!(
        eventually(10, || async {
            r.policy().await["store"]["connected"] == false
        })
        .await
    );
    assert!(r.allowed(&t).await);
    obj.task.abort();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(r.allowed(&t).await);
    assert_eq!(r.revision().await, granted);
    assert!(obj.full.load(Ordering::SeqCst) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_when_the_url_asks_for_it_with_the_certificate_checked() {
    let Some((pg, ca)) = Pg::start_tls() else {
        return;
    };
    let url = pg.create_db("tls").await;
    let fleet = Fleet::new(&format!("{url}?sslmode=require"), "poll_secs = 86400");
    // Our CA trusted: TLS, verified, and the server agrees the session is encrypted.
    let mut init = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"));
    let out = init
        .env("SSL_CERT_FILE", &ca)
        .args(["store", "--config"])
        .arg(fleet.config())
        .arg("init")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = Replica::start_with_env(&fleet.config(), &[("SSL_CERT_FILE", &ca)]).await;
    assert_eq!(r.policy().await["store"]["serving_from"], "store");
    let c = pg.client("tls").await;
    let row = c
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'authzd'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<bool>>(0),
        Some(true),
        "authzd's connection is not TLS"
    );

    // The system's roots do not vouch for the test CA: refused, never downgraded to plain.
    let r = Replica::start(&fleet.config()).await;
    let p = r.policy().await;
    assert_eq!(p["available"], false, "{p}");
    let err = p["store"]["error"].as_str().unwrap();
    assert!(
        err.contains("certificate") || err.contains("trusted root"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_store_and_store_settings_need_a_restart() {
    let Some(pg) = Pg::start() else { return };
    let fleet = prepared(&pg, "hup", "poll_secs = 86400").await;
    let t = fleet.staff_token();
    let r = Replica::start(&fleet.config()).await;
    pg.psql(
        "hup",
        "ALTER TABLE casbin_rule DISABLE TRIGGER authzd_notify",
    );
    grant_row(&pg.client("hup").await).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!r.allowed(&t).await, "nothing announced the change yet");
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &r.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(
        eventually(10, || r.allowed(&t)).await,
        "SIGHUP did not reread the store"
    );
    // Another SIGHUP rereads the same rows: counted as unchanged, not as new content.
    let (ok, unchanged) = (
        r#"authzd_policy_store_sync_total{result="ok"}"#,
        r#"authzd_policy_store_sync_total{result="unchanged"}"#,
    );
    let (ok0, unchanged0) = (r.counter(ok).await, r.counter(unchanged).await);
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &r.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(eventually(10, || async { r.counter(unchanged).await > unchanged0 }).await);
    assert_eq!(r.counter(ok).await, ok0);

    // Where policy comes from is set up once: a change says it needs a restart.
    let text = std::fs::read_to_string(fleet.config()).unwrap();
    std::fs::write(
        fleet.config(),
        text.replace("poll_secs = 86400", "poll_secs = 5"),
    )
    .unwrap();
    assert!(
        eventually(10, || async {
            r.policy().await["restart_required"]
                .as_str()
                .is_some_and(|m| m.contains("poll_secs") || m.contains("store"))
        })
        .await,
        "{}",
        r.policy().await
    );
    assert!(r.allowed(&t).await);
}

/// `max_staleness_secs`: while the store answers, nothing changes; once it
/// has been unreachable that long, every check answers 503
/// `policy_unavailable` (JSON and batch), and the first good read ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staleness_bound_fails_closed_once_the_store_is_gone_too_long() {
    let Some(pg) = Pg::start() else { return };
    let fleet = prepared(&pg, "stale", "poll_secs = 1\nmax_staleness_secs = 2").await;
    grant_row(&pg.client("stale").await).await;
    let t = fleet.staff_token();
    let r = Replica::start(&fleet.config()).await;
    assert!(r.allowed(&t).await);
    let started = std::time::Instant::now();
    pg.stop_server();
    assert!(
        eventually(20, || async {
            r.check(&t).await.1["reason"] == "policy_unavailable"
        })
        .await,
        "the bound never took effect"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "503 before the bound"
    );
    let (status, v) = r.check(&t).await;
    assert_eq!(
        (status, v["status"].as_u64(), v["allowed"].as_bool()),
        (200, Some(503), Some(false))
    );
    assert!(v["reason"] == "policy_unavailable", "{v}");
    let batch: serde_json::Value = reqwest::Client::new()
        .post(r.url("/v1/check/batch"))
        .json(&json!({"token": t, "items": [{"resource": "/api/reports", "action": "POST"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        batch["results"][0]["reason"], "policy_unavailable",
        "{batch}"
    );
    pg.start_server();
    assert!(
        eventually(30, || r.allowed(&t)).await,
        "a good read never ended the refusal"
    );
}

/// Under load: a writer flips one row back and forth as fast as it can while
/// two clients check; every answer matches the revision it reports (the
/// revision is a content identity, so the two states have two revisions),
/// both states are seen, and nothing else is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_writer_every_answer_matches_the_revision_it_reports() {
    let Some(pg) = Pg::start() else { return };
    let fleet = prepared(&pg, "underload", "").await;
    let db = pg.client("underload").await;
    grant_row(&db).await;
    db.batch_execute(
        "INSERT INTO casbin_rule (ptype, v0, v1, v2) SELECT 'p', 'user' || i, '/docs/' || i, 'GET' FROM generate_series(1, 20000) AS i",
    )
    .await
    .unwrap();
    let id: i64 = db
        .query_one("SELECT id FROM casbin_rule WHERE v0 = 'staff'", &[])
        .await
        .unwrap()
        .get(0);
    let r = Arc::new(Replica::start(&fleet.config()).await);
    let t = fleet.staff_token();
    let set = |v: &'static str| {
        let db = &db;
        async move {
            db.execute("UPDATE casbin_rule SET v2 = $1 WHERE id = $2", &[&v, &id])
                .await
                .unwrap();
        }
    };
    assert!(eventually(10, || r.allowed(&t)).await);
    let on = r.revision().await;
    set("NONE").await;
    assert!(eventually(10, || async { !r.allowed(&t).await }).await);
    let off = r.revision().await;
    assert_ne!(on, off);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkers: Vec<_> = (0..2)
        .map(|_| {
            let (r, t, stop, on, off) = (
                Arc::clone(&r),
                t.clone(),
                Arc::clone(&stop),
                on.clone(),
                off.clone(),
            );
            tokio::spawn(async move {
                let (mut seen_on, mut seen_off) = (0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let (_, v) = r.check(&t).await;
                    let revision = v["policy_revision"].as_str().unwrap_or_default();
                    let allowed = v["allowed"] == true;
                    match revision {
                        x if x == on => {
                            assert!(allowed, "revision {x} allows, this answer did not: {v}");
                            seen_on += 1;
                        }
                        x if x == off => {
                            assert!(!allowed, "revision {x} denies, this answer allowed: {v}");
                            seen_off += 1;
                        }
                        x => panic!("an answer under revision {x}, neither {on} nor {off}: {v}"),
                    }
                }
                (seen_on, seen_off)
            })
        })
        .collect();
    let started = Instant::now();
    let mut flips = 0;
    while started.elapsed() < Duration::from_secs(6) {
        set(if flips % 2 == 0 { "POST" } else { "NONE" }).await;
        flips += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut on_n, mut off_n) = (0, 0);
    for c in checkers {
        let (a, b) = c.await.unwrap();
        on_n += a;
        off_n += b;
    }
    println!("{flips} flips; answers under the allowing revision {on_n}, the denying one {off_n}");
    assert!(
        on_n > 10 && off_n > 10,
        "both states seen: {on_n} / {off_n}"
    );
    let p = r.policy().await;
    assert_eq!(
        p["update"], "incremental",
        "row flips are applied incrementally: {p}"
    );
}
