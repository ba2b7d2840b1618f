//! The way in: Pro Santé Connect, a generic provider, both at once; what the gateway asks of the
//! provider and what the upstream then sees.

use super::*;

#[tokio::test]
async fn psc_sign_in_reaches_the_upstream_as_the_rpps_user() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o).await;
    let gw = s.config(vec![idp.gateway_entry("psc")]).start().await;
    let mut b = s.browser();

    // The sign-in page offers the provider beside the local form.
    let page = b.gw_get("/_vigie/login", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"oidc-psc\""), "{}", page.body);
    let link = page.body.split("href=\"/_vigie/oidc/psc/start?").nth(1);
    let query = link.and_then(|l| l.split('"').next()).unwrap_or_default();
    assert!(query.contains("next=%2F"), "{}", page.body);
    assert!(page.body.contains("Pro Santé Connect"), "{}", page.body);
    assert!(page.body.contains("name=\"password\""), "{}", page.body);

    let signed = b.sign_in_to("psc", "/echo?from=psc").await;

    // The binding cookie: for this browser only, sent back on the provider's redirect.
    let binding = signed
        .started
        .answer
        .set_cookie_line(BINDING_COOKIE)
        .unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(binding.contains(attr), "{binding}");
    }
    // The authorization request: read from PSC's wallet discovery document (only that one
    // advertises /auth), with PKCE, state, nonce and the assurance level.
    let a = &signed.started.authorize;
    assert!(
        a.as_str().starts_with(&idp.url("/auth?")),
        "not the wallet document's endpoint: {a}"
    );
    let p = |k| query_param(a, k).unwrap_or_else(|| panic!("no {k} in {a}"));
    assert_eq!(p("response_type"), "code");
    assert_eq!(p("client_id"), idp.opts.client_id);
    assert_eq!(p("redirect_uri"), idp.opts.redirect_uris[0]);
    let scope = p("scope");
    let scopes: Vec<&str> = scope.split(' ').collect();
    assert!(
        scopes.contains(&"openid") && scopes.contains(&"scope_all"),
        "{scope}"
    );
    assert_eq!(p("acr_values"), "eidas1");
    assert_eq!(p("code_challenge_method"), "S256");
    assert!(p("code_challenge").len() >= 43);
    assert!(p("state").len() >= 16 && p("nonce").len() >= 16);
    assert_ne!(p("state"), p("nonce"));
    // The provider answered on the registered redirect URI, with its issuer (RFC 9207).
    assert!(
        signed
            .callback
            .as_str()
            .starts_with(&idp.opts.redirect_uris[0]),
        "{}",
        signed.callback
    );
    assert_eq!(query_param(&signed.callback, "iss").unwrap(), idp.issuer);
    // Redirects only, from the authorization URL on (no page for a person to act on).
    assert_eq!(signed.hops[0].url, a.as_str());
    assert!(
        signed.hops.iter().all(|h| (300..400).contains(&h.status)),
        "{:#?}",
        signed.hops
    );

    // Success: to `next`, the session cookie set, the binding cookie cleared.
    assert_eq!(signed.done.status, 303, "{:?}", signed.done);
    assert_eq!(signed.done.location.as_deref(), Some("/echo?from=psc"));
    let session = signed.done.set_cookie_line("__Host-vigie").unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(signed.done.clears(BINDING_COOKIE), "{:?}", signed.done);

    let (user, roles) = s.upstream_view(&signed.session()).await.unwrap();
    assert_eq!(user, "810000000001");
    assert_eq!(roles, "doctor");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_generic_provider_signs_in_with_roles_from_groups() {
    let s = Setup::new().await;
    let idp = s.generic(|o| o).await;
    let gw = s.config(vec![idp.gateway_entry("clinic")]).start().await;
    let mut b = s.browser();
    let page = b.gw_get("/_vigie/login", None).await;
    assert!(page.body.contains("id=\"oidc-clinic\""), "{}", page.body);
    assert!(page.body.contains("Clinic sign-in"), "{}", page.body);

    let signed = b.sign_in("clinic").await;
    // The standard discovery path and the generic defaults: no assurance level asked for.
    let a = &signed.started.authorize;
    assert!(
        a.as_str()
            .starts_with(&format!("{}/protocol/openid-connect/auth?", idp.issuer)),
        "{a}"
    );
    assert_eq!(query_param(a, "scope").unwrap(), "openid profile email");
    assert_eq!(query_param(a, "acr_values"), None);
    assert_eq!(query_param(a, "code_challenge_method").unwrap(), "S256");
    assert_eq!(signed.done.status, 303, "{:?}", signed.done);
    assert_eq!(signed.done.location.as_deref(), Some("/"));

    let (user, roles) = s.upstream_view(&signed.session()).await.unwrap();
    assert_eq!(user, "dr.house");
    assert_eq!(roles, "doctor");
    gw.shutdown().await;
}

#[tokio::test]
async fn two_providers_and_local_accounts_side_by_side() {
    let s = Setup::new().await;
    let psc = s.psc(|o| o).await;
    let clinic = s.generic(|o| o).await;
    let gw = s
        .config(vec![
            psc.gateway_entry("psc"),
            clinic.gateway_entry("clinic"),
        ])
        .start()
        .await;
    let mut b = s.browser();
    let page = b.gw_get("/_vigie/login", None).await;
    for id in ["id=\"oidc-psc\"", "id=\"oidc-clinic\"", "name=\"password\""] {
        assert!(page.body.contains(id), "{id}: {}", page.body);
    }

    let one = b.sign_in("psc").await.session();
    let mut other = s.browser();
    let two = other.sign_in("clinic").await.session();
    assert_eq!(
        s.upstream_view(&one).await.unwrap(),
        ("810000000001".into(), "doctor".into())
    );
    assert_eq!(
        s.upstream_view(&two).await.unwrap(),
        ("dr.house".into(), "doctor".into())
    );
    // The local account still signs in through the form.
    assert_eq!(
        s.upstream_view(&gw.cookie).await.unwrap(),
        (TEST_USER.into(), "doctor,admin".into())
    );
    // A flow started for one provider cannot be finished at the other's callback.
    let started = b.start("psc", "/").await;
    let (_, callback) = b.authorize(&started.authorize).await.unwrap();
    let elsewhere = url::Url::parse(
        &callback
            .as_str()
            .replace("/_vigie/oidc/psc/", "/_vigie/oidc/clinic/"),
    )
    .unwrap();
    let answer = b.callback(&elsewhere, Some(&started.binding)).await;
    assert_failure_page(&answer, 400, &psc, &[]);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_sign_in_page_without_local_accounts_shows_only_the_providers() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o).await;
    let gw = s
        .config(vec![idp.gateway_entry("psc")])
        .users(&[])
        .start()
        .await;
    let b = s.browser();
    let page = b.gw_get("/_vigie/login?next=/studies", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"oidc-psc\""), "{}", page.body);
    let link = page.body.split("href=\"/_vigie/oidc/psc/start?").nth(1);
    let query = link.and_then(|l| l.split('"').next()).unwrap_or_default();
    assert!(query.contains("next=%2Fstudies"), "{}", page.body);
    assert!(!page.body.contains("name=\"password\""), "{}", page.body);
    gw.shutdown().await;
}

#[tokio::test]
async fn private_key_jwt_signs_in_without_a_shared_secret() {
    let s = Setup::new().await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = (dir.path().join("client.key"), dir.path().join("client.pub"));
    std::fs::write(&private, key.serialize_pem()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let public_path = public.display().to_string();
    let idp = s
        .psc(|o| {
            o.env("TOKEN_AUTH_METHOD", "private_key_jwt")
                .env("CLIENT_PUBLIC_KEY_FILE", &public_path)
                .env("CLIENT_KEY_ID", "vigie-1")
        })
        .await;
    let mut entry = idp.gateway_entry("psc");
    let e = entry.as_object_mut().unwrap();
    e.remove("client_secret");
    e.insert("client_auth".into(), serde_json::json!("private_key_jwt"));
    e.insert(
        "private_key_file".into(),
        serde_json::json!(private.display().to_string()),
    );
    e.insert("private_key_id".into(), serde_json::json!("vigie-1"));
    let gw = s.config(vec![entry]).start().await;

    let signed = s.browser().sign_in("psc").await;
    assert_eq!(signed.done.status, 303, "{:?}\n{}", signed.done, idp.log());
    let (user, _) = s.upstream_view(&signed.session()).await.unwrap();
    assert_eq!(user, "810000000001");

    // The premise: the provider knows no secret for this client, only its public key, so only
    // the signed assertion got the code exchanged.
    let status = idp.status().await;
    assert_eq!(
        status["clients"][0]["token_endpoint_auth_method"], "private_key_jwt",
        "{status}"
    );
    gw.shutdown().await;
}
