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
//! connections are shut down (TLS close_notify, then FIN). The client also gets a close frame
//! with code 1008 (policy violation), so that the viewer can tell why, but only when the bytes
//! it has been sent end on a frame boundary: the upstream's bytes are passed on as they come,
//! and a close frame in the middle of a frame would corrupt it. [`Frames`] follows the frame
//! headers to know (hand-written: the headers of RFC 6455 §5.2 only, payloads skipped by
//! length, where a WebSocket library would decode and copy every frame).
//!
//! A tunnel is not a request: graceful shutdown does not wait for it, and it ends when its
//! worker stops, at the latest at the drain deadline.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::auth::{Auth, Identity, SessionEnd, SessionWatch};
use crate::body::Body;
use crate::http_util::tokens::has_token;
use crate::metrics::Metrics;
use crate::respond::Refusal;

/// How often an open tunnel checks that its session still stands.
pub(super) const RECHECK: Duration = Duration::from_secs(1);
/// How long closing the two connections may take before they are simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// A close frame from the server (unmasked, final) with status 1008, policy violation.
const CLOSE_POLICY: [u8; 4] = [0x88, 0x02, 0x03, 0xF0];
/// Bytes read from the upstream at a time.
const BUFFER: usize = 16 * 1024;

/// A WebSocket handshake: HTTP/1.1 GET with `Connection: upgrade` and `Upgrade: websocket`.
pub(super) fn is_websocket(parts: &Parts) -> bool {
    parts.version == Version::HTTP_11
        && parts.method == Method::GET
        && has_token(&parts.headers, header::CONNECTION, "upgrade")
        && has_token(&parts.headers, header::UPGRADE, "websocket")
}

/// Answers the client's handshake with the upstream's 101 and splices the two connections for
/// as long as the session of `identity` stands. Without an identity (the gate lets no such
/// request reach the proxy) nothing is tunnelled.
pub(super) fn tunnel(
    client: OnUpgrade,
    mut upstream_res: Response<Incoming>,
    identity: Option<&Identity>,
    auth: &Arc<Auth>,
    metrics: &Metrics,
) -> Response<Body> {
    let Some(identity) = identity else {
        warn!("websocket upgrade without a session: refused");
        let refusal = Refusal::Upstream {
            status: StatusCode::BAD_GATEWAY,
            reason: "upgrade_without_session",
            close: true,
        };
        return refusal.respond(Version::HTTP_11);
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
        let (mut client_rd, mut client_wr) = tokio::io::split(TokioIo::new(client));
        let (mut upstream_rd, mut upstream_wr) = tokio::io::split(TokioIo::new(upstream));
        let mut down = Downstream::new();
        let ended = {
            let up = async {
                let n = tokio::io::copy(&mut client_rd, &mut upstream_wr).await?;
                upstream_wr.shutdown().await?;
                Ok::<_, std::io::Error>(n)
            };
            let both = async { tokio::try_join!(up, down.pump(&mut upstream_rd, &mut client_wr)) };
            tokio::select! {
                copied = both => {
                    match copied {
                        Ok((up, down)) => debug!(bytes_up = up, bytes_down = down, "websocket closed"),
                        Err(e) => debug!(error = %e, "websocket ended with an error"),
                    }
                    None
                }
                end = session_end(&auth, &mut watch) => Some(end),
            }
        };
        if let Some(end) = ended {
            let framed = down.frames.at_boundary();
            info!(
                user = watch.user(),
                reason = end.reason(),
                close_frame = framed,
                "websocket closed: its session ended"
            );
            let close = async {
                let client = async {
                    if framed {
                        client_wr.write_all(&CLOSE_POLICY).await?;
                    }
                    client_wr.shutdown().await
                };
                tokio::join!(client, upstream_wr.shutdown())
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
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
    let wait = Duration::from_secs(unix)
        .saturating_sub(crate::host::since_epoch())
        .min(Duration::from_secs(365 * 24 * 3600));
    Instant::now() + wait
}

/// The upstream-to-client half of a tunnel. Its state lives outside the copying future, so that
/// when the future is dropped (the session ended) it still says exactly what the client got.
struct Downstream {
    buf: Box<[u8]>,
    /// `buf[start..end]` is read from the upstream and not yet written to the client.
    start: usize,
    end: usize,
    /// The frames of what the client got.
    frames: Frames,
}

impl Downstream {
    fn new() -> Downstream {
        Downstream {
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            frames: Frames::default(),
        }
    }

    /// Copies until the upstream closes, then closes the client's side. Each await is
    /// cancel-safe (a read or a write either happened whole or not at all) and the state is
    /// updated right after it.
    async fn pump<R, W>(&mut self, from: &mut R, to: &mut W) -> std::io::Result<u64>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut total = 0;
        loop {
            if self.start == self.end {
                // All that was read is written: push it out before waiting for more.
                to.flush().await?;
                let n = from.read(&mut self.buf).await?;
                if n == 0 {
                    to.shutdown().await?;
                    return Ok(total);
                }
                (self.start, self.end) = (0, n);
            }
            let n = to.write(&self.buf[self.start..self.end]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.frames.feed(&self.buf[self.start..self.start + n]);
            self.start += n;
            total += n as u64;
        }
    }
}

/// Follows the frames of a WebSocket byte stream (RFC 6455 §5.2) to know whether it stands
/// between two frames. Only headers are read; payloads are skipped by length.
#[derive(Debug, Default)]
struct Frames {
    /// The current frame's header bytes seen so far (at most 14: 2, 8 of length, 4 of mask).
    head: [u8; 14],
    head_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
}

impl Frames {
    fn at_boundary(&self) -> bool {
        self.head_len == 0 && self.payload_left == 0
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while let Some((&first, rest)) = bytes.split_first() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            self.head[self.head_len] = first;
            self.head_len += 1;
            bytes = rest;
            if self.head_len >= 2 && self.head_len == self.header_len() {
                self.payload_left = self.payload_len();
                self.head_len = 0;
            }
        }
    }

    /// The length of the current header, once its second byte is known.
    fn header_len(&self) -> usize {
        let length = match self.head[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.head[1] & 0x80 != 0 { 4 } else { 0 };
        2 + length + mask
    }

    fn payload_len(&self) -> u64 {
        let h = &self.head;
        match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => u64::from(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Frames;

    /// A frame header (final, binary) for `len` payload bytes, masked or not.
    fn header(len: usize, masked: bool) -> Vec<u8> {
        let m = if masked { 0x80 } else { 0 };
        let mut h = vec![0x82];
        match len {
            0..=125 => h.push(m | len as u8),
            126..=65535 => {
                h.push(m | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(m | 127);
                h.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            h.extend_from_slice(&[1, 2, 3, 4]);
        }
        h
    }

    #[test]
    fn boundaries_are_found_however_the_stream_is_cut() {
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for (len, masked) in [
            (0, false),
            (5, false),
            (125, true),
            (126, false),
            (65535, false),
            (65536, true),
            (3, true),
        ] {
            stream.extend(header(len, masked));
            stream.extend(std::iter::repeat_n(0x7e, len));
            ends.push(stream.len());
        }
        // Every prefix length, and the same stream fed in chunks of every size up to 20.
        for cut in 0..=stream.len() {
            let mut f = Frames::default();
            f.feed(&stream[..cut]);
            assert_eq!(
                f.at_boundary(),
                cut == 0 || ends.contains(&cut),
                "cut {cut}"
            );
        }
        for chunk in 1..=20 {
            let mut f = Frames::default();
            let mut fed = 0;
            for c in stream.chunks(chunk) {
                f.feed(c);
                fed += c.len();
                assert_eq!(
                    f.at_boundary(),
                    ends.contains(&fed),
                    "chunk {chunk} at {fed}"
                );
            }
        }
    }

    proptest::proptest! {
        /// Any sequence of frames, delivered in pieces cut anywhere: after each piece the
        /// tracker is at a boundary exactly when the bytes so far end a frame.
        #[test]
        fn boundaries_match_the_frame_ends(
            frames in proptest::collection::vec((0usize..70_000, proptest::bool::ANY), 0..6),
            cuts in proptest::collection::vec(0usize..400_000, 0..12),
        ) {
            let mut stream = Vec::new();
            let mut ends = vec![0];
            for (len, masked) in frames {
                stream.extend(header(len, masked));
                stream.resize(stream.len() + len, 0x81);
                ends.push(stream.len());
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.push(stream.len());
            cuts.sort_unstable();
            let (mut f, mut fed) = (Frames::default(), 0);
            for cut in cuts {
                f.feed(&stream[fed..cut]);
                fed = cut;
                proptest::prop_assert_eq!(f.at_boundary(), ends.contains(&cut), "at {}", cut);
            }
        }
    }

    #[test]
    fn the_largest_lengths_do_not_overflow() {
        let mut f = Frames::default();
        f.feed(&[0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(!f.at_boundary());
        f.feed(&[0; 1000]);
        assert_eq!(f.payload_left, u64::MAX - 1000);
    }
}
