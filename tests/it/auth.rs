//! Sign-in, sessions, the gate and the access policy, with a real client against the real
//! gateway and a real upstream.

use std::time::{Duration, Instant};

use crate::support::*;

fn now() -> u64 {
    unix_now()
}

fn code_now() -> String {
    totp_now(TEST_TOTP)
}

/// One sign-in attempt through the form: returns the response (not followed).
async fn attempt(
    certs: &Certs,
    gw: std::net::SocketAddr,
    user: &str,
    password: &str,
    code: &str,
    next: &str,
) -> reqwest::Response {
    let c = client(certs, gw, true);
    let url = format!("https://viewer.test:{}/_vigie/login", gw.port());
    let page = c.get(&url).send().await.unwrap();
    let nonce = set_cookie(&page, "__Host-vigie-csrf").unwrap();
    let token = hidden_field(&page.text().await.unwrap(), "csrf").unwrap();
    c.post(&url)
        .header("cookie", format!("__Host-vigie-csrf={nonce}"))
        .form(&[
            ("username", user),
            ("password", password),
            ("totp", code),
            ("csrf", &token),
            ("next", next),
        ])
        .send()
        .await
        .unwrap()
}

fn session_of(res: &reqwest::Response) -> Option<String> {
    set_cookie(res, "__Host-vigie")
        .filter(|v| !v.is_empty())
        .map(|v| format!("__Host-vigie={v}"))
}

#[tokio::test]
async fn full_sign_in_reaches_the_upstream_as_the_user() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[("dr.martin", &["doctor"])])
            .build_yaml(),
    )
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
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[("dr.martin", &["doctor"]), ("dr.off", &["doctor"])])
            .set("auth.max_failures", 100)
            .set("auth.failure_delay", "1ms")
            .build_yaml(),
    )
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
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[("dr.martin", &["doctor"])])
            .set("auth.max_failures", 100)
            .set("auth.failure_delay", "1ms")
            .build_yaml(),
    )
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
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[("dr.martin", &["doctor"])])
            .set("auth.failure_delay", "1ms")
            .build_yaml(),
    )
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
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[("dr.martin", &["doctor"])])
            .set("auth.max_failures", 3)
            .set("auth.lockout", "2s")
            .set("auth.failure_delay", "1ms")
            .build_yaml(),
    )
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
async fn idle_and_absolute_expiry() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[(TEST_USER, &["doctor"])])
            .set("auth.idle_timeout", "2s")
            .set("auth.absolute_timeout", "5s")
            .build_yaml(),
    )
    .await;
    let c = gw.client(&certs, true);
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    // Idle: a page load goes to sign-in with the notice, a script gets 401.
    let nav = c
        .get(gw.url("/app/page.html"))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(nav.status(), 303);
    assert_eq!(
        nav.headers()["location"],
        "/_vigie/login?next=/app/page.html&expired=1"
    );
    let page = client(&certs, gw.https, true)
        .get(gw.url("/_vigie/login?next=%2Fapp%2Fpage.html&expired=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("2 minutes d'inactivité") || page.contains("1 minutes"),
        "{page}"
    );
    let xhr = c.get(gw.url("/x")).send().await.unwrap();
    assert_eq!(xhr.status(), 401);
    gw.shutdown().await;

    // Activity refreshes the idle clock: a client that takes the re-issued cookie stays in
    // past the idle timeout; the cookie it started with does not.
    let certs = Certs::new();
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[(TEST_USER, &["doctor"])])
            .set("auth.idle_timeout", "2s")
            .set("auth.absolute_timeout", "1h")
            .build_yaml(),
    )
    .await;
    let first = gw.cookie.clone();
    let mut cookie = first.clone();
    let mut refreshed = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(4500) {
        let res = session_client(&certs, gw.https, true, &cookie)
            .get(gw.url("/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "active session lost at {:?}",
            started.elapsed()
        );
        if let Some(v) = set_cookie(&res, "__Host-vigie") {
            cookie = format!("__Host-vigie={v}");
            refreshed += 1;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(refreshed >= 2, "cookie re-issued {refreshed} times");
    let stale = session_client(&certs, gw.https, true, &first);
    assert_eq!(stale.get(gw.url("/x")).send().await.unwrap().status(), 401);
    gw.shutdown().await;

    // Absolute: activity every second does not extend the session past its lifetime.
    let certs = Certs::new();
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[(TEST_USER, &["doctor"])])
            .set("auth.idle_timeout", "2s")
            .set("auth.absolute_timeout", "3s")
            .build_yaml(),
    )
    .await;
    let c = gw.client(&certs, true);
    let started = Instant::now();
    let mut last_ok = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(6) {
        if c.get(gw.url("/x")).send().await.unwrap().status() == 200 {
            last_ok = started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        last_ok > Duration::from_secs(1) && last_ok < Duration::from_secs(4),
        "last success at {last_ok:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn logout_revokes_and_the_revocation_survives_a_restart() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let config = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"]), ("dr.b", &["doctor"])]);
    let gw = Gw::start(&config.build_yaml()).await;
    let kept =
        session_of(&attempt(&certs, gw.https, "dr.b", TEST_PASSWORD, &code_now(), "/").await)
            .unwrap();
    let c = gw.client(&certs, true);
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    let page = c
        .get(gw.url("/_vigie/logout"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(TEST_USER));
    let token = hidden_field(&page, "csrf").unwrap();
    // A forged sign-out form (wrong token) does nothing.
    let forged = c
        .post(gw.url("/_vigie/logout"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    let out = c
        .post(gw.url("/_vigie/logout"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/_vigie/login?signed_out=1");
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 401);
    let old_cookie = gw.cookie.clone();
    gw.shutdown().await;

    // Same state directory, new process lifetime: the signed-out token stays dead, the other
    // session lives on.
    let gw = Gw::start(&config.remove_user(TEST_USER).build_yaml()).await;
    let dead = session_client(&certs, gw.https, true, &old_cookie);
    assert_eq!(dead.get(gw.url("/x")).send().await.unwrap().status(), 401);
    let alive = session_client(&certs, gw.https, true, &kept);
    assert_eq!(alive.get(gw.url("/x")).send().await.unwrap().status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn disabled_or_removed_users_lose_their_sessions_at_once() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let config = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"]), ("dr.b", &["doctor"])]);
    let mut gw = GwProcess::start(&config.build_yaml()).await;
    let c = gw.client(&certs, true);
    let url = format!("https://viewer.test:{}/x", gw.https.port());
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    // Disable the user in the file and reload.
    let disabled = config.clone().disable_user(TEST_USER).build_yaml();
    std::fs::write(gw.config.path(), &disabled).unwrap();
    gw.signal("HUP");
    gw.wait_log("accounts reloaded", Duration::from_secs(5))
        .await;
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    // A disabled user cannot sign in either.
    let res = attempt(&certs, gw.https, TEST_USER, TEST_PASSWORD, &code_now(), "/").await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[(TEST_USER, &["doctor", "admin"])])
            .build_yaml(),
    )
    .await;
    let token = gw.cookie.trim_start_matches("__Host-vigie=").to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = |v: &serde_json::Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(v).unwrap(),
        )
    };
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[0])
            .unwrap(),
    )
    .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])
            .unwrap(),
    )
    .unwrap();
    // The real key, read from the state directory, to forge tokens that only the claims betray.
    let ring: serde_json::Value = serde_json::from_slice(
        &std::fs::read(certs.dir.path().join("state/session-keys.json")).unwrap(),
    )
    .unwrap();
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        ring["keys"][0]["secret"].as_str().unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let sign = |claims: &serde_json::Value, key: &[u8]| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(key)).unwrap()
    };
    let with = |field: &str, value: serde_json::Value| {
        let mut c = claims.clone();
        c[field] = value;
        c
    };
    let mut other_user = claims.clone();
    other_user["sub"] = "dr.someone.else".into();
    let forged = [
        (
            "tampered",
            format!("{}.{}.{}", parts[0], b64(&other_user), parts[2]),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
                parts[1]
            ),
        ),
        (
            "wrong key",
            sign(&claims, b"a key that is not the gateway's key, 32+ bytes"),
        ),
        (
            "wrong audience",
            sign(&with("aud", "vigie:elsewhere".into()), &key),
        ),
        ("expired", sign(&with("exp", (now() - 3600).into()), &key)),
        (
            "not yet valid",
            sign(&with("nbf", (now() + 3600).into()), &key),
        ),
        (
            "unknown session",
            sign(&with("sid", "AAAAAAAAAAAAAAAAAAAAAA".into()), &key),
        ),
        ("other user, real session", sign(&other_user, &key)),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, t) in forged {
        let c = session_client(&certs, gw.https, true, &format!("__Host-vigie={t}"));
        let res = c.get(gw.url("/x")).send().await.unwrap();
        assert_eq!(res.status(), 401, "{what} token accepted");
    }
    // The genuine one still works, and a genuine re-signed copy too (control).
    assert_eq!(
        gw.client(&certs, true)
            .get(gw.url("/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let control = sign(&claims, &key);
    let c = session_client(&certs, gw.https, true, &format!("__Host-vigie={control}"));
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn key_rotation_keeps_old_sessions_and_signs_with_the_new_key() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"]), ("dr.b", &["doctor"])])
        .build_yaml();
    let mut gw = GwProcess::start(&yaml).await;
    let kid_of = |cookie: &str| -> String {
        let t = cookie.trim_start_matches("__Host-vigie=");
        jsonwebtoken::decode_header(t).unwrap().kid.unwrap()
    };
    let old_kid = kid_of(&gw.cookie);
    rotate_keys(&mut gw, &[]).await;
    let url = format!("https://viewer.test:{}/x", gw.https.port());
    assert_eq!(
        gw.client(&certs, true)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let fresh = sign_in(&certs, gw.https, "dr.b", TEST_PASSWORD, TEST_TOTP)
        .await
        .unwrap();
    assert_ne!(kid_of(&fresh), old_kid, "new sessions must use the new key");
    let c = session_client(&certs, gw.https, true, &fresh);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
}

/// Runs `vigie rotate-keys` (with `extra` arguments) on the gateway's configuration, sends
/// SIGHUP and waits until the gateway has reloaded.
async fn rotate_keys(gw: &mut GwProcess, extra: &[&str]) {
    let out = std::process::Command::new(vigie_bin())
        .arg("rotate-keys")
        .args(extra)
        .arg("--config")
        .arg(gw.config.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.signal("HUP");
    gw.wait_log("accounts reloaded", Duration::from_secs(5))
        .await;
}

/// For a suspected breach: `rotate-keys --end-all-sessions` then SIGHUP signs everybody out,
/// including on connections that already had their token verified.
#[tokio::test]
async fn rotate_keys_can_end_every_session() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"]), ("dr.b", &["doctor"])])
        .build_yaml();
    let mut gw = GwProcess::start(&yaml).await;
    let url = format!("https://viewer.test:{}/x", gw.https.port());
    // One kept-alive connection whose token is already verified and cached.
    let client = gw.client(&certs, true);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    rotate_keys(&mut gw, &["--end-all-sessions"]).await;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        gw.client(&certs, false)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Signing in again works, with the new key (another account: TEST_USER's code of this
    // 30 s window is spent).
    let fresh = sign_in(&certs, gw.https, "dr.b", TEST_PASSWORD, TEST_TOTP)
        .await
        .unwrap();
    let c = session_client(&certs, gw.https, true, &fresh);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn next_is_never_an_open_redirect() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
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

/// Every spelling of a protected path is judged as the path it means, and the upstream only
/// ever sees normalised paths.
#[tokio::test]
async fn path_tricks_cannot_reach_a_protected_prefix() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[(TEST_USER, &["doctor"])])
            .build_yaml(),
    )
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
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[(TEST_USER, &["doctor"]), ("dr.admin", &["admin"])])
            .build_yaml(),
    )
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
    let gw = Gw::start(
        &ConfigBuilder::new(&certs, &up.url())
            .users(&[(TEST_USER, &["doctor"])])
            .build_yaml(),
    )
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

#[tokio::test]
async fn no_session_means_sign_in_for_pages_and_401_for_the_rest() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
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
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
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

#[tokio::test]
async fn the_sign_in_page_is_bilingual_strict_and_self_contained() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
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

/// hyper's HTTP/2 server would send a HEAD answer's body (a protocol error for the client).
#[tokio::test]
async fn head_requests_get_headers_only_over_both_protocols() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = Gw::start(&ConfigBuilder::new(&certs, &up.url()).build_yaml()).await;
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

/// Account changes apply without a signal: the gateway notices the configuration file changing
/// (within `tls.reload_interval`, 200 ms in tests).
#[tokio::test]
async fn account_changes_apply_without_a_signal() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let config = ConfigBuilder::new(&certs, &up.url()).users(&[(TEST_USER, &["doctor"])]);
    let yaml = config.build_yaml();
    let mut gw = GwProcess::start(&yaml).await;
    let url = format!("https://viewer.test:{}/x", gw.https.port());
    let client = gw.client(&certs, true);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    let disabled = config.disable_user(TEST_USER).build_yaml();
    assert_ne!(disabled, yaml);
    std::fs::write(gw.config.path(), disabled).unwrap();
    gw.wait_log("accounts reloaded", Duration::from_secs(5))
        .await;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
}
