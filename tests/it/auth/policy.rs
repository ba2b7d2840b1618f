//! The access policy: per role and method, path spellings that must not reach a protected
//! prefix, the shipped Orthanc preset as an allow-list.

use super::*;

/// Every spelling of a protected path is judged as the path it means, and the upstream only
/// ever sees normalised paths.
#[tokio::test]
async fn path_tricks_cannot_reach_a_protected_prefix() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"])])
        .start()
        .await;
    let cases: [(&str, &str); 14] = [
        ("/tools/execute-script", "403"),
        ("//tools/execute-script", "403"),
        ("/tools//execute-script", "403"),
        ("/%74ools/execute-script", "403"),
        ("/TOOLS/execute-script", "403"),
        ("/Tools/find", "403"),
        ("/app/../tools/find", "400"),
        ("/app/%2e%2e/tools/find", "400"),
        ("/./tools/find", "400"),
        ("/tools%2ffind", "400"),
        ("/tools%5cfind", "400"),
        ("/app\\..\\tools/find", "400"),
        ("/tools;a=b/find", "400"),
        ("/app/..;/tools/find", "400"),
    ];
    for (path, want) in cases {
        let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: viewer.test\r\nCookie: {}\r\nConnection: close\r\n\r\n",
            gw.cookie
        );
        let (text, _) = raw_exchange(&mut tls, req.as_bytes(), Duration::from_secs(3)).await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want}")),
            "{path}: {}",
            text.lines().next().unwrap_or("")
        );
    }
    // Allowed paths arrive normalised.
    let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
    let req = format!(
        "GET //app//%65xplorer.html?q=%2F HTTP/1.1\r\nHost: viewer.test\r\nCookie: {}\r\nConnection: close\r\n\r\n",
        gw.cookie
    );
    let (text, _) = raw_exchange(&mut tls, req.as_bytes(), Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let paths = up.stats.paths.lock().unwrap().clone();
    assert_eq!(paths, ["/app/explorer.html?q=%2F"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_access_policy_applies_per_role() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"]), ("dr.admin", &["admin"])])
        .start()
        .await;
    let doctor = gw.client(&certs, true);
    let admin = session_client(
        &certs,
        gw.https,
        true,
        &sign_in(&certs, gw.https, "dr.admin", TEST_PASSWORD, TEST_TOTP)
            .await
            .unwrap(),
    );
    let status = |c: &reqwest::Client, m: reqwest::Method, p: &str| {
        let req = c.request(m, gw.url(p));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    use reqwest::Method as M;
    assert_eq!(status(&doctor, M::GET, "/patients").await, 200);
    assert_eq!(status(&doctor, M::POST, "/instances").await, 200);
    assert_eq!(status(&doctor, M::DELETE, "/studies/x").await, 403);
    assert_eq!(status(&doctor, M::GET, "/tools/find").await, 403);
    assert_eq!(status(&admin, M::DELETE, "/studies/x").await, 200);
    assert_eq!(status(&admin, M::POST, "/tools/find").await, 200);
    assert_eq!(status(&admin, M::POST, "/tools/execute-script").await, 403);
    let seen = up.stats.paths.lock().unwrap().clone();
    assert!(
        !seen.iter().any(|p| p.starts_with("/tools/execute-script")),
        "{seen:?}"
    );
    assert!(
        !seen.contains(&"/studies/x".to_string())
            || seen.iter().filter(|p| *p == "/studies/x").count() == 1
    );
    gw.shutdown().await;
}

/// Orthanc runs the method named by `X-HTTP-Method-Override` (on any request) or `?_method=`
/// (on a GET) instead of the one on the wire; the policy and the cross-site check judge the
/// wire. So such requests, and methods the policy cannot name, never reach the upstream.
#[tokio::test]
async fn method_faking_and_unknown_methods_are_refused() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"])])
        .start()
        .await;
    let cases = [
        (
            "GET /studies/x",
            "X-HTTP-Method-Override: DELETE\r\n",
            "400",
        ),
        ("POST /studies/x", "X-HTTP-Method: DELETE\r\n", "400"),
        ("GET /patients", "x-method-override: PUT\r\n", "400"),
        ("GET /studies/x?_method=delete", "", "400"),
        ("GET /studies/x?a=1&_METHOD=DELETE", "", "400"),
        ("GET /studies/x?%5Fmethod=delete", "", "400"),
        ("GET /studies/x?_m%65thod=delete", "", "400"),
        ("delete /studies/x", "", "501"),
        ("Delete /studies/x", "", "501"),
        ("PROPFIND /webdav/", "", "501"),
        ("GET /studies/x?my_method=1&methods=2", "", "200"),
    ];
    for (line, extra, want) in cases {
        let mut tls = tls_connect(&certs, gw.https, "viewer.test", &[b"http/1.1"]).await;
        let req = format!(
            "{line} HTTP/1.1\r\nHost: viewer.test\r\nCookie: {}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n",
            gw.cookie
        );
        let (text, _) = raw_exchange(&mut tls, req.as_bytes(), Duration::from_secs(3)).await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want}")),
            "{line} {extra}: {}",
            text.lines().next().unwrap_or("")
        );
    }
    // Over HTTP/2 too.
    let res = gw
        .client(&certs, true)
        .get(gw.url("/studies/x"))
        .header("x-http-method-override", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let seen = up.stats.paths.lock().unwrap().clone();
    assert_eq!(seen, ["/studies/x?my_method=1&methods=2"]);
    gw.shutdown().await;
}

/// The shipped Orthanc preset is an allow-list: doctors read and search; archives need the role
/// `download`, uploads the role `upload` (at their exact paths only); everything else, including
/// what can delete originals (modify, anonymize, split, merge) or leave the server (export,
/// DICOM and DICOMweb sending, query retrieves), is for admins; Lua for nobody.
#[tokio::test]
async fn the_orthanc_preset_is_an_allow_list() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .users(&[
            (TEST_USER, &["doctor"]),
            ("dr.admin", &["admin"]),
            ("dr.trusted", &["doctor", "download", "upload"]),
        ])
        .access_yaml(&orthanc_preset())
        .build_yaml();
    let gw = Gw::start(&yaml).await;
    let doctor = gw.client(&certs, false);
    let signed_in = |user: &'static str| {
        let certs = &certs;
        async move {
            session_client(
                certs,
                gw.https,
                false,
                &sign_in(certs, gw.https, user, TEST_PASSWORD, TEST_TOTP)
                    .await
                    .unwrap(),
            )
        }
    };
    let admin = signed_in("dr.admin").await;
    let trusted = signed_in("dr.trusted").await;
    let status = |c: &reqwest::Client, m: reqwest::Method, p: &str| {
        let req = c.request(m, gw.url(p));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    use reqwest::Method as M;
    // (method, path, doctor, doctor with download + upload, admin)
    for (m, path, doctor_gets, trusted_gets, admin_gets) in [
        (M::GET, "/", 200, 200, 200),
        (M::GET, "/app/explorer.html", 200, 200, 200),
        (M::GET, "/system", 200, 200, 200),
        (M::GET, "/patients", 200, 200, 200),
        (M::GET, "/studies/1a2b", 200, 200, 200),
        (M::GET, "/instances/1a2b/file", 200, 200, 200),
        (M::GET, "/dicom-web/studies", 200, 200, 200),
        (M::GET, "/web-viewer/app/viewer.html", 200, 200, 200),
        (M::POST, "/tools/find", 200, 200, 200),
        (M::POST, "/tools/lookup", 200, 200, 200),
        // GET rules do not cover HEAD (Orthanc 1.10 answers HEAD with 404 anyway).
        (M::HEAD, "/patients", 403, 403, 200),
        (M::GET, "/tools/now", 403, 403, 200),
        (M::POST, "/tools/execute-script", 403, 403, 403),
        (M::POST, "/studies/1a2b/modify", 403, 403, 200),
        (M::POST, "/Patients/1a2b/anonymize", 403, 403, 200),
        (M::POST, "/instances/1a2b/modify", 403, 403, 200),
        (M::POST, "/studies/1a2b/split", 403, 403, 200),
        (M::POST, "/studies/1a2b/merge", 403, 403, 200),
        (M::POST, "/instances/1a2b/export", 403, 403, 200),
        (M::POST, "/modalities/pacs/store", 403, 403, 200),
        (M::POST, "/dicom-web/servers/pacs/stow", 403, 403, 200),
        (M::POST, "/queries/1a2b/retrieve", 403, 403, 200),
        (M::GET, "/dicom-web/servers", 403, 403, 200),
        (M::DELETE, "/studies/1a2b", 403, 403, 200),
        (M::GET, "/studies/1a2b/archive", 403, 200, 200),
        (M::GET, "/series/1a2b/media", 403, 200, 200),
        (M::POST, "/studies/1a2b/archive", 403, 403, 200),
        (M::POST, "/instances", 403, 200, 200),
        (M::POST, "/instances/", 403, 200, 200),
        (M::POST, "/dicom-web/studies", 403, 200, 200),
        (M::POST, "/dicom-web/studies/1.2.3", 403, 200, 200),
        (M::POST, "/dicom-web/studies/1.2.3/series", 403, 403, 200),
    ] {
        assert_eq!(
            status(&doctor, m.clone(), path).await,
            doctor_gets,
            "doctor {m} {path}"
        );
        assert_eq!(
            status(&trusted, m.clone(), path).await,
            trusted_gets,
            "doctor with download and upload {m} {path}"
        );
        assert_eq!(
            status(&admin, m.clone(), path).await,
            admin_gets,
            "admin {m} {path}"
        );
    }
    gw.shutdown().await;
}
