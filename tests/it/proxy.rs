//! The proxy path end to end: a real upstream, the real gateway, real TLS clients.

use std::time::Duration;

use crate::support::*;
use futures_util::{SinkExt, StreamExt};

#[tokio::test]
async fn proxies_http1_and_http2_with_security_headers() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    for h2 in [false, true] {
        let c = gw.client(&certs, h2);
        let res = c.get(gw.url("/echo?a=1&b=%2F")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let want = if h2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(res.version(), want);
        let h = res.headers().clone();
        assert_eq!(
            h["strict-transport-security"],
            "max-age=63072000; includeSubDomains"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-request-id"].len(), 16);
        let json: serde_json::Value = res.json().await.unwrap();
        assert_eq!(json["uri"], "/echo?a=1&b=%2F");
        assert_eq!(json["version"], "HTTP/1.1", "upstream always gets HTTP/1.1");
        let seen = echoed_headers(&json);
        assert_eq!(
            header(&seen, "host"),
            [format!("viewer.test:{}", gw.https.port())]
        );
        assert_eq!(
            header(&seen, "x-request-id"),
            [h["x-request-id"].to_str().unwrap()]
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: viewer.test\r\nCookie: {}\r\nConnection: close, X-Client-Hop\r\n\
X-Client-Hop: secret\r\nKeep-Alive: timeout=99\r\nTE: trailers\r\nProxy-Authorization: Basic eDp5\r\n\
Proxy-Connection: keep-alive\r\nX-End-To-End: kept\r\n\r\n",
        gw.cookie
    );
    let (text, _) = raw_exchange(&mut tls, request.as_bytes(), Duration::from_secs(5)).await;
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let seen = echoed_headers(&json);
    for gone in [
        "x-client-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(
            header(&seen, gone).is_empty(),
            "{gone} reached the upstream"
        );
    }
    assert_eq!(header(&seen, "x-end-to-end"), ["kept"]);

    let c = gw.client(&certs, false);
    let res = c.get(gw.url("/hop")).send().await.unwrap();
    let h = res.headers();
    for gone in ["x-up-hop", "keep-alive", "server", "x-powered-by"] {
        assert!(!h.contains_key(gone), "{gone} reached the client");
    }
    assert_eq!(h["x-end-to-end"], "kept");
    assert_eq!(
        h["cache-control"], "no-store",
        "no-store overrides upstream caching"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn cache_control_passes_through_when_admin_opts_out() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("responses.no_store", false)
            .build_yaml(),
    )
    .await;
    let res = gw
        .client(&certs, true)
        .get(gw.url("/hop"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
    gw.shutdown().await;
}

#[tokio::test]
async fn forwarding_headers_replace_whatever_the_client_sent() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    for h2 in [false, true] {
        let res = gw
            .client(&certs, h2)
            .get(gw.url("/echo"))
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", "evil.example")
            .header("forwarded", "for=6.6.6.6;proto=http;host=evil.example")
            .header("x-real-ip", "6.6.6.6")
            .header("x-vigie-user", "admin")
            .send()
            .await
            .unwrap();
        let seen = echoed_headers(&res.json().await.unwrap());
        let host = format!("viewer.test:{}", gw.https.port());
        assert_eq!(
            header(&seen, "forwarded"),
            [format!("for=127.0.0.1;proto=https;host={host}")]
        );
        assert_eq!(header(&seen, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(header(&seen, "x-forwarded-proto"), ["https"]);
        assert_eq!(header(&seen, "x-forwarded-host"), [host.as_str()]);
        assert!(header(&seen, "x-real-ip").is_empty());
        // Identity comes from the session, never from the client.
        assert_eq!(header(&seen, "x-vigie-user"), [TEST_USER]);
        assert_eq!(header(&seen, "x-vigie-roles"), ["doctor,admin"]);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_locations_are_rewritten_to_the_public_origin() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    let res = gw
        .client(&certs, true)
        .get(gw.url("/redirect"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let origin = format!("https://viewer.test:{}", gw.https.port());
    assert_eq!(
        res.headers()["location"],
        format!("{origin}/app/explorer.html?x=1").as_str()
    );
    assert_eq!(
        res.headers()["content-location"],
        format!("{origin}/x").as_str()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn range_requests_get_partial_content() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    for h2 in [false, true] {
        let res = gw
            .client(&certs, h2)
            .get(gw.url("/bytes/100000"))
            .header("range", "bytes=1000-1999")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 206);
        assert_eq!(res.headers()["content-range"], "bytes 1000-1999/100000");
        let body = res.bytes().await.unwrap();
        assert_eq!(body.len(), 1000);
        assert!(
            body.iter()
                .enumerate()
                .all(|(i, b)| *b == pattern(1000 + i as u64))
        );
    }
    gw.shutdown().await;
}

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
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
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
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.keepalive_timeout", "300ms")
            .set("limits.header_read_timeout", "300ms")
            .build_yaml(),
    )
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
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
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
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.header_read_timeout", "500ms")
            .set("limits.max_header_bytes", "16KiB")
            .build_yaml(),
    )
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
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.keepalive_timeout", "400ms")
            .build_yaml(),
    )
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

#[tokio::test]
async fn upstream_down_gives_a_plain_502_then_recovers() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let addr = up.addr;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    let c = gw.client(&certs, true);
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    up.stop().await;
    let res = c.get(gw.url("/x")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let body = res.text().await.unwrap();
    for leak in [
        "127.0.0.1",
        &addr.port().to_string(),
        "refused",
        "error",
        "hyper",
    ] {
        assert!(!body.contains(leak), "502 page leaks {leak:?}: {body}");
    }
    // readyz follows the upstream.
    let admin = reqwest::Client::new();
    let ready = format!("http://{}/readyz", gw.admin.unwrap());
    assert_eq!(admin.get(&ready).send().await.unwrap().status(), 503);
    let up = Upstream::start_at(addr, None).await;
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    assert_eq!(admin.get(&ready).send().await.unwrap().status(), 200);
    drop(up);
    gw.shutdown().await;
}

#[tokio::test]
async fn slow_upstream_gives_504() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    let res = gw
        .client(&certs, true)
        .get(gw.url("/slow/3000"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("vigie_upstream_errors_total{kind=\"timeout\"} 1"),
        "{metrics}"
    );
    gw.shutdown().await;
}

/// Orthanc closes idle keep-alive connections after 1 s. Requests spaced around that second
/// race the close; none may fail, with the default pool settings and with a pool that keeps
/// connections too long (then the single retry has to absorb the race).
#[tokio::test]
async fn upstream_closing_idle_connections_after_1s_never_surfaces() {
    let up = Upstream::start(Some(Duration::from_secs(1))).await;
    for pool_idle_timeout in [None, Some("5s")] {
        // A state directory each: a second sign-in with the same code would be a replay.
        let certs = Certs::new();
        let mut config = ConfigBuilder::new(&certs, &up.url());
        if let Some(t) = pool_idle_timeout {
            config = config.set("upstream.pool_idle_timeout", t);
        }
        let yaml = config.build_yaml();
        let gw = Gw::start(&yaml).await;
        let c = gw.client(&certs, true);
        let mut failures = Vec::new();
        for i in 0..14u64 {
            // 0.96 s .. 1.04 s, then bursts: every phase of the upstream's idle timer.
            let pause = 960 + (i * 7) % 90;
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let burst =
                futures_util::future::join_all((0..4).map(|_| c.get(gw.url("/echo")).send())).await;
            for r in burst {
                match r {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("pause {pause}: status {}", r.status())),
                    Err(e) => failures.push(format!("pause {pause}: {e}")),
                }
            }
        }
        assert!(
            failures.is_empty(),
            "pool_idle_timeout {pool_idle_timeout:?}: {failures:?}"
        );
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn redirect_listener_never_proxies() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("listen.public_https_port", 443)
            .build_yaml(),
    )
    .await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{}", gw.http.unwrap());
    let res = plain
        .get(format!("{base}/app/explorer.html?x=1"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(
        res.headers()["location"],
        "https://viewer.test/app/explorer.html?x=1"
    );
    let res = plain
        .post(format!("{base}/instances"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    let res = plain
        .get(format!("{base}//evil.example/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "https://viewer.test/");
    assert_eq!(
        up.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn request_bodies_over_the_limit_are_refused() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.max_request_body", "1KiB")
            .build_yaml(),
    )
    .await;
    let c = gw.client(&certs, true);
    let res = c
        .post(gw.url("/upload"))
        .body(vec![0u8; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // Without a length the body is cut at the limit: the upstream never gets it whole.
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 512]))),
    );
    let res = c
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    if let Ok(res) = res {
        assert!(!res.status().is_success(), "{}", res.status());
    }
    assert!(up.stats.uploaded.load(std::sync::atomic::Ordering::Relaxed) <= 1024);
    let ok = c
        .post(gw.url("/upload"))
        .body(vec![0u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    let _ = gw
        .client(&certs, true)
        .get(gw.url("/x"))
        .send()
        .await
        .unwrap();
    let admin = format!("http://{}", gw.admin.unwrap());
    let get = |p: &str| reqwest::get(format!("{admin}{p}"));
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let m = get("/metrics").await.unwrap().text().await.unwrap();
    let count = |class: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(&format!("vigie_requests_total{{class=\"{class}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    // The sign-in page (200), the sign-in (303) and the proxied request (200).
    assert_eq!((count("2xx"), count("3xx")), (2, 1), "{m}");
    for want in [
        "vigie_request_duration_seconds_bucket",
        "vigie_open_connections",
        "vigie_upstream_errors_total",
        "vigie_certificate_expiry_seconds",
    ] {
        assert!(m.contains(want), "missing {want}:\n{m}");
    }
    let expiry: f64 = m
        .lines()
        .find(|l| l.starts_with("vigie_certificate_expiry_seconds "))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        expiry > 300.0 * 86400.0,
        "dev certificate lasts a year: {expiry}"
    );
    assert_eq!(get("/nope").await.unwrap().status(), 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn reserved_prefix_is_never_proxied() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    let res = gw
        .client(&certs, true)
        .get(gw.url("/_vigie/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
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
    let gw = GwProcess::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.header_read_timeout", "300ms")
            .build_yaml(),
    )
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

/// A body that sends `first`, then nothing, and never ends (until `tx` is dropped).
type Dribble = http_body_util::StreamBody<
    futures_util::stream::BoxStream<
        'static,
        Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>,
    >,
>;

fn dribble(first: &'static [u8]) -> (tokio::sync::mpsc::Sender<bytes::Bytes>, Dribble) {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let stream = futures_util::stream::once(async move {
        Ok(hyper::body::Frame::data(bytes::Bytes::from_static(first)))
    })
    .chain(futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(hyper::body::Frame::data(chunk)), rx))
    }));
    (tx, http_body_util::StreamBody::new(stream.boxed()))
}

/// An HTTP/2 connection to the gateway through hyper's own client.
async fn h2_client(
    certs: &Certs,
    gw: &Gw,
    window: Option<u32>,
) -> hyper::client::conn::http2::SendRequest<Dribble> {
    let tls = tls_connect(certs, gw.https, "viewer.test", &[b"h2"]).await;
    let mut b = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    if let Some(w) = window {
        b.initial_stream_window_size(w)
            .initial_connection_window_size(w);
    }
    let (send, conn) = b
        .handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

// ---- the gateway's cookies and headers belong to the gateway ------------------------------------

/// Sends `request` over HTTP/1.1 and returns the response text (the connection is closed by
/// `Connection: close` in the request).
async fn raw_text(certs: &Certs, gw: &Gw, request: &[u8]) -> String {
    let mut tls = tls_connect(certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    raw_exchange(&mut tls, request, Duration::from_secs(5))
        .await
        .0
}

#[tokio::test]
async fn foreign_cookie_bytes_neither_leak_nor_hide_the_session() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    let session = gw.cookie.as_bytes();
    // HTTP/1.1: one field with a non-ASCII cookie beside the session, then two fields.
    let one = [
        &b"GET /echo HTTP/1.1\r\nHost: viewer.test\r\nConnection: close\r\nCookie: pref=caf\xc3\xa9; "[..],
        session,
        b"; b=2\r\n\r\n",
    ]
    .concat();
    let two = [
        &b"GET /echo HTTP/1.1\r\nHost: viewer.test\r\nConnection: close\r\nCookie: x=\xff\r\nCookie: "[..],
        session,
        b"\r\n\r\n",
    ]
    .concat();
    for request in [one, two] {
        let text = raw_text(&certs, &gw, &request).await;
        assert!(text.starts_with("HTTP/1.1 200"), "session not seen: {text}");
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        assert!(body.contains("\"cookie\""), "{body}");
        assert!(
            !body.contains("__Host-vigie"),
            "session cookie reached the upstream: {body}"
        );
    }
    // HTTP/2 crumbs.
    let mut h2 = h2_client(&certs, &gw, None).await;
    let mut req = http::Request::get(gw.url("/echo"));
    req = req
        .header(
            "cookie",
            http::HeaderValue::from_bytes(b"x=\xe9t\xe9").unwrap(),
        )
        .header("cookie", &gw.cookie)
        .header("cookie", "b=2");
    let res = h2
        .send_request(req.body(dribble(b"").1).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let cookies = header(&echoed_headers(&json), "cookie")
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(
        !cookies[0].contains("__Host-vigie") && cookies[0].ends_with("; b=2"),
        "{cookies:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_upstream_cannot_set_gateway_cookies_or_allow_framing() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    let c = gw.client(&certs, true);
    let res = c
        .get(gw.url(
            "/headers?set-cookie=__Host-vigie%3Dforged%3B+Path%3D%2F&set-cookie=%3D__Host-vigie%3Dx\
&set-cookie=__Host-vigie-csrf%3Dx&set-cookie=orthanc%3D1&x-frame-options=ALLOW-FROM+https://evil.example\
&content-security-policy=frame-ancestors+*",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let all = |name: &str| {
        res.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(all("set-cookie"), ["orthanc=1"]);
    assert_eq!(all("x-frame-options"), ["SAMEORIGIN"]);
    // One field (scanners flag several), the upstream's policy and ours beside it.
    assert_eq!(
        all("content-security-policy"),
        ["frame-ancestors *, frame-ancestors 'self'"]
    );
    let res = c
        .get(gw.url("/headers?x-frame-options=DENY"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    gw.shutdown().await;
}

#[tokio::test]
async fn underscore_spellings_of_gateway_headers_are_dropped() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: viewer.test\r\nConnection: close\r\nCookie: {}\r\n\
X_Vigie_User: admin\r\nX_VIGIE_ROLES: admin\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-Prefix: /evil\r\n\
x_forwarded_host: evil.example\r\nX_Real_IP: 6.6.6.6\r\nX_Request_Id: forged\r\nX_Custom: kept\r\n\r\n",
        gw.cookie
    );
    let text = raw_text(&certs, &gw, request.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    let seen = echoed_headers(&json);
    let names: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    for gone in [
        "x_vigie_user",
        "x_vigie_roles",
        "x_forwarded_for",
        "x-forwarded-prefix",
        "x_forwarded_host",
        "x_real_ip",
        "x_request_id",
    ] {
        assert!(!names.contains(&gone), "{gone} forwarded: {names:?}");
    }
    assert_eq!(header(&seen, "x_custom"), ["kept"]);
    assert_eq!(header(&seen, "x-vigie-user"), [TEST_USER]);
    assert_eq!(header(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    gw.shutdown().await;
}
// ---- upstream response framing --------------------------------------------------------------

/// An upstream that answers every request with `answer` as it is.
async fn raw_upstream(answer: Vec<u8>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp.write_all(&answer).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn ambiguous_or_oversized_upstream_answers_become_502() {
    let both = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
10\r\n0123456789abcdef\r\n0\r\n\r\n"
        .to_vec();
    let huge = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(300 * 1024)
    )
    .into_bytes();
    for answer in [both, huge] {
        // A state folder each: a second sign-in with the same code would be a replay.
        let certs = Certs::new();
        let up = raw_upstream(answer).await;
        let gw = Gw::start(&ConfigBuilder::new(&certs, &format!("http://{up}")).build_yaml()).await;
        for h2 in [false, true] {
            let res = gw
                .client(&certs, h2)
                .get(gw.url("/x"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 502, "h2: {h2}");
            let body = res.text().await.unwrap();
            assert!(!body.contains("0123"), "{body}");
        }
        gw.shutdown().await;
    }
}
// ---- stalled bodies, clients that stop reading ------------------------------------------------

fn h2_post(gw: &Gw, path: &str, cookie: &str, body: Dribble) -> http::Request<Dribble> {
    let mut req = http::Request::post(gw.url(path))
        .header("content-length", "8000")
        .header("content-type", "application/x-www-form-urlencoded");
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    req.body(body).unwrap()
}

#[tokio::test]
async fn a_stalled_sign_in_form_gets_408_over_both_protocols() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.header_read_timeout", "1s")
            .build_yaml(),
    )
    .await;
    // HTTP/1.1: 8000 bytes announced, one sent.
    let started = std::time::Instant::now();
    let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let (text, closed) = raw_exchange(
        &mut tls,
        b"POST /_vigie/login HTTP/1.1\r\nHost: viewer.test\r\n\
Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 8000\r\n\r\nu",
        Duration::from_secs(5),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(closed, "connection left open");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // HTTP/2: the stream ends (408 or reset) within the same deadline.
    let started = std::time::Instant::now();
    let mut h2 = h2_client(&certs, &gw, None).await;
    let (_tx, body) = dribble(b"u");
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        h2.send_request(h2_post(&gw, "/_vigie/login", "", body)),
    )
    .await
    .expect("HTTP/2 form held open");
    if let Ok(res) = answer {
        assert_eq!(res.status(), 408);
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stalled_upload_is_answered_408_and_aborted_upstream() {
    use std::sync::atomic::Ordering::Relaxed;
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.body_idle_timeout", "1s")
            .build_yaml(),
    )
    .await;
    let started = std::time::Instant::now();
    let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: viewer.test\r\nCookie: {}\r\nContent-Length: 8000\r\n\r\nx",
        gw.cookie
    );
    let (text, closed) = raw_exchange(&mut tls, request.as_bytes(), Duration::from_secs(6)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(closed, "connection left open");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // HTTP/2 likewise.
    let mut h2 = h2_client(&certs, &gw, None).await;
    let (_tx, body) = dribble(b"x");
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        h2.send_request(h2_post(&gw, "/upload", &gw.cookie, body)),
    )
    .await
    .expect("HTTP/2 upload held open")
    .unwrap();
    assert_eq!(res.status(), 408);
    // The upstream saw both requests break off, and holds no connection for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while up.stats.body_errors.load(Relaxed) < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(up.stats.body_errors.load(Relaxed), 2);
    assert_eq!(up.stats.uploaded.load(Relaxed), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_slow_upload_that_keeps_moving_goes_through() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    // 12 chunks 400 ms apart: 4.8 s in all, longer than the response timeout (2 s) and each
    // pause shorter than the body idle timeout (1 s).
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.body_idle_timeout", "1s")
            .build_yaml(),
    )
    .await;
    for h2 in [false, true] {
        let chunks = futures_util::stream::unfold(0u64, |i| async move {
            if i == 12 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            Some((
                Ok::<_, std::io::Error>(pattern_chunk(i * 1000, 1000)),
                i + 1,
            ))
        });
        let res = gw
            .client(&certs, h2)
            .post(gw.url("/upload"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "h2: {h2}");
        assert_eq!(res.text().await.unwrap(), "12000 0");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_the_upstream_released() {
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.send_timeout", "1s")
            .build_yaml(),
    )
    .await;
    const SIZE: u64 = 1 << 30;
    // HTTP/1.1: ask for 1 GiB and read nothing.
    let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let request = format!(
        "GET /bytes/{SIZE} HTTP/1.1\r\nHost: viewer.test\r\nCookie: {}\r\n\r\n",
        gw.cookie
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        up.stats.open.load(Relaxed),
        0,
        "upstream connection still held"
    );
    // What was buffered arrives, then the end: far from the whole answer.
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n as u64,
            Err(_) => panic!("connection still open after {got} bytes"),
        }
    }
    assert!(got < SIZE / 4, "{got}");
    // HTTP/2: a 64 KiB window that the client never opens further.
    let mut h2 = h2_client(&certs, &gw, Some(65_535)).await;
    let req = http::Request::get(gw.url(&format!("/bytes/{SIZE}")))
        .header("cookie", &gw.cookie)
        .body(dribble(b"").1)
        .unwrap();
    let res = h2.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        up.stats.open.load(Relaxed),
        0,
        "upstream connection still held (h2)"
    );
    // Reading now finds the stream cut short.
    let mut got = 0u64;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
            match frame {
                Ok(f) => got += f.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok() && got < SIZE, "{got}");
    assert!(gw.metrics().await.contains("vigie_send_timeouts_total 2"));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stalled_body_without_a_session_does_not_hold_the_connection() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.header_read_timeout", "1s")
            .set("limits.keepalive_timeout", "1s")
            .set("limits.body_idle_timeout", "1s")
            .build_yaml(),
    )
    .await;
    let started = std::time::Instant::now();
    let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let (text, closed) = raw_exchange(
        &mut tls,
        b"POST /upload HTTP/1.1\r\nHost: viewer.test\r\nContent-Length: 8000\r\n\r\nx",
        Duration::from_secs(6),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(closed, "connection left open");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        up.stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn one_client_cannot_take_every_connection() {
    use tokio::io::AsyncReadExt;
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .set("limits.max_connections_per_client", 2)
            .build_yaml(),
    )
    .await;
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

/// When the gateway answers a request itself, the client gets a generic page and the access log
/// says why; an answer from the upstream has no reason.
#[tokio::test]
async fn the_access_log_names_why_the_gateway_answered() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"])])
        .set("log.access_log", true)
        .build_yaml();
    let mut gw = GwProcess::start(&yaml).await;
    let c = gw.client(&certs, false);
    let https = gw.https;
    let url = |p: &str| format!("https://viewer.test:{}{p}", https.port());

    assert_eq!(c.get(url("/x")).send().await.unwrap().status(), 200);
    let line = access_line(&mut gw, 200).await;
    assert!(!line.contains("\"reason\""), "{line}");

    assert_eq!(
        c.get(url("/tools/find")).send().await.unwrap().status(),
        403
    );
    let line = access_line(&mut gw, 403).await;
    assert!(line.contains("\"reason\":\"access_policy\""), "{line}");

    let res = c
        .get(url("/x"))
        .header("x-http-method-override", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let page = res.text().await.unwrap();
    assert!(
        !page.contains("method_override"),
        "the page stays generic: {page}"
    );
    let line = access_line(&mut gw, 400).await;
    assert!(line.contains("\"reason\":\"method_override\""), "{line}");

    let anonymous = client(&certs, https, false);
    assert_eq!(anonymous.get(url("/x")).send().await.unwrap().status(), 401);
    let line = access_line(&mut gw, 401).await;
    assert!(line.contains("\"reason\":\"no_session\""), "{line}");

    up.stop().await;
    assert_eq!(c.get(url("/x")).send().await.unwrap().status(), 502);
    let line = access_line(&mut gw, 502).await;
    assert!(line.contains("\"reason\":\"upstream_connect\""), "{line}");
}

/// The access log line of the next request answered with `status`.
async fn access_line(gw: &mut GwProcess, status: u16) -> String {
    let line = gw
        .wait_log(&format!("\"status\":{status}"), Duration::from_secs(5))
        .await;
    assert!(line.contains("\"message\":\"request\""), "{line}");
    line
}
