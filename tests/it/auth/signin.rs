//! Signing in through the real form: the way to the upstream, failures that all look alike and
//! take as long, one use per TOTP code, lockout, `next=`, the page itself.

use super::*;

#[tokio::test]
async fn full_sign_in_reaches_the_upstream_as_the_user() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[("dr.martin", &["doctor"])])
        .start()
        .await;
    let res = attempt(
        &certs,
        gw.https,
        "dr.martin",
        TEST_PASSWORD,
        &code_now(),
        "/echo?from=login",
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/echo?from=login");
    let raw_cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-vigie="))
        .unwrap();
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(raw_cookie.contains(attr), "{raw_cookie}");
    }
    let cookie = session_of(&res).unwrap();
    let c = session_client(&certs, gw.https, true, &cookie);
    let res = c.get(gw.url("/echo?from=login")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = echoed_headers(&res.json().await.unwrap());
    assert_eq!(header(&seen, "x-vigie-user"), ["dr.martin"]);
    assert_eq!(header(&seen, "x-vigie-roles"), ["doctor"]);
    // The session token stays between the browser and the gateway.
    assert!(
        header(&seen, "cookie")
            .iter()
            .all(|c| !c.contains("__Host-vigie")),
        "{seen:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn failures_all_look_the_same() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[("dr.martin", &["doctor"]), ("dr.off", &["doctor"])])
        .set("auth.max_failures", 100)
        .set("auth.failure_delay", "1ms")
        .start()
        .await;
    let wrong_code = format!(
        "{:06}",
        (code_now().parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let cases = [
        ("dr.martin", "Wrong-Password-99", code_now()),
        ("dr.martin", TEST_PASSWORD, wrong_code.clone()),
        ("dr.martin", TEST_PASSWORD, "12345".to_string()),
        ("nobody", TEST_PASSWORD, code_now()),
        ("", "", String::new()),
    ];
    let mut pages = Vec::new();
    for (user, pw, code) in &cases {
        let res = attempt(&certs, gw.https, user, pw, code, "/").await;
        assert_eq!(res.status(), 401, "{user}/{pw}/{code}");
        assert!(session_of(&res).is_none());
        let page = res.text().await.unwrap();
        // Remove what legitimately differs: the CSRF token and the user name kept in the form.
        // (and which field has the focus: the user name when it is empty).
        let masked = page
            .replace(&hidden_field(&page, "csrf").unwrap(), "TOKEN")
            .replace(
                &format!("required value=\"{user}\""),
                "required value=\"USER\"",
            )
            .replace(" autofocus", "");
        pages.push(masked);
    }
    for w in pages.windows(2) {
        assert_eq!(w[0], w[1], "failure pages differ");
    }
    assert!(pages[0].contains("La connexion a échoué"));
    assert!(up.stats.paths.lock().unwrap().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn unknown_users_take_as_long_as_known_ones() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[("dr.martin", &["doctor"])])
        .set("auth.max_failures", 100)
        .set("auth.failure_delay", "1ms")
        .start()
        .await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..8 {
        for (user, out) in [("dr.martin", &mut known), ("dr.nobody", &mut unknown)] {
            let t = Instant::now();
            let res = attempt(
                &certs,
                gw.https,
                user,
                &format!("Wrong-Password-{i}"),
                "000000",
                "/",
            )
            .await;
            assert_eq!(res.status(), 401);
            out.push(t.elapsed());
        }
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[4], unknown[4]);
    println!("median: known user {k:?}, unknown user {u:?}");
    // The password hash dominates both; without the dummy hash an unknown user would answer
    // in well under a millisecond of server time.
    let ratio = k.as_secs_f64() / u.as_secs_f64();
    assert!((0.6..1.67).contains(&ratio), "known {k:?} vs unknown {u:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_totp_code_works_once() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[("dr.martin", &["doctor"])])
        .set("auth.failure_delay", "1ms")
        .start()
        .await;
    // Sign in near the start of a step so both attempts fall in the same one.
    while now() % 30 > 25 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let code = code_now();
    let first = attempt(&certs, gw.https, "dr.martin", TEST_PASSWORD, &code, "/").await;
    assert_eq!(first.status(), 303);
    let replay = attempt(&certs, gw.https, "dr.martin", TEST_PASSWORD, &code, "/").await;
    assert_eq!(replay.status(), 401, "a replayed code signed in");
    gw.shutdown().await;
}

#[tokio::test]
async fn lockout_and_its_expiry() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[("dr.martin", &["doctor"])])
        .set("auth.max_failures", 3)
        .set("auth.lockout", "2s")
        .set("auth.failure_delay", "1ms")
        .start()
        .await;
    for i in 0..3 {
        let res = attempt(
            &certs,
            gw.https,
            "dr.martin",
            &format!("Wrong-Password-{i}"),
            "000000",
            "/",
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    // Locked: even the right credentials fail, with the same page.
    let res = attempt(
        &certs,
        gw.https,
        "dr.martin",
        TEST_PASSWORD,
        &code_now(),
        "/",
    )
    .await;
    assert_eq!(res.status(), 401);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let res = attempt(
        &certs,
        gw.https,
        "dr.martin",
        TEST_PASSWORD,
        &code_now(),
        "/",
    )
    .await;
    assert_eq!(res.status(), 303, "still locked after the lockout");
    gw.shutdown().await;
}

#[tokio::test]
async fn next_is_never_an_open_redirect() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    // Already signed in: the sign-in page forwards to `next`, after the same check.
    let c = gw.client(&certs, true);
    for (next, want) in [
        ("/app/explorer.html", "/app/explorer.html"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("\\\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/_vigie/login", "/"),
        ("http:/evil.example", "/"),
    ] {
        let enc: String =
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
                .collect();
        let res = c
            .get(gw.url(&format!("/_vigie/login?next={enc}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{next}");
        assert_eq!(res.headers()["location"], want, "{next}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn the_sign_in_page_is_bilingual_strict_and_self_contained() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    let anon = client(&certs, gw.https, true);
    let fr = anon
        .get(gw.url("/_vigie/login"))
        .header("accept-language", "fr-FR,fr;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(
        fr.headers()
            .get_all("content-security-policy")
            .iter()
            .count(),
        1,
        "one policy field: scanners flag several"
    );
    let csp = fr.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("script-src"),
        "{csp}"
    );
    let fr = fr.text().await.unwrap();
    assert!(fr.contains("<html lang=\"fr\">") && fr.contains("Se connecter"));
    assert!(!fr.contains("<script") && !fr.contains("http://") && !fr.contains("https://"));
    let en = anon
        .get(gw.url("/_vigie/login"))
        .header("accept-language", "en-GB,en;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(en.contains("<html lang=\"en\">") && en.contains(">Sign in</button>"));
    let css = anon
        .get(gw.url("/_vigie/assets/vigie.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    gw.shutdown().await;
}
