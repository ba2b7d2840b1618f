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
pub struct SecurityHeadersLayer;

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders { inner }
    }
}

#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
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

pub struct Apply;

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
        let (xfo, ancestors) = if deny {
            (FRAME_DENY, ANCESTORS_NONE)
        } else {
            (FRAME_SAMEORIGIN, ANCESTORS_SELF)
        };
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(xfo));
        h.append(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(ancestors),
        );
        h.remove(header::SERVER);
        h.remove(&X_POWERED_BY);
        res
    }
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
        // An upstream policy that would allow any framer is kept, and ours is enforced beside it.
        let (_, csp) = framing(&[("content-security-policy", "frame-ancestors *")]);
        assert_eq!(csp, ["frame-ancestors *", ANCESTORS_SELF]);
    }
}
