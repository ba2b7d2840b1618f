//! Answers to HEAD requests carry no body. hyper drops it for HTTP/1.1, but its HTTP/2 server
//! sends whatever body the response has, which clients reject as a protocol error; the gateway's
//! own pages (sign-in, errors) have bodies. The length is kept in `Content-Length`.

use std::task::{Context, Poll};

use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Method, Request, Response};
use http_body::Body as _;
use tower::{Layer, Service};

use super::{MapResponse, ResponseMapper};
use crate::body::Body;

/// Strips bodies from answers to HEAD.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HeadLayer;

impl<S> Layer<S> for HeadLayer {
    type Service = Head<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Head { inner }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Head<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Head<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = MapResponse<S::Future, Strip>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let head = req.method() == Method::HEAD;
        MapResponse::new(self.inner.call(req), Strip(head))
    }
}

pub(crate) struct Strip(bool);

impl ResponseMapper<Body> for Strip {
    type Output = Response<Body>;
    fn map(self, mut res: Response<Body>) -> Response<Body> {
        if self.0 && !res.body().is_end_stream() {
            if let Some(len) = res.body().size_hint().exact()
                && !res.headers().contains_key(CONTENT_LENGTH)
            {
                res.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(len));
            }
            *res.body_mut() = Body::Empty;
        }
        res
    }
}
