//! Header rewriting between client and upstream: hop-by-hop removal (RFC 9110 §7.6.1, including
//! the headers a `Connection` header names), the forwarding headers the gateway alone sets
//! (RFC 7239 `Forwarded` and `X-Forwarded-*`), and `Location` rewriting.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never the message: removed in both directions.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Client-supplied headers that would let a client pose as the gateway (or, later, as a signed-in
/// user) towards the upstream. Ours replace them.
const SPOOFABLE: [HeaderName; 5] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-real-ip"),
];

/// Who the gateway signed in, for the upstream (never taken from the client).
pub static X_VIGIE_USER: HeaderName = HeaderName::from_static("x-vigie-user");
pub static X_VIGIE_ROLES: HeaderName = HeaderName::from_static("x-vigie-roles");

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers and every header named in `Connection`. `Upgrade` goes too; the
/// WebSocket path puts back what it needs.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Collect the names listed in Connection first: they are removed with the fixed set.
    let mut listed: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        if let Ok(s) = value.to_str() {
            for token in s.split(',') {
                if let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) {
                    listed.push(name);
                }
            }
        }
    }
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Removes client headers the upstream must only ever get from the gateway.
pub fn strip_spoofable(headers: &mut HeaderMap) {
    for name in &SPOOFABLE {
        headers.remove(name);
    }
    // Identity headers are reserved for the gateway (`X-Vigie-User`, `X-Vigie-Roles`, ...).
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-vigie-"))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(name);
    }
}

/// The forwarding header parts that depend only on the client's address.
#[derive(Debug, Clone)]
pub struct ClientForwarding {
    /// `X-Forwarded-For`: the client's address, nothing appended (the gateway is the edge).
    xff: HeaderValue,
    /// `for=<client>;proto=https;host=` — the `Forwarded` value up to the host.
    prefix: Vec<u8>,
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

/// Sets `Forwarded`, `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` for a request
/// that arrived over TLS for `host`.
pub fn set_forwarded(headers: &mut HeaderMap, client: &ClientForwarding, host: &HeaderValue) {
    // The host stays unquoted even with a port, as nginx and Caddy send it: Orthanc copies
    // the value verbatim into its absolute URLs and would keep the quotes. The guard layer has
    // checked that `host` holds only host-name characters and a numeric port.
    let mut fwd = Vec::with_capacity(client.prefix.len() + host.len());
    fwd.extend_from_slice(&client.prefix);
    fwd.extend_from_slice(host.as_bytes());
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(fwd)) {
        headers.insert(header::FORWARDED, v);
    }
    headers.insert(X_FORWARDED_FOR.clone(), client.xff.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    headers.insert(X_FORWARDED_HOST.clone(), host.clone());
}

/// Removes the gateway's own cookies (`__Host-vigie*`) from what the upstream receives: the
/// session token is the gateway's business only.
pub fn strip_gateway_cookies(headers: &mut HeaderMap) {
    // str::split uses a vectorised byte search; this runs for every signed-in request.
    let is_ours = |c: &str| c.trim_start().starts_with("__Host-vigie");
    let ours = headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(';').any(is_ours)));
    if !ours {
        return;
    }
    let mut kept = String::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for c in value.split(';').map(str::trim) {
            if c.is_empty() || is_ours(c) {
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(c);
        }
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(mut v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(kept))
    {
        v.set_sensitive(true);
        headers.insert(header::COOKIE, v);
    }
}

/// HTTP/2 lets clients split `Cookie` into several fields; HTTP/1.1 upstreams expect one
/// (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(mut v) = HeaderValue::from_bytes(&joined) {
        v.set_sensitive(true);
        headers.insert(header::COOKIE, v);
    }
}

/// Rewrites a `Location`/`Content-Location` value that points at the upstream's internal address
/// (or at the public host over plain http) so that it names the public https origin.
pub fn rewrite_location(
    value: &HeaderValue,
    upstream: &http::uri::Authority,
    public_host: &str,
) -> Option<HeaderValue> {
    let uri: http::Uri = value.to_str().ok()?.parse().ok()?;
    let authority = uri.authority()?;
    let internal = authority == upstream
        || (uri.scheme_str() == Some("http")
            && authority.as_str().eq_ignore_ascii_case(public_host));
    if !internal {
        return None;
    }
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    HeaderValue::from_str(&format!("https://{public_host}{pq}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn connection_listed_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn forwarded_replaces_client_values() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6;proto=http"),
            ("x-real-ip", "6.6.6.6"),
            ("x-vigie-user", "admin"),
        ]);
        strip_spoofable(&mut h);
        let host = HeaderValue::from_static("viewer.example.org");
        let client = ClientForwarding::new("10.1.2.3:5555".parse().unwrap());
        set_forwarded(&mut h, &client, &host);
        assert_eq!(
            h["forwarded"],
            "for=10.1.2.3;proto=https;host=viewer.example.org"
        );
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "viewer.example.org");
        assert!(!h.contains_key("x-real-ip") && !h.contains_key("x-vigie-user"));
        let host = HeaderValue::from_static("localhost:8443");
        set_forwarded(
            &mut h,
            &ClientForwarding::new("[::1]:5555".parse().unwrap()),
            &host,
        );
        assert_eq!(
            h["forwarded"],
            "for=\"[::1]\";proto=https;host=localhost:8443"
        );
    }

    #[test]
    fn locations() {
        let up: http::uri::Authority = "127.0.0.1:8042".parse().unwrap();
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        let r = |s: &str| rewrite_location(&v(s), &up, "viewer.example.org");
        assert_eq!(
            r("http://127.0.0.1:8042/app/explorer.html?x=1").unwrap(),
            "https://viewer.example.org/app/explorer.html?x=1"
        );
        assert_eq!(
            r("http://viewer.example.org/a").unwrap(),
            "https://viewer.example.org/a"
        );
        assert!(r("/relative").is_none());
        assert!(r("https://elsewhere.org/").is_none());
    }

    #[test]
    fn gateway_cookies_never_reach_the_upstream() {
        let mut h = map(&[("cookie", "a=1; __Host-vigie=tok; __Host-vigie-csrf=n; b=2")]);
        strip_gateway_cookies(&mut h);
        assert_eq!(h["cookie"], "a=1; b=2");
        let mut h = map(&[("cookie", "__Host-vigie=tok")]);
        strip_gateway_cookies(&mut h);
        assert!(!h.contains_key("cookie"));
    }

    #[test]
    fn cookies_joined() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
    }
}
