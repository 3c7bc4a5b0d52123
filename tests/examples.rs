//! The gateway and Kubernetes examples must match what authzd actually serves:
//! each file is parsed and its ports, paths and header names are checked
//! against the server's defaults, so they cannot drift.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use authzd::config::{Config, ServerConfig};
use serde::Deserialize as _;
use serde_norway::Value;

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
}

fn yaml(rel: &str) -> Value {
    serde_norway::from_str(&std::fs::read_to_string(example(rel)).unwrap()).unwrap()
}

/// Every value stored under `key`, anywhere in the document.
fn all<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                if k.as_str() == Some(key) {
                    out.push(val);
                }
                all(val, key, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| all(x, key, out)),
        Value::Tagged(t) => all(&t.value, key, out),
        _ => {}
    }
}

fn find<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    all(v, key, &mut out);
    out
}

fn defaults() -> ServerConfig {
    ServerConfig::default()
}

fn cluster<'a>(doc: &'a Value, name: &str) -> &'a Value {
    find(doc, "clusters")[0]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap()
}

fn cluster_port(doc: &Value, name: &str) -> u64 {
    find(cluster(doc, name), "port_value")[0].as_u64().unwrap()
}

#[test]
fn envoy_grpc_example_points_at_authzd_and_fails_closed() {
    let doc = yaml("envoy/envoy.yaml");
    let d = defaults();
    let filter = find(&doc, "http_filters")[0].as_sequence().unwrap();
    assert_eq!(
        filter[1]["name"].as_str(),
        Some("envoy.filters.http.ext_authz"),
        "ext_authz runs after cors, before the router"
    );
    let cfg = &filter[1]["typed_config"];
    assert_eq!(cfg["failure_mode_allow"].as_bool(), Some(false));
    assert_eq!(cfg["transport_api_version"].as_str(), Some("V3"));
    assert_eq!(
        cfg["grpc_service"]["envoy_grpc"]["cluster_name"].as_str(),
        Some("authzd")
    );
    assert!(
        cfg["grpc_service"]["timeout"].as_str().is_some(),
        "a sensible timeout is set"
    );
    assert_eq!(cluster_port(&doc, "authzd"), u64::from(d.grpc_addr.port()));
    assert!(
        !find(cluster(&doc, "authzd"), "http2_protocol_options").is_empty(),
        "gRPC needs HTTP/2 upstream"
    );
    // One route with ext_authz disabled, one protected.
    let routes = find(&doc, "routes")[0].as_sequence().unwrap();
    let disabled: Vec<bool> = routes
        .iter()
        .map(|r| !find(r, "disabled").is_empty())
        .collect();
    assert!(disabled.contains(&true) && disabled.contains(&false));
}

#[test]
fn envoy_http_example_matches_prefix_port_and_headers() {
    let doc = yaml("envoy/envoy-http.yaml");
    let d = defaults();
    let svc = find(&doc, "http_service")[0];
    assert_eq!(
        svc["path_prefix"].as_str(),
        Some(d.ext_authz_prefix.as_str())
    );
    assert_eq!(
        svc["server_uri"]["uri"].as_str(),
        Some(format!("http://127.0.0.1:{}", d.http_addr.port()).as_str())
    );
    assert_eq!(
        cluster_port(&doc, "authzd_http"),
        u64::from(d.http_addr.port())
    );
    assert_eq!(find(&doc, "failure_mode_allow")[0].as_bool(), Some(false));
    let text = serde_norway::to_string(svc).unwrap();
    for needle in [
        "origin",
        "access-control-request-method",
        "x-authz-",
        "www-authenticate",
    ] {
        assert!(
            text.contains(needle),
            "envoy-http.yaml must mention `{needle}`"
        );
    }
}

#[test]
fn nginx_example_uses_forward_auth_and_sets_both_conventions() {
    let text = std::fs::read_to_string(example("nginx/nginx.conf")).unwrap();
    let d = defaults();
    assert!(text.contains(&format!(
        "proxy_pass http://127.0.0.1:{}/v1/forward-auth;",
        d.http_addr.port()
    )));
    for needle in [
        "proxy_set_header X-Original-Method $request_method;",
        "proxy_set_header X-Original-URI $request_uri;",
        "proxy_set_header X-Forwarded-Method $request_method;",
        "proxy_set_header X-Forwarded-Uri $request_uri;",
        "$upstream_http_x_authz_subject",
        "$upstream_http_x_authz_roles",
        "$upstream_http_x_authz_decision_id",
        "$upstream_http_www_authenticate",
        r#"'{"message":"Unauthorized"}'"#,
        r#"'{"message":"Forbidden"}'"#,
    ] {
        assert!(text.contains(needle), "nginx.conf lacks `{needle}`");
    }
}

#[test]
fn traefik_example_copies_our_headers_and_distrusts_clients() {
    let doc = yaml("traefik/dynamic.yaml");
    let d = defaults();
    let fa = &doc["http"]["middlewares"]["authzd"]["forwardAuth"];
    assert_eq!(
        fa["address"].as_str(),
        Some(format!("http://127.0.0.1:{}/v1/forward-auth", d.http_addr.port()).as_str())
    );
    assert_eq!(fa["trustForwardHeader"].as_bool(), Some(false));
    let names: Vec<String> = fa["authResponseHeaders"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_ascii_lowercase())
        .collect();
    for h in [
        authzd::transport::answer::SUBJECT_HEADER,
        authzd::transport::answer::ROLES_HEADER,
        authzd::transport::answer::DECISION_ID_HEADER,
    ] {
        assert!(
            names.iter().any(|n| n == h),
            "authResponseHeaders lacks {h}"
        );
    }
    let stat = yaml("traefik/traefik.yaml");
    assert_eq!(
        stat["providers"]["file"]["filename"].as_str(),
        Some("examples/traefik/dynamic.yaml")
    );
}

/// A Kubernetes example's documents, and its ConfigMap's files written to a temp dir.
fn kubernetes_example(file: &str) -> (Vec<Value>, tempfile::TempDir) {
    let text = std::fs::read_to_string(example(file)).unwrap();
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config_map = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("ConfigMap"))
        .unwrap();
    for (name, body) in config_map["data"].as_mapping().unwrap() {
        std::fs::write(
            dir.path().join(name.as_str().unwrap()),
            body.as_str().unwrap(),
        )
        .unwrap();
    }
    (docs, dir)
}

#[tokio::test]
async fn kubernetes_example_is_consistent_and_its_policy_loads() {
    let (docs, dir) = kubernetes_example("kubernetes/authzd.yaml");
    let kind = |k: &str| docs.iter().find(|d| d["kind"].as_str() == Some(k)).unwrap();
    // The ConfigMap's files load as a real snapshot.
    let config = Config::load(&dir.path().join("authzd.toml")).unwrap();
    authzd::policy::snapshot::Snapshot::load(&dir.path().join("authzd.toml"))
        .await
        .unwrap();
    let (grpc, http) = (
        config.server.grpc_addr.port(),
        config.server.http_addr.port(),
    );
    assert_eq!(
        (grpc, http),
        (defaults().grpc_addr.port(), defaults().http_addr.port())
    );

    let deploy = kind("Deployment");
    let pod = &deploy["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    let ports: Vec<u64> = c["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [u64::from(grpc), u64::from(http)]);
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["port"].as_u64(),
        Some(u64::from(http))
    );
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(
        ann["prometheus.io/port"].as_str(),
        Some(http.to_string().as_str())
    );
    assert_eq!(ann["prometheus.io/path"].as_str(), Some("/metrics"));
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mount = c["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(
        args[..3],
        ["serve", "--config", &format!("{mount}/authzd.toml")]
    );
    assert!(
        c["volumeMounts"][0].get("subPath").is_none(),
        "subPath mounts never see ConfigMap updates"
    );

    let svc = kind("Service");
    let svc_ports: Vec<u64> = svc["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(svc_ports, [u64::from(grpc), u64::from(http)]);
}

/// The gateways resolve paths before authzd and the upstream see them, so the
/// two agree on one spelling (docs/security.md, "Canonical paths").
/// Both Envoy examples answer CORS preflights in Envoy (the cors filter
/// first, with a policy on the virtual host) and send form bodies to authzd.
#[test]
fn envoy_examples_answer_preflights_and_send_bodies() {
    for file in ["envoy/envoy.yaml", "envoy/envoy-http.yaml"] {
        let doc = yaml(file);
        let filters = find(&doc, "http_filters")[0].as_sequence().unwrap();
        let names: Vec<&str> = filters
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "envoy.filters.http.cors",
                "envoy.filters.http.ext_authz",
                "envoy.filters.http.router"
            ],
            "{file}: cors answers preflights before ext_authz"
        );
        let policy = &find(&doc, "virtual_hosts")[0][0]["typed_per_filter_config"]["envoy.filters.http.cors"];
        assert_eq!(
            policy["@type"].as_str(),
            Some("type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"),
            "{file}"
        );
        assert!(
            !policy["allow_origin_string_match"]
                .as_sequence()
                .unwrap()
                .is_empty(),
            "{file}"
        );
        assert_eq!(
            policy["forward_not_matching_preflights"].as_bool(),
            Some(false),
            "{file}"
        );
        let body = &filters[1]["typed_config"]["with_request_body"];
        let max = body["max_request_bytes"].as_u64().unwrap();
        assert!(
            (8_192..=1 << 20).contains(&max),
            "{file}: max_request_bytes {max}"
        );
        // A cut body is flagged, so authzd can refuse a form it did not see whole.
        assert_eq!(
            body["allow_partial_message"].as_bool(),
            Some(true),
            "{file}"
        );
    }
    // HTTP mode forwards only the headers it lists: authzd needs these to see overrides and bodies.
    let doc = yaml("envoy/envoy-http.yaml");
    let allowed = serde_norway::to_string(find(&doc, "allowed_headers")[0]).unwrap();
    for h in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "content-type",
        "x-envoy-auth-partial-body",
    ] {
        assert!(
            allowed.contains(&format!("exact: {h}\n")),
            "envoy-http.yaml must send `{h}`"
        );
    }
}

/// The Traefik example answers preflights in its headers middleware, ahead of forward auth.
#[test]
fn traefik_example_answers_preflights_before_forward_auth() {
    let doc = yaml("traefik/dynamic.yaml");
    let mw = doc["http"]["routers"]["api"]["middlewares"]
        .as_sequence()
        .unwrap();
    assert_eq!(
        mw.iter().map(|m| m.as_str().unwrap()).collect::<Vec<_>>(),
        ["cors", "authzd"]
    );
    let cors = &doc["http"]["middlewares"]["cors"]["headers"];
    assert!(
        !cors["accessControlAllowOriginList"]
            .as_sequence()
            .unwrap()
            .is_empty()
    );
    assert!(
        !cors["accessControlAllowMethods"]
            .as_sequence()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn gateway_examples_canonicalize_paths() {
    for file in ["envoy/envoy.yaml", "envoy/envoy-http.yaml"] {
        let doc = yaml(file);
        let hcm = find(&doc, "normalize_path");
        assert_eq!(hcm.len(), 1, "{file}: one HTTP connection manager");
        assert_eq!(hcm[0].as_bool(), Some(true), "{file}: normalize_path");
        assert_eq!(
            find(&doc, "merge_slashes")[0].as_bool(),
            Some(true),
            "{file}"
        );
        assert_eq!(
            find(&doc, "path_with_escaped_slashes_action")[0].as_str(),
            Some("REJECT_REQUEST"),
            "{file}"
        );
    }
    let stat = yaml("traefik/traefik.yaml");
    let http = &stat["entryPoints"]["web"]["http"];
    assert_eq!(http["sanitizePath"].as_bool(), Some(true));
    let enc = http["encodedCharacters"].as_mapping().unwrap();
    assert!(enc.len() >= 7);
    assert!(enc.values().all(|v| v.as_bool() == Some(false)), "{enc:?}");
    // nginx forwards the raw URI it sent authzd: `proxy_pass` without a URI part.
    let nginx = std::fs::read_to_string(example("nginx/nginx.conf")).unwrap();
    let directives: Vec<&str> = nginx
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(directives.contains(&"proxy_pass http://api;"));
    assert!(
        !directives
            .iter()
            .any(|l| l.starts_with("proxy_pass http://api/"))
    );
}

#[test]
fn kubernetes_fleet_example_is_consistent() {
    let (docs, dir) = kubernetes_example("kubernetes/fleet.yaml");
    let kind = |k: &str| docs.iter().find(|d| d["kind"].as_str() == Some(k)).unwrap();
    // The password is expanded from the environment; stand one in.
    let toml = std::fs::read_to_string(dir.path().join("authzd.toml")).unwrap();
    assert!(
        toml.contains("${PGPASSWORD}"),
        "the password must not be in the file"
    );
    let config = Config::from_toml(
        &toml.replace("${PGPASSWORD}", "x"),
        &dir.path().join("authzd.toml"),
    )
    .unwrap();
    let store = config.policy.store.as_deref().unwrap();
    assert!(store.starts_with("postgres://authzd:x@authzd-postgres:5432/"));
    let cache_dir = config
        .policy
        .cache_file
        .as_deref()
        .unwrap()
        .parent()
        .unwrap();

    // The Secret feeds PGPASSWORD to both the replicas and the init Job.
    for (k, c) in [
        (
            "Deployment",
            &kind("Deployment")["spec"]["template"]["spec"]["containers"][0],
        ),
        (
            "Job",
            &kind("Job")["spec"]["template"]["spec"]["containers"][0],
        ),
    ] {
        let env = c["env"].as_sequence().unwrap();
        assert!(
            env.iter().any(|e| e["name"].as_str() == Some("PGPASSWORD")
                && e["valueFrom"]["secretKeyRef"]["name"].as_str() == Some("authzd-db")),
            "{k}"
        );
    }
    let job = &kind("Job")["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = job["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        ["store", "--config", "/etc/authzd/authzd.toml", "init"]
    );
    // The cache file's directory is writable in a read-only container.
    let c = &kind("Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| Path::new(m["mountPath"].as_str().unwrap()) == cache_dir
                && m["readOnly"].as_bool() != Some(true)),
        "{cache_dir:?} is not a writable mount"
    );
    assert!(kind("Deployment")["spec"]["replicas"].as_u64().unwrap() > 1);
}

/// The container image's recipe is honest: every path it copies exists and
/// is not ignored, the binary it copies is the package's, the ports it
/// exposes are the defaults, the entrypoint's arguments (and those of the
/// Kubernetes examples) parse with the real binary, and hadolint passes
/// (`.ci/run` installs it; without it that part says SKIPPED).
#[test]
fn the_dockerfile_copies_what_exists_and_runs_real_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docker = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut copies = 0;
    for line in docker
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &parts[..parts.len() - 1] {
            copies += 1;
            assert!(
                root.join(src).exists(),
                "Dockerfile copies `{src}`, which does not exist"
            );
            assert!(
                !ignored.contains(src),
                "Dockerfile copies `{src}`, which .dockerignore excludes"
            );
        }
    }
    assert!(copies >= 5, "{copies} paths copied");
    assert!(docker.contains("cargo build --release --locked --bin authzd"));
    assert!(docker.contains("COPY --from=build /src/target/release/authzd /usr/local/bin/authzd"));
    let user = docker
        .lines()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(
        !user.contains(" 0") && !user.contains("root"),
        "runs as non-root: {user}"
    );
    let d = defaults();
    let expose = docker.lines().find(|l| l.starts_with("EXPOSE ")).unwrap();
    for port in [d.grpc_addr.port(), d.http_addr.port()] {
        assert!(expose.contains(&port.to_string()), "{expose} lacks {port}");
    }
    // The entrypoint's arguments, and every Kubernetes container's, parse with the real binary.
    let json_array =
        |l: &str| -> Vec<String> { serde_json::from_str(l.split_once(' ').unwrap().1).unwrap() };
    let entry = json_array(
        docker
            .lines()
            .find(|l| l.starts_with("ENTRYPOINT "))
            .unwrap(),
    );
    assert_eq!(entry, ["/usr/local/bin/authzd"]);
    let mut commands = vec![json_array(
        docker.lines().find(|l| l.starts_with("CMD ")).unwrap(),
    )];
    for file in ["kubernetes/authzd.yaml", "kubernetes/fleet.yaml"] {
        let text = std::fs::read_to_string(example(file)).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap();
            for c in find(&v, "containers")
                .into_iter()
                .chain(find(&v, "initContainers"))
            {
                for c in c.as_sequence().unwrap() {
                    if c["image"].as_str().is_some_and(|i| i.contains("authzd")) {
                        let args = c["args"].as_sequence().unwrap();
                        commands.push(
                            args.iter()
                                .map(|a| a.as_str().unwrap().to_string())
                                .collect(),
                        );
                    }
                }
            }
        }
    }
    assert!(commands.len() >= 4, "{commands:?}");
    for args in &commands {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    match std::process::Command::new("hadolint")
        .arg(root.join("Dockerfile"))
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "hadolint: {}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => eprintln!("SKIPPED: hadolint is not installed (.ci/run installs it from PyPI)"),
    }
}
