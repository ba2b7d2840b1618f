//! Test harness: real upstream servers, the real gateway (in-process or as the `vigie` binary),
//! real TLS clients, the test OpenID provider and a browser-like sign-in through it, and the
//! configurations they run with. Everything binds to 127.0.0.1:0.

pub mod client;
pub mod config;
pub mod fixtures;
pub mod gateway;
pub mod idp;
pub mod oidc_flow;
pub mod pebble;
pub mod upstream;

pub use client::*;
pub use config::*;
pub use fixtures::*;
pub use gateway::*;
pub use idp::*;
pub use oidc_flow::*;
pub use upstream::*;
