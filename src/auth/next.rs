//! What the sign-in pages read from a request before anything else: where to go after signing
//! in (`next`, same-origin only) and the language. Shared by the form (`routes.rs`) and the
//! OpenID endpoints (`oidc/routes.rs`).

use http::Request;

use super::pages::Lang;

/// The page language: `explicit` (a `lang` parameter), else the browser's Accept-Language.
pub(crate) fn lang_of<B>(req: &Request<B>, explicit: Option<&str>) -> Lang {
    let accept = req
        .headers()
        .get(http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Lang::negotiate(explicit, accept)
}

/// Only same-origin relative paths: anything else (`//host`, `/\host`, schemes, control
/// characters, our own sign-in page) sends the user to `/`.
pub fn safe_next(raw: &str) -> String {
    let ok = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.starts_with("/\\")
        && raw.len() <= 2048
        && !raw.contains('\\')
        && raw.bytes().all(|b| b.is_ascii_graphic())
        && raw.parse::<http::uri::PathAndQuery>().is_ok()
        && !moves_or_reaches_vigie(raw);
    if ok { raw.to_owned() } else { "/".into() }
}

/// Whether the path of `next`, with every escape decoded, has a `.` or `..` segment (a browser
/// resolves them, `%2e` included, before it asks: `/x/../_vigie/login`) or starts with the
/// gateway's own `_vigie` segment (the guard decodes `/%5Fvigie/` into `/_vigie/`). A `next`
/// the gate wrote is a normalised path and has neither.
fn moves_or_reaches_vigie(next: &str) -> bool {
    let path = next.split(['?', '#']).next().unwrap_or_default();
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    let mut segments = decoded.split(|&b| b == b'/').filter(|s| !s.is_empty());
    let first = segments.next();
    first == Some(b"_vigie".as_slice())
        || first
            .into_iter()
            .chain(segments)
            .any(|s| s == b"." || s == b"..")
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_same_origin_only() {
        for ok in [
            "/",
            "/app/explorer.html",
            "/web-viewer/app/viewer.html?series=abc&x=1",
        ] {
            assert_eq!(safe_next(ok), ok);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil",
            "javascript:alert(1)",
            "evil.example",
            "/a\nb",
            "/_vigie/login",
            // Found by tests/it/properties/next.rs: the browser or the guard turns these into /_vigie/.
            "/%5fvigie/",
            "/%5Fvigie/login",
            "/./_vigie/login",
            "/x/../_vigie/login",
            "/x/%2e%2E/_vigie/logout",
            "/x/.%2e/_vigie/logout",
            "",
            "/\u{0}",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }
}
