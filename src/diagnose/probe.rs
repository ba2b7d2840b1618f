//! One plain-HTTP GET over a fresh connection: how the checks talk to the upstream, to the
//! plain-HTTP listener and to the admin listener.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::Config;

/// One GET to the upstream over a fresh connection.
pub(super) async fn get(
    config: &Config,
    path: &str,
    auth: Option<&http::HeaderValue>,
    timeout: Duration,
) -> Result<StatusCode, String> {
    let authority = &config.upstream.authority;
    let host = authority.host().trim_matches(|c| c == '[' || c == ']');
    let port = authority.port_u16().unwrap_or(80);
    get_at((host, port), authority.as_str(), path, auth, timeout)
        .await
        .map(|(status, _)| status)
}

/// One plain-HTTP GET to `to` with this `Host`: the status and the `Location` header.
pub(super) async fn get_at(
    to: (&str, u16),
    host: &str,
    path: &str,
    auth: Option<&http::HeaderValue>,
    timeout: Duration,
) -> Result<(StatusCode, Option<String>), String> {
    let res = tokio::time::timeout(timeout, send_get(to, host, path, auth))
        .await
        .map_err(|_| "timeout".to_string())??;
    let location = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    Ok((res.status(), location))
}

/// Sends one GET over a fresh plain-HTTP connection and returns the response head (the body
/// streams on).
pub(super) async fn send_get(
    to: (&str, u16),
    host: &str,
    path: &str,
    auth: Option<&http::HeaderValue>,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let tcp = TcpStream::connect(to)
        .await
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::get(path)
        .header(header::HOST, host)
        .header(header::USER_AGENT, "vigie-check");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    send.send_request(req).await.map_err(|e| e.to_string())
}

/// Where to reach the gateway's HTTPS listener from this machine.
pub(super) fn local(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}
