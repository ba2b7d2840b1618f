//! Sign-in through OpenID Connect providers (Pro Santé Connect, a practice's own Keycloak,
//! Entra ID...): the authorization code flow with PKCE, `state` and `nonce`, through the
//! `openidconnect` crate. A sign-in is two requests to the gateway: `start` sends the browser to
//! the provider and remembers the flow (in memory, single use, ten minutes, bound to the
//! browser by a cookie); `callback` takes the flow back, has the provider's answer checked
//! (`provider.rs`) and turns the claims into a user name and roles (`claims.rs`). What happens
//! after (the session, its cookie, the audit trail) is the same as for a local account.

pub(crate) mod claims;
pub(crate) mod http;
mod pending;
pub(crate) mod provider;
pub(crate) mod routes;

use std::sync::Arc;

use ::http::StatusCode;
use tracing::warn;

use crate::config::OidcProvider;
use crate::lang::Lang;
pub(crate) use pending::{Flow, Pending};
use provider::Provider;

/// How a failed sign-in ends for the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The flow cannot be trusted (unknown, expired or foreign `state`): start again.
    BadRequest,
    /// The user cancelled at the provider.
    Cancelled,
    /// The provider vouched for someone Vigie does not let in.
    Refused,
    /// The provider's answer failed a check.
    Provider,
    /// The provider cannot be reached.
    Unavailable,
}

/// A failed OpenID sign-in: what the log says (`reason`, `detail`, `log`), and the kind of page
/// the browser gets (which says none of it).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) reason: &'static str,
    pub(crate) detail: Option<&'static str>,
    pub(crate) log: String,
}

impl Failure {
    pub(crate) fn bad_request(reason: &'static str, log: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::BadRequest,
            reason,
            detail: None,
            log: log.into(),
        }
    }

    pub(crate) fn refused(reason: &'static str, log: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Refused,
            reason,
            detail: None,
            log: log.into(),
        }
    }

    pub(crate) fn provider(
        reason: &'static str,
        detail: Option<&'static str>,
        log: impl Into<String>,
    ) -> Failure {
        Failure {
            kind: FailureKind::Provider,
            reason,
            detail,
            log: log.into(),
        }
    }

    pub(crate) fn unavailable(log: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Unavailable,
            reason: "provider_unavailable",
            detail: None,
            log: log.into(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self.kind {
            FailureKind::BadRequest => StatusCode::BAD_REQUEST,
            FailureKind::Cancelled | FailureKind::Refused => StatusCode::FORBIDDEN,
            FailureKind::Provider => StatusCode::BAD_GATEWAY,
            FailureKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The configured providers and the sign-ins in flight.
pub(crate) struct Oidc {
    providers: Vec<Arc<Provider>>,
    pub(crate) pending: Pending,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("providers", &self.providers.len())
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// The providers of the configuration (none is contacted yet).
    pub(crate) fn new(providers: &[OidcProvider]) -> Result<Oidc, String> {
        Ok(Oidc {
            providers: providers
                .iter()
                .map(|p| Provider::new(p.clone()).map(Arc::new))
                .collect::<Result<_, _>>()?,
            pending: Pending::default(),
        })
    }

    pub(crate) fn provider(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.cfg.name == name)
    }

    /// `(name, label)` of each provider, for the sign-in page's buttons.
    pub(crate) fn buttons(&self) -> Vec<(String, String)> {
        self.providers
            .iter()
            .map(|p| (p.cfg.name.clone(), p.cfg.label.clone()))
            .collect()
    }

    /// Reaches every provider once, in the background, so that a provider that is down or
    /// misconfigured is in the log at start rather than at the first doctor's click.
    pub(crate) fn warm_up(self: &Arc<Self>) {
        for p in &self.providers {
            let p = p.clone();
            tokio::spawn(async move {
                if let Err(e) = p.probe().await {
                    warn!(provider = %p.cfg.name, error = %e, "OpenID provider unreachable: its sign-in button shows an error page until it is back; local accounts still work");
                }
            });
        }
    }

    /// Starts a sign-in at provider `name`: the URL to send the browser to.
    pub(crate) async fn start(
        &self,
        name: &str,
        next: String,
        lang: Lang,
        binding: &str,
        client: std::net::IpAddr,
    ) -> Result<String, Failure> {
        let p = self
            .provider(name)
            .ok_or_else(|| Failure::bad_request("state_unknown", "no such provider"))?;
        let a = p.authorize(lang).await?;
        let flow = Flow {
            provider: name.to_owned(),
            nonce: a.nonce,
            verifier: a.verifier,
            next,
            lang,
            binding: binding.to_owned(),
            created: crate::host::unix_now(),
            client,
        };
        if !self.pending.insert(a.state, flow) {
            return Err(Failure::unavailable(
                "too many sign-ins in flight; refusing more until some finish or expire",
            ));
        }
        Ok(a.url)
    }
}

/// A digest of what decides who a provider's user is and may do (issuer, client, assurance
/// level, user-name claim, roles and allow-list rules): a session opened under other rules ends
/// when the configuration changes them.
pub(crate) fn rules_digest(p: &OidcProvider) -> String {
    let text = format!(
        "{}\n{}\n{:?}\n{:?}\n{:?}\n{:?}",
        p.issuer, p.client_id, p.acr_values, p.username_claims, p.roles, p.allow
    );
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    d.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
