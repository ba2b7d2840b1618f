//! One client connection as the request path sees it: who is on the other end ([`ConnInfo`]),
//! the timeouts and request-activity tracking between TLS and hyper ([`io`]), the forwarding
//! values of its client address ([`ClientForwarding`]), and the bound on connections per client
//! address ([`per_client`]).

mod forwarding;
pub(crate) mod io;
pub(crate) mod per_client;

use std::net::SocketAddr;
use std::sync::Arc;

pub use forwarding::ClientForwarding;
pub use io::{Activity, ConnIo, ConnTimeouts};

/// What the request path knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// False when the client's SNI names a host this gateway does not serve.
    pub sni_ok: bool,
    pub activity: Arc<Activity>,
    /// The forwarding values that depend only on the client address, computed once per
    /// connection: `X-Forwarded-For` and the start of `Forwarded`.
    pub forwarded: Arc<ClientForwarding>,
}
