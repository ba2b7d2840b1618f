//! Path normalisation, and the path the guard hands on to the gate, the policy and the
//! upstream.

use super::*;

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
