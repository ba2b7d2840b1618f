//! Certificates from an ACME CA (RFC 8555; Let's Encrypt by default), through `instant-acme`:
//! the account (created once, its key kept in `account.json`, 0600), one order per issuance
//! for `server_name` and `server_aliases` with the `tls-alpn-01` or `http-01` challenge, a new
//! ECDSA P-256 key per certificate, and the CA's renewal information (ARI, RFC 9773) when it
//! offers it. When to renew, the retries and the files are `super::renew`'s.
//!
//! The client's HTTPS goes through hyper with Vigie's own rustls configuration: the system's
//! authorities, plus `tls.acme.ca_file` for a private CA.

mod challenge;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::CertificateDer;
use tracing::{error, info};

pub(crate) use challenge::{ACME_TLS_ALPN, Challenges};

use crate::config::{AcmeChallenge, AcmeSettings};
use crate::files::{self, Mode};

/// How long the CA may take to check the challenges, then to sign.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);

/// Why obtaining a certificate failed (an ACME step, or the practice CA), for the log, the
/// status file and the retry delay.
#[derive(Debug, Clone)]
pub(crate) struct IssueFailure {
    pub message: String,
    /// The CA could not be reached at all (a network or DNS failure, the CA down): retried
    /// sooner than a refusal, which counts against the CA's limits.
    pub unreachable: bool,
    /// The CA answered that the account does not exist.
    pub account_unknown: bool,
}

impl IssueFailure {
    fn from(step: &str, e: instant_acme::Error) -> IssueFailure {
        // Connection failures come back as `Other` from [`AcmeHttp`].
        let unreachable = matches!(e, instant_acme::Error::Other(_));
        let account_unknown = matches!(&e, instant_acme::Error::Api(p)
            if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"));
        IssueFailure {
            message: format!("{step}: {e}"),
            unreachable,
            account_unknown,
        }
    }

    /// A failure that is not the CA being unreachable.
    pub(crate) fn refused(message: String) -> IssueFailure {
        IssueFailure {
            message,
            unreachable: false,
            account_unknown: false,
        }
    }
}

/// The ACME side of a gateway; see the module documentation.
pub(crate) struct AcmeClient {
    settings: AcmeSettings,
    challenges: Arc<Challenges>,
    /// The account, once loaded or created.
    account: tokio::sync::Mutex<Option<Account>>,
    /// Whether the CA answered a renewal-information request: only then does an order say
    /// which certificate it replaces.
    ari_supported: AtomicBool,
}

impl std::fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeClient")
            .field("directory", &self.settings.directory)
            .finish_non_exhaustive()
    }
}

/// Where an account's credentials are kept.
pub(crate) fn account_file(settings: &AcmeSettings) -> PathBuf {
    settings.dir.join("account.json")
}

impl AcmeClient {
    pub(crate) fn new(settings: AcmeSettings, challenges: Arc<Challenges>) -> AcmeClient {
        AcmeClient {
            settings,
            challenges,
            account: tokio::sync::Mutex::new(None),
            ari_supported: AtomicBool::new(false),
        }
    }

    fn http(&self) -> Result<Box<dyn instant_acme::HttpClient>, IssueFailure> {
        let tls = super::client_config(self.settings.ca_file.as_deref())
            .map_err(|e| IssueFailure::refused(format!("tls.acme.ca_file: {e}")))?;
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(https);
        Ok(Box::new(AcmeHttp(client)))
    }

    /// The account: the one in `account.json`, else a new one (saved before anything else is
    /// done with it). A file that cannot be read as credentials is moved aside, never deleted.
    pub(crate) async fn account(&self) -> Result<Account, IssueFailure> {
        let mut slot = self.account.lock().await;
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let path = account_file(&self.settings);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<AccountCredentials>(&bytes) {
                Ok(c) => Some(c),
                Err(e) => {
                    let aside = set_aside(&path);
                    error!(
                        file = %path.display(),
                        moved_to = %aside.display(),
                        error = %e,
                        "the ACME account file is damaged: moved aside, a new account is created"
                    );
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(IssueFailure::refused(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let account = match stored {
            Some(credentials) => Account::builder_with_http(self.http()?)
                .from_credentials(credentials)
                .await
                .map_err(|e| IssueFailure::from("reaching the ACME directory", e))?,
            None => {
                let contact = format!("mailto:{}", self.settings.email);
                let (account, credentials) = Account::builder_with_http(self.http()?)
                    .create(
                        &NewAccount {
                            contact: &[&contact],
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.settings.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| IssueFailure::from("creating the ACME account", e))?;
                let json = serde_json::to_vec_pretty(&credentials)
                    .map_err(|e| IssueFailure::refused(e.to_string()))?;
                files::create_private_dir(&self.settings.dir)
                    .and_then(|()| files::replace(&path, &json, Mode::Private))
                    .map_err(|e| {
                        IssueFailure::refused(format!("cannot write {}: {e}", path.display()))
                    })?;
                info!(account = account.id(), directory = %self.settings.directory, "ACME account created");
                account
            }
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    /// One order for the configured names: the challenges answered, a new key, the chain.
    /// Returns the chain and the key, PEM.
    pub(crate) async fn obtain(
        &self,
        replaces: Option<&CertificateDer<'_>>,
    ) -> Result<(String, String), IssueFailure> {
        let ids: Vec<Identifier> = self
            .settings
            .names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let replaced = replaces.and_then(|c| CertificateIdentifier::try_from(c).ok());
        let mut new = NewOrder::new(&ids);
        if let Some(id) = &replaced
            && self.ari_supported.load(Ordering::Relaxed)
        {
            new = new.replaces(id.clone());
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let account = self.account().await?;
            let result = self.order(&account, &new).await;
            self.challenges.clear();
            match result {
                Err(f) if f.account_unknown && tries == 1 => {
                    // The CA no longer knows the account (deactivated, or a test CA that
                    // restarted): a new one is registered at once; the old key is kept aside.
                    let aside = set_aside(&account_file(&self.settings));
                    error!(
                        moved_to = %aside.display(),
                        "the ACME CA does not know this account any more: registering a new one"
                    );
                    *self.account.lock().await = None;
                }
                other => return other,
            }
        }
    }

    async fn order(
        &self,
        account: &Account,
        new: &NewOrder<'_>,
    ) -> Result<(String, String), IssueFailure> {
        let mut order = account
            .new_order(new)
            .await
            .map_err(|e| IssueFailure::from("creating the order", e))?;
        let kind = match self.settings.challenge {
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        let mut authorizations = order.authorizations();
        while let Some(next) = authorizations.next().await {
            let mut authz = next.map_err(|e| IssueFailure::from("reading an authorization", e))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(IssueFailure::refused(format!(
                        "the CA holds the authorization for {} as {other:?}",
                        authz.identifier()
                    )));
                }
            }
            let name = authz.identifier().to_string();
            let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                IssueFailure::refused(format!(
                    "the CA does not offer {} for {name}: choose the other tls.acme.challenge",
                    self.settings.challenge.as_str()
                ))
            })?;
            let key_authorization = challenge.key_authorization();
            let published = match self.settings.challenge {
                AcmeChallenge::TlsAlpn01 => self
                    .challenges
                    .add_alpn(&name, key_authorization.digest().as_ref()),
                AcmeChallenge::Http01 => self
                    .challenges
                    .add_http(&challenge.token, key_authorization.as_str()),
            };
            published.map_err(|e| {
                IssueFailure::refused(format!("cannot publish the challenge for {name}: {e}"))
            })?;
            challenge
                .set_ready()
                .await
                .map_err(|e| IssueFailure::from("answering the challenge", e))?;
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(500))
            .backoff(1.5)
            .timeout(ORDER_TIMEOUT);
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(|e| IssueFailure::from("waiting for the CA's check", e))?;
        if status != OrderStatus::Ready {
            return Err(IssueFailure::refused(format!(
                "the CA's check of {} failed (order {status:?}): it could not reach this gateway on {}",
                self.settings.names.join(", "),
                match self.settings.challenge {
                    AcmeChallenge::TlsAlpn01 => "port 443 (tls-alpn-01)",
                    AcmeChallenge::Http01 => "port 80 (http-01)",
                }
            )));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| IssueFailure::refused(e.to_string()))?;
        let mut params = CertificateParams::new(self.settings.names.clone())
            .map_err(|e| IssueFailure::refused(e.to_string()))?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| IssueFailure::refused(e.to_string()))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| IssueFailure::from("finalizing the order", e))?;
        let chain = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| IssueFailure::from("downloading the certificate", e))?;
        Ok((chain, key.serialize_pem()))
    }

    /// The CA's suggested renewal window for `cert` (ARI), in Unix seconds, and when to ask
    /// again; `None` when the CA does not offer renewal information or cannot say.
    pub(crate) async fn renewal_window(
        &self,
        cert: &CertificateDer<'_>,
    ) -> Option<((i64, i64), Duration)> {
        let account = self.account().await.ok()?;
        let id = CertificateIdentifier::try_from(cert).ok()?;
        match account.renewal_info(&id).await {
            Ok((info, again)) => {
                self.ari_supported.store(true, Ordering::Relaxed);
                let w = info.suggested_window;
                Some((
                    (w.start.unix_timestamp(), w.end.unix_timestamp()),
                    again.clamp(Duration::from_secs(60), Duration::from_secs(86_400)),
                ))
            }
            Err(_) => None,
        }
    }
}

/// The ACME client's HTTPS: hyper over Vigie's rustls configuration (instant-acme's own
/// client would bring a second certificate verifier and its root store).
struct AcmeHttp(
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        instant_acme::BodyWrapper<bytes::Bytes>,
    >,
);

/// What [`instant_acme::HttpClient::request`] returns.
type Sent = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<instant_acme::BytesResponse, instant_acme::Error>>
            + Send,
    >,
>;

impl instant_acme::HttpClient for AcmeHttp {
    fn request(&self, req: http::Request<instant_acme::BodyWrapper<bytes::Bytes>>) -> Sent {
        let sent = self.0.request(req);
        Box::pin(async move {
            sent.await
                .map(instant_acme::BytesResponse::from)
                .map_err(|e| instant_acme::Error::Other(Box::new(std::io::Error::other(chain(&e)))))
        })
    }
}

/// An error and its causes on one line (hyper-util's own says only "client error (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Renames a damaged file to `NAME.damaged-UNIXTIME` and returns the new path.
pub(crate) fn set_aside(path: &Path) -> PathBuf {
    let aside = path.with_extension(format!(
        "{}damaged-{}",
        path.extension()
            .map(|e| format!("{}.", e.to_string_lossy()))
            .unwrap_or_default(),
        crate::host::unix_now()
    ));
    let _ = std::fs::rename(path, &aside);
    aside
}
