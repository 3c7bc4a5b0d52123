//! The Envoy ext_authz CheckRequest mapping and route matching: arbitrary
//! method, path and headers must never panic, and without a valid token only
//! public routes and CORS preflights may be allowed.
#![no_main]

use std::{collections::HashMap, sync::{Arc, OnceLock}};

use authzd::{
    audit::AuditSink,
    authorizer::Authorizer,
    policy::{reload::PolicyStore, snapshot::Snapshot},
    token::jwks::Jwks,
    transport::envoy::EnvoyGrpc,
};
use envoy_types::ext_authz::v3::pb::Authorization;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, attribute_context};
use libfuzzer_sys::fuzz_target;

fn fixture() -> &'static (tokio::runtime::Runtime, EnvoyGrpc) {
    static F: OnceLock<(tokio::runtime::Runtime, EnvoyGrpc)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("authzd-fuzz-envoy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("model.conf"),
            "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)\n",
        )
        .unwrap();
        std::fs::write(dir.join("policy.csv"), "p, admin, /*, .*\n").unwrap();
        let cfg = "[[route]]\nmethod = \"GET\"\npath = \"/public\"\nauth = \"none\"\n[[route]]\npath = \"/api/{proxy+}\"\nscopes = [\"s\"]\n[[route]]\nmethod = \"POST\"\npath = \"/items/{id}\"\n[policy]\nmodel = \"model.conf\"\npolicy = \"policy.csv\"\n[decision_log]\noutput = \"off\"\n";
        std::fs::write(dir.join("authzd.toml"), cfg).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let snap = rt.block_on(Snapshot::load(&dir.join("authzd.toml"))).unwrap();
        let store = Arc::new(PolicyStore::new(snap, &dir.join("authzd.toml")));
        let authorizer = Arc::new(Authorizer::new(store, Arc::new(Jwks::new()), AuditSink::off()));
        (rt, EnvoyGrpc(authorizer))
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or_default().to_string();
    let path = lines.next().unwrap_or_default().to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let req = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest { method, path: path.clone(), headers, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let (rt, svc) = fixture();
    let resp = rt.block_on(svc.check(tonic::Request::new(req))).unwrap().into_inner();
    let code = resp.status.map(|s| s.code).unwrap_or(-1);
    if code == 0 {
        // Allowed without any key material: only a public route or a preflight can be.
        let public = path.split(['?', '#']).next() == Some("/public");
        let preflight = text.lines().next().is_some_and(|m| m.eq_ignore_ascii_case("OPTIONS"));
        assert!(public || preflight, "allowed: {text:?}");
    }
});
