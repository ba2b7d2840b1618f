//! The one place where the HTTPS request path is assembled, outermost layer first.

use std::sync::Arc;

use tower::ServiceBuilder;

use crate::conn::ConnInfo;
use crate::middleware::gate::GateLayer;
use crate::middleware::guard::GuardLayer;
use crate::middleware::head::HeadLayer;
use crate::middleware::request_id::RequestIdLayer;
use crate::middleware::security_headers::SecurityHeadersLayer;
use crate::middleware::trace::TraceLayer;
use crate::proxy::Proxy;
use crate::router::Router;
use crate::state::GatewayState;

/// Builds the service for one client connection.
pub(crate) fn build(
    shared: Arc<GatewayState>,
    proxy: Proxy,
    conn: ConnInfo,
) -> impl tower::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<crate::middleware::trace::Logged>,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        // Request id first: every later log line and the upstream request carry it.
        .layer(RequestIdLayer)
        // Span and access log around everything else, so refusals are logged and counted too,
        // and the connection learns when each request really ends (idle timeout).
        .layer(TraceLayer::new(
            shared.metrics.clone(),
            conn.activity.clone(),
            shared.config.log.access_log,
        ))
        // Security headers on every response, including the gateway's own error pages.
        .layer(SecurityHeadersLayer)
        // HEAD answers without a body, whoever built the response (HTTP/2 needs it).
        .layer(HeadLayer)
        // Refusals (smuggling, wrong host, oversized body, ambiguous paths, cross-site) before
        // anything reads the path; the path continues normalised.
        .layer(GuardLayer::new(shared.config.clone(), conn.clone()))
        // The session gate and the access policy, on the normalised path: nothing outside
        // /_vigie/ passes without an identity.
        .layer(GateLayer::new(
            shared.auth.clone(),
            shared.access.clone(),
            shared.config.log.access_log,
            conn.peer.ip(),
        ))
        .service(Router::new(shared, proxy, conn))
}
