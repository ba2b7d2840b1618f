//! The gate in front of every proxied request: no session, cross-site requests, HEAD, and the
//! upstream credentials that replace the client's.

use super::*;

#[tokio::test]
async fn no_session_means_sign_in_for_pages_and_401_for_the_rest() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    let anon = client(&certs, gw.https, true);
    // A browser page load (Sec-Fetch-Mode, or an HTML Accept without it).
    for req in [
        anon.get(gw.url("/app/explorer.html?a=1"))
            .header("sec-fetch-mode", "navigate"),
        anon.get(gw.url("/app/explorer.html?a=1"))
            .header("accept", "text/html,application/xhtml+xml"),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(
            res.headers()["location"],
            "/_vigie/login?next=/app/explorer.html%3Fa%3D1"
        );
    }
    // Scripts, DICOMweb clients, other methods.
    for req in [
        anon.get(gw.url("/patients"))
            .header("sec-fetch-mode", "cors"),
        anon.get(gw.url("/dicom-web/studies"))
            .header("accept", "application/dicom+json"),
        anon.post(gw.url("/instances")).body("x"),
        anon.delete(gw.url("/studies/x")),
    ] {
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    // A WebSocket handshake without a session (from a page of the gateway's own origin).
    let tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let mut req = format!("wss://viewer.test:{}/ws", gw.https.port())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "origin",
        format!("https://viewer.test:{}", gw.https.port())
            .parse()
            .unwrap(),
    );
    match tokio_tungstenite::client_async(req, tls).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("websocket without session: {other:?}"),
    }
    assert!(
        up.stats.paths.lock().unwrap().is_empty(),
        "reached the upstream"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn cross_site_unsafe_requests_are_refused() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    let c = gw.client(&certs, true);
    let origin = format!("https://viewer.test:{}", gw.https.port());
    let post = |headers: &[(&str, &str)]| {
        let mut req = c.post(gw.url("/instances")).body("x");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(&[("sec-fetch-site", "cross-site")]).await, 403);
    assert_eq!(post(&[("sec-fetch-site", "same-site")]).await, 403);
    assert_eq!(post(&[("origin", "https://evil.example")]).await, 403);
    assert_eq!(post(&[("origin", "null")]).await, 403);
    // Same host, other port: another origin.
    assert_eq!(post(&[("origin", "https://viewer.test:1")]).await, 403);
    // Same origin, including Chromium's `Origin: null` under no-referrer when Sec-Fetch-Site
    // says same-origin; and non-browser clients that send neither.
    assert_eq!(
        post(&[("sec-fetch-site", "same-origin"), ("origin", "null")]).await,
        200
    );
    assert_eq!(post(&[("origin", origin.as_str())]).await, 200);
    assert_eq!(post(&[]).await, 200);
    // Reading is never refused for being cross-site (the cookie is SameSite=Lax anyway).
    let res = c
        .get(gw.url("/x"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The sign-in form itself (login CSRF).
    let res = client(&certs, gw.https, true)
        .post(gw.url("/_vigie/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("username", TEST_USER)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // And a same-site post without the form token fails.
    let res = client(&certs, gw.https, true)
        .post(gw.url("/_vigie/login"))
        .form(&[
            ("username", TEST_USER),
            ("password", TEST_PASSWORD),
            ("totp", code_now().as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_credentials_replace_the_clients() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "orthanc-secret\n").unwrap();
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .set(
            "upstream.credentials",
            serde_json::json!({ "username": "gateway", "password_file": secret.path() }),
        )
        .build_yaml();
    let gw = Gw::start(&yaml).await;
    let res = gw
        .client(&certs, true)
        .get(gw.url("/echo"))
        .header("authorization", "Basic ZXZpbDpldmls")
        .send()
        .await
        .unwrap();
    let seen = echoed_headers(&res.json().await.unwrap());
    let want = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "gateway:orthanc-secret"
        )
    );
    assert_eq!(header(&seen, "authorization"), [want.as_str()]);
    gw.shutdown().await;
}

/// hyper's HTTP/2 server would send a HEAD answer's body (a protocol error for the client).
#[tokio::test]
async fn head_requests_get_headers_only_over_both_protocols() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    for h2 in [false, true] {
        let anon = client(&certs, gw.https, h2);
        for (path, status) in [
            ("/_vigie/login", 200),
            ("/_vigie/assets/vigie.css", 200),
            ("/_vigie/nope", 404),
            ("/patients", 401),
        ] {
            let res = anon.head(gw.url(path)).send().await.unwrap();
            assert_eq!(res.status(), status, "HEAD {path} h2={h2}");
            let len: u64 = res.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(len > 0, "{path}");
            assert!(res.bytes().await.unwrap().is_empty(), "{path}");
        }
        let res = gw
            .client(&certs, h2)
            .head(gw.url("/bytes/1000"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-length"], "1000");
    }
    gw.shutdown().await;
}
