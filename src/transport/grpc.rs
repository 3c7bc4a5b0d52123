//! gRPC: `authzd.v1.Authorizer`, `grpc.health.v1.Health` and server reflection on one port.

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::{
    audit::Source,
    authorizer::{Authorizer, BatchItem},
    pb::{self, authorizer_server::AuthorizerServer},
};

struct Service(Arc<Authorizer>);

#[tonic::async_trait]
impl pb::authorizer_server::Authorizer for Service {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let m = request.into_inner();
        let req = super::check_request(&m).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let outcome = self.0.check(&req, Source::Grpc).await;
        Ok(Response::new(super::check_response(&outcome)))
    }

    async fn check_batch(
        &self,
        request: Request<pb::CheckBatchRequest>,
    ) -> Result<Response<pb::CheckBatchResponse>, Status> {
        let m = request.into_inner();
        let items = batch_items(&m.items).map_err(Status::invalid_argument)?;
        let outcomes = self
            .0
            .check_batch(
                Some(m.token.as_str()).filter(|t| !t.is_empty()),
                super::header(&m.headers, "authorization"),
                Some(m.domain.as_str()).filter(|d| !d.is_empty()),
                &items,
                Source::Grpc,
            )
            .await;
        Ok(Response::new(pb::CheckBatchResponse {
            results: outcomes.iter().map(|o| super::check_response(o)).collect(),
        }))
    }
}

/// Most items one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// Validates batch items (shared with the JSON API).
pub fn batch_items(items: &[pb::CheckBatchItem]) -> Result<Vec<BatchItem>, String> {
    if items.len() > MAX_BATCH {
        return Err(format!(
            "a batch holds at most {MAX_BATCH} items, this one has {}",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            if it.resource.is_empty() || it.action.is_empty() {
                Err(format!(
                    "items[{i}]: `resource` and `action` are both required"
                ))
            } else {
                Ok(BatchItem {
                    resource: it.resource.clone(),
                    action: it.action.clone(),
                })
            }
        })
        .collect()
}

pub async fn serve(
    listener: TcpListener,
    authorizer: Arc<Authorizer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AuthorizerServer<Service>>().await;
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
            super::envoy::EnvoyGrpc(Arc::clone(&authorizer)),
        ))
        .add_service(AuthorizerServer::new(Service(authorizer)))
        .prepare()
        .into_axum_router();
    super::conn::serve(listener, router, limits, shutdown).await
}
