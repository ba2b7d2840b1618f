//! Client connections: request framing the gateway refuses (smuggling shapes, malformed or
//! oversized heads, unknown hosts, garbage), idle and per-client bounds, WebSocket tunnels.

use super::*;

/// A WebSocket handshake to `/ws` with the test user's session.
fn ws_request(gw: &Gw) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("wss://viewer.test:{}/ws", gw.https.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", gw.cookie.parse().unwrap());
    // What a browser sends for a page of the gateway's own origin.
    req.headers_mut().insert(
        "origin",
        format!("https://viewer.test:{}", gw.https.port())
            .parse()
            .unwrap(),
    );
    req
}

#[tokio::test]
async fn websocket_echo_through_the_tunnel() {
    use tokio_tungstenite::tungstenite::Message;
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    let tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let (mut ws, res) = tokio_tungstenite::client_async(ws_request(&gw), tls)
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    assert!(res.headers().contains_key("strict-transport-security"));
    ws.send(Message::text("bonjour")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("bonjour"));
    let big = vec![7u8; 300_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    // A tunnel is not an idle HTTP connection: it outlives the keep-alive timeout.
    ws.close(None).await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn websocket_outlives_the_http_idle_timeout() {
    use tokio_tungstenite::tungstenite::Message;
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.keepalive_timeout", "300ms")
        .set("limits.header_read_timeout", "300ms")
        .start()
        .await;
    let tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let (mut ws, _) = tokio_tungstenite::client_async(ws_request(&gw), tls)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    ws.send(Message::text("still there")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still there")
    );
    gw.shutdown().await;
}

/// Sends one raw HTTP/1.1 request and returns (status line, whether the connection closed).
async fn raw(certs: &Certs, gw: &Gw, request: &[u8]) -> (String, String, bool) {
    let mut tls = tls_connect(certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let (text, closed) = raw_exchange(&mut tls, request, Duration::from_secs(3)).await;
    let status = text.lines().next().unwrap_or_default().to_owned();
    (status, text, closed)
}

#[tokio::test]
async fn request_smuggling_shapes_are_refused_and_the_connection_closed() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    let cases: [(&[u8], &str); 8] = [
        (
            b"POST /echo HTTP/1.1\r\nHost: viewer.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: viewer.test\r\n\r\n",
            "400",
        ),
        (
            b"GET /echo HTTP/1.1\r\nHost: viewer.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
            "400",
        ),
        (
            b"GET http://viewer.test/echo HTTP/1.1\r\nHost: viewer.test\r\n\r\n",
            "400",
        ),
        (b"OPTIONS * HTTP/1.1\r\nHost: viewer.test\r\n\r\n", "400"),
        (
            b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
            "40",
        ),
        (b"TRACE /echo HTTP/1.1\r\nHost: viewer.test\r\n\r\n", "405"),
        (
            b"GET /echo HTTP/1.1\r\nHost: viewer.test\r\nHost: other.test\r\n\r\n",
            "400",
        ),
        (
            b"GET /echo HTTP/1.1\r\nHost: viewer.test:443;proto=http\r\n\r\n",
            "400",
        ),
    ];
    for (req, want) in cases {
        let (status, text, closed) = raw(&certs, &gw, req).await;
        assert!(
            status.starts_with(&format!("HTTP/1.1 {want}")),
            "{:?} -> {text}",
            String::from_utf8_lossy(req)
        );
        assert!(closed, "connection left open after {status}");
        assert!(!text.contains("smuggled"));
    }
    assert_eq!(
        up.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a refused request reached the upstream"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn malformed_oversized_and_slow_requests() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.header_read_timeout", "500ms")
        .set("limits.max_header_bytes", "16KiB")
        .start()
        .await;
    // Garbage request line.
    let (status, _, closed) =
        raw(&certs, &gw, b"GE T / HTTP/1.1\r\nHost: viewer.test\r\n\r\n").await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    assert!(closed);
    // Header over the limit.
    let big = format!(
        "GET /echo HTTP/1.1\r\nHost: viewer.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let (status, _, closed) = raw(&certs, &gw, big.as_bytes()).await;
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    assert!(closed);
    // Slow client: half a head, then silence.
    let started = std::time::Instant::now();
    let (status, _, closed) = raw(&certs, &gw, b"GET /echo HTTP/1.1\r\nHost: vie").await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(closed);
    assert!(started.elapsed() < Duration::from_secs(3));
    // A connection that never sends anything is closed after the same timeout.
    let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let (text, closed) = raw_exchange(&mut tls, b"", Duration::from_secs(3)).await;
    assert!(closed && text.is_empty(), "{text}");
    // The gateway still serves.
    let res = gw
        .client(&certs, false)
        .get(gw.url("/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        up.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn idle_keepalive_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.keepalive_timeout", "400ms")
        .start()
        .await;
    let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let request = format!(
        "GET /x HTTP/1.1\r\nHost: viewer.test\r\nCookie: {}\r\n\r\n",
        gw.cookie
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Within the timeout the connection is still usable.
    tokio::time::sleep(Duration::from_millis(150)).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf))
        .await
        .expect("idle connection was not closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(300));
    gw.shutdown().await;
}

#[tokio::test]
async fn unknown_host_or_sni_gets_421() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .unset("server_aliases")
        .build_yaml();
    let gw = Gw::start(&yaml).await;
    // SNI viewer.test but Host another name.
    let (status, _, _) = raw(
        &certs,
        &gw,
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 421"), "{status}");
    // SNI localhost (the certificate covers it) with the right Host: still refused.
    let mut tls = tls_connect(&certs, gw.https, "localhost", &[b"http/1.1"]).await;
    let (text, _) = raw_exchange(
        &mut tls,
        b"GET /echo HTTP/1.1\r\nHost: viewer.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 421"), "{text}");
    // HTTP/2 with another :authority.
    let c = gw.client(&certs, true);
    let res = c
        .get(format!("https://localhost:{}/echo", gw.https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 421);
    assert_eq!(
        up.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    gw.shutdown().await;
}

/// Garbage of every shape, over TLS and in place of TLS: the gateway answers 4xx or closes,
/// never panics, and keeps serving.
#[tokio::test]
async fn garbage_input_never_panics() {
    use tokio::io::AsyncWriteExt;
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.header_read_timeout", "300ms")
        .start_process()
        .await;
    // A fixed-seed generator: the same inputs on every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let templates: [&[u8]; 8] = [
        b"GET / HTTP/1.1\r\nHost: viewer.test\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nHost: viewer.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /%%%%/../\x00\xff HTTP/1.1\r\nHost: viewer.test\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00",
        b"GET / HTTP/1.1\r\nHost: viewer.test\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: viewer.test\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\r\n\r\n\r\n",
    ];
    for round in 0..120 {
        let mut input = templates[round % templates.len()].to_vec();
        // Flip, insert or cut a few bytes.
        for _ in 0..(next() % 6) {
            let r = next();
            let pos = (r as usize >> 8) % (input.len() + 1);
            match r % 3 {
                0 if pos < input.len() => input[pos] = (r >> 40) as u8,
                1 => input.insert(pos, (r >> 32) as u8),
                _ => input.truncate(pos.max(1)),
            }
        }
        if round % 10 == 9 {
            // Not TLS at all.
            let mut tcp = tokio::net::TcpStream::connect(gw.https).await.unwrap();
            let _ = tcp.write_all(&input).await;
            let _ = tcp.shutdown().await;
            continue;
        }
        let alpn: &[&[u8]] = if round % 3 == 0 {
            &[b"h2"]
        } else {
            &[b"http/1.1"]
        };
        let mut tls = tls_connect(&certs, gw.https, "viewer.test", alpn).await;
        let _ = raw_exchange(&mut tls, &input, Duration::from_millis(600)).await;
    }
    let res = gw
        .client(&certs, true)
        .get(format!("https://viewer.test:{}/x", gw.https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the gateway stopped serving");
    let mut gw = gw;
    gw.signal("TERM");
    let status = gw.child.wait().await.unwrap();
    assert!(status.success(), "exit status {status}");
    let mut stderr = String::new();
    if let Some(mut e) = gw.child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    let mut stdout = String::new();
    while let Ok(l) = gw.lines.try_recv() {
        stdout.push_str(&l);
    }
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "{stderr}{stdout}"
    );
}
// ---- helpers for requests no browser sends ----------------------------------------------------

#[tokio::test]
async fn one_client_cannot_take_every_connection() {
    use tokio::io::AsyncReadExt;
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.max_connections_per_client", 2)
        .start()
        .await;
    // The sign-in's own connection may still be closing on a loaded machine: start from none.
    for _ in 0..50 {
        if gw.metrics().await.contains("vigie_open_connections 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let _second = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    // The third is closed before any handshake.
    let mut third = tokio::net::TcpStream::connect(gw.https).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(3), third.read(&mut [0u8; 16]))
        .await
        .expect("a third connection was kept")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        gw.metrics()
            .await
            .contains("vigie_connections_over_client_cap_total 1")
    );
    // A place given back is a place for a new connection.
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = gw
        .client(&certs, true)
        .get(gw.url("/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    gw.shutdown().await;
}
