//! Vigie: a TLS-terminating reverse proxy that stands in front of a medical-imaging web viewer.
//! The command line is [`cli`] (`main.rs` only calls it); [`run`] serves a validated
//! [`config::Config`].
//!
//! One request, end to end:
//!
//! ```text
//! accept loop (connection limit) ─► least-loaded worker thread (own runtime, own upstream pool)
//!   ─► TLS handshake (rustls, hot-reloaded certificate)          tls/
//!   ─► ConnIo: head/idle timeouts, 408, CL+TE head scan          conn/io.rs
//!   ─► hyper-util auto builder (HTTP/1.1 + HTTP/2)               listen/mod.rs
//!   ─► tower stack, assembled in stack.rs:
//!        request id ─► trace/access log ─► security headers
//!        ─► guard (refusals, 421, path normalisation, cross-site)
//!        ─► gate (session cookie ─► Identity, access policy; 303 to sign-in or 401)
//!        ─► router: /_vigie/ sign-in pages (auth/), everything else ─► proxy/
//! ```
//!
//! Beside it, in `listen/`: the plain-HTTP redirect listener (`redirect.rs`), the admin listener
//! (`admin.rs`: health, readiness, `metrics`), certificate reloading, and graceful shutdown.
//! What every connection shares is in `state.rs`; what one connection knows, in `conn/`.
//!
//! The public surface is narrow: [`cli::main`], [`run`] and [`Gateway`], and the few parsers,
//! loaders and layers the integration tests drive directly (`tests/it/`). Everything else is
//! crate-visible only; `unreachable_pub` (in `Cargo.toml`) keeps it so, and lets dead code show.

// The documentation is for contributors (`cargo doc --document-private-items`): public items
// may link to the private ones that do the work.
#![allow(rustdoc::private_intra_doc_links)]

mod accounts;
mod alert;
mod audit;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod conn;
pub mod credentials;
mod diagnose;
mod error_page;
mod files;
mod host;
pub mod http_util;
mod lang;
mod listen;
mod metrics;
pub mod middleware;
mod policy;
mod proxy;
mod reload;
mod respond;
mod router;
mod stack;
mod state;
mod store;
mod telemetry;
pub mod tls;

pub use listen::{Gateway, run};
