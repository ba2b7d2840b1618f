//! Header rewriting between client and upstream: hop-by-hop removal (RFC 9110 §7.6.1, including
//! the headers a `Connection` header names), the forwarding headers the gateway alone sets
//! (RFC 7239 `Forwarded` and `X-Forwarded-*`), and `Location` rewriting.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::auth::session;
use crate::conn::ClientForwarding;
use crate::http_util::tokens::list_tokens;

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

/// Client-supplied headers that would let a client pose as the gateway (or as a signed-in user)
/// towards the upstream. Ours replace them. The whole `X-Forwarded-*` family goes: at the edge
/// no such value from a client can be true (`X-Forwarded-Prefix` or `-Port` steer some
/// frameworks' absolute URLs).
const SPOOFABLE: [&str; 2] = ["forwarded", "x-real-ip"];
const SPOOFABLE_PREFIXES: [&str; 2] = ["x-forwarded-", "x-vigie-"];

/// Headers the gateway sets or rewrites for the upstream besides the spoofable ones. Their
/// underscore spellings are removed too (see [`strip_spoofable`]).
const GATEWAY_SET: [&str; 11] = [
    "authorization",
    "proxy-authorization",
    "host",
    "cookie",
    "x-request-id",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "expect",
    "te",
];

/// Who the gateway signed in, for the upstream (never taken from the client).
pub(crate) static X_VIGIE_USER: HeaderName = HeaderName::from_static("x-vigie-user");
pub(crate) static X_VIGIE_ROLES: HeaderName = HeaderName::from_static("x-vigie-roles");

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers and every header named in `Connection`. `Upgrade` goes too; the
/// WebSocket path puts back what it needs.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Collect the names listed in Connection first: they are removed with the fixed set.
    let listed: Vec<HeaderName> = list_tokens(headers, header::CONNECTION)
        .flatten()
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Removes client headers the upstream must only ever get from the gateway: the forwarding and
/// identity families, and any header whose name, read with `_` as `-`, is one of those or one
/// the gateway sets. CGI, WSGI, PHP and some Java servers turn both `X-Vigie-User` and
/// `X_Vigie_User` into `HTTP_X_VIGIE_USER`, so an underscore spelling would pass for ours (the
/// CVE-2025-64484 class). Allocates only when such a header is present.
pub(crate) fn strip_spoofable(headers: &mut HeaderMap) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        let reserved = if memchr::memchr(b'_', n.as_bytes()).is_some() {
            let dashed = n.replace('_', "-");
            is_spoofable(&dashed) || GATEWAY_SET.contains(&dashed.as_str())
        } else {
            is_spoofable(n)
        };
        if reserved {
            doomed.push(name.clone());
        }
    }
    for name in doomed {
        headers.remove(name);
    }
}

/// `name` is lower case with dashes.
fn is_spoofable(name: &str) -> bool {
    SPOOFABLE.contains(&name) || SPOOFABLE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Sets `Forwarded`, `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` for a request
/// that arrived over TLS for `host`.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    client: &ClientForwarding,
    host: &HeaderValue,
) {
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

/// Prepares the client's cookies for the upstream: the gateway's own (`__Host-vigie*`, see
/// [`session::is_gateway_cookie`]) are removed, whatever bytes surround them, and HTTP/2 crumbs
/// or repeated HTTP/1.1 fields are joined into the one field an HTTP/1.1 upstream expects (RFC
/// 9113 §8.2.3). The fields are handled as bytes: browsers send non-ASCII cookie values, and a
/// text-only reading would skip (and so forward) a field holding one. Untouched, and without
/// allocating, when there is one field and no gateway cookie.
pub(crate) fn forward_cookies(headers: &mut HeaderMap) {
    let is_ours = |pair: &[u8]| session::is_gateway_cookie(pair.trim_ascii_start());
    let mut fields = headers.get_all(header::COOKIE).iter();
    let several = fields.next().is_some() && fields.next().is_some();
    let ours = headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b';').any(is_ours));
    if !several && !ours {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() || is_ours(pair) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    headers.remove(header::COOKIE);
    // The bytes came from valid header values, joined by "; ": they form a valid value too.
    if !kept.is_empty()
        && let Ok(mut v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(kept))
    {
        v.set_sensitive(true);
        headers.insert(header::COOKIE, v);
    }
}

/// Removes the upstream's `Set-Cookie` fields that would replace one of the gateway's cookies in
/// the browser (a viewer bug or a compromised viewer could otherwise end or fix a session).
pub(crate) fn strip_gateway_set_cookies(headers: &mut HeaderMap) {
    let theirs = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| session::sets_gateway_cookie(v.as_bytes()));
    if !theirs {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !session::sets_gateway_cookie(v.as_bytes()))
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for v in kept {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Rewrites a `Location`/`Content-Location` value that points at the upstream's internal address
/// (or at the public host over plain http) so that it names the public https origin.
pub(crate) fn rewrite_location(
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
        let mut h = map(&[
            ("x_vigie_user", "admin"),
            ("X_Vigie_Roles", "admin"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x-forwarded-prefix", "/evil"),
            ("x_real_ip", "6.6.6.6"),
            ("authorization_", "x"),
            ("_authorization", "x"),
            ("x_request_id", "1"),
            ("Host_", "evil"),
            ("content_length", "5"),
            ("x_custom_header", "kept"),
            ("x-custom", "kept"),
            ("authorization", "kept for now"),
        ]);
        strip_spoofable(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        // `authorization_` and friends read as `authorization-`: not a name the gateway sets.
        assert_eq!(
            left,
            [
                "_authorization",
                "authorization",
                "authorization_",
                "host_",
                "x-custom",
                "x_custom_header"
            ]
        );
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

    fn raw(name: &str, value: &[u8]) -> (HeaderName, HeaderValue) {
        (
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        )
    }

    fn with(fields: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in fields {
            let (k, v) = raw(k, v);
            h.append(k, v);
        }
        h
    }

    #[test]
    fn gateway_cookies_never_reach_the_upstream() {
        let mut h = map(&[("cookie", "a=1; __Host-vigie=tok; __Host-vigie-csrf=n; b=2")]);
        forward_cookies(&mut h);
        assert_eq!(h["cookie"], "a=1; b=2");
        let mut h = map(&[("cookie", "__Host-vigie=tok")]);
        forward_cookies(&mut h);
        assert!(!h.contains_key("cookie"));
        // Non-ASCII bytes in another cookie, in the same field or in another field (HTTP/1.1
        // repeats, HTTP/2 crumbs), in any order.
        for fields in [
            &[("cookie", &b"pref=caf\xc3\xa9; __Host-vigie=tok"[..])][..],
            &[("cookie", b"__HOST-VIGIE=tok; x=\xff")],
            &[("cookie", b"x=\xff"), ("cookie", b"__Host-vigie=tok")],
            &[("cookie", b"__Host-vigie=tok"), ("cookie", b"x=\xff; y=2")],
        ] {
            let mut h = with(fields);
            forward_cookies(&mut h);
            let all: Vec<&[u8]> = h.get_all("cookie").iter().map(|v| v.as_bytes()).collect();
            assert_eq!(all.len(), 1, "{all:?}");
            let text = String::from_utf8_lossy(all[0]).to_ascii_lowercase();
            assert!(!text.contains("vigie") && !text.contains("tok"), "{text}");
        }
    }

    #[test]
    fn cookies_joined() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        forward_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
        let mut h = with(&[("cookie", b"a=\xe9"), ("cookie", b"b=2")]);
        forward_cookies(&mut h);
        assert_eq!(h["cookie"].as_bytes(), b"a=\xe9; b=2");
    }

    #[test]
    fn upstream_cannot_set_gateway_cookies() {
        let mut h = with(&[
            ("set-cookie", b"orthanc=1; Path=/"),
            ("set-cookie", b"__Host-vigie=forged; Path=/; Secure"),
            ("set-cookie", b"=__Host-vigie=forged"),
            ("set-cookie", b"__host-vigie-csrf=x"),
            ("set-cookie", b"other=\xff"),
        ]);
        strip_gateway_set_cookies(&mut h);
        let left: Vec<&[u8]> = h
            .get_all("set-cookie")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(left, [&b"orthanc=1; Path=/"[..], b"other=\xff"]);
    }
}
