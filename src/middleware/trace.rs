//! One span per request (id, method, path without query) and one access-log event when the
//! response body ends (id, signed-in user, method, path, status, latency, bytes, whether it
//! completed). The same
//! moment feeds the metrics and tells the connection that the request is over, which restarts its
//! idle clock. Query strings are never logged: viewers put tokens and patient identifiers there.
//!
//! The span is at `debug` level: with JSON output, every event inside an enabled span re-reads
//! the span's fields, which cost more than a third of the request path's CPU in the benchmark.
//! The access-log event therefore carries all its fields itself, and events logged at `warn`
//! inside a request name the request id explicitly; `log.level: debug` adds the span around
//! everything.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::{Instrument, debug_span, info};

use super::gate::ServedTo;
use super::request_id::RequestId;
use super::{MapResponse, ResponseMapper};
use crate::audit::access::Pending;
use crate::body::{Body, BoxError};
use crate::conn::Activity;
use crate::metrics::Metrics;
use crate::respond::Reason;

/// Traces, logs and counts requests on one connection.
#[derive(Debug, Clone)]
pub(crate) struct TraceLayer {
    metrics: Arc<Metrics>,
    activity: Arc<Activity>,
    access_log: bool,
}

impl TraceLayer {
    pub(crate) fn new(metrics: Arc<Metrics>, activity: Arc<Activity>, access_log: bool) -> Self {
        TraceLayer {
            metrics,
            activity,
            access_log,
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Trace<S> {
    inner: S,
    layer: TraceLayer,
}

impl<S, B> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Logged>;
    type Error = S::Error;
    type Future = MapResponse<Instrumented<S::Future>, Completion>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let l = &self.layer;
        l.activity.request_started();
        let id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        let span = debug_span!(
            "request",
            id = id.as_ref().and_then(|v| v.to_str().ok()),
            method = %req.method(),
            path = req.uri().path(),
        );
        let record = l.access_log.then(|| AccessRecord {
            id,
            user: None,
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            reason: None,
        });
        let completion = Completion {
            start: Instant::now(),
            record,
            metrics: l.metrics.clone(),
            activity: l.activity.clone(),
            status: StatusCode::OK,
            bytes: 0,
            complete: false,
            send_slot: None,
            access: None,
        };
        MapResponse::new(self.inner.call(req).instrument(span), completion)
    }
}

/// What the access log says about a request (only kept when the access log is on).
struct AccessRecord {
    id: Option<http::HeaderValue>,
    user: Option<std::sync::Arc<str>>,
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    /// Why the gateway answered itself (`crate::respond`), when it did.
    reason: Option<&'static str>,
}

/// Records the request when dropped: by then the body has ended or the client has gone.
pub(crate) struct Completion {
    start: Instant,
    record: Option<AccessRecord>,
    metrics: Arc<Metrics>,
    activity: Arc<Activity>,
    status: StatusCode,
    bytes: u64,
    complete: bool,
    /// The response body's place in the connection's send watch (`Activity::stalled`).
    send_slot: Option<usize>,
    /// An access to patient data, recorded with the status and bytes once the body ends.
    access: Option<Pending>,
}

impl ResponseMapper<Body> for Completion {
    type Output = Response<Logged>;
    fn map(mut self, mut res: Response<Body>) -> Response<Logged> {
        self.status = res.status();
        self.access = res.extensions_mut().remove::<Pending>();
        if let Some(r) = self.record.as_mut() {
            r.user = res.extensions().get::<ServedTo>().map(|u| u.0.clone());
            r.reason = res.extensions().get::<Reason>().map(|r| r.0);
        }
        if self.status == StatusCode::SWITCHING_PROTOCOLS {
            self.activity.upgraded();
        }
        res.map(|inner| Logged {
            inner,
            done: Some(self),
        })
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(slot) = self.send_slot {
            self.activity.send_ended(slot);
        }
        let elapsed = self.start.elapsed();
        self.metrics.request_done(self.status.as_u16(), elapsed);
        self.activity.request_ended();
        if let Some(access) = self.access.take() {
            access.finish(self.status.as_u16(), self.bytes);
        }
        if let Some(r) = &self.record {
            info!(
                id = r.id.as_ref().and_then(|v| v.to_str().ok()),
                user = r.user.as_deref(),
                method = r.method.as_str(),
                path = r.uri.path(),
                version = ?r.version,
                status = self.status.as_u16(),
                latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
                bytes = self.bytes,
                complete = self.complete,
                reason = r.reason,
                "request"
            );
        }
    }
}

/// The response body, counted; its end (or drop) completes the request record.
pub(crate) struct Logged {
    inner: Body,
    done: Option<Completion>,
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // hyper asks for the next chunk only once the client has taken enough of the last ones:
        // the connection's send watch sees how long each answer waits for that.
        if let Some(done) = this.done.as_mut() {
            match done.send_slot {
                Some(slot) => done.activity.chunk_asked(slot),
                None => done.send_slot = Some(done.activity.send_started()),
            }
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(done) = this.done.as_mut() {
                    if let Some(d) = frame.data_ref() {
                        done.bytes += d.len() as u64;
                    }
                    if let Some(slot) = done.send_slot {
                        done.activity.chunk_sent(slot);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(mut done) = this.done.take() {
                    done.complete = true;
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // hyper does not poll a body that says it has ended (empty bodies, HEAD answers).
        if let Some(done) = self.done.as_mut() {
            done.complete = self.inner.is_end_stream();
        }
    }
}
