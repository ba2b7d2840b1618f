//! Session tokens: a JWT (HS256 pinned, key chosen by `kid`) in the `__Host-vigie` cookie
//! (Secure, HttpOnly, SameSite=Lax, Path=/). The token names the session id, which the store must
//! still hold, so logout and revocation take effect at once. `act` is the time of the last
//! activity: the cookie is re-issued with a new `act` at most once a minute, and a token whose
//! `act` is older than the idle timeout is refused.
//!
//! `Set-Cookie` values are built by the `cookie` crate (`host_cookie`). Reading the request's
//! `Cookie` header stays hand-written ([`cookie_value`]): it works on bytes so that another
//! cookie's non-ASCII value cannot hide ours, and takes only a visible-ASCII value; that choice is
//! the gateway's security semantics, which a general-purpose parser does not promise.

use std::collections::HashMap;
use std::sync::LazyLock;

use cookie::{Cookie, SameSite};
use http::HeaderValue;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;

/// The cookie's name. `__Host-` makes browsers refuse it unless Secure, Path=/ and host-only.
pub(crate) const COOKIE: &str = "__Host-vigie";
const ISSUER: &str = "vigie";
/// Tolerated clock difference on `exp` and `nbf`; the tokens are our own, so it stays small.
const LEEWAY_SECS: u64 = 5;

/// The claims Vigie puts in a session token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Claims {
    pub iss: String,
    pub aud: String,
    /// User name.
    pub sub: String,
    /// Session id.
    pub sid: String,
    pub iat: u64,
    pub nbf: u64,
    /// Absolute end of the session.
    pub exp: u64,
    /// Last activity.
    pub act: u64,
}

/// Signs and verifies session tokens.
pub(crate) struct Tokens {
    signing: (String, EncodingKey),
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("signing_kid", &self.signing.0)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused (kept for the debug log; the client only ever sees "sign in").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Malformed,
    UnknownKey,
    Invalid,
}

impl Tokens {
    /// Tokens for this deployment (`audience` names it, so another gateway's tokens fail).
    pub(crate) fn new(ring: &KeyRing, audience: &str) -> Tokens {
        let signing = &ring.keys[0];
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Tokens {
            signing: (
                signing.kid.clone(),
                EncodingKey::from_secret(signing.bytes().expose_secret()),
            ),
            verifying: ring
                .keys
                .iter()
                .map(|k| {
                    (
                        k.kid.clone(),
                        DecodingKey::from_secret(k.bytes().expose_secret()),
                    )
                })
                .collect(),
            validation,
        }
    }

    /// A signed token for these claims.
    pub(crate) fn sign(&self, claims: &Claims) -> Option<String> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing.0.clone());
        jsonwebtoken::encode(&header, claims, &self.signing.1).ok()
    }

    /// Verifies signature, algorithm, issuer, audience, `exp` and `nbf`.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, Refused> {
        self.verify_with(token, true)
    }

    /// Signature, algorithm, issuer and audience valid, whatever `exp` says: a token that was
    /// ours and has run out (the sign-in page then says the session expired).
    pub(crate) fn verify_ignoring_expiry(&self, token: &str) -> bool {
        self.verify_with(token, false).is_ok()
    }

    fn verify_with(&self, token: &str, check_exp: bool) -> Result<Claims, Refused> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refused::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(Refused::Invalid);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(Refused::UnknownKey)?;
        let result = if check_exp {
            jsonwebtoken::decode::<Claims>(token, key, &self.validation)
        } else {
            let mut relaxed = self.validation.clone();
            relaxed.validate_exp = false;
            jsonwebtoken::decode::<Claims>(token, key, &relaxed)
        };
        result.map(|d| d.claims).map_err(|_| Refused::Invalid)
    }
}

/// Whether a cookie name (or the bare value of a nameless cookie, which browsers send back as
/// it is) belongs to the gateway: every name starting with `__Host-vigie`, in any case.
pub(crate) fn is_gateway_cookie(name: &[u8]) -> bool {
    const PREFIX: &[u8] = b"__host-vigie";
    name.len() >= PREFIX.len() && name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
}

/// Whether a `Set-Cookie` value would set one of the gateway's cookies in the browser.
pub(crate) fn sets_gateway_cookie(set_cookie: &[u8]) -> bool {
    let pair = set_cookie
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    match memchr::memchr(b'=', pair) {
        // `=__Host-vigie=x` or `__Host-vigie` alone: a nameless cookie whose value the browser
        // sends back looking like ours.
        Some(0) => is_gateway_cookie(pair[1..].trim_ascii()),
        Some(eq) => is_gateway_cookie(pair[..eq].trim_ascii()),
        None => is_gateway_cookie(pair),
    }
}

/// One of the gateway's cookies: `__Host-` requires Secure, Path=/ and no Domain; HttpOnly keeps
/// it from scripts. No Max-Age: it ends with the browser session.
pub(super) fn host_cookie<'c>(name: &'c str, value: &'c str, same_site: SameSite) -> Cookie<'c> {
    Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(same_site)
        .build()
}

/// The `Set-Cookie` value carrying a token. No Max-Age: the cookie ends with the browser
/// session, and the token's own `exp` bounds it in any case.
pub(crate) fn set_cookie(token: &str) -> Option<HeaderValue> {
    let mut v =
        HeaderValue::from_str(&host_cookie(COOKIE, token, SameSite::Lax).to_string()).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// The deletion of the session cookie, built once: the same attributes, no value, Max-Age=0.
static CLEAR: LazyLock<HeaderValue> = LazyLock::new(|| {
    let mut c = host_cookie(COOKIE, "", SameSite::Lax);
    c.set_max_age(cookie::time::Duration::ZERO);
    // Constant visible ASCII, so this cannot fail (`tests::set_cookie_values` pins the value);
    // were it to, an empty value, which browsers ignore (RFC 6265 §5.2: no `=`), not a wrong one.
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
});

/// The `Set-Cookie` value that deletes the session cookie.
pub(crate) fn clear_cookie() -> HeaderValue {
    CLEAR.clone()
}

/// The value of cookie `name` in the request's `Cookie` headers (HTTP/1.1 fields or HTTP/2
/// crumbs alike). The fields are read as bytes: another cookie's non-ASCII value (which browsers
/// do send) must not hide this one. Only a value made of visible ASCII is returned.
pub(crate) fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = memchr::memchr(b'=', pair)?;
            if &pair[..eq] != name.as_bytes() {
                return None;
            }
            let value = std::str::from_utf8(&pair[eq + 1..]).ok()?;
            value.bytes().all(|b| b.is_ascii_graphic()).then_some(value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> (tempfile::TempDir, KeyRing) {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_create(dir.path(), 0).unwrap();
        (dir, ring)
    }

    use crate::host::unix_now as now;

    fn claims(aud: &str) -> Claims {
        let n = now();
        Claims {
            iss: ISSUER.into(),
            aud: aud.into(),
            sub: "dr.martin".into(),
            sid: "s1".into(),
            iat: n,
            nbf: n,
            exp: n + 3600,
            act: n,
        }
    }

    #[test]
    fn sign_verify_and_refusals() {
        let (dir, mut ring) = ring();
        let tokens = Tokens::new(&ring, "vigie:viewer.test");
        let t = tokens.sign(&claims("vigie:viewer.test")).unwrap();
        assert_eq!(tokens.verify(&t).unwrap().sub, "dr.martin");
        // Wrong audience, expired, not yet valid.
        let other = tokens.sign(&claims("vigie:elsewhere")).unwrap();
        assert_eq!(tokens.verify(&other), Err(Refused::Invalid));
        let mut c = claims("vigie:viewer.test");
        c.exp = now() - 60;
        assert_eq!(
            tokens.verify(&tokens.sign(&c).unwrap()),
            Err(Refused::Invalid)
        );
        let mut c = claims("vigie:viewer.test");
        c.nbf = now() + 120;
        assert_eq!(
            tokens.verify(&tokens.sign(&c).unwrap()),
            Err(Refused::Invalid)
        );
        // Tampered payload.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&Claims {
                sub: "admin".into(),
                ..claims("vigie:viewer.test")
            })
            .unwrap(),
        );
        parts[1] = &forged;
        assert_eq!(tokens.verify(&parts.join(".")), Err(Refused::Invalid));
        // alg: none.
        let none_header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none","typ":"JWT"}"#,
        );
        let none = format!("{none_header}.{}.", t.split('.').nth(1).unwrap());
        assert!(tokens.verify(&none).is_err());
        // Rotation: the old key still verifies, a new token uses the new key.
        ring.rotate(dir.path(), now(), 3600).unwrap();
        let rotated = Tokens::new(&ring, "vigie:viewer.test");
        assert!(rotated.verify(&t).is_ok());
        let t2 = rotated.sign(&claims("vigie:viewer.test")).unwrap();
        assert_eq!(tokens.verify(&t2), Err(Refused::UnknownKey));
        // A key the ring does not hold.
        let (_d, foreign) = super::tests::ring();
        let foreign = Tokens::new(&foreign, "vigie:viewer.test");
        let t3 = foreign.sign(&claims("vigie:viewer.test")).unwrap();
        assert!(rotated.verify(&t3).is_err());
    }

    #[test]
    fn gateway_cookie_names() {
        for ours in [
            &b"__Host-vigie=x; Path=/"[..],
            b"__host-VIGIE-csrf=x",
            b"  __Host-vigie-next = y ; Secure",
            b"=__Host-vigie=evil",
            b"__Host-vigie",
            b"__Host-vigie=\xff\xfe",
        ] {
            assert!(
                sets_gateway_cookie(ours),
                "{}",
                String::from_utf8_lossy(ours)
            );
        }
        for theirs in [
            &b"session=__Host-vigie"[..],
            b"orthanc=1; Path=/__Host-vigie",
            b"__Host-vigi=x",
            b"",
        ] {
            assert!(
                !sets_gateway_cookie(theirs),
                "{}",
                String::from_utf8_lossy(theirs)
            );
        }
    }

    #[test]
    fn cookies() {
        let mut h = http::HeaderMap::new();
        h.append("cookie", "a=1; __Host-vigie=tok.en.x; b=2".parse().unwrap());
        assert_eq!(cookie_value(&h, COOKIE), Some("tok.en.x"));
        assert_eq!(cookie_value(&h, "c"), None);
        // Another cookie's non-ASCII bytes, in the same field or in another one, hide nothing.
        let mut h = http::HeaderMap::new();
        h.append(
            "cookie",
            http::HeaderValue::from_bytes(b"pref=caf\xc3\xa9; __Host-vigie=tok.en.x").unwrap(),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some("tok.en.x"));
        let mut h = http::HeaderMap::new();
        h.append("cookie", http::HeaderValue::from_bytes(b"x=\xff").unwrap());
        h.append("cookie", "__Host-vigie=tok.en.x".parse().unwrap());
        assert_eq!(cookie_value(&h, COOKIE), Some("tok.en.x"));
        // Our own cookie with a value that is not visible ASCII is no session.
        let mut h = http::HeaderMap::new();
        h.append(
            "cookie",
            http::HeaderValue::from_bytes(b"__Host-vigie=t\xffk").unwrap(),
        );
        assert_eq!(cookie_value(&h, COOKIE), None);
    }

    /// A `Set-Cookie` value as its name=value pair and its set of attributes (RFC 6265 §5.2:
    /// their order carries no meaning).
    fn parts(v: &str) -> (&str, std::collections::BTreeSet<&str>) {
        let mut it = v.split("; ");
        (it.next().unwrap(), it.collect())
    }

    #[test]
    fn set_cookie_values() {
        // The values as they were written by hand before the `cookie` crate built them: the
        // crate puts the attributes in its own order, and sets exactly the same ones.
        let before = [
            "__Host-vigie=abc.def-ghi_j; Path=/; Secure; HttpOnly; SameSite=Lax",
            "__Host-vigie=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
            "__Host-vigie-csrf=Zm9vYmFy_-; Path=/; Secure; HttpOnly; SameSite=Strict",
        ];
        let session = set_cookie("abc.def-ghi_j").unwrap();
        assert!(session.is_sensitive());
        let now = [
            session,
            clear_cookie(),
            super::super::csrf::set_cookie("Zm9vYmFy_-").unwrap(),
        ];
        let now = now.each_ref().map(|v| v.to_str().unwrap());
        assert_eq!(
            now,
            [
                "__Host-vigie=abc.def-ghi_j; HttpOnly; SameSite=Lax; Secure; Path=/",
                "__Host-vigie=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0",
                "__Host-vigie-csrf=Zm9vYmFy_-; HttpOnly; SameSite=Strict; Secure; Path=/",
            ]
        );
        for (b, n) in before.iter().zip(now) {
            assert_eq!(parts(b), parts(n));
            assert!(!n.contains("Domain") && !n.contains("Expires"), "{n}");
        }
        // A value a header cannot carry is no cookie.
        assert!(set_cookie("a\nb").is_none() && super::super::csrf::set_cookie("\0").is_none());
    }
}
