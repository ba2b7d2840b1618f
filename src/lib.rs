//! Vigie: a TLS-terminating reverse proxy that stands in front of a medical-imaging web viewer.
//! `main.rs` is only the command line; [`run`] serves a validated [`config::Config`].

pub mod admin;
pub mod body;
pub mod config;
pub mod error_page;
pub mod metrics;
pub mod middleware;
pub mod proxy;
pub mod redirect;
pub mod router;
pub mod server;
pub mod stack;
pub mod telemetry;
pub mod tls;

pub use server::{Gateway, run};
