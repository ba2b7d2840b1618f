//! A provider behind its own certificate authority (a practice's Keycloak on the LAN): trusted
//! through `ca_file`, refused without it. The test provider serves HTTPS with the test
//! authority's certificate.

use serde_json::json;

use super::*;

#[tokio::test]
async fn a_provider_behind_a_private_authority_needs_its_ca_file() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o.https(&s.certs)).await;
    assert!(
        idp.issuer.starts_with("https://127.0.0.1:"),
        "{}",
        idp.issuer
    );

    let mut trusted = idp.gateway_entry("psc");
    trusted["ca_file"] = json!(s.certs.ca.display().to_string());
    let untrusted = idp.gateway_entry("bare");
    let gw = s.config(vec![trusted, untrusted]).start().await;

    // With the authority: the whole sign-in, over HTTPS to the provider.
    let signed = s.browser().sign_in("psc").await;
    assert!(
        signed
            .started
            .authorize
            .as_str()
            .starts_with(&idp.url("/auth?")),
        "{}",
        signed.started.authorize
    );
    assert_eq!(signed.done.status, 303, "{:?}\n{}", signed.done, idp.log());
    assert_eq!(
        s.upstream_view(&signed.session()).await.unwrap().0,
        "810000000001"
    );

    // Without it: the provider's certificate is not trusted, and the doctor gets the page
    // for a provider that cannot be reached.
    let refused = s.browser().start_answer("bare", &[("next", "/")]).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(!refused.body.contains(&idp.url("")), "{}", refused.body);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_ca_file_is_a_configuration_error() {
    let s = Setup::new().await;
    let idp = s.psc(|o| o).await;
    let mut entry = idp.gateway_entry("psc");
    entry["ca_file"] = json!("/nonexistent/ca.pem");
    let yaml = s.config(vec![entry]).build_yaml();
    let problems = vigie::config::Config::from_yaml(&yaml)
        .unwrap_err()
        .problems();
    assert!(
        problems
            .iter()
            .any(|p| p.path == "auth.oidc[0](psc).ca_file" && p.message.contains("cannot read")),
        "{problems:?}"
    );
}
