//! Sign-in through OpenID Connect providers (issue 11): the real gateway, the real test provider
//! (`tests/idp`, npm `oidc-provider`, as Pro Santé Connect or as a practice's own provider) and
//! the real test upstream. One file per concern; the set-up and the checks they share are here.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

mod failures;
mod provider;
mod sessions;
mod signin;
mod tls;
mod tokens;

/// What a test runs against: certificates, the upstream, the gateway's HTTPS port (chosen before
/// the provider starts, so the redirect URI it registers is known), the providers.
struct Setup {
    certs: Certs,
    up: Upstream,
    port: u16,
}

impl Setup {
    async fn new() -> Setup {
        Setup {
            certs: Certs::new(),
            up: Upstream::start(None).await,
            port: free_port(),
        }
    }

    /// A PSC provider registered for the gateway under `psc`, changed by `f`.
    async fn psc(&self, f: impl FnOnce(IdpOptions) -> IdpOptions) -> Idp {
        Idp::start(f(IdpOptions::psc(self.port, "psc"))).await
    }

    /// A generic provider registered for the gateway under `clinic`, changed by `f`.
    async fn generic(&self, f: impl FnOnce(IdpOptions) -> IdpOptions) -> Idp {
        Idp::start(f(IdpOptions::generic(self.port, "clinic"))).await
    }

    /// The default test configuration (the local account `TEST_USER` included) on the chosen
    /// port, with these `auth.oidc` entries.
    fn config(&self, providers: Vec<Value>) -> ConfigBuilder {
        ConfigBuilder::new(&self.certs, &self.up.url())
            .set("listen.https", format!("127.0.0.1:{}", self.port))
            .set("auth.oidc", Value::Array(providers))
    }

    fn browser(&self) -> OidcBrowser {
        OidcBrowser::new(&self.certs, addr(self.port))
    }

    /// A client of the gateway with this session cookie.
    fn session(&self, cookie: &str) -> reqwest::Client {
        session_client(&self.certs, addr(self.port), true, cookie)
    }

    fn url(&self, path: &str) -> String {
        format!("https://viewer.test:{}{path}", self.port)
    }

    /// The user name and roles the upstream sees for a session, or the status when refused.
    async fn upstream_view(&self, cookie: &str) -> Result<(String, String), u16> {
        let res = self
            .session(cookie)
            .get(self.url("/echo"))
            .send()
            .await
            .unwrap();
        if res.status() != 200 {
            return Err(res.status().as_u16());
        }
        let seen = echoed_headers(&res.json().await.unwrap());
        assert!(
            header(&seen, "cookie")
                .iter()
                .all(|c| !c.contains("__Host-vigie")),
            "the session cookie reached the upstream: {seen:?}"
        );
        Ok((
            header(&seen, "x-vigie-user").join(","),
            header(&seen, "x-vigie-roles").join(","),
        ))
    }
}

fn addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// What a failure page must never show: the provider's address, issuer and client, tokens and
/// their claims, the provider's error codes.
fn leaks(idp: &Idp) -> Vec<String> {
    let mut out: Vec<String> = [
        "id_token",
        "nonce",
        "eidas",
        "SubjectNameID",
        "SubjectRefPro",
        "codeProfession",
        "preferred_username",
        "groups",
        "invalid_grant",
        "access_denied",
        "esante-wallet",
        "realms/clinic",
    ]
    .map(str::to_owned)
    .to_vec();
    out.push(idp.addr.to_string());
    out.push(format!(":{}", idp.addr.port()));
    out.push(idp.issuer.clone());
    out.push(idp.opts.client_id.clone());
    out.push(idp.opts.client_secret.clone());
    out
}

/// A failure: the status, a generic HTML page with a way back to the sign-in page, and none
/// of `leaks` nor `more` (the code, the state, the user's identifier...) on it.
#[track_caller]
fn assert_failure_page(answer: &Answer, status: u16, idp: &Idp, more: &[&str]) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert!(answer.content_type.starts_with("text/html"), "{answer:?}");
    assert!(
        answer.body.contains("/_vigie/login"),
        "no way back to the sign-in page: {}",
        answer.body
    );
    assert!(answer.session().is_none(), "a failure opened a session");
    for needle in leaks(idp)
        .iter()
        .map(String::as_str)
        .chain(more.iter().copied())
    {
        if needle.is_empty() {
            continue;
        }
        assert!(
            !answer.body.contains(needle),
            "the failure page shows {needle:?}: {}",
            answer.body
        );
        assert!(
            answer
                .location
                .as_deref()
                .is_none_or(|l| !l.contains(needle)),
            "the failure's Location shows {needle:?}"
        );
    }
}

/// The next `OpenID sign-in refused` log line: its provider and reason are checked, the line
/// returned (with `detail`, `client`).
async fn refusal(gw: &mut GwProcess, provider: &str, reason: &str) -> Value {
    let line = gw
        .wait_log("OpenID sign-in refused", Duration::from_secs(5))
        .await;
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "WARN", "{line}");
    assert_eq!(v["provider"], provider, "{line}");
    assert_eq!(v["reason"], reason, "{line}");
    assert!(v.get("client").is_some(), "no client field: {line}");
    v
}

/// A sign-in that stops at the callback, for tests that change it.
async fn up_to_callback(b: &mut OidcBrowser, name: &str) -> (Started, url::Url) {
    let started = b.start(name, "/").await;
    let (_, callback) = b
        .authorize(&started.authorize)
        .await
        .unwrap_or_else(|hops| panic!("the provider did not send us back: {hops:#?}"));
    (started, callback)
}

/// The sign-in refused at the callback (status, page, log line with `reason`); returns the
/// log line.
async fn refused_at_callback(
    gw: &mut GwProcess,
    idp: &Idp,
    name: &str,
    b: &OidcBrowser,
    started: &Started,
    callback: &url::Url,
    (status, reason): (u16, &str),
) -> Value {
    let done = b.callback(callback, Some(&started.binding)).await;
    let code = query_param(callback, "code").unwrap_or_default();
    let state = query_param(callback, "state").unwrap_or_default();
    assert_failure_page(&done, status, idp, &[&code, &state, &started.binding]);
    refusal(gw, name, reason).await
}
