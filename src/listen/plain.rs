//! The plain-HTTP listeners' shared loop (the redirect to HTTPS and the admin listener): a
//! connection bound, the same head and idle timeouts as HTTPS, HTTP/1.1 only.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{Instrument, info_span};

use crate::conn::{Activity, ConnIo, ConnTimeouts};
use crate::state::GatewayState;

/// Serves a plain-HTTP listener (redirect or admin) with the same head and idle timeouts.
pub(crate) async fn serve_plain<S>(
    listener: TcpListener,
    shared: Arc<GatewayState>,
    mut stop: watch::Receiver<bool>,
    max_connections: usize,
    make_service: impl Fn(SocketAddr) -> S,
) where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::body::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_connections));
    let limits = &shared.config.limits;
    let timeouts = ConnTimeouts {
        header: limits.header_read_timeout,
        keepalive: limits.keepalive_timeout,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let builder = Arc::new(builder);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = stop.changed() => return,
        };
        let activity = Arc::new(Activity::default());
        let service = Tracked {
            inner: make_service(peer),
            activity: activity.clone(),
        };
        let builder = builder.clone();
        let span = info_span!("plain", %peer);
        tokio::spawn(
            async move {
                let _permit = permit;
                let io = TokioIo::new(ConnIo::new(tcp, activity, timeouts, true));
                let _ = builder.serve_connection(io, service).await;
            }
            .instrument(span),
        );
    }
}

/// Reports request start and end to the connection's [`Activity`] for the plain listeners,
/// whose responses are small and complete when returned.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> hyper::service::Service<http::Request<B>> for Tracked<S>
where
    S: hyper::service::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send + 'static>>;

    fn call(&self, req: http::Request<B>) -> Self::Future {
        self.activity.request_started();
        let fut = self.inner.call(req);
        let activity = self.activity.clone();
        Box::pin(async move {
            let res = fut.await;
            activity.request_ended();
            res
        })
    }
}
