//! Security headers on every HTTPS response, the gateway's own and the upstream's alike, and
//! removal of the headers that advertise the upstream's software.

use std::task::{Context, Poll};

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};

use super::{MapResponse, ResponseMapper};

static X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");
const FRAME_DENY: &str = "DENY";
const FRAME_SAMEORIGIN: &str = "SAMEORIGIN";
const ANCESTORS_NONE: &str = "frame-ancestors 'none'";
const ANCESTORS_SELF: &str = "frame-ancestors 'self'";

/// Adds the headers; see the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SecurityHeadersLayer;

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders { inner }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SecurityHeaders<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for SecurityHeaders<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = MapResponse<S::Future, Apply>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        MapResponse::new(self.inner.call(req), Apply)
    }
}

pub(crate) struct Apply;

impl<B> ResponseMapper<B> for Apply {
    type Output = Response<B>;
    fn map(self, mut res: Response<B>) -> Response<B> {
        let h = res.headers_mut();
        // Two years, as browsers' preload lists require; the gateway never serves plain HTTP.
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        // Not `no-referrer`: with it Chromium sends `Origin: null` on same-origin form POSTs,
        // which breaks cross-site request checks.
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        // Medical images must not be framed by another site (clickjacking). The gateway's rule
        // applies whatever the upstream says: its DENY is kept (stricter), anything else
        // (ALLOW-FROM, which browsers ignore, or a value they do not know) becomes SAMEORIGIN.
        // A CSP `frame-ancestors` overrides X-Frame-Options in browsers, so ours is added as a
        // policy of its own: browsers enforce every policy, so an upstream's looser
        // `frame-ancestors *` cannot widen it.
        let deny = h
            .get_all(header::X_FRAME_OPTIONS)
            .iter()
            .any(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"deny"));
        let (xfo, ancestors, source) = if deny {
            (FRAME_DENY, ANCESTORS_NONE, "'none'")
        } else {
            (FRAME_SAMEORIGIN, ANCESTORS_SELF, "'self'")
        };
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(xfo));
        add_frame_ancestors(h, ancestors, source);
        h.remove(header::SERVER);
        h.remove(&X_POWERED_BY);
        res
    }
}

/// Adds `ancestors` as a policy of its own, in the same header field as the policies already
/// there: a comma separates policies in one field and browsers enforce each, while several
/// `Content-Security-Policy` fields make scanners (testssl.sh) report a misconfiguration. Nothing
/// is added when a policy already forbids every framer or says exactly what we would (`source`:
/// our policy's one source, `'self'` or `'none'`).
fn add_frame_ancestors(h: &mut http::HeaderMap, ancestors: &'static str, source: &str) {
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(ancestors),
        );
        return;
    }
    let policies = h.get_all(header::CONTENT_SECURITY_POLICY);
    let covered = policies.iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|policy| only_frame_source(policy, "'none'") || only_frame_source(policy, source))
    });
    if covered {
        return;
    }
    let mut joined = Vec::with_capacity(256);
    for v in policies {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(ancestors.as_bytes());
    // Joining valid field values with ", " gives a valid field value.
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Whether the policy's first `frame-ancestors` directive (browsers ignore later ones) lists
/// `source` and nothing else, ignoring case. Reads the bytes in place: no allocation.
fn only_frame_source(policy: &[u8], source: &str) -> bool {
    let first = policy.split(|&b| b == b';').find_map(|directive| {
        let mut tokens = directive
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty());
        let name = tokens.next()?;
        name.eq_ignore_ascii_case(b"frame-ancestors")
            .then_some(tokens)
    });
    first.is_some_and(|mut tokens| {
        tokens
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case(source.as_bytes()))
            && tokens.next().is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(upstream: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
        let mut res = Response::new(());
        for (k, v) in upstream {
            res.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let h = Apply.map(res).into_parts().0.headers;
        let all = |n: HeaderName| {
            h.get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        (
            all(header::X_FRAME_OPTIONS),
            all(header::CONTENT_SECURITY_POLICY),
        )
    }

    #[test]
    fn the_gateway_decides_framing() {
        let (xfo, csp) = framing(&[]);
        assert_eq!(
            (xfo, csp),
            (vec!["SAMEORIGIN".into()], vec![ANCESTORS_SELF.into()])
        );
        for loose in [
            "ALLOW-FROM https://evil.example",
            "ALLOWALL",
            "",
            "SAMEORIGIN",
        ] {
            let (xfo, _) = framing(&[("x-frame-options", loose)]);
            assert_eq!(xfo, ["SAMEORIGIN"], "{loose}");
        }
        let (xfo, csp) = framing(&[("x-frame-options", " deny ")]);
        assert_eq!(
            (xfo, csp),
            (vec!["DENY".into()], vec![ANCESTORS_NONE.into()])
        );
        // An upstream policy that would allow any framer is kept, and ours is enforced beside it,
        // in the same field (one field: scanners flag several).
        let (_, csp) = framing(&[("content-security-policy", "frame-ancestors *")]);
        assert_eq!(csp, ["frame-ancestors *, frame-ancestors 'self'"]);
        let (_, csp) = framing(&[
            ("content-security-policy", "default-src 'self'"),
            ("content-security-policy", "img-src *"),
        ]);
        assert_eq!(
            csp,
            ["default-src 'self', img-src *, frame-ancestors 'self'"]
        );
        // A policy that already says as much, or forbids every framer, is left alone.
        for enough in [
            "default-src 'none'; FRAME-ANCESTORS  'None' ; base-uri 'none'",
            "script-src 'self'; frame-ancestors 'self'",
            "img-src *, frame-ancestors 'none'",
        ] {
            let (_, csp) = framing(&[("content-security-policy", enough)]);
            assert_eq!(csp, [enough]);
        }
        // A later duplicate directive does not count: browsers use the first.
        let (_, csp) = framing(&[(
            "content-security-policy",
            "frame-ancestors *; frame-ancestors 'none'",
        )]);
        assert_eq!(
            csp,
            ["frame-ancestors *; frame-ancestors 'none', frame-ancestors 'self'"]
        );
        // Under DENY: 'none', and an upstream 'self' is not enough.
        let (_, csp) = framing(&[
            ("x-frame-options", "DENY"),
            ("content-security-policy", "frame-ancestors 'self'"),
        ]);
        assert_eq!(csp, ["frame-ancestors 'self', frame-ancestors 'none'"]);
    }
}
