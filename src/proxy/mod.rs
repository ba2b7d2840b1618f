//! Forwarding to the upstream viewer: a pooled HTTP/1.1 client, header rewriting, streaming of
//! both bodies without buffering, WebSocket tunnelling, and upstream failures turned into generic
//! 502/504 pages. A failed idempotent request without a body is retried once: Orthanc closes idle
//! keep-alive connections after 1 s, and a request can race that close.

pub(crate) mod headers;
pub(crate) mod limit;
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::auth::{Auth, Identity};
use crate::body::{Body, BodyFault, Progress};
use crate::config::{Limits, Upstream};
use crate::conn::ConnInfo;
use crate::metrics::{Metrics, UpstreamError};
use crate::middleware::request_id::RequestId;
use crate::respond::Refusal;
use limit::{LimitedConnector, Slots};

/// The upstream client and what it needs to rewrite requests.
#[derive(Clone, Debug)]
pub(crate) struct Proxy {
    client: Client<LimitedConnector, Body>,
    /// `Authorization` for the upstream (its own credentials, which browsers never see).
    credentials: Option<HeaderValue>,
    authority: http::uri::Authority,
    response_timeout: Duration,
    max_request_body: u64,
    body_idle_timeout: Duration,
    no_store: bool,
    /// Tunnels recheck the session that opened them.
    auth: Arc<Auth>,
}

/// Largest response head accepted from the upstream (then: 502). Orthanc's are under 1 KiB;
/// nginx's default buffer for them is 4 or 8 KiB. Without a bound hyper reads up to 400 KiB.
const MAX_UPSTREAM_HEAD: usize = 64 * 1024;

impl Proxy {
    /// A client whose connections count against `slots` (shared by every `Proxy` of a gateway)
    /// and whose pool keeps at most `max_idle` idle connections (0: none).
    pub(crate) fn new(
        upstream: &Upstream,
        limits: &Limits,
        no_store: bool,
        auth: Arc<Auth>,
        slots: Slots,
        max_idle: usize,
    ) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(upstream.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(upstream.pool_idle_timeout)
            .pool_max_idle_per_host(max_idle)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .retry_canceled_requests(true)
            .http1_max_buf_size(MAX_UPSTREAM_HEAD)
            .set_host(false)
            .build(LimitedConnector::new(connector, slots));
        Proxy {
            client,
            credentials: upstream.authorization(),
            authority: upstream.authority.clone(),
            response_timeout: upstream.response_timeout,
            max_request_body: limits.max_request_body,
            body_idle_timeout: limits.body_idle_timeout,
            no_store,
            auth,
        }
    }

    /// Sends a request that the gateway itself makes (health checks), with the response timeout
    /// and the upstream credentials, so that a wrong password shows as a 401.
    pub(crate) async fn probe(&self, path: &str) -> Result<StatusCode, UpstreamError> {
        let uri = self.upstream_uri(path.parse().map_err(|_| UpstreamError::Other)?)?;
        let mut req = Request::get(uri).header(header::HOST, self.authority.as_str());
        if let Some(c) = &self.credentials {
            req = req.header(header::AUTHORIZATION, c.clone());
        }
        let req = req.body(Body::Empty).map_err(|_| UpstreamError::Other)?;
        let request = limit::for_request(self.client.request(req));
        match tokio::time::timeout(self.response_timeout, request).await {
            Ok(Ok(res)) => Ok(res.status()),
            Ok(Err(e)) if limit::is_queue_timeout(&e) => Err(UpstreamError::Busy),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(UpstreamError::Timeout),
        }
    }

    /// Asks the upstream for a small document the gateway itself needs (the audit trail's
    /// lookup of who a study belongs to), with its credentials and the response timeout. The
    /// body is read up to `max` bytes; any status but 200 is an error.
    pub(crate) async fn lookup(
        &self,
        path_and_query: &str,
        accept: &'static str,
        max: usize,
    ) -> Result<bytes::Bytes, String> {
        use http_body_util::BodyExt as _;
        let pq = path_and_query
            .parse()
            .map_err(|_| "not a valid upstream path".to_string())?;
        let uri = self
            .upstream_uri(pq)
            .map_err(|_| "not a valid upstream path".to_string())?;
        let mut req = Request::get(uri)
            .header(header::HOST, self.authority.as_str())
            .header(header::ACCEPT, accept);
        if let Some(c) = &self.credentials {
            req = req.header(header::AUTHORIZATION, c.clone());
        }
        let req = req
            .body(Body::Empty)
            .map_err(|_| "not a valid upstream request".to_string())?;
        let exchange = async {
            let res =
                limit::for_request(self.client.request(req))
                    .await
                    .map_err(|e| match classify(&e) {
                        UpstreamError::Connect => "the upstream refused the connection".to_string(),
                        _ => "the upstream did not answer".to_string(),
                    })?;
            if res.status() != StatusCode::OK {
                return Err(format!("the upstream answered {}", res.status().as_u16()));
            }
            let body = http_body_util::Limited::new(res.into_body(), max)
                .collect()
                .await
                .map_err(|_| format!("the upstream's answer was cut short or over {max} bytes"))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(self.response_timeout, exchange)
            .await
            .map_err(|_| "the upstream did not answer in time".to_string())?
    }

    fn upstream_uri(&self, pq: http::uri::PathAndQuery) -> Result<Uri, UpstreamError> {
        Uri::builder()
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| UpstreamError::Other)
    }

    /// Forwards one client request; `host` is the public authority the client asked for (checked
    /// by the guard layer). In phases: the upstream request (`upstream_request`), sent with one
    /// retry (`send_with_retry`), then a tunnel for a WebSocket upgrade or the downstream
    /// response (`downstream_response`); any failure becomes its page through `crate::respond`.
    pub(crate) async fn forward(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
        host: HeaderValue,
        metrics: &Metrics,
    ) -> Response<Body> {
        let version = req.version();
        let (mut parts, body) = req.into_parts();
        let request_id = parts.extensions.remove::<RequestId>();
        // A deletion, a change or an export: the audit trail learns whom it concerns first.
        if let Some(first) = parts
            .extensions
            .remove::<crate::audit::access::LookupFirst>()
        {
            first.wait().await;
        }
        let id = request_id
            .as_ref()
            .and_then(|r| r.0.to_str().ok())
            .unwrap_or("-");
        let websocket = upgrade::is_websocket(&parts);
        let client_upgrade = if websocket {
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        let outgoing = match self.upstream_request(&mut parts, body, conn, &host, websocket) {
            Ok(o) => o,
            Err(refusal) => return refusal.respond(version),
        };
        let res = match self.send_with_retry(outgoing, id).await {
            Ok(res) => res,
            Err(failure) => return failed(&failure, id, version, metrics),
        };
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            return match client_upgrade {
                Some(client) => upgrade::tunnel(
                    client,
                    res,
                    parts.extensions.get::<Identity>(),
                    &self.auth,
                    metrics,
                ),
                None => {
                    warn!(id, "upstream switched protocols without a client upgrade");
                    let refusal = Refusal::Upstream {
                        status: StatusCode::BAD_GATEWAY,
                        reason: "upstream_unasked_upgrade",
                        close: true,
                    };
                    refusal.respond(version)
                }
            };
        }
        match self.downstream_response(res, &host, id, metrics) {
            Ok(res) => res,
            Err(refusal) => refusal.respond(version),
        }
    }

    /// Phase 1: the request for the upstream. Headers the client may not set are removed, the
    /// gateway's own are set (forwarding, identity, the upstream's credentials), the body gets
    /// its size and idle limits. An idempotent request without a body keeps a spare copy of its
    /// head, to be sent again once if the pooled connection turns out to be closed.
    fn upstream_request(
        &self,
        parts: &mut http::request::Parts,
        body: Incoming,
        conn: &ConnInfo,
        host: &HeaderValue,
        websocket: bool,
    ) -> Result<Outgoing, Refusal> {
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let Ok(uri) = self.upstream_uri(pq) else {
            return Err(Refusal::refused(
                StatusCode::BAD_REQUEST,
                "upstream_uri",
                true,
            ));
        };

        let mut h = std::mem::take(&mut parts.headers);
        headers::strip_hop_by_hop(&mut h);
        headers::strip_spoofable(&mut h);
        headers::forward_cookies(&mut h);
        // The gateway answered any `Expect: 100-continue` itself; the upstream gets the body.
        h.remove(header::EXPECT);
        headers::set_forwarded(&mut h, &conn.forwarded, host);
        h.insert(header::HOST, host.clone());
        // The gateway authenticated the client; the upstream learns who it is from us only.
        h.remove(header::AUTHORIZATION);
        if let Some(id) = parts.extensions.get::<Identity>() {
            h.insert(headers::X_VIGIE_USER.clone(), id.user_header.clone());
            h.insert(headers::X_VIGIE_ROLES.clone(), id.roles_header.clone());
        }
        if let Some(c) = &self.credentials {
            h.insert(header::AUTHORIZATION, c.clone());
        }
        if websocket {
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }

        let no_body = http_body::Body::is_end_stream(&body);
        let retryable = no_body && is_idempotent(&parts.method) && !websocket;
        let spare = retryable.then(|| (parts.method.clone(), uri.clone(), h.clone()));
        let (body, progress) = if no_body {
            (Body::Empty, None)
        } else {
            let (b, p) = Body::upload(body, self.max_request_body, self.body_idle_timeout);
            (b, Some(p))
        };
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = h;
        Ok(Outgoing {
            request,
            progress,
            spare,
        })
    }

    /// Phase 2: sends the request, and once more on a fresh connection when the pooled one was
    /// closed before the request reached the upstream (Orthanc closes idle connections after
    /// 1 s) and the request can be repeated.
    async fn send_with_retry(
        &self,
        outgoing: Outgoing,
        id: &str,
    ) -> Result<Response<Incoming>, Failure> {
        let Outgoing {
            request,
            progress,
            spare,
        } = outgoing;
        let result = self.send(request, progress.as_deref()).await;
        match (&result, spare) {
            (Err(Failure::Retryable(e)), Some((method, uri, h))) => {
                debug!(id, error = %e, "upstream connection failed, retrying once");
                let mut again = Request::new(Body::Empty);
                *again.method_mut() = method;
                *again.uri_mut() = uri;
                *again.headers_mut() = h;
                self.send(again, None).await
            }
            _ => result,
        }
    }

    /// Phase 3: the upstream's answer made fit for the client: refused when its framing is
    /// ambiguous, hop-by-hop headers and the gateway's cookie names removed, its own address
    /// in `Location` replaced by the public one, `no-store` when configured.
    fn downstream_response(
        &self,
        mut res: Response<Incoming>,
        host: &HeaderValue,
        id: &str,
        metrics: &Metrics,
    ) -> Result<Response<Body>, Refusal> {
        // RFC 9112 §6.3: a response with both framings "ought to be handled as an error". The
        // gateway will not guess which one the upstream meant (forwarding it with the wrong one
        // truncates the body, or desynchronises a pooled connection that the next user's
        // request would then read): it answers 502 and the connection is dropped unread.
        if res.headers().contains_key(header::TRANSFER_ENCODING)
            && res.headers().contains_key(header::CONTENT_LENGTH)
        {
            metrics.upstream_error(UpstreamError::Other);
            warn!(
                id,
                reason = "content_length_and_transfer_encoding",
                "upstream answer refused: it has both Content-Length and Transfer-Encoding"
            );
            return Err(Refusal::Upstream {
                status: StatusCode::BAD_GATEWAY,
                reason: "upstream_ambiguous_framing",
                close: false,
            });
        }

        let public = host.to_str().unwrap_or_default();
        let h = res.headers_mut();
        headers::strip_hop_by_hop(h);
        h.remove(header::ALT_SVC);
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            if let Some(v) = h.get(&name)
                && let Some(new) = headers::rewrite_location(v, &self.authority, public)
            {
                h.insert(name, new);
            }
        }
        headers::strip_gateway_set_cookies(h);
        if self.no_store {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        Ok(res.map(Body::Stream))
    }

    /// Sends a request and waits for the response head. The upstream has
    /// `upstream.response_timeout` to answer, counted from the last chunk of the request body
    /// it was sent (a long upload is not a slow upstream).
    async fn send(
        &self,
        req: Request<Body>,
        progress: Option<&Progress>,
    ) -> Result<Response<Incoming>, Failure> {
        let request = limit::for_request(self.client.request(req));
        let answer = match progress {
            None => tokio::time::timeout(self.response_timeout, request).await,
            Some(progress) => {
                tokio::pin!(request);
                loop {
                    let deadline = progress.last() + self.response_timeout;
                    match tokio::time::timeout_at(deadline, &mut request).await {
                        Err(_) if progress.last() + self.response_timeout > Instant::now() => {}
                        answer => break answer,
                    }
                }
            }
        };
        match answer {
            Err(_) => Err(Failure::Timeout),
            Ok(Ok(res)) => Ok(res),
            Ok(Err(e)) if limit::is_queue_timeout(&e) => Err(Failure::Busy),
            Ok(Err(e)) if is_retryable(&e) => Err(Failure::Retryable(e)),
            Ok(Err(e)) => Err(Failure::Fatal(e)),
        }
    }
}

/// The response for a request that got no answer from the upstream. When the cause was the
/// client's own body (too large, stalled, broken), the client is told so and the upstream is
/// not blamed; otherwise 502 or 504.
fn failed(failure: &Failure, id: &str, version: Version, metrics: &Metrics) -> Response<Body> {
    let fault = match failure {
        Failure::Timeout | Failure::Busy => None,
        Failure::Retryable(e) | Failure::Fatal(e) => BodyFault::find(e),
    };
    let (status, reason) = match fault {
        Some(BodyFault::TooLarge) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        Some(BodyFault::Idle) => (StatusCode::REQUEST_TIMEOUT, "body_idle_timeout"),
        Some(BodyFault::Client) => (StatusCode::BAD_REQUEST, "client_body_error"),
        None => {
            let (kind, status, reason) = match failure {
                Failure::Timeout => (
                    UpstreamError::Timeout,
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                ),
                Failure::Busy => (
                    UpstreamError::Busy,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream_busy",
                ),
                Failure::Retryable(e) | Failure::Fatal(e) => match classify(e) {
                    UpstreamError::Connect => (
                        UpstreamError::Connect,
                        StatusCode::BAD_GATEWAY,
                        "upstream_connect",
                    ),
                    kind => (kind, StatusCode::BAD_GATEWAY, "upstream_error"),
                },
            };
            metrics.upstream_error(kind);
            warn!(id, error = %failure, "upstream request failed");
            let refusal = Refusal::Upstream {
                status,
                reason,
                close: false,
            };
            return refusal.respond(version);
        }
    };
    debug!(id, reason, "request body refused; upstream request aborted");
    // The rest of the client's body is unread: the connection cannot carry another request.
    Refusal::refused(status, reason, true).respond(version)
}

/// A request ready for the upstream (phase 1 of [`Proxy::forward`]).
struct Outgoing {
    request: Request<Body>,
    /// When the request body last moved, for the response deadline.
    progress: Option<Arc<Progress>>,
    /// Method, URI and headers to send again without a body; see [`Proxy::send_with_retry`].
    spare: Option<(http::Method, http::Uri, http::HeaderMap)>,
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no response within the configured response_timeout")]
    Timeout,
    #[error("every upstream connection stayed in use for upstream.queue_timeout")]
    Busy,
    #[error("{0}")]
    Retryable(#[source] hyper_util::client::legacy::Error),
    #[error("{0}")]
    Fatal(#[source] hyper_util::client::legacy::Error),
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// Errors after which the request certainly or probably was not processed: the connection could
/// not be made, or a pooled connection was closed under the request.
fn is_retryable(e: &hyper_util::client::legacy::Error) -> bool {
    if e.is_connect() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message() || h.is_canceled() || h.is_closed();
        }
        source = s.source();
    }
    false
}

fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    if e.is_connect() {
        UpstreamError::Connect
    } else {
        UpstreamError::Other
    }
}

impl crate::audit::access::resolve::Lookup for Proxy {
    fn get<'a>(
        &'a self,
        path: &'a str,
        accept: &'static str,
        max: usize,
    ) -> futures_util::future::BoxFuture<'a, Result<bytes::Bytes, String>> {
        Box::pin(self.lookup(path, accept, max))
    }
}
