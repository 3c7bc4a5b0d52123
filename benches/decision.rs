//! Criterion benches for the decision core.
//!
//! - `decide/{allow,deny}_{cached,new}_token/N`: the whole pure pipeline
//!   (token, route, scopes, roles, Casbin) for N policy rules, keys already
//!   fetched; the token either in the verified-token cache or verified afresh.
//! - `token/*`, per key type (RS256, ES256, ES384, EdDSA): authzd's parse +
//!   verify, the whole pipeline on a token it has not seen, and a bare
//!   jsonwebtoken verify of the same token.
//! - `policy/*`: the policy step alone, indexed evaluator vs casbin-rs.
//! - `explorer/record`: what the decision explorer adds per decision on the
//!   log writer's thread (ring, per-minute counts), in batches of 512, half
//!   of them denials on distinct paths; next to `explorer/log_line`, the
//!   log's own encoding of the same records.
//!
//! Run: `cargo bench --bench decision` (add `-- --quick` for a fast pass).

// Bench setup aborts loudly on a broken fixture, like a test would.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{hint::black_box, path::Path, sync::Arc, time::SystemTime};

use authzd::{
    decision::{self, KeySource, Request, Sources, Step, Target},
    devtoken::SigningKey,
    policy::{Policy, Query, snapshot::Snapshot},
    roles::NoLookup,
    token::{self, jwks::KeySet, verified::VerifiedCache},
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

const ISS: &str = "https://bench.example";
const MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)\n";

struct Keys(Arc<KeySet>);

impl KeySource for Keys {
    fn keys(&self, _: &str) -> Option<Arc<KeySet>> {
        Some(Arc::clone(&self.0))
    }
}

fn signing_key(name: &str) -> SigningKey {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    SigningKey::from_pem(&std::fs::read(path).unwrap(), name).unwrap()
}

fn mint(key: &SigningKey, groups: &[&str]) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": ISS, "sub": "user-1", "aud": "app", "exp": now + 36_000, "cognito:groups": groups});
    let mut header = jsonwebtoken::Header::new(key.alg.to_jwt());
    header.kid = Some(key.kid().to_string());
    jsonwebtoken::encode(&header, &claims, &key.key).unwrap()
}

/// A snapshot with `rules` rules spread over 100 roles, on disk in `dir`.
fn snapshot(dir: &Path, rules: usize, keys: &[&SigningKey]) -> Snapshot {
    let mut policy = String::new();
    for i in 0..rules {
        policy.push_str(&format!("p, role{}, /res{i}/:id, (GET)|(POST)\n", i % 100));
    }
    std::fs::write(dir.join("model.conf"), MODEL).unwrap();
    std::fs::write(dir.join("policy.csv"), policy).unwrap();
    let jwks = json!({"keys": keys.iter().map(|k| serde_json::to_value(&k.jwk).unwrap()).collect::<Vec<_>>()});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    let cfg = format!(
        "[[issuer]]\nissuer = \"{ISS}\"\naudiences = [\"app\"]\njwks_file = \"jwks.json\"\nalgorithms = [\"RS256\", \"ES256\", \"ES384\", \"EdDSA\"]\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n"
    );
    std::fs::write(dir.join("authzd.toml"), cfg).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(Snapshot::load(&dir.join("authzd.toml")))
        .unwrap()
}

fn sources<'a>(keys: &'a Keys, tokens: Option<&'a VerifiedCache>) -> Sources<'a> {
    Sources {
        keys,
        roles: &NoLookup,
        fetch_keys: false,
        fetch_roles: false,
        tokens,
        store_failing_for: None,
    }
}

fn keyset(keys: &[&SigningKey]) -> Keys {
    let jwks = json!({"keys": keys.iter().map(|k| serde_json::to_value(&k.jwk).unwrap()).collect::<Vec<_>>()});
    Keys(Arc::new(
        KeySet::from_json(
            jwks.to_string().as_bytes(),
            "bench",
            std::time::Duration::from_secs(3600),
        )
        .unwrap(),
    ))
}

fn bench_decide(c: &mut Criterion) {
    let rsa = signing_key("rsa.pem");
    let keys = keyset(&[&rsa]);
    let mut group = c.benchmark_group("decide");
    group.sample_size(30);
    for rules in [10usize, 1_000, 10_000, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let snap = snapshot(dir.path(), rules, &[&rsa]);
        let cache = VerifiedCache::default();
        // role{last} is allowed on /res{last}/:id; the deny asks for a path no rule matches.
        let last = rules - 1;
        let token = mint(&rsa, &[&format!("role{}", last % 100)]);
        let allow_path = format!("/res{last}/42");
        for (name, path) in [("allow", allow_path.as_str()), ("deny", "/nothing/here")] {
            let req = Request {
                target: Target::Http {
                    method: "GET",
                    path,
                },
                token: Some(&token),
                authorization: None,
                origin: None,
                access_control_request_method: None,
                answers_preflight: false,
                domain: None,
                method_overrides: [None; 3],
                body: None,
                traceparent: None,
                tracestate: None,
            };
            let expect_allow = name == "allow";
            match decision::decide(&snap, &req, sources(&keys, Some(&cache)), SystemTime::now()) {
                Step::Done(d) => {
                    assert_eq!(d.allowed, expect_allow, "{name} {rules}: {}", d.detail)
                }
                Step::NeedKeys(_) | Step::NeedRoles(_) => {
                    panic!("keys are cached, no lookup configured")
                }
            }
            // Token seen before (the cache was warmed by the check above).
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_cached_token"), rules),
                &req,
                |b, req| {
                    b.iter(|| {
                        decision::decide(
                            black_box(&snap),
                            black_box(req),
                            sources(&keys, Some(&cache)),
                            SystemTime::now(),
                        )
                    })
                },
            );
            // First sight of the token: full signature verification.
            if rules == 10 {
                group.bench_with_input(
                    BenchmarkId::new(format!("{name}_new_token"), rules),
                    &req,
                    |b, req| {
                        b.iter(|| {
                            decision::decide(
                                black_box(&snap),
                                black_box(req),
                                sources(&keys, None),
                                SystemTime::now(),
                            )
                        })
                    },
                );
            }
        }
    }
    group.finish();
}

fn bench_token(c: &mut Criterion) {
    let mut group = c.benchmark_group("token");
    let dir = tempfile::tempdir().unwrap();
    let signers = ["rsa.pem", "ec256.pem", "ec384.pem", "ed25519.pem"].map(signing_key);
    let all: Vec<&SigningKey> = signers.iter().collect();
    let snap = snapshot(dir.path(), 10, &all);
    let keys = keyset(&all);
    let issuer = &snap.config.issuers[0];
    for key in &signers {
        let alg = key.alg.name();
        let t = mint(key, &["role1"]);
        group.bench_function(format!("authzd_verify/{alg}"), |b| {
            b.iter(|| {
                let parsed = token::parse(black_box(&t)).unwrap();
                token::verify(parsed, issuer, &keys.0, SystemTime::now()).unwrap()
            })
        });
        // First sight: the whole pipeline with a token it has not verified before.
        let req = Request {
            target: Target::Http {
                method: "GET",
                path: "/res1/42",
            },
            token: Some(&t),
            authorization: None,
            origin: None,
            access_control_request_method: None,
            answers_preflight: false,
            domain: None,
            method_overrides: [None; 3],
            body: None,
            traceparent: None,
            tracestate: None,
        };
        group.bench_function(format!("decide_first_sight/{alg}"), |b| {
            b.iter(|| {
                match decision::decide(
                    black_box(&snap),
                    black_box(&req),
                    sources(&keys, None),
                    SystemTime::now(),
                ) {
                    Step::Done(d) => assert!(d.allowed, "{alg}: {}", d.detail),
                    Step::NeedKeys(_) | Step::NeedRoles(_) => panic!("keys are cached"),
                }
            })
        });
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&key.jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(key.alg.to_jwt());
        validation.set_audience(&["app"]);
        group.bench_function(format!("jsonwebtoken_decode/{alg}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&t), &decoding, &validation)
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// The policy step alone: the indexed evaluator against casbin-rs on the same
/// `Policy`, `rules` rules over 100 roles, one claim role.
fn bench_policy(c: &mut Criterion) {
    let rsa = signing_key("rsa.pem");
    let mut group = c.benchmark_group("policy");
    group.sample_size(20);
    for rules in [10usize, 1_000, 10_000, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let snap = snapshot(dir.path(), rules, &[&rsa]);
        assert_eq!(snap.policy.evaluator, "indexed");
        let last = rules - 1;
        let roles = vec![format!("role{}", last % 100)];
        let allow_path = format!("/res{last}/42");
        for (name, path) in [("allow", allow_path.as_str()), ("deny", "/nothing/here")] {
            let q = Query {
                subject: "user-1",
                roles: &roles,
                domain: "",
                resource: path,
                action: "GET",
                attributes: &[],
                unfolded: None,
            };
            assert_eq!(snap.policy.enforce(&q).unwrap().allowed, name == "allow");
            group.bench_with_input(
                BenchmarkId::new(format!("indexed_{name}"), rules),
                &q,
                |b, q| b.iter(|| snap.policy.enforce(black_box(q)).unwrap()),
            );
            if rules <= 1_000 {
                let text = std::fs::read_to_string(dir.path().join("policy.csv")).unwrap();
                let rt = tokio::runtime::Runtime::new().unwrap();
                let casbin = rt.block_on(Policy::casbin_only(MODEL, &text)).unwrap();
                assert_eq!(
                    casbin.enforce(&q).unwrap(),
                    snap.policy.enforce(&q).unwrap()
                );
                group.bench_with_input(
                    BenchmarkId::new(format!("casbin_{name}"), rules),
                    &q,
                    |b, q| b.iter(|| casbin.enforce(black_box(q)).unwrap()),
                );
            }
        }
    }
    group.finish();
}

fn bench_explorer(c: &mut Criterion) {
    use authzd::{
        audit::{Outcome, Source},
        decision::{Decision, Reason},
        explorer::Explorer,
    };
    let revision: Arc<str> = Arc::from("0123456789ab");
    let batch: Vec<Arc<Outcome>> = (0..512)
        .map(|i| {
            let mut d = Decision::pending(&format!("/res{i}/{}", i * 7), "GET", &revision);
            d.subject = Some(format!("user:u{}", i % 50));
            d.issuer = Some(ISS.into());
            d.roles = vec!["role1".into()];
            if i % 2 == 0 {
                d.conclude(Reason::Allowed, "policy allows".into());
            } else {
                d.conclude(Reason::PolicyDenied, "no rule".into());
            }
            Arc::new(Outcome {
                decision: d,
                decision_id: format!("01a24a15-f80a-7438-9a05-{i:012}"),
                source: Source::Http,
                time: SystemTime::now(),
                latency: std::time::Duration::from_micros(40 + i as u64),
                trace: None,
                shadow: None,
            })
        })
        .collect();
    let (mut lines, mut ends) = (Vec::new(), Vec::new());
    for o in &batch {
        lines.extend_from_slice(o.to_json_line().as_bytes());
        lines.push(b'\n');
        ends.push(lines.len());
    }
    let explorer = Explorer::new(10_000);
    for _ in 0..40 {
        explorer.record(&batch, &lines, &ends);
    }
    let mut group = c.benchmark_group("explorer");
    group.throughput(criterion::Throughput::Elements(batch.len() as u64));
    group.bench_function("record", |b| {
        b.iter(|| explorer.record(black_box(&batch), &lines, &ends))
    });
    group.bench_function("log_line", |b| {
        b.iter(|| {
            for o in &batch {
                black_box(o.to_json_line());
            }
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_decide,
    bench_token,
    bench_policy,
    bench_explorer
);
criterion_main!(benches);
