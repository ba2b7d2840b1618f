//! The admin listener (plain HTTP, meant for loopback or a private network): `/healthz` (the
//! process answers), `/readyz` (the upstream answers and the gateway is not draining) and
//! `/metrics` (Prometheus text).

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::plain::serve_plain;
use crate::body::Body;
use crate::state::GatewayState;

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<GatewayState>,
    stop: watch::Receiver<bool>,
) {
    serve_plain(listener, shared.clone(), stop, 64, move |_| {
        let shared = shared.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(route(&shared, &req).await) }
        })
    })
    .await;
}

async fn route(shared: &GatewayState, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if *shared.draining.borrow() {
                return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
            }
            if shared.certs.current().is_none() {
                // Obtaining the first one (ACME, the practice CA): handshakes fail until then.
                return text(StatusCode::SERVICE_UNAVAILABLE, "no certificate yet\n");
            }
            match shared
                .proxy
                .probe(&shared.config.upstream.health_path)
                .await
            {
                Ok(status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "upstream refuses the gateway ({}): check upstream.credentials\n",
                        status.as_u16()
                    ),
                ),
                Ok(status) if !status.is_server_error() => text(StatusCode::OK, "ready\n"),
                Ok(status) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("upstream answered {}\n", status.as_u16()),
                ),
                Err(kind) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("upstream unreachable ({kind:?})\n"),
                ),
            }
        }
        "/metrics" => {
            let mut res = text(StatusCode::OK, shared.metrics.render());
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut res = Response::new(Body::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
