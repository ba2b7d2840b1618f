//! Sessions over time: idle and absolute expiry, sign-out and its revocation, disabled and
//! removed accounts, forged tokens, key rotation.

use super::*;

#[tokio::test]
async fn idle_and_absolute_expiry() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"])])
        .set("auth.idle_timeout", "2s")
        .set("auth.absolute_timeout", "5s")
        .start()
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
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"])])
        .set("auth.idle_timeout", "2s")
        .set("auth.absolute_timeout", "1h")
        .start()
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
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"])])
        .set("auth.idle_timeout", "2s")
        .set("auth.absolute_timeout", "3s")
        .start()
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
    let gw = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor", "admin"])])
        .start()
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
    gw.rotate_keys(&[]).await;
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
    gw.rotate_keys(&["--end-all-sessions"]).await;
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
