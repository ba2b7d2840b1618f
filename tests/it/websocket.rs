//! WebSocket tunnels end to end: which handshakes are let through (cross-site WebSocket
//! hijacking), and that a tunnel ends with the session that opened it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// The status code of the answer to a raw HTTP/1.1 request head (the connection is left open).
async fn raw_status(certs: &Certs, addr: std::net::SocketAddr, head: &str) -> u16 {
    let mut tls = tls_connect(certs, addr, "viewer.test", &[b"http/1.1"]).await;
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A WebSocket handshake head to `/ws` for `host`, with the session cookie and `extra` lines.
fn handshake(host: &str, cookie: &str, extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Cookie: {cookie}\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn cross_site_handshakes_are_refused_before_the_upstream() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    let port = gw.https.port();
    let host = format!("viewer.test:{port}");
    let own = format!("Origin: https://{host}\r\n");
    let refused = [
        "Origin: https://evil.example\r\n".to_owned(),
        "Origin: null\r\n".into(),
        format!("Origin: https://pacs.viewer.test:{port}\r\n"),
        format!("Origin: https://viewer.test.evil.example:{port}\r\n"),
        // Another name of the same gateway is another origin.
        format!("Origin: https://localhost:{port}\r\n"),
        format!("Origin: http://{host}\r\n"),
        format!("Origin: https://viewer.test:{}\r\n", port.wrapping_add(1)),
        "Origin: https://viewer.test\r\n".into(),
        // No Origin at all: no browser sends such a handshake.
        String::new(),
        format!("{own}Sec-Fetch-Site: cross-site\r\n"),
        format!("{own}Sec-Fetch-Site: same-site\r\n"),
        format!("{own}{own}"),
    ];
    let before = up.stats.requests.load(Ordering::SeqCst);
    for extra in &refused {
        let status = raw_status(&certs, gw.https, &handshake(&host, &gw.cookie, extra)).await;
        assert_eq!(status, 403, "handshake with {extra:?}");
    }
    // Any protocol switch, not only WebSocket.
    let other = format!(
        "GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\
         Cookie: {}\r\nOrigin: https://evil.example\r\n\r\n",
        gw.cookie
    );
    assert_eq!(raw_status(&certs, gw.https, &other).await, 403);
    assert_eq!(
        up.stats.requests.load(Ordering::SeqCst),
        before,
        "a refused handshake reached the upstream"
    );

    // The gateway's own origin still tunnels, in any case, with Sec-Fetch-Site or without.
    for extra in [
        own.clone(),
        format!("Origin: https://VIEWER.test:{port}\r\nSec-Fetch-Site: same-origin\r\n"),
    ] {
        let status = raw_status(&certs, gw.https, &handshake(&host, &gw.cookie, &extra)).await;
        assert_eq!(status, 101, "handshake with {extra:?}");
    }
    // Port 443 is not spelled by browsers; it may be in the Host header.
    let status = raw_status(
        &certs,
        gw.https,
        &handshake(
            "viewer.test:443",
            &gw.cookie,
            "Origin: https://viewer.test\r\n",
        ),
    )
    .await;
    assert_eq!(status, 101);
    let tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let (mut ws, _) = tokio_tungstenite::client_async(ws_request(&gw, "/ws"), tls)
        .await
        .unwrap();
    assert_flows(&mut ws).await;
    gw.shutdown().await;
}

/// A same-origin WebSocket handshake request for `path` with the test user's session.
fn ws_request(gw: &Gw, path: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    ws_request_for(gw.https, &gw.cookie, path)
}

fn ws_request_for(
    addr: std::net::SocketAddr,
    cookie: &str,
    path: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let origin = format!("https://viewer.test:{}", addr.port());
    let mut req = format!("wss://viewer.test:{}{path}", addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut().insert("origin", origin.parse().unwrap());
    req
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A message goes through the tunnel and comes back.
async fn assert_flows(ws: &mut Ws) {
    ws.send(Message::text("bonjour")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("no echo")
        .expect("tunnel closed")
        .expect("tunnel failed");
    assert_eq!(echo, Message::text("bonjour"));
}

/// Opens a tunnel to the echo route with `cookie` and checks that a message goes through.
async fn open_tunnel(certs: &Certs, addr: std::net::SocketAddr, cookie: &str) -> Ws {
    let tls = tls_connect(certs, addr, "viewer.test", &[b"http/1.1"]).await;
    let (mut ws, res) = tokio_tungstenite::client_async(ws_request_for(addr, cookie, "/ws"), tls)
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    assert_flows(&mut ws).await;
    ws
}

/// Keeps sending messages through the tunnel until it ends (close frame, end of stream or
/// error) and returns when that happened; panics if it still carries messages after `limit`.
async fn wait_for_end(ws: &mut Ws, limit: Duration) -> std::time::Instant {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if ws.send(Message::text("still there?")).await.is_err() {
            return std::time::Instant::now();
        }
        let next = tokio::time::timeout(Duration::from_millis(250), ws.next()).await;
        match next {
            Ok(Some(Ok(Message::Text(_)))) | Err(_) => {}
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                return std::time::Instant::now();
            }
            Ok(Some(Ok(other))) => panic!("unexpected message {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tunnel still carries messages {limit:?} after its session ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages still go through after `during`.
async fn still_flows_after(ws: &mut Ws, during: Duration) {
    tokio::time::sleep(during).await;
    assert_flows(ws).await;
}

/// The test configuration with these accounts (`TEST_PASSWORD`, `TEST_TOTP`), doctors only.
fn doctors(certs: &Certs, up: &Upstream, users: &[&str]) -> ConfigBuilder {
    let users: Vec<(&str, &[&str])> = users.iter().map(|u| (*u, &["doctor"][..])).collect();
    ConfigBuilder::new(certs, &up.url()).users(&users)
}

/// Signs `cookie`'s session out through the real form.
async fn sign_out(certs: &Certs, gw: &Gw, cookie: &str) {
    let c = session_client(certs, gw.https, true, cookie);
    let page = c.get(gw.url("/_vigie/logout")).send().await.unwrap();
    let token = hidden_field(&page.text().await.unwrap(), "csrf").unwrap();
    let out = c
        .post(gw.url("/_vigie/logout"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
}

/// The open-tunnel gauge on the admin listener.
async fn open_tunnels(gw: &Gw) -> String {
    gw.metrics()
        .await
        .lines()
        .find(|l| l.starts_with("vigie_open_websocket_tunnels "))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn sign_out_ends_the_sessions_tunnels_only() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = doctors(&certs, &up, &[TEST_USER, "dr.b"]).start().await;
    let other = sign_in(&certs, gw.https, "dr.b", TEST_PASSWORD, TEST_TOTP)
        .await
        .unwrap();
    let mut ws = open_tunnel(&certs, gw.https, &gw.cookie).await;
    let mut kept = open_tunnel(&certs, gw.https, &other).await;
    assert_eq!(open_tunnels(&gw).await, "vigie_open_websocket_tunnels 2");
    sign_out(&certs, &gw, &gw.cookie).await;
    // Nothing in flight: the client is told why, with a close frame (1008, policy violation).
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the tunnel outlived its session by 5 s");
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected a close frame, got {other:?}"),
    }
    wait_for_end(&mut ws, Duration::from_secs(2)).await;
    // Another session, even with a tunnel of its own, is not affected.
    assert_flows(&mut kept).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while open_tunnels(&gw).await != "vigie_open_websocket_tunnels 1" {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            open_tunnels(&gw).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.shutdown().await;
}

/// The `act` and `exp` claims of a session cookie (`__Host-vigie=<jwt>`).
fn claims(cookie: &str) -> (u64, u64) {
    use base64::Engine as _;
    let jwt = cookie.split_once('=').unwrap().1;
    let payload = jwt.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    (v["act"].as_u64().unwrap(), v["exp"].as_u64().unwrap())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Requests `/x` every 400 ms for `during` with the cookie the gateway keeps re-issuing, as a
/// viewer's tab does; returns the last cookie.
async fn keep_active(certs: &Certs, gw: &Gw, mut cookie: String, during: Duration) -> String {
    let started = std::time::Instant::now();
    while started.elapsed() < during {
        let res = session_client(certs, gw.https, true, &cookie)
            .get(gw.url("/x"))
            .send()
            .await
            .unwrap();
        if res.status() != 200 {
            break;
        }
        if let Some(v) = set_cookie(&res, "__Host-vigie") {
            cookie = format!("__Host-vigie={v}");
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    cookie
}

#[tokio::test]
async fn a_tunnel_lives_while_its_session_is_active_then_ends_when_idle() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = doctors(&certs, &up, &[TEST_USER])
        .set("auth.idle_timeout", "2s")
        .set("auth.absolute_timeout", "1h")
        .start()
        .await;
    let mut ws = open_tunnel(&certs, gw.https, &gw.cookie).await;
    // Requests on other connections are the session's activity: the tunnel outlives the idle
    // timeout while they go on.
    let cookie = keep_active(&certs, &gw, gw.cookie.clone(), Duration::from_millis(4500)).await;
    assert_flows(&mut ws).await;
    let stopped = std::time::Instant::now();
    let (act, _) = claims(&cookie);
    // Messages in the tunnel are not activity: it ends once the idle timeout has passed
    // since the last cookie the gateway granted.
    let ended = wait_for_end(&mut ws, Duration::from_secs(6)).await;
    let at = unix_now() - ended.elapsed().as_secs_f64();
    assert!(
        at > (act + 2) as f64 && at < (act + 5) as f64,
        "ended at act + {:.1} s ({:.1} s after the last request)",
        at - act as f64,
        ended.duration_since(stopped).as_secs_f64()
    );
    // The browser's next request is refused too.
    let res = session_client(&certs, gw.https, true, &cookie)
        .get(gw.url("/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_tunnel_never_outlives_the_absolute_timeout() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = doctors(&certs, &up, &[TEST_USER])
        .set("auth.idle_timeout", "2s")
        .set("auth.absolute_timeout", "4s")
        .start()
        .await;
    let (_, exp) = claims(&gw.cookie);
    let mut ws = open_tunnel(&certs, gw.https, &gw.cookie).await;
    // Activity all along: only the absolute lifetime can end the session.
    let (ended, _) = tokio::join!(
        wait_for_end(&mut ws, Duration::from_secs(8)),
        keep_active(&certs, &gw, gw.cookie.clone(), Duration::from_secs(6)),
    );
    let at = unix_now() - ended.elapsed().as_secs_f64();
    assert!(
        at >= exp as f64 - 0.05 && at < exp as f64 + 0.5,
        "ended {:.2} s after the absolute end",
        at - exp as f64
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn replacing_the_keys_ends_every_tunnel_rotating_them_does_not() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let mut gw = doctors(&certs, &up, &[TEST_USER]).start_process().await;
    let mut ws = open_tunnel(&certs, gw.https, &gw.cookie).await;
    // A plain rotation keeps the previous key verifying: sessions, and their tunnels, go on.
    gw.rotate_keys(&[]).await;
    still_flows_after(&mut ws, Duration::from_millis(1500)).await;
    gw.rotate_keys(&["--end-all-sessions"]).await;
    wait_for_end(&mut ws, Duration::from_secs(5)).await;
    gw.wait_log("keys_replaced", Duration::from_secs(2)).await;
}

#[tokio::test]
async fn disabling_or_removing_the_account_ends_its_tunnels() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let config = doctors(&certs, &up, &[TEST_USER, "dr.b"]);
    let yaml = config.build_yaml();
    let mut gw = GwProcess::start(&yaml).await;
    let other = sign_in(&certs, gw.https, "dr.b", TEST_PASSWORD, TEST_TOTP)
        .await
        .unwrap();
    let mut ws = open_tunnel(&certs, gw.https, &gw.cookie).await;
    let mut other_ws = open_tunnel(&certs, gw.https, &other).await;

    // Disabled in the file, picked up without a signal.
    let config = config.disable_user(TEST_USER);
    let disabled = config.build_yaml();
    assert_ne!(disabled, yaml);
    std::fs::write(gw.config.path(), &disabled).unwrap();
    gw.wait_log("accounts reloaded", Duration::from_secs(5))
        .await;
    wait_for_end(&mut ws, Duration::from_secs(5)).await;
    assert_flows(&mut other_ws).await;

    // Removed from the file.
    let removed = config.remove_user("dr.b").build_yaml();
    assert_ne!(removed, disabled);
    std::fs::write(gw.config.path(), &removed).unwrap();
    gw.wait_log("accounts reloaded", Duration::from_secs(5))
        .await;
    wait_for_end(&mut other_ws, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_open_tunnel_does_not_hold_up_shutdown() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.drain_timeout", "10s")
        .start()
        .await;
    let mut ws = open_tunnel(&certs, gw.https, &gw.cookie).await;
    let started = std::time::Instant::now();
    gw.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    wait_for_end(&mut ws, Duration::from_secs(2)).await;
}
