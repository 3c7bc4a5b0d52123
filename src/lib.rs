//! authzd: a policy decision service for HTTP APIs protected by OAuth 2.0 /
//! OpenID Connect JWTs. It verifies the token against the issuer's JWKS,
//! enforces coarse route scopes the way API Gateway does, and decides with a
//! Casbin model over (subject, resource, action). `docs/` is the users'
//! reference and `README.md` the way in.
//!
//! # Layout
//!
//! - [`config`]: typed `authzd.toml` and its validation; errors name file, key and value.
//! - [`token`]: JWT parsing and verification; [`token::jwks`] fetches and caches
//!   issuer keys; [`token::claims`] reads claims through JSON Pointers;
//!   [`token::verified`] caches verified tokens by SHA-256.
//! - [`roles`]: looked-up roles from an HTTP directory, cached in moka.
//! - [`cors`]: what a CORS preflight is and authzd's answer to it (pure).
//! - [`request`]: the canonical form of what the upstream will execute: path and method (pure).
//! - [`routes`]: the route table, API Gateway path syntax, most-specific match (pure).
//! - [`policy`]: Casbin behind our own type, per-request roles as a thread-local
//!   overlay; [`policy::snapshot`] is one consistent revision,
//!   [`policy::reload`] swaps revisions atomically and watches the files,
//!   [`policy::cases`] runs policy test cases (`authzd test`),
//!   [`policy::fast`] is the indexed evaluator with casbin-rs semantics.
//! - [`decision`]: THE pipeline (`docs/pipeline.md`) — pure, synchronous, clock passed in.
//! - [`authorizer`]: the async driver: live snapshot, key fetches, ids, logging, metrics.
//! - [`transport`]: adapters only — [`transport::grpc`] (`authzd.v1`, health,
//!   reflection), [`transport::envoy`] (ext_authz gRPC v3 and HTTP mode),
//!   [`transport::forward_auth`] (nginx, Traefik) and [`transport::http`]
//!   (JSON API, health, metrics); [`transport::HttpAnswer`] is §2's HTTP table.
//! - [`audit`]: the decision record and its off-path writer.
//! - [`metrics`]: Prometheus counters and histograms, declared once.
//! - [`devtoken`]: minting development tokens and JWKS (`authzd token`).
//! - [`probe`]: `authzd validate --online`, issuer discovery and keys as seen from here.

pub mod audit;
pub mod authorizer;
pub mod config;
pub mod cors;
pub mod decision;
pub mod devtoken;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod reason;
pub mod request;
pub mod roles;
pub mod routes;
pub mod server;
pub mod token;
pub mod transport;

/// Generated `authzd.v1` protobuf types and gRPC service.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("authzd.v1");

    /// Encoded descriptor set for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("authzd_descriptor");
}
