//! The gateway over time: certificate reloads (file change and SIGHUP), graceful drain on
//! SIGTERM, and what its logs never contain.

use std::time::{Duration, Instant};

use crate::support::*;

/// The leaf certificate a fresh TLS connection is served.
async fn served_leaf(certs: &Certs, addr: std::net::SocketAddr) -> Vec<u8> {
    let tls = tls_connect(certs, addr, "viewer.test", &[b"h2"]).await;
    let (_, session) = tls.get_ref();
    session.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn certificate_reloads_when_files_change_and_keeps_the_old_one_on_bad_files() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    let first = served_leaf(&certs, gw.https).await;
    // An HTTP/2 connection opened before the reload must survive it.
    let c = gw.client(&certs, true);
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);

    certs.renew();
    let deadline = Instant::now() + Duration::from_secs(5);
    let second = loop {
        let leaf = served_leaf(&certs, gw.https).await;
        if leaf != first {
            break leaf;
        }
        assert!(Instant::now() < deadline, "new certificate not picked up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);

    // A broken certificate file, then a key that belongs to another certificate.
    std::fs::write(&certs.cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(served_leaf(&certs, gw.https).await, second);
    let other = Certs::new();
    std::fs::copy(&other.cert, &certs.cert).unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(served_leaf(&certs, gw.https).await, second);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("vigie_certificate_reload_failures_total 2"),
        "{metrics}"
    );
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_at_once() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .set("tls.reload_interval", "1h")
        .build_yaml();
    let mut gw = GwProcess::start(&yaml).await;
    let first = served_leaf(&certs, gw.https).await;
    certs.renew();
    gw.signal("HUP");
    let line = gw
        .wait_log("certificate reloaded", Duration::from_secs(5))
        .await;
    assert!(line.contains("\"forced\":true"), "{line}");
    assert_ne!(served_leaf(&certs, gw.https).await, first);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .set("limits.drain_timeout", "10s")
        .set("upstream.response_timeout", "10s")
        .build_yaml();
    let mut gw = GwProcess::start(&yaml).await;
    let c = gw.client(&certs, true);
    let url = format!("https://viewer.test:{}/slow/1500", gw.https.port());
    let slow = tokio::spawn({
        let c = c.clone();
        async move { c.get(url).send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    gw.signal("TERM");
    gw.wait_log("shutting down", Duration::from_secs(5)).await;
    // No new connections once draining.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(gw.https).await.is_err(),
        "listener still open while draining"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 200, "in-flight request cut");
    let status = tokio::time::timeout(Duration::from_secs(10), gw.child.wait())
        .await
        .expect("gateway did not exit")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn drain_deadline_bounds_shutdown() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .set("limits.drain_timeout", "500ms")
        .set("upstream.response_timeout", "30s")
        .build_yaml();
    let mut gw = GwProcess::start(&yaml).await;
    let c = gw.client(&certs, false);
    let url = format!("https://viewer.test:{}/slow/20000", gw.https.port());
    let _slow = tokio::spawn(async move { c.get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    gw.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), gw.child.wait())
        .await
        .expect("gateway did not exit by its drain deadline")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn logs_never_contain_credentials_cookies_or_queries() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .set("log.level", "debug")
        .build_yaml();
    let mut gw = GwProcess::start(&yaml).await;
    for h2 in [false, true] {
        let res = gw
            .client(&certs, h2)
            .get(format!(
                "https://viewer.test:{}/echo?token=SECRETQUERY",
                gw.https.port()
            ))
            .header("cookie", format!("{}; other=SECRETCOOKIE", gw.cookie))
            .header("authorization", "Bearer SECRETBEARER")
            .header("token", "SECRETTOKENHDR")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    gw.signal("TERM");
    let _ = gw.child.wait().await;
    let mut all = String::new();
    while let Ok(line) = gw.lines.try_recv() {
        all.push_str(&line);
        all.push('\n');
    }
    if let Some(mut err) = gw.child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = err.read_to_string(&mut all).await;
    }
    assert!(
        all.contains("\"path\":\"/echo\""),
        "no access log line:\n{all}"
    );
    assert!(
        all.contains("\"user\":\"dr.test\""),
        "the access log does not name the signed-in user:\n{all}"
    );
    for secret in [
        "SECRETQUERY",
        "SECRETCOOKIE",
        "SECRETBEARER",
        "SECRETTOKENHDR",
    ] {
        assert!(!all.contains(secret), "{secret} logged:\n{all}");
    }
}
