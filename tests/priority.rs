//! Explicit priorities decide as Casbin documents them (the Priority Model
//! page; Go and Python Casbin): policy lines are ordered by their `priority`
//! field, smaller first, non-numeric last, ties in file order, and the first
//! matching line decides. casbin-rs 2.20 evaluates in file order; authzd must
//! not, in either evaluator.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use authzd::policy::{Policy, Query};

const MODEL: &str = "[request_definition]
r = sub, obj, act
[policy_definition]
p = priority, sub, obj, act, eft
[role_definition]
g = _, _
[policy_effect]
e = priority(p.eft) || deny
[matchers]
m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act
";

fn ask(p: &Policy, sub: &str, roles: &[String], obj: &str, act: &str) -> (bool, Vec<String>) {
    let e = p
        .enforce(&Query {
            subject: sub,
            roles,
            domain: "",
            resource: obj,
            action: act,
            attributes: &[],
            unfolded: None,
        })
        .unwrap();
    (e.allowed, e.matched)
}

async fn both(policy: &str) -> [Policy; 2] {
    let indexed = Policy::from_text(MODEL, "m", policy, "p").await.unwrap();
    assert_eq!(indexed.evaluator, "indexed");
    let casbin = Policy::casbin_only(MODEL, policy).await.unwrap();
    [indexed, casbin]
}

#[tokio::test]
async fn a_lower_priority_number_wins_whatever_the_file_order() {
    let policy = "p, 10, alice, /doc, GET, allow
p, 1, alice, /doc, GET, deny
p, x, alice, /late, GET, deny
p, 5, alice, /late, GET, allow
p, 3, alice, /tie, GET, allow
p, 3, alice, /tie, GET, deny
";
    for p in both(policy).await {
        let (allowed, matched) = ask(&p, "alice", &[], "/doc", "GET");
        assert!(!allowed, "{}", p.evaluator);
        assert_eq!(matched, ["1", "alice", "/doc", "GET", "deny"]);
        // Non-numeric priorities come last.
        assert!(ask(&p, "alice", &[], "/late", "GET").0, "{}", p.evaluator);
        // Ties keep file order.
        assert!(ask(&p, "alice", &[], "/tie", "GET").0, "{}", p.evaluator);
    }
}

/// A small deterministic generator (no test depends on a seed it cannot print).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The documented semantics, written out: sort, then the first match decides.
fn reference(
    lines: &[Vec<String>],
    sub: &str,
    roles: &[String],
    obj: &str,
    act: &str,
) -> (bool, Vec<String>) {
    let mut sorted: Vec<&Vec<String>> = lines.iter().collect();
    sorted.sort_by_key(|l| match l[0].parse::<i64>() {
        Ok(n) => (0, n),
        Err(_) => (1, 0),
    });
    let is = |who: &str| who == sub || roles.iter().any(|r| r == who);
    for l in sorted {
        let path_ok = match l[2].strip_suffix("/*") {
            Some(prefix) => obj.starts_with(&format!("{prefix}/")),
            None => l[2] == obj,
        };
        if is(&l[1]) && path_ok && l[3] == act {
            return (l[4] == "allow", l.clone());
        }
    }
    (false, Vec::new())
}

#[tokio::test]
async fn generated_policies_decide_as_documented() {
    let mut rng = Lcg(0x5eed);
    let subjects = ["alice", "bob", "role:admin", "role:editor", "role:viewer"];
    let objects = ["/a", "/a/*", "/b", "/b/*", "/c/*", "/a/x"];
    let acts = ["GET", "POST", "DELETE"];
    // 244 lines with shuffled unique priorities, a few ties and non-numeric ones.
    let mut prios: Vec<String> = (0..240).map(|i| (i * 17 + 3).to_string()).collect();
    for i in (1..prios.len()).rev() {
        prios.swap(i, rng.next(i as u64 + 1) as usize);
    }
    prios.extend(["100".into(), "100".into(), "high".into(), "low".into()]);
    let lines: Vec<Vec<String>> = prios
        .into_iter()
        .map(|prio| {
            vec![
                prio,
                subjects[rng.next(5) as usize].to_string(),
                objects[rng.next(6) as usize].to_string(),
                acts[rng.next(3) as usize].to_string(),
                if rng.next(2) == 0 { "allow" } else { "deny" }.to_string(),
            ]
        })
        .collect();
    let text: String = lines
        .iter()
        .map(|l| format!("p, {}\n", l.join(", ")))
        .collect();
    let policies = both(&text).await;
    let requests = ["/a", "/a/x", "/a/y", "/b", "/b/z", "/c/q", "/d"];
    let mut differ_from_file_order = 0;
    for n in 0..300 {
        let sub = ["alice", "bob", "carol"][n % 3];
        let roles: Vec<String> = ["role:admin", "role:editor", "role:viewer"]
            .iter()
            .filter(|_| rng.next(2) == 0)
            .map(|r| r.to_string())
            .collect();
        let obj = requests[rng.next(7) as usize];
        let act = acts[rng.next(3) as usize];
        let want = reference(&lines, sub, &roles, obj, act);
        for p in &policies {
            assert_eq!(
                ask(p, sub, &roles, obj, act),
                want,
                "{} for {sub} {roles:?} {act} {obj}",
                p.evaluator
            );
        }
        // How often file order would have decided otherwise: the test must matter.
        let mut file_order = lines.clone();
        for (i, l) in file_order.iter_mut().enumerate() {
            l[0] = i.to_string();
        }
        if reference(&file_order, sub, &roles, obj, act).0 != want.0 {
            differ_from_file_order += 1;
        }
    }
    assert!(differ_from_file_order > 20, "{differ_from_file_order}");
}
