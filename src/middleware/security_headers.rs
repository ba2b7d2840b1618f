//! Security headers on every HTTPS response, the gateway's own and the upstream's alike, and
//! removal of the headers that advertise the upstream's software.

use std::task::{Context, Poll};

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use tower::{Layer, Service};

use super::{MapResponse, ResponseMapper};

static X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

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
        // Medical images must not be framed by another site (clickjacking).
        if !h.contains_key(header::X_FRAME_OPTIONS) {
            h.insert(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("SAMEORIGIN"),
            );
        }
        h.remove(header::SERVER);
        h.remove(&X_POWERED_BY);
        res
    }
}
