//! Incremental policy updates (`docs/large-policies.md`): random sequences of
//! edits — to a policy file (rules and role links added, removed and
//! replaced anywhere in the file), and to a PostgreSQL store's rows through
//! SQL with a real follower applying its change log — each applied to the
//! previous snapshot incrementally; after every step the result decides
//! exactly as a snapshot built from scratch from the same text or rows, with
//! the same revision. The chain never restarts from a full build unless
//! authzd itself falls back to one, so errors would accumulate.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/casbin.rs"]
mod casbin_fixtures;
use casbin_fixtures::Rng;

#[path = "common/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::{path::Path, sync::Arc};

use authzd::config::PolicyConfig;
use authzd::policy::{
    Query, follow,
    reload::PolicyStore,
    snapshot::{Snapshot, Sources},
    source::{Client, Fetched, Read, postgres::Admin},
};

struct Case {
    name: &'static str,
    model: &'static str,
    eft: bool,
    domains: bool,
}

const SUBJECTS: &[&str] = &["alice", "bob", "carol", "admin", "dev", "ops"];
const ROLES: &[&str] = &["admin", "dev", "ops", "audit"];
const DOMS: &[&str] = &["t1", "t2"];
const PATTERNS: &[&str] = &[
    "/docs/:id",
    "/docs/1",
    "/docs/2",
    "/docs/*",
    "/pub/:x/edit",
    "/admin/*",
    "/*",
];
const PATHS: &[&str] = &[
    "/docs/1",
    "/docs/2",
    "/docs/3",
    "/pub/a/edit",
    "/admin/users",
    "/other",
];
const ACTS: &[&str] = &["GET", "POST", "DELETE"];

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "rbac keyMatch2, allow-override",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act\n",
            eft: false,
            domains: false,
        },
        Case {
            name: "allow-and-deny with eft, keyMatch",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow)) && !some(where (p.eft == deny))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && r.act == p.act\n",
            eft: true,
            domains: false,
        },
        Case {
            name: "deny-override, subject keyed",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = !some(where (p.eft == deny))\n[matchers]\nm = r.sub == p.sub && keyMatch2(r.obj, p.obj) && r.act == p.act\n",
            eft: true,
            domains: false,
        },
        Case {
            name: "domains",
            model: "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\np = sub, dom, obj, act\n[role_definition]\ng = _, _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act\n",
            eft: false,
            domains: true,
        },
        Case {
            name: "an escape branch, the whole policy one bucket",
            model: "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = keyMatch2(r.obj, p.obj) && r.act == p.act && g(r.sub, p.sub) || r.sub == \"root\"\n",
            eft: false,
            domains: false,
        },
    ]
}

fn rule_line(rng: &mut Rng, case: &Case) -> String {
    let sub = rng.pick(SUBJECTS);
    // Per-object lines, as large policies hold them; and shared patterns.
    let obj = match rng.below(2) {
        0 => format!("/docs/{}", rng.below(40)),
        _ => rng.pick(PATTERNS).to_string(),
    };
    // keyMatch has no parameters: a `:id` there is refused at load.
    let obj = match case.model.contains("keyMatch(") {
        true => obj.replace(":id", "*").replace(":x/edit", "*"),
        false => obj,
    };
    let act = rng.pick(ACTS);
    let mut line = match case.domains {
        true => format!("p, {sub}, {}, {obj}, {act}", rng.pick(DOMS)),
        false => format!("p, {sub}, {obj}, {act}"),
    };
    if case.eft {
        line.push_str(if rng.below(4) == 0 {
            ", deny"
        } else {
            ", allow"
        });
    }
    line
}

fn link_line(rng: &mut Rng, case: &Case) -> String {
    // A model whose matcher never asks `g` refuses `g` lines at load.
    if !case.model.contains("g(r.sub") {
        return rule_line(rng, case);
    }
    let (a, b) = (rng.pick(SUBJECTS), rng.pick(ROLES));
    match case.domains {
        true => format!("g, {a}, {b}, {}", rng.pick(DOMS)),
        false => format!("g, {a}, {b}"),
    }
}

/// One random edit of `lines`.
fn edit(rng: &mut Rng, case: &Case, lines: &mut Vec<String>) {
    let at = rng.below(lines.len() + 1);
    match rng.below(8) {
        0 | 1 => lines.insert(at, rule_line(rng, case)),
        2 => lines.insert(at, link_line(rng, case)),
        3 if !lines.is_empty() => {
            lines.remove(at.min(lines.len() - 1));
        }
        4 if !lines.is_empty() => {
            let i = at.min(lines.len() - 1);
            lines[i] = rule_line(rng, case);
        }
        5 => {
            for _ in 0..=rng.below(3) {
                lines.push(rule_line(rng, case));
            }
        }
        6 => lines.insert(at, "# a comment".to_string()),
        _ if !lines.is_empty() => {
            // Two edits far apart: one change spanning the middle.
            let i = rng.below(lines.len());
            lines.remove(i);
            lines.push(link_line(rng, case));
        }
        _ => lines.push(rule_line(rng, case)),
    }
}

fn sources(dir: &Path) -> Sources {
    Sources::read(&dir.join("authzd.toml"), None).unwrap()
}

/// Both snapshots decide every generated request alike.
fn same_decisions(rng: &mut Rng, case: &Case, inc: &Snapshot, full: &Snapshot, what: &str) {
    for _ in 0..60 {
        let subject = match rng.below(10) {
            0 => "root",
            _ => rng.pick(SUBJECTS),
        };
        let roles: Vec<String> = (0..rng.below(3))
            .map(|_| rng.pick(ROLES).to_string())
            .collect();
        let domain = if case.domains { rng.pick(DOMS) } else { "" };
        let resource = match rng.below(3) {
            0 => format!("/docs/{}", rng.below(40)),
            _ => rng.pick(PATHS).to_string(),
        };
        let q = Query {
            subject,
            roles: &roles,
            domain,
            resource: &resource,
            action: rng.pick(ACTS),
            attributes: &[],
            unfolded: None,
        };
        let a = inc.policy.enforce(&q).map_err(|e| e.to_string());
        let b = full.policy.enforce(&q).map_err(|e| e.to_string());
        let (a, b) = (
            a.map(|e| (e.allowed, e.matched)),
            b.map(|e| (e.allowed, e.matched)),
        );
        assert_eq!(
            a, b,
            "{what}: {subject} {roles:?} {domain} {} {}",
            q.resource, q.action
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_updates_decide_as_a_full_build_of_the_same_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("jwks.json"), r#"{"keys":[]}"#).unwrap();
    std::fs::write(
        d.join("authzd.toml"),
        "[[issuer]]\nissuer = \"https://x.example\"\njwks_file = \"jwks.json\"\nalgorithms = [\"RS256\"]\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n",
    )
    .unwrap();
    let (mut incremental, mut whole) = (0usize, 0usize);
    for case in cases() {
        std::fs::write(d.join("model.conf"), case.model).unwrap();
        for seed in 1..=12u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut lines: Vec<String> = (0..8)
                .map(|i| match i % 3 {
                    2 => link_line(&mut rng, &case),
                    _ => rule_line(&mut rng, &case),
                })
                .collect();
            std::fs::write(d.join("policy.csv"), lines.join("\n") + "\n").unwrap();
            let mut prev = sources(d).build().await.unwrap();
            for step in 0..25 {
                edit(&mut rng, &case, &mut lines);
                let text = lines.join("\n") + "\n";
                std::fs::write(d.join("policy.csv"), &text).unwrap();
                let what = format!("{} seed {seed} step {step}:\n{text}", case.name);
                let full = match sources(d).build().await {
                    Ok(s) => s,
                    Err(e) => panic!("{what}: the full build failed: {e}"),
                };
                let next = match sources(d).apply_to(&prev) {
                    Ok(s) => {
                        incremental += 1;
                        s
                    }
                    Err((s, why)) => {
                        assert!(
                            why.contains("repeats") || why.contains("no room"),
                            "{what}: built whole because {why}"
                        );
                        whole += 1;
                        s.build().await.unwrap()
                    }
                };
                assert_eq!(next.revision, full.revision, "{what}");
                assert_eq!(
                    (next.policy.rules, next.policy.groupings),
                    (full.policy.rules, full.policy.groupings),
                    "{what}"
                );
                same_decisions(&mut rng, &case, &next, &full, &what);
                prev = next;
            }
        }
    }
    println!("{incremental} steps applied incrementally, {whole} built whole (a repeated line)");
    assert!(
        incremental > whole * 2,
        "most steps are incremental: {incremental} vs {whole}"
    );
}

/// A random SQL edit of the store's rows: inserts, deletes and updates of
/// rules and links, several in one transaction, now and then one rolled back.
fn sql_edit(rng: &mut Rng, case: &Case) -> String {
    let row = |rng: &mut Rng| -> String {
        let line = match rng.below(4) {
            0 => link_line(rng, case),
            _ => rule_line(rng, case),
        };
        // New rows only (a repeated row is the test's own step below).
        let fields: Vec<String> = line.split(", ").map(|f| format!("'{f}'")).collect();
        let cols: Vec<String> = (0..fields.len() - 1).map(|i| format!("v{i}")).collect();
        let same: Vec<String> = std::iter::once("ptype".to_string())
            .chain(cols.iter().cloned())
            .zip(&fields)
            .map(|(c, v)| format!("{c} = {v}"))
            .collect();
        let unless = format!(
            " WHERE NOT EXISTS (SELECT 1 FROM casbin_rule WHERE {})",
            same.join(" AND ")
        );
        format!(
            "INSERT INTO casbin_rule (ptype, {}) SELECT {}{unless}",
            cols.join(", "),
            fields.join(", ")
        )
    };
    let one = |rng: &mut Rng| -> String {
        match rng.below(6) {
            0 | 1 => row(rng),
            2 => "DELETE FROM casbin_rule WHERE id = (SELECT id FROM casbin_rule ORDER BY random() LIMIT 1)".to_string(),
            3 => format!(
                "UPDATE casbin_rule SET v1 = '/pub/{}/edit' WHERE ptype = 'p' AND id = (SELECT id FROM casbin_rule WHERE ptype = 'p' ORDER BY random() LIMIT 1)",
                rng.below(1_000_000)
            ),
            // A rule moved to another subject and a fresh object: no repeat.
            4 => format!(
                "UPDATE casbin_rule SET v0 = '{}', v1 = '/docs/{}' WHERE ptype = 'p' AND id = (SELECT id FROM casbin_rule WHERE ptype = 'p' ORDER BY random() LIMIT 1)",
                rng.pick(SUBJECTS),
                100 + rng.below(1_000_000)
            ),
            _ => format!("{}; {}", row(rng), row(rng)),
        }
    };
    let body: Vec<String> = (0..=rng.below(3)).map(|_| one(rng)).collect();
    let end = if rng.below(10) == 0 {
        "ROLLBACK"
    } else {
        "COMMIT"
    };
    format!("BEGIN; {}; {end};", body.join("; "))
}

/// What a replica reading the table whole now would serve: the rows and
/// the snapshot built from them.
async fn full_read(cfg: &PolicyConfig, config: &Path) -> (Fetched, Snapshot) {
    let mut reader = Client::new(cfg).unwrap();
    let Some(Read::Full(rows)) = reader.sync(true).await.unwrap() else {
        panic!("a forced read is a full read");
    };
    let full = Sources::read(config, Some(&rows))
        .unwrap()
        .build()
        .await
        .unwrap();
    (rows, full)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_row_changes_applied_from_the_change_log_decide_as_a_full_read() {
    let Some(pg) = pg::Pg::start() else { return };
    let case = &cases()[0];
    let url = pg.create_db("incremental").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("jwks.json"), r#"{"keys":[]}"#).unwrap();
    std::fs::write(d.join("model.conf"), case.model).unwrap();
    let config = d.join("authzd.toml");
    std::fs::write(
        &config,
        format!("[[issuer]]\nissuer = \"https://x.example\"\njwks_file = \"jwks.json\"\nalgorithms = [\"RS256\"]\n[policy]\nmodel = \"model.conf\"\nstore = \"{url}\"\n"),
    )
    .unwrap();
    let cfg = authzd::config::Config::load(&config).unwrap().policy;
    let mut admin = Admin::connect(&cfg).await.unwrap();
    admin.init().await.unwrap();
    let mut rng = Rng(7);
    let mut initial: Vec<Vec<String>> = Vec::new();
    for i in 0..30 {
        let line = match i % 4 {
            3 => link_line(&mut rng, case),
            _ => rule_line(&mut rng, case),
        };
        let fields: Vec<String> = line.split(", ").map(String::from).collect();
        if !initial.contains(&fields) {
            initial.push(fields);
        }
    }
    admin.import(&initial).await.unwrap();
    let (snap, status, client) = follow::start(&config).await.unwrap();
    let store = Arc::new(PolicyStore::following(snap, &config, status));
    let _follower = follow::follow(Arc::clone(&store), client, |_| {});
    let db = pg.client("incremental").await;
    let (mut incremental, mut whole) = (0usize, 0usize);
    for step in 0..40 {
        let sql = match step {
            // A repeated row: which copy counts depends on order, so it is
            // read whole while it stays, and incremental again once it goes.
            20 => "INSERT INTO casbin_rule (ptype, v0, v1, v2) SELECT ptype, v0, v1, v2 FROM casbin_rule WHERE ptype = 'p' ORDER BY id LIMIT 1".to_string(),
            21 => "DELETE FROM casbin_rule WHERE id = (SELECT max(id) FROM casbin_rule)".to_string(),
            _ => sql_edit(&mut rng, case),
        };
        db.batch_execute(&sql).await.unwrap();
        let (rows, full) = full_read(&cfg, &config).await;
        let caught_up = pg::eventually(10, || {
            let (store, want) = (Arc::clone(&store), Arc::clone(&full.revision));
            async move { store.load().revision == want }
        })
        .await;
        let live = store.load();
        assert!(
            caught_up,
            "step {step} ({sql}): the follower serves {} (update {}), a full read of the rows is {}:\n{}",
            live.revision, live.incremental, full.revision, rows.text
        );
        match live.incremental {
            true => incremental += 1,
            false => whole += 1,
        }
        if step == 20 {
            assert!(!live.incremental, "a repeated row is read whole");
        }
        assert_eq!(
            (live.policy.rules, live.policy.groupings),
            (full.policy.rules, full.policy.groupings),
            "step {step}"
        );
        let table: Vec<String> = rows
            .text
            .lines()
            .zip(&rows.rows)
            .map(|(l, id)| format!("{} {l}", id.as_deref().unwrap_or("-")))
            .collect();
        let what = format!("step {step}: {sql}\n{}", table.join("\n"));
        same_decisions(&mut rng, case, &live, &full, &what);
    }
    // A bulk statement: the log keeps its newest 100,000 entries, and a
    // replica that cannot follow it from its position reads the table whole.
    db.batch_execute(
        "INSERT INTO casbin_rule (ptype, v0, v1, v2) SELECT 'p', 'bob', '/bulk/' || i, 'GET' FROM generate_series(1, 120000) AS i",
    )
    .await
    .unwrap();
    let kept = db
        .query_one(
            "SELECT count(*), max(seq) - min(seq) + 1 FROM casbin_rule_changes",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (kept.get::<_, i64>(0), kept.get::<_, i64>(1)),
        (100_000, 100_000)
    );
    let (_, full) = full_read(&cfg, &config).await;
    assert!(
        pg::eventually(20, || {
            let (store, want) = (Arc::clone(&store), Arc::clone(&full.revision));
            async move { store.load().revision == want }
        })
        .await,
        "the follower never caught up with a bulk insert"
    );
    assert!(!store.load().incremental, "120,000 entries are read whole");
    println!("{incremental} steps applied from the change log, {whole} read whole");
    assert!(
        incremental > whole * 2,
        "most steps are incremental: {incremental} vs {whole}"
    );
}
