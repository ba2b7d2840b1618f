//! Vigie's integration tests, one binary: a real upstream, the real gateway and real clients,
//! all on 127.0.0.1:0. `support/` holds the harness; one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test
#![allow(unreachable_pub)] // the harness is `pub` for its own modules; nothing is exported

mod support;

mod acme;
mod alerts;
mod audit;
mod audit_report;
mod auth;
mod compose;
mod config_cli;
mod exposure;
mod lifecycle;
mod local_ca;
mod oidc;
mod properties;
mod proxy;
mod streaming;
mod tls;
mod upstream_limit;
mod websocket;
