//! The one body type that flows through the gateway in both directions: a streamed hyper body
//! (from the client or the upstream, never buffered), a small in-memory page, or nothing.
//! One enum instead of boxing keeps the per-request path free of allocations.
//!
//! A client's request body on its way to the upstream ([`Body::upload`]) is held to two limits:
//! a byte budget (`limits.max_request_body`) and an inactivity deadline between chunks
//! (`limits.body_idle_timeout`), so a client that announces a body and stops sending cannot pin
//! a connection to the upstream. A slow body that keeps moving never trips it. The body also
//! reports each chunk it passes on ([`Progress`]), so the time allowed for the upstream's answer
//! counts from the last chunk sent, not from the start of a long upload.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// Errors a body can produce while streaming.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Request and response body; see the module documentation.
#[derive(Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    Full(Option<Bytes>),
    Stream(Incoming),
    /// A client's request body on its way to the upstream; see [`Body::upload`].
    Upload(Upload),
}

/// The state of a client's request body being forwarded.
#[derive(Debug)]
pub struct Upload {
    inner: Incoming,
    remaining: u64,
    idle: Duration,
    /// Armed while the client has nothing more to give; reset after each chunk.
    timer: Pin<Box<Sleep>>,
    /// A chunk went through since the timer was last armed.
    moved: bool,
    progress: Arc<Progress>,
}

/// When the forwarded request body last moved, read by the code waiting for the upstream's
/// answer.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    /// Milliseconds after `start` of the last chunk passed on (or of the end of the body).
    last_ms: AtomicU64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn mark(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the body last moved (the start, if it never did).
    pub fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The request body was larger than `limits.max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the configured limit")]
pub struct BodyTooLarge;

/// The client sent nothing of its announced request body for `limits.body_idle_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the client stopped sending its request body")]
pub struct BodyIdle;

/// The client's request body failed (connection closed or reset mid-body, bad chunking).
#[derive(Debug, thiserror::Error)]
#[error("the client's request body failed: {0}")]
pub struct ClientBodyError(#[source] hyper::Error);

impl Body {
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body::Full(Some(bytes.into()))
    }

    /// A client's request body for the upstream, with at most `limit` bytes and at most `idle`
    /// between chunks. The returned [`Progress`] tells when it last moved.
    pub fn upload(inner: Incoming, limit: u64, idle: Duration) -> (Body, Arc<Progress>) {
        let progress = Arc::new(Progress::new());
        let body = Body::Upload(Upload {
            inner,
            remaining: limit,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            moved: false,
            progress: progress.clone(),
        });
        (body, progress)
    }
}

impl Upload {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > self.remaining {
                        return Poll::Ready(Some(Err(BodyTooLarge.into())));
                    }
                    self.remaining -= len;
                }
                self.moved = true;
                self.progress.mark();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ClientBodyError(e).into()))),
            Poll::Ready(None) => {
                self.progress.mark();
                Poll::Ready(None)
            }
            Poll::Pending => {
                // Arm the deadline from now when something moved since it was last armed; a
                // timer reset per chunk would cost more on large uploads.
                if self.moved {
                    self.moved = false;
                    self.timer.as_mut().reset(Instant::now() + self.idle);
                }
                match self.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyIdle.into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
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
            Body::Upload(upload) => upload.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(d) => d.is_none(),
            Body::Stream(inner) => inner.is_end_stream(),
            Body::Upload(u) => u.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            Body::Stream(inner) => inner.size_hint(),
            Body::Upload(u) => u.inner.size_hint(),
        }
    }
}

/// What a failed upstream exchange says about the client's request body, if it was the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    TooLarge,
    Idle,
    Client,
}

impl BodyFault {
    /// Looks for one of this module's body errors in an error's chain of causes.
    pub fn find(e: &(dyn std::error::Error + 'static)) -> Option<BodyFault> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if c.is::<BodyTooLarge>() {
                return Some(BodyFault::TooLarge);
            }
            if c.is::<BodyIdle>() {
                return Some(BodyFault::Idle);
            }
            if c.is::<ClientBodyError>() {
                return Some(BodyFault::Client);
            }
            cause = c.source();
        }
        None
    }
}
