//! How authzd is reached: adapters only. Each maps its wire format to a
//! [`Request`](crate::decision::Request), calls the
//! [`Authorizer`](crate::authorizer::Authorizer), and maps the
//! [`Outcome`](crate::audit::Outcome) back in one function. None of them
//! re-implements a pipeline step, and none imports another: what they share
//! lives below them, in [`ask`] (the way in) and [`answer`] (the way out).
//! Which port serves which adapter is `server::listeners`' business.

pub mod answer;
pub mod ask;
pub mod envoy;
pub mod forward_auth;
pub mod grpc;
pub mod http;
pub mod lambda;
