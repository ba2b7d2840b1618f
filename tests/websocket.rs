//! WebSocket tunnels end to end: which handshakes are let through (cross-site WebSocket
//! hijacking).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
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
    let gw = Gw::start(&config_yaml(&certs, &up.url(), "")).await;
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
