//! The bound on open upstream connections (`upstream.max_connections`): one count shared by every
//! worker's pool and the health probe. A connection is opened only with a slot and gives it back
//! when its socket closes (WebSocket tunnels included); requests beyond the bound wait inside the
//! gateway, for a pooled connection to come back or a slot to free up, at most
//! `upstream.queue_timeout` (then 503).
//!
//! Why: Orthanc serves `HttpThreadsCount` (50) connections at once and keeps a thread for each
//! keep-alive connection until it has been idle 1 s. A connection beyond those waits in its
//! queue, and so does the request sent on it: 0.6 to 1 s, measured, when the gateway's pools
//! held more connections than that (see docs/BENCHMARKS.md).
//!
//! The bound is a wrapper around hyper-util's connector, not a client of its own. hyper-util's
//! pool races a new connect against an idle connection coming back, and when the idle one wins it
//! finishes the connect in the background. Such a connect, if it still waits for a slot, gives up:
//! no request waits for it any more, and it would take a slot only to park a connection. A connect
//! knows whether a request still waits for it from a task-local marker that `for_request` sets
//! around each upstream request.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

tokio::task_local! {
    /// Set while a request waits for its upstream response (see [`for_request`]).
    static FOR_REQUEST: ();
}

/// Runs an upstream request so that the connects it starts may wait for a slot.
pub(crate) async fn for_request<F: Future>(request: F) -> F::Output {
    FOR_REQUEST.scope((), request).await
}

fn in_request() -> bool {
    FOR_REQUEST.try_with(|_| ()).is_ok()
}

/// The slots of `upstream.max_connections`, shared by every upstream pool of the gateway.
#[derive(Clone, Debug)]
pub(crate) struct Slots {
    total: Arc<Semaphore>,
    queue_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Slots {
    pub(crate) fn new(
        max_connections: usize,
        queue_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Slots {
        Slots {
            total: Arc::new(Semaphore::new(max_connections)),
            queue_timeout,
            metrics,
        }
    }

    async fn acquire(&self) -> Result<Slot, Refused> {
        let permit = match self.total.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !in_request() {
                    return Err(Refused::Abandoned);
                }
                self.metrics.upstream_queued();
                self.wait().await?
            }
        };
        self.metrics.upstream_connection_opened();
        Ok(Slot {
            _permit: permit,
            metrics: self.metrics.clone(),
        })
    }

    /// Waits in arrival order for a slot while a request waits for this connect.
    async fn wait(&self) -> Result<OwnedSemaphorePermit, Refused> {
        let mut acquire = pin!(self.total.clone().acquire_owned());
        let mut deadline = pin!(tokio::time::sleep(self.queue_timeout));
        poll_fn(|cx| {
            if let Poll::Ready(p) = acquire.as_mut().poll(cx) {
                return Poll::Ready(p.map_err(|_| Refused::Abandoned));
            }
            if !in_request() {
                return Poll::Ready(Err(Refused::Abandoned));
            }
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Refused::QueueTimeout));
            }
            Poll::Pending
        })
        .await
    }
}

/// Why a connect got no slot.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("no upstream connection free within upstream.queue_timeout")]
    QueueTimeout,
    #[error("connect no longer needed")]
    Abandoned,
}

/// Whether a client error is a request that found no connection within `upstream.queue_timeout`.
pub(crate) fn is_queue_timeout(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(Refused::QueueTimeout) = s.downcast_ref::<Refused>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// One open upstream connection's place under the bound.
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.upstream_connection_closed();
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// hyper-util's HTTP connector, opening a connection only with a slot.
#[derive(Clone, Debug)]
pub(crate) struct LimitedConnector {
    inner: HttpConnector,
    slots: Slots,
}

impl LimitedConnector {
    pub(crate) fn new(inner: HttpConnector, slots: Slots) -> LimitedConnector {
        LimitedConnector { inner, slots }
    }
}

impl tower::Service<Uri> for LimitedConnector {
    type Response = Limited;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Limited, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let slots = self.slots.clone();
        Box::pin(async move {
            let slot = slots.acquire().await?;
            let io = tower::Service::call(&mut inner, dst).await?;
            Ok(Limited { io, _slot: slot })
        })
    }
}

/// An upstream connection holding its slot until it is dropped.
pub(crate) struct Limited {
    io: TokioIo<TcpStream>,
    _slot: Slot,
}

impl Connection for Limited {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl hyper::rt::Read for Limited {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Limited {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
