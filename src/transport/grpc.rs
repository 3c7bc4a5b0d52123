//! gRPC: `authzd.v1.Authorizer`, `grpc.health.v1.Health` and server reflection on one port.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    answer::check_response,
    ask::{TRACE_HEADERS, batch_items, check_request, header},
};
use crate::{
    audit::Source,
    authorizer::Authorizer,
    pb::{self},
};

/// `authzd.v1.Authorizer`.
pub struct Service(pub Arc<Authorizer>);

#[tonic::async_trait]
impl pb::authorizer_server::Authorizer for Service {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        // The call's own trace context (gRPC metadata) stands in for one the message lacks.
        let context = TRACE_HEADERS.map(|name| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        let mut m = request.into_inner();
        if header(&m.headers, "traceparent").is_none() {
            for (name, value) in TRACE_HEADERS.into_iter().zip(context) {
                if let Some(v) = value {
                    m.headers.insert(name.into(), v);
                }
            }
        }
        let req = check_request(&m).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let outcome = self.0.check(&req, Source::Grpc).await;
        Ok(Response::new(check_response(&outcome)))
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
                header(&m.headers, "authorization"),
                Some(m.domain.as_str()).filter(|d| !d.is_empty()),
                &items,
                Source::Grpc,
            )
            .await;
        Ok(Response::new(pb::CheckBatchResponse {
            results: outcomes.iter().map(|o| check_response(o)).collect(),
        }))
    }
}
