//! `next=` after sign-in: always on the gateway's origin, never one of its own pages.

use super::*;

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
