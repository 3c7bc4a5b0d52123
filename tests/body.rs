//! Method overrides in the request body (docs/security.md, "Method overrides
//! in the body"): Rails, Laravel and Spring run `POST` + `_method=DELETE` as a
//! `DELETE`. Wherever the body reaches authzd — Envoy ext_authz gRPC (`body`
//! and `raw_body`, protos as Envoy sends them) and HTTP service mode — such a
//! field is refused by default, and decided as well under `authorize`.

// Helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, check_response::HttpResponse};
use serde_json::json;

const ISS: &str = "https://rsa.example";

/// `regular` may comment (`POST /docs/:id`); only `admin` may `DELETE`.
const POLICY: &str =
    "p, regular, /docs/:id, POST\np, admin, /docs/:id, DELETE\np, admin, /docs/:id, POST\n";

async fn start(request: &str) -> (Env, Running, String) {
    let (env, rsa) = rsa_env(POLICY, "");
    let text = std::fs::read_to_string(env.config()).unwrap();
    env.write("authzd.toml", &format!("{text}\n[request]\n{request}\n"));
    let srv = Running::start(&env.config()).await;
    let mut c = claims(ISS, "bob");
    c["cognito:groups"] = json!(["regular"]);
    (env, srv, format!("Bearer {}", token(&rsa, &c)))
}

const FORM: &str = "application/x-www-form-urlencoded";

/// How a body reaches authzd from Envoy.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// gRPC, `attributes.request.http.body` (the default).
    GrpcBody,
    /// gRPC, `raw_body` (`pack_as_bytes: true`, as the example sets).
    GrpcRawBody,
    /// HTTP service mode: the forwarded request's own body.
    Http,
}

const ALL: [Via; 3] = [Via::GrpcBody, Via::GrpcRawBody, Via::Http];

/// The status the client would get: 200 means forwarded.
async fn ask(srv: &Running, via: Via, auth: &str, ct: &str, body: &[u8], partial: bool) -> u16 {
    let mut headers = vec![("authorization", auth), ("content-type", ct)];
    if partial {
        headers.push(("x-envoy-auth-partial-body", "true"));
    }
    match via {
        Via::GrpcBody | Via::GrpcRawBody => {
            let mut req: CheckRequest = envoy_request("POST", "/docs/1", &headers);
            let http = req
                .attributes
                .as_mut()
                .unwrap()
                .request
                .as_mut()
                .unwrap()
                .http
                .as_mut()
                .unwrap();
            http.size = body.len() as i64;
            if matches!(via, Via::GrpcBody) {
                http.body = String::from_utf8_lossy(body).into_owned();
            } else {
                http.raw_body = body.to_vec();
            }
            match envoy_check(srv, req).await.http_response {
                Some(HttpResponse::OkResponse(_)) => 200,
                Some(HttpResponse::DeniedResponse(d)) => d.status.unwrap().code as u16,
                other => panic!("{other:?}"),
            }
        }
        Via::Http => {
            let mut r = reqwest::Client::new()
                .post(srv.url("/ext_authz/docs/1"))
                .body(body.to_vec());
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.send().await.unwrap().status().as_u16()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_field_override_is_refused_wherever_the_body_arrives() {
    let (env, srv, bob) = start("").await;
    for via in ALL {
        // The ordinary comment passes: bodies cost nothing when they hold no override.
        assert_eq!(
            ask(&srv, via, &bob, FORM, b"comment=nice", false).await,
            200,
            "{via:?}"
        );
        for body in [
            "_method=DELETE",
            "comment=x&_method=DELETE",
            "_method=delete",
            "%5Fmethod=DELETE",
            "%5fmethod=DELETE",
            "comment=x;_method=DELETE",
            ".method=DELETE",
            "_method[]=DELETE",
            "_method=POST&_method=DELETE",
        ] {
            let status = ask(&srv, via, &bob, FORM, body.as_bytes(), false).await;
            assert_eq!(status, 400, "BYPASS {via:?}: {body}");
        }
        let multipart = "--b0undary\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nx\r\n--b0undary\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b0undary--\r\n";
        let status = ask(
            &srv,
            via,
            &bob,
            "multipart/form-data; boundary=b0undary",
            multipart.as_bytes(),
            false,
        )
        .await;
        assert_eq!(status, 400, "BYPASS {via:?}: multipart");
        // Laravel reads `_method` from JSON input too.
        let status = ask(
            &srv,
            via,
            &bob,
            "application/json",
            br#"{"comment":"x","_method":"DELETE"}"#,
            false,
        )
        .await;
        assert_eq!(status, 400, "BYPASS {via:?}: JSON");
        // A form whose text only mentions the field is not an override.
        assert_eq!(
            ask(&srv, via, &bob, FORM, b"note=_method%3DDELETE", false).await,
            200,
            "{via:?}"
        );
        assert_eq!(
            ask(
                &srv,
                via,
                &bob,
                "application/json",
                br#"{"note":"_method=DELETE"}"#,
                false
            )
            .await,
            200
        );
        // Not a form to any framework: no override.
        assert_eq!(
            ask(&srv, via, &bob, "text/plain", b"_method=DELETE", false).await,
            200,
            "{via:?}"
        );
        // A cut form could hide the field past the cut: refused; a cut image upload is fine.
        assert_eq!(
            ask(&srv, via, &bob, FORM, b"comment=aaaa", true).await,
            400,
            "{via:?}"
        );
        assert_eq!(
            ask(&srv, via, &bob, "image/png", b"\x89PNG", true).await,
            200,
            "{via:?}"
        );
    }
    srv.stop().await;
    let log = env.log_lines();
    assert!(log.iter().any(|l| {
        l["detail"]
            .as_str()
            .unwrap()
            .contains("body field `_method`")
    }));
    assert!(
        log.iter()
            .any(|l| l["detail"].as_str().unwrap().contains("cut short"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_mode_decides_the_body_method_too() {
    let (_env, srv, bob) = start("method_override = \"authorize\"").await;
    for via in ALL {
        // bob may POST but not DELETE: the POST that would run as DELETE is denied.
        assert_eq!(
            ask(&srv, via, &bob, FORM, b"_method=DELETE", false).await,
            403,
            "BYPASS {via:?}"
        );
        // POST as POST is allowed for both methods.
        assert_eq!(
            ask(&srv, via, &bob, FORM, b"_method=POST", false).await,
            200,
            "{via:?}"
        );
        // Disagreeing fields and array forms are refused, never guessed.
        assert_eq!(
            ask(&srv, via, &bob, FORM, b"_method=POST&_method=DELETE", false).await,
            400
        );
        assert_eq!(
            ask(&srv, via, &bob, FORM, b"_method[]=POST", false).await,
            400
        );
    }
    srv.stop().await;
}

/// A body that would be larger than HTTP mode reads is treated as cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_form_in_http_mode_is_refused() {
    let (_env, srv, bob) = start("").await;
    let mut big = b"comment=".to_vec();
    big.resize(2 << 20, b'a');
    assert_eq!(ask(&srv, Via::Http, &bob, FORM, &big, false).await, 400);
    srv.stop().await;
}
