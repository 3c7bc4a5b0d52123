//! The two ports: which transport answers what. gRPC carries `authzd.v1`,
//! Envoy ext_authz v3, health and reflection; HTTP carries the JSON API,
//! Envoy's HTTP service mode, forward auth, health, readiness, policy status
//! and metrics. Both run under [`super::conn`]'s connection limits.

use std::{future::Future, sync::Arc};

use axum::{
    Json, Router,
    routing::{any, get, post},
};
use serde_json::json;
use tokio::net::TcpListener;

use crate::{
    authorizer::Authorizer,
    pb::authorizer_server::AuthorizerServer,
    transport::{envoy, forward_auth, grpc, http},
};

/// Serves the gRPC port until `shutdown`.
pub async fn grpc(
    listener: TcpListener,
    authorizer: Arc<Authorizer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AuthorizerServer<grpc::Service>>()
        .await;
    // Both reflection versions: grpcurl and older tools still ask for v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut routes = tonic::service::Routes::new(health_service);
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => routes = routes.add_service(v1).add_service(v1alpha),
        (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "server reflection unavailable"),
    }
    let limits = super::conn::Limits::of(&authorizer.store.load().config.server, true);
    let router = routes
        .add_service(envoy_types::ext_authz::v3::pb::AuthorizationServer::new(
            envoy::EnvoyGrpc(Arc::clone(&authorizer)),
        ))
        .add_service(AuthorizerServer::new(grpc::Service(authorizer)))
        .prepare()
        .into_axum_router();
    super::conn::serve(listener, router, limits, shutdown).await
}

/// The HTTP application; also used directly by tests (`oneshot`).
pub fn router(authorizer: Arc<Authorizer>) -> Router {
    let prefix = authorizer
        .store
        .load()
        .config
        .server
        .ext_authz_prefix
        .clone();
    Router::new()
        .route(&prefix, any(envoy::http_mode))
        .route(&format!("{prefix}/"), any(envoy::http_mode))
        .route(&format!("{prefix}/{{*path}}"), any(envoy::http_mode))
        .route("/v1/forward-auth", any(forward_auth::forward_auth))
        .route("/v1/check", post(http::check))
        .route("/v1/check/batch", post(http::check_batch))
        .route("/v1/policy", get(http::policy))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(http::metrics))
        .with_state(authorizer)
}

/// Serves the HTTP port until `shutdown`.
pub async fn http(
    listener: TcpListener,
    authorizer: Arc<Authorizer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = super::conn::Limits::of(&authorizer.store.load().config.server, false);
    super::conn::serve(listener, router(authorizer), limits, shutdown).await
}
