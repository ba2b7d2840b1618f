//! Property tests for the public parsers that decide security: path normalisation (and the path
//! the guard hands on), authority splitting, `next=` validation, the configuration loaders and
//! their units. Each property carries a one-line statement to check against the parser's own
//! documentation. Generators lean on the characters that make these parsers go wrong, not only
//! on random strings. `HeadScan` (private) has its properties in `src/conn/io.rs`.
//!
//! Case counts keep this file to a few seconds in a debug build; `PROPTEST_CASES=N` overrides
//! them all for a longer run.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use http::{Request, Response, StatusCode, Uri};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config as ProptestConfig;
use tower::{Layer, Service};
use vigie::auth::routes::safe_next;
use vigie::body::Body;
use vigie::config::{Config, ConfigError, Severity, parse_duration, parse_size};
use vigie::conn::ClientForwarding;
use vigie::conn::{Activity, ConnInfo};
use vigie::http_util::authority::{request_host, split_authority};
use vigie::middleware::guard::GuardLayer;
use vigie::middleware::normalize::normalize;

/// `cases` unless `PROPTEST_CASES` is set (for the occasional long run).
fn cases(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// Concatenations of `pieces`, and some plain random strings for good measure.
fn spelled(pieces: &'static [&'static str], max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::collection::vec(select(pieces), 0..max).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Path normalisation

/// What makes a path mean different things to different servers, plus ordinary segments.
#[rustfmt::skip]
const PATH_PIECES: &[&str] = &[
    "/", "/", "/", "//", ".", "..", "./", "../", "%2e", "%2E", "%2e%2e", ".%2E", "%2f", "%2F",
    "%5c", "%5C", "\\", ";", "%3b", "%3B", "?", "#", "%", "%%", "%2", "%g0", "%+f", "%-1", "%25",
    "%252e", "%00", "%0a", "%7f", "%20", " ", "\t", "%41", "%7e", "%7E", "%5f", "%2d", "%c3%a9",
    "%C3%A9", "é", "\u{2215}", "\u{ff0f}", "\u{0}", "a", "A", "tools", "execute-script", "_vigie",
    "app", "x.y", "~", "-", "_", "@", ":", "*", "+", "=", "&", "'", "\"", "{", "}", "|",
];

/// A path spelled from `PATH_PIECES`, usually (not always) starting with `/`, or a path of
/// legal characters and escapes (so that many are accepted and the properties over the
/// output have something to check).
fn risky_path() -> BoxedStrategy<String> {
    prop_oneof![
        4 => spelled(PATH_PIECES, 12).prop_map(|p| format!("/{p}")),
        1 => spelled(PATH_PIECES, 12),
        3 => "(/{1,2}([a-zA-Z0-9._~!$&'()*+,=:@-]|%[0-9a-fA-F]{2}){0,6}){1,6}/?",
    ]
    .boxed()
}

/// The unreserved characters of RFC 3986 §2.3, which the module decodes.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// `normalize`, owned (for comparisons).
fn owned(raw: &str) -> Result<String, &'static str> {
    normalize(raw).map(Cow::into_owned)
}

/// Every `%XX` escape in `s`, as the byte it encodes (`None` for a malformed one).
fn escapes(s: &str) -> Vec<Option<u8>> {
    let b = s.as_bytes();
    (0..b.len())
        .filter(|&i| b[i] == b'%')
        .map(|i| {
            let hex = b.get(i + 1..i + 3)?;
            let upper = hex
                .iter()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c));
            upper.then(|| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())?
        })
        .collect()
}

/// Writes `normal` another way that means the same to a server that decodes `%XX` once:
/// unreserved characters escaped (either hex case), kept escapes in lower case, `/` doubled.
fn respell(normal: &str, choices: &[u8]) -> String {
    let mut out = String::new();
    let mut choice = choices.iter().cycle();
    let b = normal.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = *choice.next().unwrap_or(&0);
        match b[i] {
            b'%' => {
                let esc = &normal[i..i + 3];
                out.push_str(&if c.is_multiple_of(2) {
                    esc.to_owned()
                } else {
                    esc.to_lowercase()
                });
                i += 3;
                continue;
            }
            b'/' if c.is_multiple_of(3) => out.push_str("//"),
            x if unreserved(x) && c % 4 == 1 => out.push_str(&format!("%{x:02X}")),
            x if unreserved(x) && c % 4 == 2 => out.push_str(&format!("%{x:02x}")),
            x => out.push(x as char),
        }
        i += 1;
    }
    out
}

proptest! {
    #![proptest_config(cases(2000))]

    /// An accepted path comes out absolute, and normalising it again changes nothing.
    #[test]
    fn normalise_is_idempotent(raw in risky_path()) {
        if let Ok(out) = normalize(&raw) {
            prop_assert!(out.starts_with('/'), "{raw:?} -> {out:?}");
            prop_assert_eq!(owned(&out), Ok(out.to_string()), "{:?}", raw);
        }
    }

    /// An accepted path has no `.`, `..` or empty segment (`//` runs collapse; only a
    /// trailing `/` may remain).
    #[test]
    fn normal_paths_have_no_dot_or_empty_segment(raw in risky_path()) {
        if let Ok(out) = normalize(&raw) {
            let segments: Vec<&str> = out[1..].split('/').collect();
            let last = segments.len() - 1;
            for (i, seg) in segments.iter().enumerate() {
                prop_assert!(*seg != "." && *seg != "..", "{raw:?} -> {out:?}");
                prop_assert!(!seg.is_empty() || i == last, "{raw:?} -> {out:?}");
            }
        }
    }

    /// An accepted path holds only printable ASCII other than `\` and `;`, and its escapes are
    /// canonical: upper-case hex, never an unreserved character (those are decoded), never an
    /// encoded `/`, `\`, `;` or control character (those are refused).
    #[test]
    fn normal_paths_have_only_canonical_escapes(raw in risky_path()) {
        if let Ok(out) = normalize(&raw) {
            prop_assert!(
                out.bytes().all(|b| b.is_ascii_graphic() && b != b'\\' && b != b';'),
                "{raw:?} -> {out:?}"
            );
            for e in escapes(&out) {
                let Some(v) = e else {
                    return Err(TestCaseError::fail(format!("bad escape: {raw:?} -> {out:?}")));
                };
                prop_assert!(
                    !unreserved(v) && !b"/\\;".contains(&v) && !v.is_ascii_control(),
                    "{raw:?} -> {out:?}"
                );
            }
        }
    }

    /// A path already normal is borrowed, not copied (the hot path allocates nothing).
    #[test]
    fn normal_paths_without_escapes_are_borrowed(raw in risky_path()) {
        if let Ok(out) = normalize(&raw)
            && !out.contains('%')
        {
            prop_assert!(matches!(normalize(&out), Ok(Cow::Borrowed(_))), "{:?}", out);
        }
    }

    /// Every spelling of an accepted path that means the same to a server decoding `%XX` once
    /// (escaped unreserved characters, lower-case hex, doubled `/`) normalises to that path, so
    /// the access policy cannot be passed by writing a path differently.
    #[test]
    fn every_spelling_of_a_path_normalises_alike(
        raw in risky_path(),
        choices in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        if let Ok(out) = normalize(&raw) {
            let other = respell(&out, &choices);
            prop_assert_eq!(owned(&other), Ok(out.to_string()), "{:?}", other);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The guard: the path the gate, the policy and the upstream see

/// A configuration that accepts the host `viewer.test` (files are not read by `from_yaml`).
static GUARD_CONFIG: LazyLock<Arc<Config>> = LazyLock::new(|| {
    let yaml = "server_name: viewer.test\nlisten:\n  https: \"127.0.0.1:0\"\n\
                tls:\n  cert_file: none.crt\n  key_file: none.key\n\
                upstream:\n  url: \"http://127.0.0.1:9\"\n";
    match Config::from_yaml(yaml) {
        Ok((config, _)) => Arc::new(config),
        Err(e) => panic!("{e}"),
    }
});

/// What the service behind the guard received.
#[derive(Clone)]
struct Seen(Uri);

/// Stands where the gate and the proxy stand: answers with the URI it was handed.
#[derive(Clone)]
struct Behind;

impl Service<Request<()>> for Behind {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let mut res = Response::new(Body::Empty);
        res.extensions_mut().insert(Seen(req.uri().clone()));
        ready(Ok(res))
    }
}

/// Request targets: a risky path, sometimes with a query.
fn target() -> BoxedStrategy<String> {
    (risky_path(), prop::option::of("[a-z0-9=&%/.?]{0,12}"))
        .prop_map(|(p, q)| match q {
            Some(q) => format!("{p}?{q}"),
            None => p,
        })
        .boxed()
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Behind the guard, the gate, the policy and the upstream all read one path: the
    /// normalised form of the path sent (already normal, so reading it again changes nothing),
    /// with the query kept as sent; a path that does not normalise never gets past.
    #[test]
    fn guard_hands_on_the_normalised_path(target in target()) {
        // What hyper can deliver: an origin-form target that `http` parses.
        let Ok(uri) = target.parse::<Uri>() else { return Ok(()) };
        if uri.scheme().is_some() || uri.authority().is_some() {
            return Ok(());
        }
        let peer: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let conn = ConnInfo {
            peer,
            sni_ok: true,
            activity: Arc::new(Activity::default()),
            forwarded: Arc::new(ClientForwarding::new(peer)),
        };
        let mut guard = GuardLayer::new(GUARD_CONFIG.clone(), conn).layer(Behind);
        let req = Request::get(uri.clone())
            .header("host", "viewer.test")
            .body(())
            .unwrap();
        let Some(Ok(res)) = guard.call(req).now_or_never() else {
            return Err(TestCaseError::fail("the guard did not answer at once"));
        };
        let expected = normalize(uri.path());
        match (res.extensions().get::<Seen>(), expected) {
            (Some(Seen(seen)), Ok(normal)) => {
                prop_assert_eq!(seen.path(), &*normal);
                prop_assert_eq!(owned(seen.path()), Ok(seen.path().to_owned()));
                prop_assert_eq!(seen.query(), uri.query());
            }
            (Some(Seen(seen)), Err(why)) => {
                return Err(TestCaseError::fail(format!(
                    "{target:?} refused by normalize ({why}) but handed on as {seen}"
                )));
            }
            (None, _) => prop_assert_ne!(res.status(), StatusCode::OK),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authorities

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

// ---------------------------------------------------------------------------------------------
// `next=` after sign-in

#[rustfmt::skip]
const NEXT_PIECES: &[&str] = &[
    "/", "/", "/", "//", "\\", "/\\", "\\/", "%2f", "%2F", "%5c", "%2e", "%2E", ".", "..", "./",
    "../", "%2e%2e", ".%2e", "@", ":", "https:", "http:", "javascript:", "data:", "HTTPS://", "\t",
    "\n", "\r", " ", "\u{0}", "\u{b}", "\u{c}", "%09", "%0a", "%00", "evil.test", "viewer.test",
    "viewer.test.evil.test", "_vigie", "%5fvigie", "%5Fvigie", "_VIGIE", "login", "?", "#", "&",
    "=", "next=", "é", "\u{3002}", "\u{ff0f}", "\u{2215}", "\u{200b}", "\u{fe68}", "%E3%80%82",
    "[", "]", "::1", "8443", "a", "app", "x",
];

fn next_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => spelled(NEXT_PIECES, 8).prop_map(|p| format!("/{p}")),
        2 => spelled(NEXT_PIECES, 8),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(cases(4000))]

    /// No accepted `next` takes a browser off `https://viewer.test` (the `url` crate resolves
    /// it as browsers do, tabs and newlines stripped), nor to the gateway's own `/_vigie/`
    /// pages, as the browser sends the path or as the gateway then normalises it; and what is
    /// returned is the input or `/`, fit for a `Location` header.
    #[test]
    fn next_stays_on_origin_and_off_vigie_pages(raw in next_value()) {
        let base = url::Url::parse("https://viewer.test/some/page").unwrap();
        let out = safe_next(&raw);
        prop_assert!(out == raw || out == "/", "{:?} -> {:?}", raw, out);
        prop_assert!(http::HeaderValue::from_str(&out).is_ok(), "{:?}", raw);
        let Ok(joined) = base.join(&out) else {
            return Err(TestCaseError::fail(format!("{raw:?} accepted but does not resolve")));
        };
        prop_assert_eq!(joined.origin(), base.origin(), "{:?} -> {}", raw, joined);
        prop_assert!(!joined.path().starts_with("/_vigie/"), "{:?} -> {}", raw, joined);
        if let Ok(seen) = normalize(joined.path()) {
            prop_assert!(!seen.starts_with("/_vigie/"), "{:?} -> {} -> {}", raw, joined, seen);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Units

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("msec", 1),
    ("s", 1000),
    ("sec", 1000),
    ("m", 60_000),
    ("min", 60_000),
    ("h", 3_600_000),
    ("hours", 3_600_000),
    ("d", 86_400_000),
];

const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("KiB", 1 << 10),
    ("kb", 1_000),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("g", 1 << 30),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("TiB", 1 << 40),
    ("tb", 1_000_000_000_000),
];

#[rustfmt::skip]
const UNIT_PIECES: &[&str] = &[
    "0", "1", "9", "99999999999999999999", "_", " ", "\t", "-", "+", ".", "e", "ms", "s", "m", "h",
    "d", "w", "y", "us", "ns", "KiB", "kib", "k", "MB", "TiB", "B", "\u{0}", "é", "٣", "\u{a0}",
    "１",
];

proptest! {
    #![proptest_config(cases(3000))]

    /// `parse_duration` never panics, refuses a bare number, and reads `N<unit>` (any spaces
    /// around) as N units.
    #[test]
    fn durations_parse_as_written(
        junk in spelled(UNIT_PIECES, 8),
        n in 0u64..1_000_000,
        unit in select(DURATION_UNITS),
        pad in select(&["", " ", "\t"][..]),
    ) {
        let _ = parse_duration(&junk);
        let digits = n.to_string();
        prop_assert!(parse_duration(&digits).is_err());
        let text = format!("{pad}{n}{}{pad}", unit.0);
        prop_assert_eq!(
            parse_duration(&text),
            Ok(std::time::Duration::from_millis(n * unit.1)),
            "{:?}", text
        );
    }

    /// What `humantime` writes for a duration, `parse_duration` reads back exactly.
    #[test]
    fn durations_round_trip(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
        let d = std::time::Duration::new(secs, nanos);
        let text = humantime::format_duration(d).to_string();
        prop_assert_eq!(parse_duration(&text), Ok(d), "{:?}", text);
    }

    /// `parse_size` never panics, and reads `N<unit>` (any case, `_` between digits, a space
    /// before the unit) as N times the unit, or says it is too large: never a wrapped value.
    #[test]
    fn sizes_parse_as_written(
        junk in spelled(UNIT_PIECES, 8),
        n in prop_oneof![0u64..100_000, any::<u64>()],
        unit in select(SIZE_UNITS),
        upper in any::<bool>(),
        space in any::<bool>(),
        underscore in any::<bool>(),
    ) {
        let _ = parse_size(&junk);
        let mut digits = n.to_string();
        if underscore && digits.len() > 1 {
            digits.insert(1, '_');
        }
        let unit_text = if upper { unit.0.to_uppercase() } else { unit.0.to_lowercase() };
        let sep = if space && !unit.0.is_empty() { " " } else { "" };
        let text = format!("{digits}{sep}{unit_text}");
        match n.checked_mul(unit.1) {
            Some(v) => prop_assert_eq!(parse_size(&text), Ok(v), "{:?}", text),
            None => prop_assert!(
                parse_size(&text).is_err_and(|e| e.contains("too large")),
                "{:?}", text
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration loaders

/// A YAML node; scalars are written as they are, so some trees are not valid YAML.
#[derive(Debug, Clone)]
enum Yaml {
    Scalar(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    fn text(&self) -> String {
        let mut out = String::new();
        self.write(0, &mut out);
        out
    }

    fn write(&self, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match self {
            Yaml::Scalar(s) => {
                out.push_str(&pad);
                out.push_str(s);
                out.push('\n');
            }
            Yaml::Seq(items) if items.is_empty() => out.push_str(&format!("{pad}[]\n")),
            Yaml::Map(entries) if entries.is_empty() => out.push_str(&format!("{pad}{{}}\n")),
            Yaml::Seq(items) => {
                for item in items {
                    match item {
                        Yaml::Scalar(s) => out.push_str(&format!("{pad}- {s}\n")),
                        _ => {
                            out.push_str(&format!("{pad}-\n"));
                            item.write(indent + 2, out);
                        }
                    }
                }
            }
            Yaml::Map(entries) => {
                for (k, v) in entries {
                    match v {
                        Yaml::Scalar(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                        _ => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            v.write(indent + 2, out);
                        }
                    }
                }
            }
        }
    }
}

/// The secrets used wherever the configuration takes one (a password, a TOTP key, valid or
/// not): no message may repeat them.
const SECRET: &str = "Sekr3t-Marker-2718";
const TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// The kinds of value a key of the configuration file takes.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    /// Text, these values being right for the key.
    Text(&'static [&'static str]),
    Number,
    Bool,
    /// A file the loader reads: only paths that cannot hang a read (absent, or a directory).
    File,
    Secret,
}

/// The shape of the configuration file (`config/vigie.example.yaml`), key for key.
#[derive(Debug, Clone)]
enum Shape {
    Leaf(Leaf),
    List(Box<Shape>),
    Map(Vec<(&'static str, Shape)>),
}

const DURATIONS: &[&str] = &["15m", "500ms", "1h 30m", "30s", "12h", "2s", "10m"];
const SIZES: &[&str] = &["16KiB", "32KiB", "1MiB", "4GiB", "8192", "1_000_000"];
const ADDRS: &[&str] = &[
    "\"127.0.0.1:8080\"",
    "\"0.0.0.0:8443\"",
    "\"127.0.0.1:9901\"",
    "\"[::1]:0\"",
];
const HOSTS: &[&str] = &[
    "viewer.test",
    "alias.viewer.test",
    "VIEWER.test",
    "10.0.0.1",
];
const ROLES: &[&str] = &["doctor", "admin", "\"*\"", "radiologist"];

fn schema() -> Shape {
    use Leaf::*;
    use Shape::{Leaf as L, List, Map};
    let text = |good: &'static [&'static str]| L(Text(good));
    let list = |good: &'static [&'static str]| List(Box::new(L(Text(good))));
    let user = Map(vec![
        ("username", text(&["dr.martin", "admin@clinic", "x"])),
        ("password_hash", text(&[HASH])),
        ("totp_secret", L(Secret)),
        ("totp_secret_file", L(File)),
        ("roles", list(ROLES)),
        ("disabled", L(Bool)),
    ]);
    Map(vec![
        ("server_name", text(HOSTS)),
        ("server_aliases", list(HOSTS)),
        (
            "listen",
            Map(vec![
                ("https", text(ADDRS)),
                ("http", text(ADDRS)),
                ("admin", text(ADDRS)),
                ("public_https_port", L(Number)),
            ]),
        ),
        (
            "tls",
            Map(vec![
                ("cert_file", text(&["a.crt"])),
                ("key_file", text(&["a.key"])),
                ("min_version", text(&["\"1.2\"", "\"1.3\""])),
                ("reload_interval", text(DURATIONS)),
            ]),
        ),
        (
            "upstream",
            Map(vec![
                (
                    "url",
                    text(&["\"http://127.0.0.1:8042\"", "http://orthanc:8042"]),
                ),
                ("connect_timeout", text(DURATIONS)),
                ("response_timeout", text(DURATIONS)),
                ("pool_idle_timeout", text(DURATIONS)),
                ("pool_max_idle", L(Number)),
                ("health_path", text(&["/system", "/"])),
                (
                    "credentials",
                    Map(vec![
                        ("username", text(&["gateway"])),
                        ("password", L(Secret)),
                        ("password_file", L(File)),
                        ("password_env", text(&["VIGIE_PROPTEST_UNSET"])),
                    ]),
                ),
            ]),
        ),
        (
            "limits",
            Map(vec![
                ("max_connections", L(Number)),
                ("tls_handshake_timeout", text(DURATIONS)),
                ("header_read_timeout", text(DURATIONS)),
                ("keepalive_timeout", text(DURATIONS)),
                ("max_header_bytes", text(SIZES)),
                ("max_headers", L(Number)),
                ("h2_max_concurrent_streams", L(Number)),
                ("max_request_body", text(SIZES)),
                ("drain_timeout", text(DURATIONS)),
                ("worker_threads", L(Number)),
            ]),
        ),
        ("responses", Map(vec![("no_store", L(Bool))])),
        (
            "log",
            Map(vec![
                ("format", text(&["json", "text", "auto"])),
                ("level", text(&["info", "debug,hyper=warn"])),
                ("access_log", L(Bool)),
            ]),
        ),
        ("state_dir", text(&["/tmp/vigie-proptest-state"])),
        (
            "auth",
            Map(vec![
                ("users", List(Box::new(user))),
                ("users_file", L(File)),
                ("second_factor", text(&["totp", "off"])),
                ("idle_timeout", text(DURATIONS)),
                ("absolute_timeout", text(DURATIONS)),
                ("max_failures", L(Number)),
                ("lockout", text(DURATIONS)),
                ("failure_delay", text(DURATIONS)),
            ]),
        ),
        (
            "access",
            List(Box::new(Map(vec![
                (
                    "path",
                    text(&["/", "/tools/", "/studies/*/modify", "/tools/execute-script"]),
                ),
                ("methods", list(&["GET", "post", "DELETE"])),
                ("roles", list(ROLES)),
            ]))),
        ),
    ])
}

/// A syntactically valid argon2id hash (the loader checks its form, not the password).
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzYWx0$\
                    aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

/// Values the real keys take, values they should not, and YAML's own syntax.
#[rustfmt::skip]
const TEXTS: &[&str] = &[
    "", "~", "null", "0", "-1", "1.5", "true", "no", "\"\"", "''", "viewer.test",
    "viewer.example.org", "VIEWER.TEST", "https://viewer.test/", "a..b", "-a", "[::1]:443",
    "\"0.0.0.0:8443\"", "\"127.0.0.1:9901\"", "\"[::]:0\"", "\"127.0.0.1:0\"", "8443",
    "\"http://127.0.0.1:8042\"", "\"http://127.0.0.1:8443\"", "https://x", "http://u:pw@h",
    "http://h/p?q", "ftp://h", "15m", "0s", "1h 30m", "500ms", "30", "99999999999999999999h",
    "16KiB", "8KiB", "1MiB", "2MiB", "99999999999TiB", "12 parsecs", "totp", "off", "\"1.2\"",
    "\"1.3\"", "1.0", "json", "text", "auto", "info", "debug,hyper=warn", "[{", "a=b[c{d}]",
    "dr.martin", "a b", "admin", "doctor", "\"*\"", "GET", "get", "DELETE", "B@D", "/", "/tools/",
    "/tools/execute-script", "/studies/*/modify", "/a*", "/../x", "/%2e", "x", "GEZDGNBV", "!!!",
    "/tmp/vigie-proptest-state", "!!binary aGk=", "!!str 1", "&a x", "*a", "*b", "{", "[", "]",
    "}", "- x", "|", ">", "#", "%YAML 1.2", "---", "...", "? x", ": x", "'q", "\"q", "\\", "é",
    "\u{0}", "\u{feff}", "\t", "<<: *a",
];

/// Mostly quoted strings (JSON strings are YAML double-quoted scalars), so that most files
/// parse and validation runs; sometimes the raw text, YAML syntax and all.
fn text_value() -> BoxedStrategy<String> {
    let quoted = |s: String| serde_json::to_string(&s).unwrap_or_default();
    prop_oneof![
        6 => select(TEXTS).prop_map(move |s| quoted(s.to_owned())),
        2 => select(TEXTS).prop_map(String::from),
        1 => Just(HASH.to_owned()),
        1 => "\\PC{0,16}",
        1 => any::<String>().prop_map(quoted),
    ]
    .boxed()
}

fn leaf_value(leaf: Leaf) -> BoxedStrategy<String> {
    match leaf {
        Leaf::Text([]) => text_value(),
        Leaf::Text(good) => prop_oneof![
            2 => select(good).prop_map(String::from),
            1 => text_value(),
        ]
        .boxed(),
        Leaf::Number => prop_oneof![
            3 => (0u32..200).prop_map(|n| n.to_string()),
            1 => select(&[
                "0", "-1", "65535", "65536", "4294967296", "18446744073709551616", "1e3",
                "0x10", "1_000", "+5", "1.0", ".inf", "\"5\"",
            ][..])
            .prop_map(String::from),
        ]
        .boxed(),
        Leaf::Bool => prop_oneof![
            3 => select(&["true", "false"][..]),
            1 => select(&["yes", "no", "on", "True", "~", "1"][..]),
        ]
        .prop_map(String::from)
        .boxed(),
        Leaf::File => select(&["", "/", "/nonexistent/vigie-proptest", "\"\""][..])
            .prop_map(String::from)
            .boxed(),
        Leaf::Secret => select(&[SECRET, TOTP_SECRET, "''"][..])
            .prop_map(String::from)
            .boxed(),
    }
}

/// Anything at all where a key expects one shape: scalars, lists or mappings of scalars.
fn stray() -> BoxedStrategy<Yaml> {
    let scalar = text_value().prop_map(Yaml::Scalar);
    prop_oneof![
        3 => scalar.clone(),
        1 => prop::collection::vec(scalar.clone(), 0..3).prop_map(Yaml::Seq),
        1 => prop::collection::vec((select(&["x", "path", "username", "<<"][..]), scalar), 0..3)
            .prop_map(|v| Yaml::Map(v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
    ]
    .boxed()
}

/// A tree of the configuration's shape, mostly of the right types, with stray values and
/// unknown keys mixed in.
fn shaped(shape: &Shape) -> BoxedStrategy<Yaml> {
    shaped_with(shape, 0.7)
}

/// [`shaped`], each key present with probability `present`.
fn shaped_with(shape: &Shape, present: f64) -> BoxedStrategy<Yaml> {
    let right = match shape {
        Shape::Leaf(leaf) => leaf_value(*leaf).prop_map(Yaml::Scalar).boxed(),
        Shape::List(item) => prop::collection::vec(shaped_with(item, present), 0..3)
            .prop_map(Yaml::Seq)
            .boxed(),
        Shape::Map(keys) => {
            let entries: Vec<BoxedStrategy<Option<(String, Yaml)>>> = keys
                .iter()
                .map(|(k, s)| {
                    let k = (*k).to_owned();
                    prop::option::weighted(present, shaped_with(s, present))
                        .prop_map(move |v| v.map(|v| (k.clone(), v)))
                        .boxed()
                })
                .collect();
            (entries, prop::option::weighted(0.02, stray()))
                .prop_map(|(entries, unknown)| {
                    let mut e: Vec<(String, Yaml)> = entries.into_iter().flatten().collect();
                    if let Some(v) = unknown {
                        e.push(("unknown_key".into(), v));
                    }
                    Yaml::Map(e)
                })
                .boxed()
        }
    };
    prop_oneof![40 => right, 1 => stray()].boxed()
}

/// A configuration close to valid: every required key right, the rest random.
fn near_valid() -> BoxedStrategy<String> {
    let Shape::Map(top) = schema() else {
        unreachable!()
    };
    let optional: Vec<(&'static str, Shape)> = top
        .into_iter()
        .filter(|(k, _)| !["server_name", "listen", "tls", "upstream"].contains(k))
        .collect();
    (shaped_with(&Shape::Map(optional), 0.4), any::<bool>())
        .prop_map(|(rest, second_factor_off)| {
            let mut text = String::from(
                "server_name: viewer.test\nlisten:\n  https: \"127.0.0.1:8443\"\n\
                 tls:\n  cert_file: a.crt\n  key_file: a.key\n\
                 upstream:\n  url: \"http://127.0.0.1:8042\"\n",
            );
            let mut rest = rest;
            // Users without TOTP secrets then pass, and the rest of their entry is checked.
            if second_factor_off
                && let Yaml::Map(top) = &mut rest
                && let Some((_, Yaml::Map(auth))) = top.iter_mut().find(|(k, _)| k == "auth")
            {
                auth.retain(|(k, _)| k != "second_factor");
                auth.push(("second_factor".into(), Yaml::Scalar("off".into())));
            }
            text.push_str(&rest.text());
            text
        })
        .boxed()
}

/// What holds of any outcome: an error lists at least one error, each with a YAML path and a
/// message; a success carries only warnings and a configuration within its documented
/// bounds; and no message repeats a secret.
fn check_outcome(
    text: &str,
    outcome: Result<(Config, Vec<vigie::config::Problem>), ConfigError>,
) -> Result<(), TestCaseError> {
    match outcome {
        Err(e) => {
            let problems = e.problems();
            prop_assert!(
                problems.iter().any(|p| p.severity == Severity::Error),
                "{text}\n{problems:?}"
            );
            for p in &problems {
                prop_assert!(!p.path.is_empty() && !p.message.is_empty(), "{text}\n{p:?}");
            }
            let shown = e.to_string();
            prop_assert!(
                !shown.contains(SECRET) && !shown.contains(TOTP_SECRET),
                "{text}\n{e}"
            );
        }
        Ok((c, warnings)) => {
            for w in &warnings {
                prop_assert_eq!(w.severity, Severity::Warning);
                let shown = w.to_string();
                prop_assert!(
                    !shown.contains(SECRET) && !shown.contains(TOTP_SECRET),
                    "{text}\n{w}"
                );
            }
            prop_assert!(!c.server_name.is_empty());
            prop_assert!((8192..=1 << 20).contains(&c.limits.max_header_bytes));
            prop_assert!(c.limits.max_connections >= 1 && c.limits.max_headers >= 1);
            prop_assert!(c.auth.max_failures >= 1);
            prop_assert!(c.auth.idle_timeout <= c.auth.absolute_timeout);
            for d in [
                c.limits.header_read_timeout,
                c.limits.keepalive_timeout,
                c.limits.tls_handshake_timeout,
                c.upstream.connect_timeout,
                c.auth.idle_timeout,
            ] {
                prop_assert!(!d.is_zero(), "{}", text);
            }
            prop_assert!(c.upstream.health_path.starts_with('/'));
            for rule in c.access.iter().flatten() {
                prop_assert!(rule.path.starts_with('/') && !rule.path.contains(".."));
            }
            for u in &c.auth.users {
                prop_assert!(
                    vigie::config::valid_username(&u.username),
                    "{:?}",
                    u.username
                );
                prop_assert!(!c.auth.second_factor || u.disabled || u.totp_secret.is_some());
            }
        }
    }
    Ok(())
}

/// Random users-file contents: a list of user mappings, or anything.
fn users_file_text() -> BoxedStrategy<String> {
    let Shape::Map(top) = schema() else {
        unreachable!()
    };
    let users = top
        .into_iter()
        .find(|(k, _)| *k == "auth")
        .and_then(|(_, auth)| match auth {
            Shape::Map(keys) => keys
                .into_iter()
                .find(|(k, _)| *k == "users")
                .map(|(_, s)| s),
            _ => None,
        })
        .unwrap_or(Shape::Leaf(Leaf::Text(&[])));
    prop_oneof![
        3 => shaped(&users).prop_map(|y| y.text()),
        1 => prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(cases(300))]

    /// Any bytes (read as lossy UTF-8) give a configuration or errors with their YAML path,
    /// never a panic.
    #[test]
    fn config_from_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        check_outcome(&text, Config::from_yaml(&text))?;
    }

    /// Any tree of the real keys with random values gives a configuration or errors with their
    /// YAML path, never a panic; a configuration accepted is within its documented bounds.
    #[test]
    fn config_from_any_tree(tree in shaped(&schema())) {
        let text = tree.text();
        check_outcome(&text, Config::from_yaml(&text))?;
    }

    /// The same, starting from a file whose required keys are right, so that validation (not
    /// only YAML typing) runs on the random part.
    #[test]
    fn config_near_valid(text in near_valid()) {
        check_outcome(&text, Config::from_yaml(&text))?;
    }

    /// Deep nesting (flow or block, under a key that takes a list or at the top) and many
    /// aliases give an error (these files lack the required keys), never a stack overflow.
    #[test]
    fn config_deep_or_aliased(
        key in select(&["", "access:\n", "server_aliases:\n", "auth:\n  users:\n"][..]),
        opener in select(&["[", "{a: ", "- ", "[{a: [", "? "][..]),
        depth in 1usize..5000,
        aliases in any::<bool>(),
    ) {
        let mut text = format!("{key}{}", opener.repeat(depth));
        if aliases {
            // One anchored rule repeated: the typed loader leaves no room for nested expansion.
            let roles = ["doctor"; 10].join(", ");
            text = format!("access:\n  - &r {{path: /, roles: [{roles}]}}\n");
            text.push_str(&"  - *r\n".repeat(depth % 64));
        }
        let outcome = Config::from_yaml(&text);
        prop_assert!(outcome.is_err(), "{}", text);
        check_outcome(&text, outcome)?;
    }

    /// Any `auth.users_file` contents give accounts or errors naming `auth.users_file`, never
    /// a panic; no message repeats a TOTP secret.
    #[test]
    fn users_file_from_anything(contents in users_file_text(), off in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.yaml");
        std::fs::write(&path, &contents).unwrap();
        let text = format!(
            "server_name: viewer.test\nlisten:\n  https: \"127.0.0.1:8443\"\n\
             tls:\n  cert_file: a.crt\n  key_file: a.key\n\
             upstream:\n  url: \"http://127.0.0.1:8042\"\n\
             auth:\n  second_factor: {}\n  users_file: {:?}\n",
            if off { "off" } else { "totp" },
            path.display().to_string(),
        );
        let outcome = Config::from_yaml(&text);
        if let Err(e) = &outcome {
            prop_assert!(
                e.problems().iter().any(|p| p.path.starts_with("auth.users_file")),
                "{contents}\n{e}"
            );
        }
        check_outcome(&contents, outcome)?;
    }
}
