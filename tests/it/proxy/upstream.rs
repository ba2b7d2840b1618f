//! The upstream side: ranges, an upstream that is down, slow, closes idle connections or
//! answers what HTTP forbids.

use super::*;

#[tokio::test]
async fn range_requests_get_partial_content() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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

#[tokio::test]
async fn upstream_down_gives_a_plain_502_then_recovers() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let addr = up.addr;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
        let gw = ConfigBuilder::new(&certs, &format!("http://{up}"))
            .start()
            .await;
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
