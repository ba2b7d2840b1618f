//! The forwarding values that depend only on the client's address, computed once per
//! connection; the proxy completes them per request (`crate::proxy::headers::set_forwarded`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::header::HeaderValue;

/// The forwarding header parts that depend only on the client's address.
#[derive(Debug, Clone)]
pub struct ClientForwarding {
    /// `X-Forwarded-For`: the client's address, nothing appended (the gateway is the edge).
    pub(crate) xff: HeaderValue,
    /// `for=<client>;proto=https;host=` — the `Forwarded` value up to the host.
    pub(crate) prefix: Vec<u8>,
}

impl ClientForwarding {
    pub fn new(peer: SocketAddr) -> ClientForwarding {
        let ip = peer.ip().to_canonical();
        let mut prefix = String::with_capacity(64);
        // RFC 7239 §6: IPv6 addresses must be quoted strings.
        match ip {
            IpAddr::V4(v4) => {
                let _ = write!(prefix, "for={v4}");
            }
            IpAddr::V6(v6) => {
                let _ = write!(prefix, "for=\"[{v6}]\"");
            }
        }
        prefix.push_str(";proto=https;host=");
        ClientForwarding {
            xff: HeaderValue::from_str(&ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            prefix: prefix.into_bytes(),
        }
    }
}
