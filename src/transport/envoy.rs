//! Envoy `ext_authz`: the gRPC v3 `Authorization/Check` service and the HTTP
//! service mode (`/ext_authz/*`). Both map Envoy's view of the request into
//! the pipeline and the [`HttpAnswer`] back; neither re-implements a step.
//!
//! Edge cases: header names are matched case-insensitively; when Envoy sends
//! `header_map` (`encode_raw_headers`) instead of `headers`, repeated headers
//! are joined with `,` exactly as Envoy itself joins them in `headers`, so two
//! `Authorization` headers can never pick one token silently (they fail to
//! parse). An empty `method`/`path` falls back to the `:method`/`:path`
//! pseudo-headers. A request without `attributes.request.http` is answered
//! with a deny (never a gRPC error, which `failure_mode_allow` could turn
//! into an allow).

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use axum::{
    extract::{Request as AxumRequest, State},
    http::{HeaderName, HeaderValue},
    response::Response,
};
use envoy_types::{
    ext_authz::v3::pb::{
        Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
        HttpResponse, HttpStatus, OkHttpResponse,
    },
    pb::{
        envoy::{
            config::core::v3::{HeaderValue as EnvoyHeader, HeaderValueOption},
            service::auth::v3::attribute_context::HttpRequest,
        },
        google::rpc,
    },
};
use tonic::{Request, Response as GrpcResponse, Status};

use super::{
    answer::{HttpAnswer, to_http_response},
    ask::{check_headers, header},
};
use crate::{
    audit::Source,
    authorizer::Authorizer,
    decision::{self, Target},
    request::{METHOD_OVERRIDE_HEADERS, body::Body as RequestBody},
};

/// `envoy.service.auth.v3.Authorization`.
pub struct EnvoyGrpc(pub Arc<Authorizer>);

/// Set by Envoy when `with_request_body` cut the body at `max_request_bytes`.
const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// The most body HTTP service mode reads; a longer one counts as cut.
const MAX_HTTP_BODY: usize = 1 << 20;

fn is_partial(header: Option<&str>) -> bool {
    header.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// gRPC status codes Envoy reads from `CheckResponse.status`.
const OK: i32 = 0;
const INVALID_ARGUMENT: i32 = 3;
const PERMISSION_DENIED: i32 = 7;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

#[tonic::async_trait]
impl Authorization for EnvoyGrpc {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<GrpcResponse<CheckResponse>, Status> {
        let m = request.into_inner();
        let Some(http) = m
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
        else {
            return Ok(GrpcResponse::new(malformed(
                "CheckRequest has no attributes.request.http",
            )));
        };
        let headers = Headers::of(http);
        let method = non_empty(&http.method).or_else(|| headers.get(":method"));
        let path = non_empty(&http.path).or_else(|| headers.get(":path"));
        let (Some(method), Some(path)) = (method, path) else {
            return Ok(GrpcResponse::new(malformed(
                "CheckRequest has no HTTP method or path",
            )));
        };
        let authorization = headers.get("authorization");
        let origin = headers.get("origin");
        let acrm = headers.get("access-control-request-method");
        let overrides = METHOD_OVERRIDE_HEADERS.map(|name| headers.get(name));
        let content_type = headers.get("content-type");
        let traceparent = headers.get("traceparent");
        let tracestate = headers.get("tracestate");
        let partial = headers.get(PARTIAL_BODY_HEADER);
        // `with_request_body`: `raw_body` with `pack_as_bytes`, else `body`.
        let bytes = if http.raw_body.is_empty() {
            http.body.as_bytes()
        } else {
            &http.raw_body[..]
        };
        let req = decision::Request {
            target: Target::Http {
                method: &method,
                path: &path,
            },
            token: None,
            authorization: authorization.as_deref(),
            origin: origin.as_deref(),
            access_control_request_method: acrm.as_deref(),
            answers_preflight: true,
            domain: None,
            method_overrides: [0, 1, 2].map(|i| overrides[i].as_deref()),
            body: Some(RequestBody {
                content_type: content_type.as_deref(),
                bytes,
                partial: is_partial(partial.as_deref()),
            }),
            traceparent: traceparent.as_deref(),
            tracestate: tracestate.as_deref(),
        };
        let outcome = self.0.check(&req, Source::EnvoyGrpc).await;
        let answer = HttpAnswer::of(&outcome);
        let spoofed = answer.spoofed(headers.names());
        Ok(GrpcResponse::new(to_check_response(answer, spoofed)))
    }
}

fn non_empty(s: &str) -> Option<Cow<'_, str>> {
    (!s.is_empty()).then_some(Cow::Borrowed(s))
}

/// Envoy's request headers, from `headers` or (with `encode_raw_headers`) `header_map`.
struct Headers<'a> {
    map: &'a HashMap<String, String>,
    raw: &'a [EnvoyHeader],
}

impl<'a> Headers<'a> {
    fn of(http: &'a HttpRequest) -> Self {
        Headers {
            map: &http.headers,
            raw: http
                .header_map
                .as_ref()
                .map(|m| m.headers.as_slice())
                .unwrap_or(&[]),
        }
    }

    fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        if let Some(v) = header(self.map, name) {
            return Some(Cow::Borrowed(v));
        }
        let mut values = self
            .raw
            .iter()
            .filter(|h| h.key.eq_ignore_ascii_case(name))
            .map(|h| {
                if h.raw_value.is_empty() {
                    Cow::Borrowed(h.value.as_str())
                } else {
                    String::from_utf8_lossy(&h.raw_value)
                }
            });
        let first = values.next()?;
        Some(values.fold(first, |acc, v| Cow::Owned(format!("{acc},{v}"))))
    }

    fn names(&self) -> impl Iterator<Item = &'a str> {
        self.map
            .keys()
            .map(String::as_str)
            .chain(self.raw.iter().map(|h| h.key.as_str()))
    }
}

fn header_option(name: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(EnvoyHeader {
            key: name.to_string(),
            value,
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

/// The one mapping from an answer to Envoy's `CheckResponse`.
fn to_check_response(answer: HttpAnswer, spoofed: Vec<String>) -> CheckResponse {
    let headers = answer
        .headers
        .into_iter()
        .map(|(k, v)| header_option(k, v))
        .collect();
    if answer.status == 200 {
        return CheckResponse {
            status: Some(rpc::Status {
                code: OK,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers,
                headers_to_remove: spoofed,
                ..Default::default()
            })),
            ..Default::default()
        };
    }
    let code = match answer.status {
        400 => INVALID_ARGUMENT,
        401 => UNAUTHENTICATED,
        503 => UNAVAILABLE,
        _ => PERMISSION_DENIED,
    };
    CheckResponse {
        status: Some(rpc::Status {
            code,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(answer.status),
            }),
            headers,
            body: answer.body.to_string(),
        })),
        ..Default::default()
    }
}

/// A request Envoy should never send: denied (403), with the reason in the gRPC message.
fn malformed(why: &str) -> CheckResponse {
    tracing::warn!(why, "malformed ext_authz CheckRequest denied");
    CheckResponse {
        status: Some(rpc::Status {
            code: INVALID_ARGUMENT,
            message: why.to_string(),
            ..Default::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: 403 }),
            headers: vec![header_option("content-type", "application/json".into())],
            body: r#"{"message":"Forbidden"}"#.to_string(),
        })),
        ..Default::default()
    }
}

/// Envoy ext_authz HTTP service mode: `{prefix}/<original path>`, any method.
pub async fn http_mode(State(app): State<Arc<Authorizer>>, req: AxumRequest) -> Response {
    let prefix = app.store.load().config.server.ext_authz_prefix.clone();
    let uri = req.uri();
    let full = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let rest = full.strip_prefix(prefix.as_str()).unwrap_or(full);
    let path = if rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    let method = req.method().as_str().to_string();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    // The forwarded body (`with_request_body`); one past the cap counts as cut.
    let (bytes, cut) = match axum::body::to_bytes(body, MAX_HTTP_BODY).await {
        Ok(b) => (b, false),
        Err(_) => (Default::default(), true),
    };
    let text = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let body = RequestBody {
        content_type: text("content-type"),
        bytes: &bytes,
        partial: cut || is_partial(text(PARTIAL_BODY_HEADER)),
    };
    let outcome = check_headers(
        &app,
        headers,
        Target::Http {
            method: &method,
            path: &path,
        },
        Source::EnvoyHttp,
        true,
        Some(body),
    )
    .await;
    let answer = HttpAnswer::of(&outcome);
    let spoofed = answer.spoofed(headers.keys().map(HeaderName::as_str));
    let mut resp = to_http_response(answer);
    if !spoofed.is_empty()
        && let Ok(v) = HeaderValue::from_str(&spoofed.join(","))
    {
        // Envoy removes these from the upstream request (HTTP service mode's equivalent of headers_to_remove).
        resp.headers_mut()
            .insert("x-envoy-auth-headers-to-remove", v);
    }
    resp
}
