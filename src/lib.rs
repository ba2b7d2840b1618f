//! Vigie: a TLS-terminating reverse proxy that stands in front of a medical-imaging web viewer.
//! `main.rs` is only the command line; [`run`] serves a validated [`config::Config`].
//!
//! One request, end to end:
//!
//! ```text
//! accept loop (connection limit) ─► least-loaded worker thread (own runtime, own upstream pool)
//!   ─► TLS handshake (rustls, hot-reloaded certificate)          tls/
//!   ─► ConnIo: head/idle timeouts, 408, CL+TE head scan          server/conn_io.rs
//!   ─► hyper-util auto builder (HTTP/1.1 + HTTP/2)               server/mod.rs
//!   ─► tower stack, assembled in stack.rs:
//!        request id ─► trace/access log ─► security headers
//!        ─► guard (refusals, 421, path normalisation, cross-site)
//!        ─► gate (session cookie ─► Identity, access policy; 303 to sign-in or 401)
//!        ─► router: /_vigie/ sign-in pages (auth/), everything else ─► proxy/
//! ```
//!
//! Beside it: the plain-HTTP redirect listener (`redirect`), the admin listener (`admin`:
//! health, readiness, `metrics`), certificate reloading, and graceful shutdown.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod body;
pub mod config;
pub mod error_page;
pub mod exposure;
pub mod files;
pub mod metrics;
pub mod middleware;
pub mod policy;
pub mod proxy;
pub mod redirect;
pub mod router;
pub mod server;
pub mod stack;
pub mod store;
pub mod telemetry;
pub mod tls;

pub use server::{Gateway, run};
