//! Cross-site request defences.
//!
//! * Unsafe requests (anything but GET, HEAD, OPTIONS) that a browser says come from another
//!   site are refused: `Sec-Fetch-Site` decides first; without it, `Origin` must be this origin
//!   (scheme, host and port), and `Origin: null` is refused. Clients that send neither (command
//!   line tools, DICOMweb clients) are not browsers and cannot be driven by another site.
//! * Protocol switches (any request with an `Upgrade` header: WebSocket handshakes, which are
//!   GETs) must come from this origin, whatever the method: exactly one `Origin`, equal to
//!   `https://` + the request's authority (host case-insensitive, port 443 spelled or not), and
//!   `Sec-Fetch-Site`, when sent, `same-origin`. A browser sends the cookie with a handshake
//!   that any page opens, and the response does not protect the tunnel as CORS protects a
//!   fetch (cross-site WebSocket hijacking). A handshake without `Origin` is refused too: every
//!   browser sends one (RFC 6455 §4.1, Fetch), so only a non-browser client omits it, and such a
//!   client can add it; accepting it would let any path that strips the header reopen the hole.
//! * The sign-in and sign-out forms also carry a token: an HMAC, under the server's key, of a
//!   random value kept in a `__Host-vigie-csrf` cookie (sign-in) or of the session id
//!   (sign-out).

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::SameSite;
use http::{HeaderMap, HeaderValue, Method, header};

use super::session::host_cookie;

/// The cookie holding the sign-in form's random value.
pub(crate) const COOKIE: &str = "__Host-vigie-csrf";

/// Whether a request comes from another site, by the rules in the module documentation. `host`
/// is the authority the request names (`viewer.example.org` or `localhost:8443`).
pub(crate) fn is_cross_site(method: &Method, headers: &HeaderMap, host: &str) -> bool {
    if headers.contains_key(header::UPGRADE) {
        return !is_same_origin_upgrade(headers, host);
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    if let Some(site) = headers.get(SEC_FETCH_SITE) {
        return site.as_bytes() != b"same-origin";
    }
    match headers.get(header::ORIGIN) {
        None => false,
        Some(origin) => !is_own_origin(origin.as_bytes(), host),
    }
}

const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// A protocol switch from a page of this origin: one `Origin`, ours; `Sec-Fetch-Site`, if any,
/// `same-origin`.
fn is_same_origin_upgrade(headers: &HeaderMap, host: &str) -> bool {
    let site_ok = headers
        .get_all(SEC_FETCH_SITE)
        .iter()
        .all(|site| site.as_bytes() == b"same-origin");
    let mut origins = headers.get_all(header::ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (Some(origin), None) => site_ok && is_own_origin(origin.as_bytes(), host),
        _ => false,
    }
}

/// Whether `origin` (an `Origin` header value) is `https://` + `host`: same host name (ASCII
/// case-insensitive, as browsers lower-case it), same port (443 when not spelled). Anything
/// that is not a plain origin (`null`, a path, user info, another scheme) is not ours.
fn is_own_origin(origin: &[u8], host: &str) -> bool {
    let Some(scheme) = origin.get(..8) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"https://") {
        return false;
    }
    let Ok(authority) = std::str::from_utf8(&origin[8..]) else {
        return false;
    };
    match (host_and_port(authority), host_and_port(host)) {
        (Some((a, a_port)), Some((b, b_port))) => a.eq_ignore_ascii_case(b) && a_port == b_port,
        _ => false,
    }
}

/// `host[:port]` (IPv6 in brackets) split strictly, the port defaulting to 443 (digits without
/// a leading zero, as browsers write them).
fn host_and_port(authority: &str) -> Option<(&str, u16)> {
    let (name, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            if v6.is_empty()
                || !v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return None;
            }
            (v6, after)
        }
        None => {
            let end = authority.find(':').unwrap_or(authority.len());
            let name = &authority[..end];
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return None;
            }
            (name, &authority[end..])
        }
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => 443,
        None => return None,
        Some(p)
            if !p.is_empty()
                && p.len() <= 5
                && !p.starts_with('0')
                && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            p.parse().ok()?
        }
        Some(_) => return None,
    };
    Some((name, port))
}

/// A form token for `purpose` bound to `binding`.
pub(crate) fn token(key: &[u8], purpose: &str, binding: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(purpose.as_bytes());
    ctx.update(&[0]);
    ctx.update(binding.as_bytes());
    URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
}

/// Checks a form token in constant time.
pub(crate) fn verify(key: &[u8], purpose: &str, binding: &str, candidate: &str) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(candidate) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut msg = Vec::with_capacity(purpose.len() + 1 + binding.len());
    msg.extend_from_slice(purpose.as_bytes());
    msg.push(0);
    msg.extend_from_slice(binding.as_bytes());
    hmac::verify(&key, &msg, &tag).is_ok()
}

/// A fresh random value for the sign-in cookie.
pub(crate) fn new_nonce() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    Some(URL_SAFE_NO_PAD.encode(b))
}

/// The `Set-Cookie` value for the sign-in form's random value.
pub(crate) fn set_cookie(nonce: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&host_cookie(COOKIE, nonce, SameSite::Strict).to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn cross_site_rules() {
        let post = Method::POST;
        let host = "localhost:8443";
        assert!(!is_cross_site(
            &Method::GET,
            &h(&[("sec-fetch-site", "cross-site")]),
            host
        ));
        assert!(!is_cross_site(
            &post,
            &h(&[("sec-fetch-site", "same-origin")]),
            host
        ));
        // Sec-Fetch-Site decides even when Origin is null (Referrer-Policy: no-referrer).
        assert!(!is_cross_site(
            &post,
            &h(&[("sec-fetch-site", "same-origin"), ("origin", "null")]),
            host
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("sec-fetch-site", "same-site")]),
            host
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("sec-fetch-site", "cross-site")]),
            host
        ));
        assert!(!is_cross_site(
            &post,
            &h(&[("origin", "https://localhost:8443")]),
            host
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("origin", "https://localhost:9443")]),
            host
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("origin", "http://localhost:8443")]),
            host
        ));
        assert!(is_cross_site(
            &Method::DELETE,
            &h(&[("origin", "null")]),
            host
        ));
        assert!(!is_cross_site(&post, &h(&[]), host));
        assert!(!is_cross_site(
            &post,
            &h(&[("origin", "https://viewer.example")]),
            "viewer.example:443"
        ));
    }

    #[test]
    fn upgrades_must_come_from_this_origin() {
        let ws = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("upgrade", "websocket"), ("connection", "upgrade")];
            pairs.extend_from_slice(extra);
            h(&pairs)
        };
        let host = "viewer.example:8443";
        for own in [
            "https://viewer.example:8443",
            "https://VIEWER.Example:8443",
            "HTTPS://viewer.example:8443",
        ] {
            assert!(
                !is_cross_site(&Method::GET, &ws(&[("origin", own)]), host),
                "{own}"
            );
        }
        assert!(!is_cross_site(
            &Method::GET,
            &ws(&[
                ("origin", "https://viewer.example:8443"),
                ("sec-fetch-site", "same-origin")
            ]),
            host
        ));
        for foreign in [
            "https://evil.example",
            "null",
            "https://pacs.viewer.example:8443",
            "https://viewer.example.evil.example:8443",
            "https://viewer.example:8443.evil.example",
            "https://viewer.example:8443/",
            "https://user@viewer.example:8443",
            "http://viewer.example:8443",
            "wss://viewer.example:8443",
            "https://viewer.example:9443",
            "https://viewer.example",
            "https://localhost:8443",
            "https://viewer.example:",
            "https://[::1]:8443",
            "",
        ] {
            assert!(
                is_cross_site(&Method::GET, &ws(&[("origin", foreign)]), host),
                "{foreign:?}"
            );
        }
        // No Origin, two of them, or a browser saying the page is not ours.
        assert!(is_cross_site(&Method::GET, &ws(&[]), host));
        let mut two = ws(&[("origin", "https://viewer.example:8443")]);
        two.append("origin", "https://viewer.example:8443".parse().unwrap());
        assert!(is_cross_site(&Method::GET, &two, host));
        for site in ["cross-site", "same-site", "none", "SAME-ORIGIN"] {
            assert!(
                is_cross_site(
                    &Method::GET,
                    &ws(&[
                        ("origin", "https://viewer.example:8443"),
                        ("sec-fetch-site", site)
                    ]),
                    host
                ),
                "{site}"
            );
        }
        // Any protocol switch, with or without `Connection: upgrade`.
        assert!(is_cross_site(
            &Method::GET,
            &h(&[("upgrade", "foo/1"), ("origin", "https://evil.example")]),
            host
        ));
        assert!(is_cross_site(
            &Method::GET,
            &h(&[("upgrade", "websocket")]),
            host
        ));
        // The default port may be spelled on either side; IPv6 literals compare as such.
        for (origin, host) in [
            ("https://viewer.example", "viewer.example:443"),
            ("https://viewer.example:443", "viewer.example"),
            ("https://[::1]:8443", "[::1]:8443"),
        ] {
            assert!(
                !is_cross_site(&Method::GET, &ws(&[("origin", origin)]), host),
                "{origin}"
            );
        }
        assert!(is_cross_site(
            &Method::GET,
            &ws(&[("origin", "https://viewer.example:443")]),
            "viewer.example:8443"
        ));
    }

    /// Every combination of scheme, host, port and trailer against a few request authorities,
    /// judged by a plain model: same scheme `https`, same host in any case, same port (443 when
    /// not written), nothing else.
    #[test]
    fn upgrade_origins_against_a_model() {
        let schemes = ["https://", "HTTPS://", "http://", "wss://", ""];
        let names = [
            "viewer.example",
            "VIEWER.example",
            "pacs.viewer.example",
            "viewer.example.evil",
            "viewer.exampl",
            "[::1]",
            "[::2]",
        ];
        let ports = [
            ("", Some(443)),
            (":443", Some(443)),
            (":8443", Some(8443)),
            (":9443", Some(9443)),
            (":0443", None),
            (":", None),
            (":65536", None),
            (":8443:8443", None),
        ];
        let trailers = ["", "/", ".", " ", "@evil.example", "\\"];
        let hosts = [
            ("viewer.example", "viewer.example", 443),
            ("viewer.example:443", "viewer.example", 443),
            ("Viewer.Example:8443", "viewer.example", 8443),
            ("[::1]:8443", "[::1]", 8443),
            ("[::1]", "[::1]", 443),
        ];
        let mut accepted = 0;
        for (host, host_name, host_port) in hosts {
            for scheme in schemes {
                for name in names {
                    for (port, port_value) in ports {
                        for trailer in trailers {
                            let origin = format!("{scheme}{name}{port}{trailer}");
                            let headers = h(&[("upgrade", "websocket"), ("origin", &origin)]);
                            let ours = scheme.eq_ignore_ascii_case("https://")
                                && name.eq_ignore_ascii_case(host_name)
                                && port_value == Some(host_port)
                                && trailer.is_empty();
                            assert_eq!(
                                !is_cross_site(&Method::GET, &headers, host),
                                ours,
                                "Origin {origin:?} for {host}"
                            );
                            accepted += usize::from(ours);
                        }
                    }
                }
            }
        }
        // Each authority accepts 2 spellings of the scheme x 1 or 2 of the name x 1 or 2 of
        // the port (443 written or not): the model is not vacuous.
        assert_eq!(accepted, 8 + 8 + 4 + 2 + 4);
    }

    proptest::proptest! {
        /// Whatever the two values, nothing panics, and an upgrade passes only when the Origin
        /// is `https://` + the authority, in any case, give or take `:443`.
        #[test]
        fn only_the_own_origin_passes(origin in "[ -~]{0,40}", host in "[ -~]{0,30}") {
            let Ok(value) = HeaderValue::from_str(&origin) else {
                return Ok(());
            };
            let mut headers = h(&[("upgrade", "websocket")]);
            headers.insert(header::ORIGIN, value);
            if !is_cross_site(&Method::GET, &headers, &host) {
                let (o, h) = (origin.to_ascii_lowercase(), host.to_ascii_lowercase());
                let own = format!("https://{h}");
                proptest::prop_assert!(
                    o == own || o == format!("{own}:443") || format!("{o}:443") == own,
                    "{origin:?} passed for {host:?}"
                );
            }
        }
    }

    #[test]
    fn tokens() {
        let t = token(b"k1", "login", "nonce");
        assert!(verify(b"k1", "login", "nonce", &t));
        assert!(!verify(b"k2", "login", "nonce", &t));
        assert!(!verify(b"k1", "logout", "nonce", &t));
        assert!(!verify(b"k1", "login", "other", &t));
        assert!(!verify(b"k1", "login", "nonce", "garbage!"));
    }
}
