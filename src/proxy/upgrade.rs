//! WebSocket tunnelling (HTTP/1.1 `Upgrade`, RFC 6455): once the upstream answers 101, the two
//! upgraded connections are spliced together until either side closes, or until the session
//! that opened the tunnel ends.
//!
//! The tunnel keeps the session it was admitted with and asks [`Auth::session_standing`] about
//! it every [`RECHECK`] (a few atomic loads, no I/O), and wakes at the session's absolute end
//! in any case: sign-out, revocation, a disabled or removed account, replaced keys and the idle
//! timeout end it within a second, the absolute lifetime at once. Polling rather than a
//! notification from every place a session can end, because expiry has no such place, and one
//! check that mirrors the per-request one cannot miss a cause. When the session ends, both
//! connections are shut down (TLS close_notify, then FIN): the bytes are spliced as they come,
//! so a frame may be in flight and nothing is injected into the stream.
//!
//! A tunnel is not a request: graceful shutdown does not wait for it, and it ends when its
//! worker stops, at the latest at the drain deadline.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::auth::{Auth, Identity, SessionEnd, SessionWatch};
use crate::body::Body;
use crate::error_page;
use crate::metrics::Metrics;

/// How often an open tunnel checks that its session still stands.
pub const RECHECK: Duration = Duration::from_secs(1);
/// How long closing the two connections may take before they are simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

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

/// Answers the client's handshake with the upstream's 101 and splices the two connections for
/// as long as the session of `identity` stands. Without an identity (the gate lets no such
/// request reach the proxy) nothing is tunnelled.
pub fn tunnel(
    client: OnUpgrade,
    mut upstream_res: Response<Incoming>,
    identity: Option<&Identity>,
    auth: &Arc<Auth>,
    metrics: &Metrics,
) -> Response<Body> {
    let Some(identity) = identity else {
        warn!("websocket upgrade without a session: refused");
        return error_page::response(StatusCode::BAD_GATEWAY, Version::HTTP_11, true);
    };
    let mut watch = SessionWatch::new(identity.session.clone());
    let auth = auth.clone();
    let open = metrics.tunnel_opened();
    let upstream = hyper::upgrade::on(&mut upstream_res);
    let task = async move {
        let _open = open;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "websocket upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                Ok((up, down)) => debug!(bytes_up = up, bytes_down = down, "websocket closed"),
                Err(e) => debug!(error = %e, "websocket ended with an error"),
            },
            end = session_end(&auth, &mut watch) => {
                info!(user = watch.user(), reason = end.reason(), "websocket closed: its session ended");
                let close = async { tokio::join!(client.shutdown(), upstream.shutdown()) };
                let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
            }
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

/// Resolves when the watched session no longer stands, and at its absolute end at the latest.
async fn session_end(auth: &Auth, watch: &mut SessionWatch) -> SessionEnd {
    let mut tick = tokio::time::interval(RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let expiry = tokio::time::sleep_until(instant_at(watch.expires()));
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut expiry => {
                // Re-armed in case the wall clock moved: the check below decides.
                expiry.as_mut().reset(instant_at(watch.expires()).max(Instant::now() + RECHECK));
            }
        }
        if let Err(end) = auth.session_standing(watch) {
            return end;
        }
    }
}

/// The monotonic instant at which the wall clock reads `unix` seconds (now, if past; a year
/// ahead at most, which the periodic check covers).
fn instant_at(unix: u64) -> Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let wait = Duration::from_secs(unix)
        .saturating_sub(now)
        .min(Duration::from_secs(365 * 24 * 3600));
    Instant::now() + wait
}
