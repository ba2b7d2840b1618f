//! What the gateway answers itself: the redirect and admin listeners, the reserved `/_vigie/`
//! prefix, and the access log's reason for each answer of its own.

use super::*;

#[tokio::test]
async fn redirect_listener_never_proxies() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("listen.public_https_port", 443)
        .start()
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
async fn admin_endpoints() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
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
