//! What the provider's tokens must be: the assurance level asked for, this issuer, this
//! audience, not expired, signed by a published key (rotation picked up without restart), and
//! a userinfo answer that verifies. Tokens come out of the real token endpoint; a wrong one is
//! the provider's own token with one claim changed and re-signed (`POST /admin/tamper`).

use serde_json::json;

use super::*;

/// Signs in once through the PSC provider with the next ID token changed by `tamper` (when
/// given), and expects a refusal with `status`, `reason` and `detail` (when given).
async fn refused_token(
    idp_opts: impl FnOnce(IdpOptions) -> IdpOptions,
    tamper: Option<Value>,
    status: u16,
    reason: &str,
    detail: Option<&str>,
) {
    let s = Setup::new().await;
    let idp = s.psc(idp_opts).await;
    let mut gw = s
        .config(vec![idp.gateway_entry("psc")])
        .start_process()
        .await;
    let tampered = tamper.is_some();
    if let Some(t) = tamper {
        idp.tamper(t).await;
    }
    let mut b = s.browser();
    let (started, callback) = up_to_callback(&mut b, "psc").await;
    let line = refused_at_callback(
        &mut gw,
        &idp,
        "psc",
        &b,
        &started,
        &callback,
        (status, reason),
    )
    .await;
    if let Some(d) = detail {
        assert_eq!(line["detail"], d, "{line}");
    }
    // The tampered token did reach the gateway (the provider logs every tamper it applies).
    if tampered {
        assert!(idp.log().contains("tampered "), "{}", idp.log());
    }
    // Nothing of the token in the log line.
    assert!(
        !line.to_string().contains("eyJ"),
        "a token is logged: {line}"
    );
}

#[tokio::test]
async fn an_id_token_without_acr_is_refused() {
    refused_token(|o| o.acr("none"), None, 403, "acr_insufficient", None).await;
}

#[tokio::test]
async fn an_id_token_with_a_lower_acr_is_refused() {
    refused_token(|o| o.acr("eidas0"), None, 403, "acr_insufficient", None).await;
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    // Issued ten minutes ago, expired five minutes ago: far beyond the 5 s leeway.
    let t = json!({ "shift": { "iat": -600, "exp": -420, "auth_time": -600 } });
    refused_token(|o| o, Some(t), 502, "id_token_invalid", Some("expired")).await;
}

#[tokio::test]
async fn an_id_token_that_expired_on_the_way_is_refused() {
    // Untouched, from the provider's own lifetime: 1 s, with the token answer held back 3 s,
    // beyond the configured leeway of 1 s.
    let s = Setup::new().await;
    let idp = s.psc(|o| o.id_token_ttl(1)).await;
    let mut entry = idp.gateway_entry("psc");
    entry["clock_skew"] = json!("1s");
    let mut gw = s.config(vec![entry]).start_process().await;
    idp.tamper(json!({ "delay_ms": 3000 })).await;
    let mut b = s.browser();
    let (started, callback) = up_to_callback(&mut b, "psc").await;
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
    assert_eq!(line["detail"], "expired", "{line}");
}

#[tokio::test]
async fn an_id_token_from_another_issuer_is_refused() {
    let t = json!({ "iss": "http://127.0.0.1:1/auth/realms/esante-wallet" });
    refused_token(|o| o, Some(t), 502, "id_token_invalid", Some("issuer")).await;
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    let t = json!({ "aud": "another-service" });
    refused_token(|o| o, Some(t), 502, "id_token_invalid", Some("audience")).await;
}

#[tokio::test]
async fn an_id_token_with_a_bad_signature_is_refused() {
    let t = json!({ "key": "foreign" });
    refused_token(|o| o, Some(t), 502, "id_token_invalid", Some("signature")).await;
}

#[tokio::test]
async fn a_userinfo_answer_with_a_bad_signature_is_refused() {
    let t = json!({ "target": "userinfo", "key": "foreign" });
    refused_token(|o| o, Some(t), 502, "userinfo_invalid", None).await;
}

#[tokio::test]
async fn a_userinfo_answer_about_someone_else_is_refused() {
    // OpenID Connect Core 5.3.2: the userinfo `sub` must be the ID token's.
    let t = json!({
        "target": "userinfo",
        "sub": "f:7e3c1a52-9f0b-4d6e-8a21-5b4c3d2e1f00:810000000003",
        "SubjectNameID": "810000000003",
    });
    refused_token(|o| o, Some(t), 502, "userinfo_invalid", None).await;
}

#[tokio::test]
async fn key_rotation_is_picked_up_without_restart() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o).await;
    let mut gw = s
        .config(vec![idp.gateway_entry("psc")])
        .start_process()
        .await;
    let first_kid = idp.published_kids().await[0].clone();
    let mut b = s.browser();
    let before = b.sign_in("psc").await.session();
    // At once: keys rotated moments after the gateway read them are still fetched (an unknown
    // kid refetches at most once per 10 s, and discovery's own fetch does not count).

    // A new key signs; the gateway meets an unknown kid and fetches the JWKS again.
    let new_kid = idp.rotate_keys().await;
    assert_ne!(new_kid, first_kid);
    b.forget_provider_sessions();
    let signed = b.sign_in("psc").await;
    assert_eq!(signed.done.status, 303, "{:?}\n{}", signed.done, idp.log());
    let after = signed.session();
    let certs_fetches = idp
        .log()
        .matches("/protocol/openid-connect/certs 200")
        .count();
    assert!(certs_fetches >= 2, "JWKS fetched {certs_fetches} times");

    // The old key is withdrawn: signing in still works (with the new one).
    let kids = idp.retire_keys().await;
    assert_eq!(kids["published"], json!([new_kid]));
    b.forget_provider_sessions();
    let again = b.sign_in("psc").await.session();

    for cookie in [&before, &after, &again] {
        assert_eq!(
            s.upstream_view(cookie).await.unwrap().0,
            "810000000001",
            "a session ended with a key change"
        );
    }
    // No refusal was logged on the way.
    gw.signal("TERM");
    while let Some(line) = gw.lines.recv().await {
        assert!(!line.contains("OpenID sign-in refused"), "{line}");
    }
}
