//! The one body type that flows through the gateway in both directions: a streamed hyper body
//! (from the client or the upstream, never buffered), a small in-memory page, or nothing.
//! One enum instead of boxing keeps the per-request path free of allocations.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

/// Errors a body can produce while streaming.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Request and response body; see the module documentation.
#[derive(Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    Full(Option<Bytes>),
    Stream(Incoming),
    /// A client's request body with a byte budget (`limits.max_request_body`).
    Limited {
        inner: Incoming,
        remaining: u64,
    },
}

/// The request body was larger than `limits.max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the configured limit")]
pub struct BodyTooLarge;

impl Body {
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body::Full(Some(bytes.into()))
    }

    pub fn limited(inner: Incoming, limit: u64) -> Body {
        Body::Limited {
            inner,
            remaining: limit,
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Body::Stream(inner) => Pin::new(inner).poll_frame(cx).map_err(Into::into),
            Body::Limited { inner, remaining } => match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        let len = data.len() as u64;
                        if len > *remaining {
                            return Poll::Ready(Some(Err(BodyTooLarge.into())));
                        }
                        *remaining -= len;
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(d) => d.is_none(),
            Body::Stream(inner) | Body::Limited { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            Body::Stream(inner) | Body::Limited { inner, .. } => inner.size_hint(),
        }
    }
}
