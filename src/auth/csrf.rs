//! Cross-site request defences.
//!
//! * Unsafe requests (anything but GET, HEAD, OPTIONS) that a browser says come from another
//!   site are refused: `Sec-Fetch-Site` decides first; without it, `Origin` must be this origin
//!   (scheme, host and port), and `Origin: null` is refused. Clients that send neither (command
//!   line tools, DICOMweb clients) are not browsers and cannot be driven by another site.
//! * The sign-in and sign-out forms also carry a token: an HMAC, under the server's key, of a
//!   random value kept in a `__Host-vigie-csrf` cookie (sign-in) or of the session id
//!   (sign-out).

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Method};

/// The cookie holding the sign-in form's random value.
pub const COOKIE: &str = "__Host-vigie-csrf";

/// Whether an unsafe request comes from another site. `host` is the authority the request
/// names (`viewer.example.org` or `localhost:8443`).
pub fn is_cross_site(method: &Method, headers: &HeaderMap, host: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() != b"same-origin";
    }
    match headers.get(http::header::ORIGIN) {
        None => false,
        Some(origin) => {
            let origin = origin.to_str().unwrap_or("null");
            origin
                .strip_prefix("https://")
                .is_none_or(|rest| !rest.eq_ignore_ascii_case(host))
        }
    }
}

/// A form token for `purpose` bound to `binding`.
pub fn token(key: &[u8], purpose: &str, binding: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(purpose.as_bytes());
    ctx.update(&[0]);
    ctx.update(binding.as_bytes());
    URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
}

/// Checks a form token in constant time.
pub fn verify(key: &[u8], purpose: &str, binding: &str, candidate: &str) -> bool {
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
pub fn new_nonce() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    Some(URL_SAFE_NO_PAD.encode(b))
}

/// The `Set-Cookie` value for the sign-in form's random value.
pub fn set_cookie(nonce: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={nonce}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .ok()
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
