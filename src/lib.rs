//! authzd: a policy decision service for HTTP APIs protected by OAuth 2.0 /
//! OpenID Connect JWTs. It verifies the token against the issuer's JWKS,
//! enforces coarse route scopes the way API Gateway does, and decides with a
//! Casbin model over (subject, resource, action). `docs/` is the users'
//! reference and `README.md` the way in.
//!
//! # Layout
//!
//! Floors, bottom up. A module imports only from floors below its own (and
//! its own folder); `tests/architecture.rs` checks this against the code's
//! `use` lines: no file-level import circle, `config` on leaves only,
//! transports that never import each other, nothing importing the server.
//!
//! 0. Leaves (import nothing from the crate): [`reason`] (the reason codes
//!    and their status), [`bounded`] (how much of a client-supplied value
//!    is kept), [`metrics`] (counters and histograms, declared
//!    once), [`telemetry`] (W3C `traceparent` and `tracestate` in), `token::alg` (the JOSE algorithm names), `token::claims` (JSON
//!    Pointers into claims), `policy::source::url` (store URLs, redacted).
//! 1. [`config`]: THE ground floor — typed `authzd.toml` and key-level checks;
//!    errors name file, key and value.
//! 2. Pure pieces over the config: [`token`] (JWT parsing and verification;
//!    [`token::jwks`] fetches and caches keys, [`token::verified`] caches
//!    verified tokens), [`request`] (the canonical form of what the upstream
//!    executes: path, method, and overrides in headers, query and
//!    [`request::body`]), [`cors`] (what a CORS preflight is and authzd's
//!    answer), [`routes`] (the route table, API Gateway syntax), [`roles`]
//!    (the [`roles::Principal`] and looked-up roles).
//! 3. [`policy`]: Casbin behind our own type. [`policy::query`] is the
//!    question and answer both evaluators share; [`policy::lines`] reads
//!    the text line by line; `policy::check` refuses a model or line whose
//!    text cannot mean what it says; [`policy::change`] is a change to the lines
//!    (added, removed), [`policy::delta`] finds one between two texts;
//!    [`policy::indexed`] is the indexed evaluator (a folder, one idea per
//!    file; it applies changes incrementally); [`policy::source`] reads
//!    policy text, or changed rows, from a file or a shared store;
//!    [`policy::snapshot`] is one consistent revision; [`policy::reload`]
//!    swaps revisions atomically and watches files; [`policy::follow`]
//!    reads a store at start and follows it; [`policy::cases`] runs policy
//!    tests.
//! 4. [`decision`]: THE pipeline (`docs/pipeline.md`) — pure, synchronous,
//!    clock passed in; `decision::authn` is step 4 (token to principal).
//! 5. [`audit`] (the decision record and its off-path writer), [`spans`]
//!    (a span per decision for an OTLP collector, off the request path),
//!    [`explorer`] (the recent decisions and per-minute counts the
//!    explorer's pages read) and [`authorizer`] (the async driver: live
//!    snapshot, key and role fetches, ids, log, spans, explorer, metrics).
//! 6. [`transport`]: adapters only, none importing another —
//!    [`transport::grpc`] (`authzd.v1`), [`transport::envoy`] (ext_authz gRPC
//!    v3 and HTTP mode), [`transport::forward_auth`] (nginx, Traefik),
//!    [`transport::http`] (JSON API, health, policy status, metrics),
//!    [`transport::lambda`] (the Lambda authorizer); what they share is
//!    [`transport::ask`] (the way in) and [`transport::answer`] (§2's HTTP
//!    table, the way out).
//!    Beside them, [`admin`]: the decision explorer's pages, sign-in and
//!    API on their own listener; it imports no transport and none imports it.
//! 7. [`server`]: the bootstrap — [`server::listeners`] puts the transports
//!    on the two ports, [`server::conn`] holds connections to their limits
//!    (the explorer's listener too); background tasks, signals, shutdown.
//!
//! Beside the floors, used only by the CLI: [`devtoken`] (minting
//! development tokens and JWKS), [`probe`] (`authzd validate --online`) and
//! [`diff`] (`authzd diff`: the decisions a candidate policy changes) and
//! [`replay`] (`authzd replay`: past decisions under a candidate).
//!
//! The binary is not part of this crate's floors: `src/main.rs` parses the
//! command line and `src/cli/` holds each command's run and output (one
//! file per command family; `cli/output.rs` ends quietly on a closed pipe).

pub mod admin;
pub mod audit;
pub mod authorizer;
pub mod bounded;
pub mod config;
pub mod cors;
pub mod decision;
pub mod devtoken;
pub mod diff;
pub mod explorer;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod reason;
pub mod replay;
pub mod request;
pub mod roles;
pub mod routes;
pub mod server;
pub mod spans;
pub mod telemetry;
pub mod token;
pub mod transport;

/// Generated `authzd.v1` protobuf types and gRPC service.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("authzd.v1");

    /// Encoded descriptor set for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("authzd_descriptor");
}
