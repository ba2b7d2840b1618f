//! WebSocket tunnelling (HTTP/1.1 `Upgrade`, RFC 6455): once the upstream answers 101, the two
//! upgraded connections are spliced together until either side closes.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::{Instrument, debug};

use crate::body::Body;

/// A WebSocket handshake: HTTP/1.1 GET with `Connection: upgrade` and `Upgrade: websocket`.
pub fn is_websocket(parts: &Parts) -> bool {
    parts.version == Version::HTTP_11
        && parts.method == Method::GET
        && has_token(&parts.headers, header::CONNECTION, "upgrade")
        && has_token(&parts.headers, header::UPGRADE, "websocket")
}

fn has_token(h: &http::HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Answers the client's handshake with the upstream's 101 and splices the two connections.
pub fn tunnel(client: OnUpgrade, mut upstream_res: Response<Incoming>) -> Response<Body> {
    let upstream = hyper::upgrade::on(&mut upstream_res);
    let task = async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "websocket upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => debug!(bytes_up = up, bytes_down = down, "websocket closed"),
            Err(e) => debug!(error = %e, "websocket ended with an error"),
        }
    };
    tokio::spawn(task.in_current_span());

    let (mut parts, _) = upstream_res.into_parts();
    // Only what the handshake needs goes back: hop-by-hop headers are rebuilt here.
    let mut keep = http::HeaderMap::new();
    for (name, value) in parts.headers.iter() {
        if name.as_str().starts_with("sec-websocket-") {
            keep.append(name.clone(), value.clone());
        }
    }
    keep.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    keep.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    parts.headers = keep;
    parts.extensions = http::Extensions::new();
    Response::from_parts(parts, Body::Empty)
}
