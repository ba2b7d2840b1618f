//! The tower layers every HTTPS request goes through, one file each; `stack.rs` assembles them.
//! Their futures are concrete types (no boxing per layer), built on [`MapResponse`].

pub(crate) mod gate;
pub mod guard;
pub(crate) mod head;
pub(crate) mod request_id;
pub(crate) mod security_headers;
pub(crate) mod trace;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

/// A change applied to the response of an inner service once it is ready.
pub trait ResponseMapper<B> {
    type Output;
    fn map(self, res: Response<B>) -> Self::Output;
}

pin_project_lite::pin_project! {
    /// Future of the layers that only touch the response: awaits the inner future, then applies
    /// the mapper once.
    pub struct MapResponse<F, M> {
        #[pin]
        inner: F,
        mapper: Option<M>,
    }
}

impl<F, M> MapResponse<F, M> {
    pub fn new(inner: F, mapper: M) -> Self {
        MapResponse {
            inner,
            mapper: Some(mapper),
        }
    }
}

impl<F, M, B, E> Future for MapResponse<F, M>
where
    F: Future<Output = Result<Response<B>, E>>,
    M: ResponseMapper<B>,
{
    type Output = Result<M::Output, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx))?;
        match this.mapper.take() {
            Some(m) => Poll::Ready(Ok(m.map(res))),
            // Polled after completion: a caller bug, answered as the futures contract allows.
            None => Poll::Pending,
        }
    }
}
