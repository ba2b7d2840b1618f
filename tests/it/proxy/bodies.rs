//! Request and response bodies: the size limit, stalled and slow uploads (sign-in form and
//! proxied), a client that stops reading.

use super::*;

#[tokio::test]
async fn request_bodies_over_the_limit_are_refused() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.max_request_body", "1KiB")
        .start()
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
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.header_read_timeout", "1s")
        .start()
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
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.body_idle_timeout", "1s")
        .start()
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
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.body_idle_timeout", "1s")
        .start()
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
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.send_timeout", "1s")
        .start()
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
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("limits.header_read_timeout", "1s")
        .set("limits.keepalive_timeout", "1s")
        .set("limits.body_idle_timeout", "1s")
        .start()
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
