//! Which host a request is for: `:authority` (HTTP/2) or the one `Host` header (HTTP/1.1), and
//! its strict split into host and port. The gateway checks the host against `server_name`
//! (guard), rebuilds redirects from it (router) and copies it into `Forwarded`, so the parsing
//! refuses anything that is not a plain host and port.

use http::Request;
use http::header;

/// The authority the client asked for, port included: `:authority` in HTTP/2, the one `Host`
/// header in HTTP/1.1. `None` when it is missing, duplicated or contradictory.
pub fn request_host<B>(req: &Request<B>) -> Option<&str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return None;
    }
    let header = match header {
        Some(v) => Some(v.to_str().ok()?),
        None => None,
    };
    let authority = req.uri().authority().map(|a| a.as_str());
    let host = match (authority, header) {
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => return None,
        (Some(a), _) => a,
        (None, Some(h)) => h,
        (None, None) => return None,
    };
    // Userinfo in an authority has no place in a request to a server.
    if host.is_empty() || host.contains('@') {
        return None;
    }
    Some(host)
}

/// [`request_host`] as a header value: the client's own `Host` value when there is one (no copy).
pub fn request_host_value<B>(req: &Request<B>) -> Option<http::HeaderValue> {
    let host = request_host(req)?;
    match req.headers().get(header::HOST) {
        Some(v) => Some(v.clone()),
        None => http::HeaderValue::from_str(host).ok(),
    }
}

/// Splits `host[:port]` (IPv6 in brackets) strictly: the port must be digits. Anything else
/// (`;`, `,`, quotes, spaces) is refused, since the host is copied into `Forwarded` and
/// `X-Forwarded-Host` where such characters would inject parameters.
pub fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (v6, None),
            p => (v6, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.contains(':')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !valid_host {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            split_authority("viewer.example.org:8443"),
            Some(("viewer.example.org", Some(8443)))
        );
        assert_eq!(split_authority("[::1]:8443"), Some(("::1", Some(8443))));
        assert_eq!(split_authority("localhost"), Some(("localhost", None)));
        for bad in [
            "localhost:8443;proto=http",
            "localhost;proto=http",
            "local host",
            "localhost:",
            "localhost:99999",
            "[::1",
            "[zz]:1",
            "\"x\"",
            "",
        ] {
            assert_eq!(split_authority(bad), None, "{bad}");
        }
    }

    #[test]
    fn hosts_must_agree() {
        let r = Request::get("https://a.example/x")
            .header("host", "b.example")
            .body(())
            .unwrap();
        assert_eq!(request_host(&r), None);
        let r = Request::get("/x")
            .header("host", "a.example")
            .header("host", "a.example")
            .body(())
            .unwrap();
        assert_eq!(request_host(&r), None);
        let r = Request::get("/x")
            .header("host", "a.example:1")
            .body(())
            .unwrap();
        assert_eq!(request_host(&r), Some("a.example:1"));
    }
}
