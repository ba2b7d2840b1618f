//! Headers across the gateway: security headers added, hop-by-hop and spoofable ones
//! removed both ways, forwarding headers replaced, upstream locations and cookies rewritten.

use super::*;

#[tokio::test]
async fn proxies_http1_and_http2_with_security_headers() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("responses.no_store", false)
        .start()
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
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
