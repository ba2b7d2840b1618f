//! Authorities: splitting a host and port, and the one host a request agrees on.

use super::*;

#[rustfmt::skip]
const AUTHORITY_PIECES: &[&str] = &[
    "viewer.test", "localhost", "a", "-", ".", "1.2.3.4", ":", ":", "::", "::1", "[", "]", "[::1]",
    "[fe80::1%25eth0]", "[::ffff:1.2.3.4]", "0", "8443", "443", "0443", "65535", "65536", "99999",
    "000000", ";", ",", "\"", " ", "\t", "\0", "\r\n", "@", "%", "/", "?", "#", "é", "\u{ff0e}",
    "proto=http", "_",
];

/// Authorities spelled from `AUTHORITY_PIECES`, or a plausible host and port.
fn authority() -> BoxedStrategy<String> {
    let host = prop_oneof![
        select(
            &[
                "viewer.test",
                "localhost",
                "a-b.c",
                "1.2.3.4",
                "[::1]",
                "[::ffff:1.2.3.4]"
            ][..]
        )
        .prop_map(String::from),
        "[a-zA-Z0-9.-]{1,12}",
        "\\[[0-9a-f:]{2,12}\\]",
    ];
    let port = prop_oneof![
        select(
            &[
                "", ":", ":0", ":443", ":0443", ":65535", ":65536", ":99999", ":1 ", ":+1"
            ][..]
        )
        .prop_map(String::from),
        "(:[0-9]{1,6})?",
    ];
    prop_oneof![
        1 => spelled(AUTHORITY_PIECES, 6),
        1 => (host, port).prop_map(|(h, p)| h + &p),
    ]
    .boxed()
}

/// `host` as it is written in an authority (IPv6 in brackets).
fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// A request as HTTP/1.1 (target + `Host` headers) or HTTP/2 (`:authority` in the URI) brings
/// it: authorities that `http` refuses are left out, as hyper would refuse them first.
fn host_request() -> BoxedStrategy<Request<()>> {
    (
        prop::option::of(authority()),
        prop::collection::vec(authority(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(uri_authority, hosts, upper)| {
            let uri = uri_authority
                .and_then(|a| format!("https://{a}/x").parse::<Uri>().ok())
                .unwrap_or_else(|| Uri::from_static("/x"));
            let mut req = Request::get(uri).body(()).unwrap();
            for h in hosts {
                let h = if upper { h.to_uppercase() } else { h };
                if let Ok(v) = http::HeaderValue::from_str(&h) {
                    req.headers_mut().append(http::header::HOST, v);
                }
            }
            req
        })
        .boxed()
}

proptest! {
    #![proptest_config(cases(2000))]

    /// A split authority has a host with nothing that could inject a `Forwarded` parameter
    /// (only letters, digits, `-`, `.`, or a valid IPv6 address), a port that fits in 16 bits,
    /// and host and port rebuild the input (the port's digits may carry leading zeros).
    #[test]
    fn split_authority_is_strict_and_lossless(raw in authority()) {
        if let Some((host, port)) = split_authority(&raw) {
            let clean = host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            prop_assert!(!host.is_empty(), "{:?}", raw);
            prop_assert!(
                clean || host.parse::<std::net::Ipv6Addr>().is_ok(),
                "{raw:?} -> {host:?}"
            );
            let rest = raw.strip_prefix(bracketed(host).as_str());
            match (port, rest) {
                (None, Some("")) => {}
                (Some(p), Some(rest)) => {
                    let digits = rest.strip_prefix(':').unwrap_or("x");
                    prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{:?}", raw);
                    prop_assert_eq!(digits.parse::<u32>().ok(), Some(u32::from(p)), "{:?}", raw);
                }
                _ => return Err(TestCaseError::fail(format!("{raw:?} -> {host:?} {port:?}"))),
            }
        }
    }

    /// The request's host is the one `Host` header or the URI's authority (never both when
    /// they disagree, never with userinfo), and it is `None` for two `Host` headers.
    #[test]
    fn request_host_is_the_single_agreed_authority(req in host_request()) {
        let hosts: Vec<&str> = req
            .headers()
            .get_all(http::header::HOST)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let count = req.headers().get_all(http::header::HOST).iter().count();
        let uri_authority = req.uri().authority().map(|a| a.as_str());
        match request_host(&req) {
            None => {}
            Some(host) => {
                prop_assert!(count <= 1, "{:?}", hosts);
                prop_assert!(!host.is_empty() && !host.contains('@'), "{:?}", host);
                match (uri_authority, hosts.first()) {
                    (Some(a), Some(h)) => {
                        prop_assert_eq!(host, a);
                        prop_assert!(a.eq_ignore_ascii_case(h), "{a:?} {h:?}");
                    }
                    (Some(a), None) => prop_assert_eq!(host, a),
                    (None, Some(h)) => prop_assert_eq!(host, *h),
                    (None, None) => {
                        return Err(TestCaseError::fail(format!("{host:?} from nowhere")));
                    }
                }
            }
        }
    }
}
