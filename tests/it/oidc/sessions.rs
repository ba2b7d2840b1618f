//! Who may have a session and how it ends: the allow-list, the role rules, a name that clashes
//! with a local account, `disabled_users` on reload, the provider down (and back), and the
//! sign-out round trip through the provider's end-session endpoint.

use serde_json::json;

use super::*;

/// Signs in through `name` and expects a refusal at the callback (status, page, log reason).
async fn refused_user(
    s: &Setup,
    gw: &mut GwProcess,
    idp: &Idp,
    name: &str,
    reason: &str,
    user: &str,
) {
    let mut b = s.browser();
    let (started, callback) = up_to_callback(&mut b, name).await;
    let done = b.callback(&callback, Some(&started.binding)).await;
    assert_failure_page(&done, 403, idp, &[user]);
    refusal(gw, name, reason).await;
}

#[tokio::test]
async fn a_user_outside_the_allow_list_is_refused() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o.default_user("810000000003")).await;
    let mut entry = idp.gateway_entry("psc");
    // Nurses (60) would have a role; only 810000000001 is allowed.
    entry["roles"] = json!([{
        "claim": "SubjectRefPro.exercices[].codeProfession",
        "values": ["10", "60"],
        "roles": ["doctor"],
    }]);
    entry["allow"] = json!([{ "claim": "SubjectNameID", "values": ["810000000001"] }]);
    let mut gw = s.config(vec![entry]).start_process().await;
    refused_user(&s, &mut gw, &idp, "psc", "not_allowed", "810000000003").await;
    // The allowed one gets in.
    idp.config(json!({ "default_user": "810000000001" })).await;
    idp.clear_sessions().await;
    let ok = s.browser().sign_in("psc").await.session();
    assert_eq!(s.upstream_view(&ok).await.unwrap().0, "810000000001");
}

#[tokio::test]
async fn a_user_without_a_role_is_refused() {
    let s = Setup::new().await;
    // A pharmacist (profession 21): no rule gives them a role.
    let idp = s.psc(|o| o.default_user("810000000002")).await;
    let mut gw = s
        .config(vec![idp.gateway_entry("psc")])
        .start_process()
        .await;
    refused_user(&s, &mut gw, &idp, "psc", "no_role", "810000000002").await;
}

#[tokio::test]
async fn a_generic_user_without_a_mapped_group_is_refused() {
    let s = Setup::new().await;
    let idp = s.generic(|o| o.default_user("nurse.joy")).await;
    let mut gw = s
        .config(vec![idp.gateway_entry("clinic")])
        .start_process()
        .await;
    refused_user(&s, &mut gw, &idp, "clinic", "no_role", "nurse.joy").await;
}

#[tokio::test]
async fn a_provider_user_named_like_a_local_account_is_refused() {
    let s = Setup::new().await;
    // The generic provider's dr.test against the local account dr.test (TEST_USER).
    let idp = s.generic(|o| o.default_user(TEST_USER)).await;
    let mut gw = s
        .config(vec![idp.gateway_entry("clinic")])
        .start_process()
        .await;
    refused_user(&s, &mut gw, &idp, "clinic", "local_name_clash", TEST_USER).await;
    // The local account is untouched.
    assert_eq!(s.upstream_view(&gw.cookie).await.unwrap().0, TEST_USER);
}

#[tokio::test]
async fn disabled_users_lose_their_sessions_on_reload() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o).await;
    let config = s.config(vec![idp.gateway_entry("psc")]);
    let mut gw = config.start_process().await;
    let session = s.browser().sign_in("psc").await.session();
    assert_eq!(s.upstream_view(&session).await.unwrap().0, "810000000001");

    let mut entry = idp.gateway_entry("psc");
    entry["disabled_users"] = json!(["810000000001"]);
    let disabled = s.config(vec![entry]).build_yaml();
    std::fs::write(gw.config.path(), disabled).unwrap();
    gw.signal("HUP");
    gw.wait_log("accounts reloaded", Duration::from_secs(5))
        .await;
    assert_eq!(s.upstream_view(&session).await, Err(401));
    // Nor can they sign in again; the local account keeps its session.
    refused_user(&s, &mut gw, &idp, "psc", "disabled", "810000000001").await;
    assert_eq!(s.upstream_view(&gw.cookie).await.unwrap().0, TEST_USER);
}

#[tokio::test]
async fn a_provider_going_down_fails_closed_and_local_accounts_still_work() {
    let s = Setup::new().await;
    let mut idp = s.psc(|o| o).await;
    // A second local account: TEST_USER's code of this 30 s step is spent by the harness.
    let mut gw = s
        .config(vec![idp.gateway_entry("psc")])
        .user("dr.local", &["doctor"])
        .start_process()
        .await;
    let mut b = s.browser();
    let before = b.sign_in("psc").await.session();

    // Down between the redirect and the callback: the token endpoint is unreachable.
    let (started, callback) = up_to_callback(&mut b, "psc").await;
    idp.stop().await;
    let done = b.callback(&callback, Some(&started.binding)).await;
    let code = query_param(&callback, "code").unwrap();
    assert_failure_page(&done, 503, &idp, &[&code]);
    refusal(&mut gw, "psc", "provider_unavailable").await;

    // What the provider's absence must not stop: existing sessions, local sign-in.
    assert_eq!(s.upstream_view(&before).await.unwrap().0, "810000000001");
    let local = sign_in(&s.certs, addr(s.port), "dr.local", TEST_PASSWORD, TEST_TOTP)
        .await
        .expect("a local account cannot sign in while the provider is down");
    assert_eq!(s.upstream_view(&local).await.unwrap().0, "dr.local");

    // Back up: the same button works again, without a restart of the gateway.
    idp.restart().await;
    let mut b = s.browser();
    let again = b.sign_in("psc").await;
    assert_eq!(again.done.status, 303, "{:?}", again.done);
}

#[tokio::test]
async fn a_provider_down_at_start_does_not_stop_the_gateway() {
    let s = Setup::new().await;
    let mut idp = s.psc(|o| o).await;
    idp.stop().await;
    let mut gw = s
        .config(vec![idp.gateway_entry("psc")])
        .start_process()
        .await;
    // Started (GwProcess waited for it) and the local account signed in (gw.cookie).
    assert_eq!(s.upstream_view(&gw.cookie).await.unwrap().0, TEST_USER);
    let b = s.browser();
    let page = b.gw_get("/_vigie/login", None).await;
    assert!(page.body.contains("id=\"oidc-psc\""), "{}", page.body);
    let answer = b
        .start_answer("psc", &[("next", "/"), ("lang", "en")])
        .await;
    assert_failure_page(&answer, 503, &idp, &[]);
    assert!(answer.body.contains("lang=\"en\""), "{}", answer.body);
    refusal(&mut gw, "psc", "provider_unavailable").await;

    // Back up: the button works again without a restart of the gateway, once its pause
    // between attempts at an unreachable provider (10 s) has passed; 503 until then.
    idp.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = b.start_answer("psc", &[("next", "/")]).await;
        if answer.status == 303 {
            break;
        }
        assert_failure_page(&answer, 503, &idp, &[]);
        refusal(&mut gw, "psc", "provider_unavailable").await;
        assert!(
            std::time::Instant::now() < deadline,
            "the provider is back, the button not"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut b = s.browser();
    let signed = b.sign_in("psc").await;
    assert_eq!(
        s.upstream_view(&signed.session()).await.unwrap().0,
        "810000000001"
    );
}

#[tokio::test]
async fn sign_out_goes_through_the_provider_and_back() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o).await;
    let gw = s.config(vec![idp.gateway_entry("psc")]).start().await;
    let mut b = s.browser();
    let session = b.sign_in("psc").await.session();
    assert!(s.upstream_view(&session).await.is_ok());

    let out = b.sign_out(&session).await;
    // To the provider's end-session endpoint, with what RP-initiated logout needs.
    let end = &out.end_session;
    assert!(
        end.as_str()
            .starts_with(&format!("{}/protocol/openid-connect/logout?", idp.issuer)),
        "{end}"
    );
    let hint = query_param(end, "id_token_hint").expect("no id_token_hint");
    let claims = jwt_claims(&hint);
    assert_eq!(claims["iss"], idp.issuer.as_str());
    assert_eq!(claims["aud"], idp.opts.client_id.as_str());
    assert_eq!(
        query_param(end, "post_logout_redirect_uri").unwrap(),
        idp.opts.post_logout_redirect_uris[0]
    );
    assert_eq!(query_param(end, "client_id").unwrap(), idp.opts.client_id);
    let state = query_param(end, "state").expect("no state");
    // The local session ended before the browser left.
    assert_eq!(s.upstream_view(&session).await, Err(401));

    assert_eq!(out.answer.url, s.url("/_vigie/logout"));
    // The provider ended its session (after its confirmation page, which submits itself) and
    // sent the browser back to the registered URI.
    assert!(out.hops.iter().any(|h| h.status == 200), "{:#?}", out.hops);
    assert!(idp.log().contains("end_session.success"), "{}", idp.log());
    assert!(
        out.back
            .as_str()
            .starts_with(&idp.opts.post_logout_redirect_uris[0]),
        "{}",
        out.back
    );
    assert_eq!(query_param(&out.back, "state").unwrap(), state);
    assert_eq!(out.done.status, 303, "{:?}", out.done);
    assert_eq!(
        out.done.location.as_deref(),
        Some("/_vigie/login?signed_out=1")
    );
    assert_eq!(s.upstream_view(&session).await, Err(401));

    // A local account's sign-out stays local.
    let c = s.session(&gw.cookie);
    let page = c.get(s.url("/_vigie/logout")).send().await.unwrap();
    let csrf = hidden_field(&page.text().await.unwrap(), "csrf").unwrap();
    let res = c
        .post(s.url("/_vigie/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/_vigie/login?signed_out=1");
    gw.shutdown().await;
}
