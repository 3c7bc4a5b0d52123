//! AWS Lambda authorizer (`authzd lambda`, `docs/lambda.md`): API Gateway's
//! custom authorizer, with the same config, pipeline, caches and decision
//! log as the server. [`event`] reads the event, the [`Authorizer`] decides,
//! [`answer`] writes API Gateway's answer; this module speaks the Lambda
//! Runtime API (next invocation, response, error, init error).
//!
//! The Runtime API client is written here on reqwest rather than taken from
//! `lambda_runtime`: the protocol is four HTTP calls, and authzd must report
//! a configuration that does not load as an *init* error with the same
//! message `authzd validate` prints, which `lambda_runtime` has no call for.

pub mod answer;
pub mod event;
pub mod route_cache;

use std::{path::Path, sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::{
    audit::{self, Output, Source},
    authorizer::Authorizer,
    config::{Config, LambdaPolicyScope},
    decision::{Request, Target},
    policy::reload::PolicyStore,
    request::METHOD_OVERRIDE_HEADERS,
    token::jwks::Jwks,
};
use answer::Reply;
use route_cache::RouteSets;

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error(
        "AWS_LAMBDA_RUNTIME_API is not set: `authzd lambda` runs inside AWS Lambda (or a Runtime API emulator)"
    )]
    NoRuntimeApi,
    #[error("cannot load the configuration: {0}")]
    Config(String),
    #[error("Lambda Runtime API at `{api}`: {message}")]
    Runtime { api: String, message: String },
}

/// What a config needs to answer as a Lambda authorizer; the message is the
/// init error's.
pub fn check_config(c: &Config) -> Result<(), String> {
    if c.lambda.policy_scope == LambdaPolicyScope::Routes && c.routes.is_empty() {
        return Err(format!(
            "invalid config `{}`: key `lambda.policy_scope`: \"routes\" answers with the routes a caller may call, and this config has no `[[route]]`; add the API's routes, or set policy_scope = \"request\" with an authorizer TTL of 0",
            c.source.display()
        ));
    }
    Ok(())
}

/// What `authzd validate` says about running this config as a Lambda authorizer.
pub fn notes(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(e) = check_config(c) {
        out.push(format!("`authzd lambda` would refuse this config: {e}"));
    }
    match (c.lambda.policy_scope, c.lambda.response) {
        (LambdaPolicyScope::Request, _) => out.push(
            "policy_scope = \"request\" answers for the current route only: set the authorizer's result TTL to 0, or add the route ($context.routeKey / method.request.path) to its identity sources, or a cached answer is replayed for other routes".into(),
        ),
        (_, crate::config::LambdaResponse::Simple) => out.push(
            "response = \"simple\" cannot list routes: with an HTTP API's simple responses, set the authorizer's result TTL to 0 or add $context.routeKey to its identity sources".into(),
        ),
        _ => out.push(format!(
            "policy_scope = \"routes\": cached answers list the routes a caller may call ({} routes), safe to cache by token",
            c.routes.len()
        )),
    }
    out
}

/// One invocation from `GET /runtime/invocation/next`.
struct Invocation {
    id: String,
    event: Value,
}

/// The Runtime API client.
struct Runtime {
    api: String,
    base: String,
    http: reqwest::Client,
}

impl Runtime {
    fn new(api: &str) -> Runtime {
        Runtime {
            api: api.to_string(),
            base: format!("http://{api}/2018-06-01/runtime"),
            http: reqwest::Client::new(),
        }
    }

    fn fail(&self, message: impl std::fmt::Display) -> LambdaError {
        LambdaError::Runtime {
            api: self.api.clone(),
            message: message.to_string(),
        }
    }

    /// Waits for the next invocation (a long poll: no timeout).
    async fn next(&self) -> Result<Invocation, LambdaError> {
        let resp = self
            .http
            .get(format!("{}/invocation/next", self.base))
            .send()
            .await
            .map_err(|e| self.fail(e))?;
        if !resp.status().is_success() {
            return Err(self.fail(format!("next invocation answered {}", resp.status())));
        }
        let id = resp
            .headers()
            .get("lambda-runtime-aws-request-id")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| self.fail("next invocation has no Lambda-Runtime-Aws-Request-Id"))?;
        let body = resp.bytes().await.map_err(|e| self.fail(e))?;
        // An event that is not JSON is answered as an error, like any bad event.
        let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(Invocation { id, event })
    }

    async fn post(
        &self,
        url: String,
        body: Value,
        error_type: Option<&str>,
    ) -> Result<(), LambdaError> {
        let mut req = self
            .http
            .post(url)
            .timeout(Duration::from_secs(5))
            .json(&body);
        if let Some(t) = error_type {
            req = req.header("lambda-runtime-function-error-type", t);
        }
        let resp = req.send().await.map_err(|e| self.fail(e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.fail(format!("answered {}", resp.status())))
        }
    }

    async fn reply(&self, id: &str, reply: Reply) -> Result<(), LambdaError> {
        match reply {
            Reply::Answer(v) => {
                self.post(format!("{}/invocation/{id}/response", self.base), v, None)
                    .await
            }
            Reply::Fail {
                error_type,
                message,
            } => {
                let body = json!({"errorMessage": message, "errorType": error_type});
                self.post(
                    format!("{}/invocation/{id}/error", self.base),
                    body,
                    Some(error_type),
                )
                .await
            }
        }
    }

    async fn init_error(&self, message: &str) -> Result<(), LambdaError> {
        let body = json!({"errorMessage": message, "errorType": "ConfigError"});
        self.post(
            format!("{}/init/error", self.base),
            body,
            Some("Runtime.ConfigError"),
        )
        .await
    }
}

/// Serves invocations until the Runtime API goes away or SIGTERM arrives.
pub async fn run(config: &Path) -> Result<(), LambdaError> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| LambdaError::NoRuntimeApi)?;
    let rt = Runtime::new(&api);
    let loaded = crate::policy::follow::start(config)
        .await
        .map_err(|e| e.to_string())
        .and_then(|s| check_config(&s.0.config).map(|()| s));
    let (snapshot, status, client) = match loaded {
        Ok(s) => s,
        Err(message) => {
            tracing::error!(%message, "configuration does not load; reporting an init error");
            rt.init_error(&message).await?;
            return Err(LambdaError::Config(message));
        }
    };
    for w in snapshot.warnings() {
        tracing::warn!("{w}");
    }
    // CloudWatch reads stdout: the decision log goes there unless it is off.
    let output = match snapshot.config.decision_log.output.as_str() {
        "off" => Output::Off,
        _ => Output::Stdout,
    };
    let (sink, writer) = audit::spawn(output, snapshot.config.decision_log.buffer, None)
        .map_err(|e| LambdaError::Config(e.to_string()))?;
    tracing::info!(revision = %snapshot.revision, routes = snapshot.routes.len(), evaluator = %snapshot.policy.evaluator, "authzd lambda ready");
    let config_tracing = snapshot.config.tracing.clone();
    let store = Arc::new(PolicyStore::following(snapshot, config, status));
    // Keys, verified tokens and looked-up roles live as long as this warm instance.
    let (spans, exporter) = crate::spans::SpanSink::start(&config_tracing)
        .map_err(|e| LambdaError::Config(e.to_string()))?;
    let authorizer = Authorizer::new(store, Arc::new(Jwks::new()), sink).with_spans(spans);
    let result = serve(&rt, &authorizer, tokio::sync::Mutex::new(client)).await;
    drop(authorizer);
    if let Some(w) = writer {
        let _ = tokio::time::timeout(Duration::from_secs(2), w).await;
    }
    if let Some(e) = exporter {
        let _ = tokio::time::timeout(Duration::from_secs(2), e).await;
    }
    result
}

async fn serve(
    rt: &Runtime,
    authorizer: &Authorizer,
    store_client: tokio::sync::Mutex<Option<crate::policy::source::Client>>,
) -> Result<(), LambdaError> {
    let terminate = terminated();
    tokio::pin!(terminate);
    // Route sets of repeat callers, for as long as this instance is warm.
    let sets = RouteSets::default();
    loop {
        let inv = tokio::select! {
            () = &mut terminate => {
                tracing::info!("SIGTERM: stopping");
                return Ok(());
            }
            inv = rt.next() => inv?,
        };
        // A frozen instance runs no background task: a store is read here,
        // at most every `poll_secs`, before the invocation is decided.
        crate::policy::follow::refresh_if_due(&authorizer.store, &store_client).await;
        let reply = handle(authorizer, &inv.event, &sets).await;
        rt.reply(&inv.id, reply).await?;
        // The answer is out; export this invocation's span before the
        // sandbox may be frozen (a frozen instance runs no background task).
        authorizer.spans().flush().await;
    }
}

async fn terminated() {
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}

/// One invocation: the event, the pipeline, the answer.
pub async fn handle(authorizer: &Authorizer, raw: &Value, sets: &RouteSets) -> Reply {
    let event = match event::parse(raw) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "authorizer event refused");
            return Reply::Fail {
                error_type: "InvalidEvent",
                message: e.to_string(),
            };
        }
    };
    if event.method != event.arn.method {
        return Reply::Fail {
            error_type: "InvalidEvent",
            message: format!(
                "the event's method `{}` is not its ARN's `{}`",
                crate::token::clip(&event.method),
                crate::token::clip(&event.arn.method)
            ),
        };
    }
    let req = Request {
        target: Target::Http {
            method: &event.method,
            path: &event.path,
        },
        token: None,
        authorization: event.header("authorization"),
        origin: event.header("origin"),
        access_control_request_method: event.header("access-control-request-method"),
        answers_preflight: false,
        domain: None,
        method_overrides: METHOD_OVERRIDE_HEADERS.map(|h| event.header(h)),
        body: None,
        traceparent: event.header("traceparent"),
        tracestate: event.header("tracestate"),
    };
    let snap = authorizer.store.load();
    let outcome = authorizer.check(&req, Source::Lambda).await;
    let principal = match answer::principal_of(&outcome) {
        Some(p) => Some(p),
        // Decided before the token was read (a public route, a refused
        // request): the cached answer still needs this caller's routes.
        None if outcome.decision.status != 401 => authorizer.principal_of_request(&req).await,
        None => None,
    };
    answer::reply(&snap, &event, &outcome, principal.as_ref(), &|s, e, p| {
        sets.get(s, e, p)
    })
}
