//! Where a request goes once the guard and the gate let it through: `/_vigie/` is the gateway's
//! own pages (sign-in, sign-out), everything else is proxied to the upstream.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tower::Service;

use crate::body::Body;
use crate::conn::ConnInfo;
use crate::http_util::authority::request_host_value;
use crate::http_util::reserved;
use crate::proxy::Proxy;
use crate::respond::Refusal;
use crate::state::GatewayState;

/// The innermost service.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    shared: Arc<GatewayState>,
    proxy: Proxy,
    conn: ConnInfo,
}

impl Router {
    pub(crate) fn new(shared: Arc<GatewayState>, proxy: Proxy, conn: ConnInfo) -> Self {
        Router {
            shared,
            proxy,
            conn,
        }
    }
}

impl Service<Request<Incoming>> for Router {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let shared = self.shared.clone();
        let proxy = self.proxy.clone();
        let conn = self.conn.clone();
        Box::pin(async move {
            let version = req.version();
            if req.uri().path().starts_with(reserved::PREFIX) {
                let deadline = shared.config.limits.header_read_timeout;
                return Ok(crate::auth::routes::handle(
                    &shared.auth,
                    req,
                    conn.peer.ip(),
                    deadline,
                )
                .await);
            }
            // The guard layer has already refused requests without a valid host.
            let Some(host) = request_host_value(&req) else {
                return Ok(
                    Refusal::refused(StatusCode::BAD_REQUEST, "no_host", true).respond(version)
                );
            };
            Ok(proxy.forward(req, &conn, host, &shared.metrics).await)
        })
    }
}
