//! Token parsing and the whole validation path: arbitrary bytes as a bearer
//! token must never panic, and must never be allowed.
#![no_main]

use std::{
    sync::{Arc, OnceLock},
    time::SystemTime,
};

use authzd::{
    decision::{self, KeySource, Request, Sources, Step, Target},
    policy::snapshot::Snapshot,
    roles::NoLookup,
    token::{self, jwks::KeySet},
};
use libfuzzer_sys::fuzz_target;

const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"tamkgg2oNO9tDLTLK-7SiovfwxREpMUeL4nQSbd7r3oHiULH3OOeNKfzJ0LHuez2nrzOwiOl5ahkxWquZdSr4CgK8FJ2WP_B5aKuYY5YP8cjwQYoxeCibz2Ix-zNu_IYa8yLMHOsNzWT1VvRPsr35maEyhgLB3BC1iqhD1sL8P2YbxMYS6DrXljAAMQMUqVnBocvbyRp2YF6x4rrTXZWdrcbZEXfyrVv0XP4_aUONQn_ZQjXym_89-1pWu247Iz2xlYcewf4ak7ZAneIYdn990QwLoSCy1vII_YPbF4oK9TPV1AEVqC9IfftSEaO6BUg3cVIE7v3q0Y-Ba2AkhSkMw","e":"AQAB"}]}"#;

struct Keys(Arc<KeySet>);

impl KeySource for Keys {
    fn keys(&self, _: &str) -> Option<Arc<KeySet>> {
        Some(Arc::clone(&self.0))
    }
}

fn fixture() -> &'static (Snapshot, Keys) {
    static F: OnceLock<(Snapshot, Keys)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("authzd-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("jwks.json"), JWKS).unwrap();
        std::fs::write(
            dir.join("model.conf"),
            "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)\n",
        )
        .unwrap();
        std::fs::write(dir.join("policy.csv"), "p, admin, /*, .*\n").unwrap();
        let cfg = "[[issuer]]\nissuer = \"https://i\"\njwks_file = \"jwks.json\"\nalgorithms = [\"RS256\", \"ES256\", \"EdDSA\"]\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n";
        std::fs::write(dir.join("authzd.toml"), cfg).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let snap = rt.block_on(Snapshot::load(&dir.join("authzd.toml"))).unwrap();
        let keys = KeySet::from_json(JWKS.as_bytes(), "fuzz", std::time::Duration::from_secs(3600)).unwrap();
        (snap, Keys(Arc::new(keys)))
    })
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let _ = token::parse(&raw);
    let (snap, keys) = fixture();
    let req = Request {
        target: Target::Http { method: "GET", path: "/x" },
        token: None,
        authorization: Some(&raw),
        origin: None,
        access_control_request_method: None,
        answers_preflight: false,
        domain: None,
        method_overrides: [None; 3],
        body: None,
        traceparent: None,
    };
    let src = Sources { keys, roles: &NoLookup, fetch_keys: false, fetch_roles: false, tokens: None, store_failing_for: None };
    match decision::decide(snap, &req, src, SystemTime::now()) {
        // No fuzzer can forge an RS256 signature: an allow is a bug.
        Step::Done(d) => assert!(!d.allowed, "fuzz input allowed: {raw:?}"),
        Step::NeedKeys(_) | Step::NeedRoles(_) => panic!("no fetch may be asked for"),
    }
});
