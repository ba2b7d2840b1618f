//! The optional plain-HTTP listener: every request is redirected to the HTTPS origin built from
//! `server_name` (never from the client's `Host`, which would make an open redirect). It never
//! proxies anything.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::plain::serve_plain;
use crate::body::Body;
use crate::respond;
use crate::state::GatewayState;

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<GatewayState>,
    stop: watch::Receiver<bool>,
) {
    let cfg = &shared.config;
    let port = cfg.listen.public_https_port;
    let origin: Arc<str> = if port == 443 {
        format!("https://{}", cfg.server_name).into()
    } else {
        format!("https://{}:{port}", cfg.server_name).into()
    };
    serve_plain(listener, shared.clone(), stop, 1024, move |_| {
        let origin = origin.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let res = redirect(&origin, &req);
            async move { Ok::<_, Infallible>(res) }
        })
    })
    .await;
}

fn redirect(origin: &str, req: &Request<Incoming>) -> Response<Body> {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    // Only origin-form targets are echoed; anything else goes to the front page.
    let pq = if pq.starts_with('/') && !pq.starts_with("//") {
        pq
    } else {
        "/"
    };
    // 301 is what every browser caches for GET; 308 keeps the method and body of the others.
    let status = if req.method() == Method::GET || req.method() == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    respond::redirect(status, &format!("{origin}{pq}"), "https_only")
}
