//! The flow tampered with between the browser, the gateway and the provider: `state`, the
//! binding cookie, a replayed code, another `nonce`, another `iss`, a cancelled sign-in. Each
//! ends on a generic page with its status and one log line with its reason.

use super::*;

/// A PSC provider and the gateway as a process (for its log lines).
async fn psc_process(s: &Setup) -> (Idp, GwProcess) {
    let idp = s.psc(|o| o).await;
    let gw = s
        .config(vec![idp.gateway_entry("psc")])
        .start_process()
        .await;
    (idp, gw)
}

#[tokio::test]
async fn a_wrong_state_is_refused() {
    let s = Setup::new().await;
    let (idp, mut gw) = psc_process(&s).await;
    let mut b = s.browser();
    let (started, callback) = up_to_callback(&mut b, "psc").await;
    let forged = with_param(
        &callback,
        "state",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    refused_at_callback(
        &mut gw,
        &idp,
        "psc",
        &b,
        &started,
        &forged,
        (400, "state_unknown"),
    )
    .await;
    // The genuine state still works once: a refusal does not burn it.
    let done = b.callback(&callback, Some(&started.binding)).await;
    assert_eq!(done.status, 303, "{done:?}");
    assert!(done.session().is_some());
}

#[tokio::test]
async fn a_state_works_once() {
    let s = Setup::new().await;
    let (idp, mut gw) = psc_process(&s).await;
    let mut b = s.browser();
    let signed = b.sign_in("psc").await;
    let first = signed.session();
    // The same callback again (a reload, or an attacker who saw the URL).
    refused_at_callback(
        &mut gw,
        &idp,
        "psc",
        &b,
        &signed.started,
        &signed.callback,
        (400, "state_unknown"),
    )
    .await;
    // The first session is unaffected.
    assert!(s.upstream_view(&first).await.is_ok());
}

#[tokio::test]
async fn only_a_get_spends_a_state() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o).await;
    let gw = s.config(vec![idp.gateway_entry("psc")]).start().await;
    let mut b = s.browser();
    let (started, callback) = up_to_callback(&mut b, "psc").await;
    let c = s.session(&format!("__Host-vigie-oidc={}", started.binding));
    for method in [reqwest::Method::HEAD, reqwest::Method::POST] {
        let res = c
            .request(method.clone(), callback.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method}");
    }
    let head = c
        .head(s.url("/_vigie/oidc/psc/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 405, "HEAD start");
    // The flow is still there for the browser's GET.
    let done = b.callback(&callback, Some(&started.binding)).await;
    assert_eq!(done.status, 303, "{done:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_callback_needs_the_browser_that_started() {
    let s = Setup::new().await;
    let (idp, mut gw) = psc_process(&s).await;
    let mut b = s.browser();
    let (_, callback) = up_to_callback(&mut b, "psc").await;
    let code = query_param(&callback, "code").unwrap();

    // No binding cookie: a victim lured to an attacker's callback URL.
    let done = b.callback(&callback, None).await;
    assert_failure_page(&done, 400, &idp, &[&code]);
    refusal(&mut gw, "psc", "binding_mismatch").await;

    // Another flow's binding cookie (on a fresh flow: the refusal above may have spent the
    // first one's state).
    let (started, callback) = up_to_callback(&mut b, "psc").await;
    let code = query_param(&callback, "code").unwrap();
    let other = b.start("psc", "/").await;
    assert_ne!(other.binding, started.binding);
    let done = b.callback(&callback, Some(&other.binding)).await;
    assert_failure_page(&done, 400, &idp, &[&code]);
    refusal(&mut gw, "psc", "binding_mismatch").await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_by_the_provider() {
    let s = Setup::new().await;
    let (idp, mut gw) = psc_process(&s).await;
    let mut b = s.browser();
    let signed = b.sign_in("psc").await;
    let first = signed.session();
    let used = query_param(&signed.callback, "code").unwrap();
    // A fresh flow (valid state and binding) that presents the used code.
    let (started, callback) = up_to_callback(&mut b, "psc").await;
    let replay = with_param(&callback, "code", &used);
    let line = refused_at_callback(
        &mut gw,
        &idp,
        "psc",
        &b,
        &started,
        &replay,
        (502, "code_rejected"),
    )
    .await;
    assert!(
        !line.to_string().contains(&used),
        "the code is logged: {line}"
    );
    // The provider revokes what the code gave (RFC 6749 4.1.2); the gateway's session is its
    // own and stays until it ends or is revoked.
    assert!(idp.log().contains("grant.error"), "{}", idp.log());
    assert!(s.upstream_view(&first).await.is_ok());
}

#[tokio::test]
async fn a_nonce_changed_on_the_way_is_refused() {
    let s = Setup::new().await;
    let (idp, mut gw) = psc_process(&s).await;
    let mut b = s.browser();
    let started = b.start("psc", "/").await;
    let nonce = query_param(&started.authorize, "nonce").unwrap();
    let other = format!("{nonce}x");
    let (_, callback) = b
        .authorize(&with_param(&started.authorize, "nonce", &other))
        .await
        .unwrap();
    let line = refused_at_callback(
        &mut gw,
        &idp,
        "psc",
        &b,
        &started,
        &callback,
        (502, "id_token_invalid"),
    )
    .await;
    assert_eq!(line["detail"], "nonce", "{line}");
}

#[tokio::test]
async fn an_iss_parameter_from_another_issuer_is_refused() {
    let s = Setup::new().await;
    let (idp, mut gw) = psc_process(&s).await;
    let mut b = s.browser();
    let (started, callback) = up_to_callback(&mut b, "psc").await;
    let mixed_up = with_param(&callback, "iss", "https://idp.attacker.test/realms/x");
    refused_at_callback(
        &mut gw,
        &idp,
        "psc",
        &b,
        &started,
        &mixed_up,
        (400, "issuer_mismatch"),
    )
    .await;
    // The code was not spent at the token endpoint on a mixed-up answer.
    assert!(
        !idp.log()
            .contains("POST /auth/realms/esante-wallet/protocol/openid-connect/token")
    );
}

#[tokio::test]
async fn a_cancelled_sign_in_says_so_in_the_users_language() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o.env("LOGIN_MODE", "deny")).await;
    let mut gw = s
        .config(vec![idp.gateway_entry("psc")])
        .start_process()
        .await;
    let mut b = s.browser();
    let started = b.start_with("psc", &[("next", "/"), ("lang", "fr")]).await;
    let (_, callback) = b.authorize(&started.authorize).await.unwrap();
    assert_eq!(query_param(&callback, "error").unwrap(), "access_denied");
    let done = b.callback(&callback, Some(&started.binding)).await;
    assert_failure_page(&done, 403, &idp, &[]);
    assert!(done.body.contains("lang=\"fr\""), "{}", done.body);
    refusal(&mut gw, "psc", "cancelled").await;

    // Same in English, from the browser's language (no lang parameter).
    let mut b = s.browser();
    b.accept_language("en-GB,en;q=0.9");
    let started = b.start("psc", "/").await;
    let (_, callback) = b.authorize(&started.authorize).await.unwrap();
    let done = b.callback(&callback, Some(&started.binding)).await;
    assert_failure_page(&done, 403, &idp, &[]);
    assert!(done.body.contains("lang=\"en\""), "{}", done.body);
    refusal(&mut gw, "psc", "cancelled").await;
}
