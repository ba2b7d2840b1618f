//! One OpenID provider as the gateway knows it: its discovery document and signing keys
//! (cached, refreshed hourly, and the keys again at once when a token names a key the cache
//! lacks), the authorization URL of a sign-in, and the checks of what comes back: the code
//! exchange, the ID token (signature, issuer, audience, expiry with a tight tolerance, nonce,
//! assurance level) and the userinfo answer (a signed JWT for Pro Santé Connect).
//! The protocol is the `openidconnect` crate's; this file only feeds it and sorts its errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AdditionalClaims, AuthType, AuthenticationContextClass, AuthorizationCode,
    ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IdToken, IdTokenClaims, LanguageTag, LogoutRequest, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
    UserInfoClaims, UserInfoError,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::Failure;
use super::http::HttpClient;
use crate::config::{ClientAuth, OidcPreset, OidcProvider};
use crate::host::unix_now;
use crate::lang::Lang;

/// The discovery document and keys are fetched again after this long.
const REFRESH: u64 = 3600;
/// After a failed discovery, the next sign-in waits this long before trying again.
const RETRY: u64 = 10;
/// An unknown key fetches the key set again, at most this often.
const KEYS_EVERY: u64 = 10;

type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Every claim beyond the standard ones (PSC's `SubjectRefPro`, a provider's `groups`...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Extra {
    #[serde(flatten)]
    claims: serde_json::Map<String, Value>,
}

impl AdditionalClaims for Extra {}

type IdTokenExtra =
    IdToken<Extra, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// What discovery found, with the client built from it.
struct Discovered {
    metadata: ProviderMetadataWithLogout,
    client: OidcClient,
    /// Unix seconds.
    fetched: u64,
}

/// A sign-in about to leave for the provider.
pub(crate) struct Authorization {
    pub(crate) url: String,
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
}

/// A sign-in the provider vouched for: its verified claims, merged.
pub(crate) struct Verified {
    pub(crate) claims: Value,
    pub(crate) id_token: String,
}

/// One configured provider.
pub(crate) struct Provider {
    pub(crate) cfg: OidcProvider,
    /// Trusts the system's authorities, and `cfg.ca_file`'s when set.
    http: HttpClient,
    discovered: ArcSwapOption<Discovered>,
    /// One discovery or key fetch at a time.
    refresh: tokio::sync::Mutex<()>,
    /// Unix seconds of the last failed discovery.
    failed_at: AtomicU64,
    /// Unix seconds since when the provider looks down (an exchange with it failed to
    /// connect; 0: it answered last time). While it does, a new sign-in first checks that it
    /// answers again, so the doctor gets Vigie's page rather than the browser's error.
    down_since: AtomicU64,
    /// Unix seconds of the last key-set fetch caused by an unknown key (not discovery's own:
    /// keys rotated just after discovery must still be fetched).
    keys_at: AtomicU64,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.cfg.name)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// The provider of `cfg`; fails only on an unreadable `ca_file`.
    pub(crate) fn new(cfg: OidcProvider) -> Result<Provider, String> {
        Ok(Provider {
            http: HttpClient::new(cfg.ca_file.as_deref())?,
            cfg,
            discovered: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(()),
            failed_at: AtomicU64::new(0),
            down_since: AtomicU64::new(0),
            keys_at: AtomicU64::new(0),
        })
    }

    /// The discovery document, from the cache while it is fresh. A provider that cannot be
    /// reached keeps its last document; one never reached is unavailable.
    async fn discovered(&self, http: &HttpClient) -> Result<Arc<Discovered>, Failure> {
        let now = unix_now();
        let current = self.discovered.load_full();
        if let Some(d) = &current
            && now.saturating_sub(d.fetched) < REFRESH
        {
            return Ok(d.clone());
        }
        if current.is_none() && now.saturating_sub(self.failed_at.load(Ordering::Relaxed)) < RETRY {
            return Err(Failure::unavailable(
                "the provider was unreachable moments ago",
            ));
        }
        let _one = self.refresh.lock().await;
        let current = self.discovered.load_full();
        if let Some(d) = &current
            && unix_now().saturating_sub(d.fetched) < REFRESH
        {
            return Ok(d.clone());
        }
        match self.discover(http).await {
            Ok(d) => {
                let d = Arc::new(d);
                self.discovered.store(Some(d.clone()));
                self.down_since.store(0, Ordering::Relaxed);
                Ok(d)
            }
            Err(e) => {
                self.failed_at.store(unix_now(), Ordering::Relaxed);
                self.mark_down();
                match current {
                    Some(old) => {
                        warn!(provider = %self.cfg.name, error = %e, "cannot refresh the provider's discovery document; keeping the previous one for another minute");
                        // Sign-ins go on with what worked; the next attempt is a minute away
                        // rather than at every sign-in.
                        let kept = Arc::new(Discovered {
                            metadata: old.metadata.clone(),
                            client: old.client.clone(),
                            fetched: unix_now().saturating_sub(REFRESH - 60),
                        });
                        self.discovered.store(Some(kept.clone()));
                        Ok(kept)
                    }
                    None => Err(Failure::unavailable(e)),
                }
            }
        }
    }

    fn mark_down(&self) {
        let _ = self.down_since.compare_exchange(
            0,
            unix_now().max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Before a new sign-in at a provider that looked down: fetch its discovery document again
    /// (at most once per [`RETRY`] seconds); until it answers, the sign-in ends on Vigie's page.
    async fn back_up(&self, http: &HttpClient) -> Result<(), Failure> {
        if self.down_since.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let _one = self.refresh.lock().await;
        if self.down_since.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        if unix_now().saturating_sub(self.failed_at.load(Ordering::Relaxed)) < RETRY {
            return Err(Failure::unavailable(
                "the provider was unreachable moments ago",
            ));
        }
        match self.discover(http).await {
            Ok(d) => {
                self.discovered.store(Some(Arc::new(d)));
                self.down_since.store(0, Ordering::Relaxed);
                info!(provider = %self.cfg.name, "the OpenID provider answers again");
                Ok(())
            }
            Err(e) => {
                self.failed_at.store(unix_now(), Ordering::Relaxed);
                Err(Failure::unavailable(e))
            }
        }
    }

    /// Reaches the provider now (start-up and `vigie check`): `Err` says why not.
    pub(crate) async fn probe(&self) -> Result<(), String> {
        self.discovered(&self.http)
            .await
            .map(|_| ())
            .map_err(|f| f.log)
    }

    async fn discover(&self, http: &HttpClient) -> Result<Discovered, String> {
        let url = &self.cfg.discovery_url;
        let res = http
            .get(url, "application/json")
            .await
            .map_err(|e| format!("discovery document {url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!(
                "discovery document {url}: answered {}",
                res.status()
            ));
        }
        let metadata: ProviderMetadataWithLogout = serde_json::from_slice(res.body())
            .map_err(|e| format!("discovery document {url}: {e}"))?;
        let issuer = metadata.issuer().as_str().trim_end_matches('/').to_owned();
        if issuer != self.cfg.issuer {
            return Err(format!(
                "the discovery document {url} is for the issuer {issuer}, not the configured {}",
                self.cfg.issuer
            ));
        }
        let endpoints = [
            Some(metadata.authorization_endpoint().as_str()),
            metadata.token_endpoint().map(|u| u.as_str()),
            Some(metadata.jwks_uri().as_str()),
            metadata.userinfo_endpoint().map(|u| u.as_str()),
            metadata
                .additional_metadata()
                .end_session_endpoint
                .as_ref()
                .map(|u| u.as_str()),
        ];
        for e in endpoints.into_iter().flatten() {
            crate::config::acceptable_provider_url(e)
                .map_err(|why| format!("the discovery document names {why}"))?;
        }
        if metadata.token_endpoint().is_none() {
            return Err(format!(
                "the discovery document {url} names no token endpoint"
            ));
        }
        let keys = self.fetch_keys(http, metadata.jwks_uri().as_str()).await?;
        let metadata = metadata.set_jwks(keys);
        let client = self.client(metadata.clone())?;
        info!(provider = %self.cfg.name, issuer, "OpenID provider discovered");
        Ok(Discovered {
            metadata,
            client,
            fetched: unix_now(),
        })
    }

    async fn fetch_keys(&self, http: &HttpClient, url: &str) -> Result<CoreJsonWebKeySet, String> {
        let res = http
            .get(url, "application/json")
            .await
            .map_err(|e| format!("signing keys {url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("signing keys {url}: answered {}", res.status()));
        }
        serde_json::from_slice(res.body()).map_err(|e| format!("signing keys {url}: {e}"))
    }

    fn client(&self, metadata: ProviderMetadataWithLogout) -> Result<OidcClient, String> {
        let redirect = RedirectUrl::new(self.cfg.redirect_uri.clone())
            .map_err(|e| format!("redirect URI {}: {e}", self.cfg.redirect_uri))?;
        let secret = self
            .cfg
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose_secret().to_owned()));
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.cfg.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect);
        Ok(match self.cfg.client_auth {
            ClientAuth::Basic => client.set_auth_type(AuthType::BasicAuth),
            // With no secret, the crate sends `client_id` in the body; the assertion is added
            // to each token request.
            ClientAuth::Post | ClientAuth::PrivateKeyJwt => {
                client.set_auth_type(AuthType::RequestBody)
            }
        })
    }

    /// Fetches the key set again (the provider rotated its keys), unless it was fetched in
    /// the last few seconds. Returns the discovery with the newest keys.
    async fn refresh_keys(&self, http: &HttpClient) -> Result<Arc<Discovered>, Failure> {
        let _one = self.refresh.lock().await;
        let current = self
            .discovered
            .load_full()
            .ok_or_else(|| Failure::unavailable("the provider was never reached"))?;
        let now = unix_now();
        if now.saturating_sub(self.keys_at.load(Ordering::Relaxed)) < KEYS_EVERY {
            return Ok(current);
        }
        self.keys_at.store(now, Ordering::Relaxed);
        let keys = self
            .fetch_keys(http, current.metadata.jwks_uri().as_str())
            .await
            .map_err(Failure::unavailable)?;
        let metadata = current.metadata.clone().set_jwks(keys);
        let client = self
            .client(metadata.clone())
            .map_err(Failure::unavailable)?;
        info!(provider = %self.cfg.name, "the provider's signing keys were fetched again");
        let fresh = Arc::new(Discovered {
            metadata,
            client,
            fetched: current.fetched,
        });
        self.discovered.store(Some(fresh.clone()));
        Ok(fresh)
    }

    /// A new sign-in: the URL to send the browser to, with a fresh `state`, `nonce` and PKCE
    /// verifier (S256), the scopes and the assurance level asked for.
    pub(crate) async fn authorize(&self, lang: Lang) -> Result<Authorization, Failure> {
        self.back_up(&self.http).await?;
        let d = self.discovered(&self.http).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = d.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in self.cfg.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        for a in &self.cfg.acr_values {
            req = req.add_auth_context_value(AuthenticationContextClass::new(a.clone()));
        }
        let (url, state, nonce) = req
            .set_pkce_challenge(challenge)
            .add_ui_locale(LanguageTag::new(lang.code().to_owned()))
            .url();
        Ok(Authorization {
            url: url.into(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }

    /// The code the browser brought back, exchanged and checked: the ID token, then the
    /// userinfo answer when configured. The claims of both, merged (userinfo's win).
    pub(crate) async fn finish(
        &self,
        code: &str,
        verifier: String,
        nonce: &str,
    ) -> Result<Verified, Failure> {
        let result = self.exchange(&self.http, code, verifier, nonce).await;
        if let Err(f) = &result
            && f.kind == super::FailureKind::Unavailable
        {
            self.mark_down();
        }
        result
    }

    async fn exchange(
        &self,
        http: &HttpClient,
        code: &str,
        verifier: String,
        nonce: &str,
    ) -> Result<Verified, Failure> {
        let d = self.discovered(http).await?;
        let mut exchange = d
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| Failure::provider("provider_error", None, e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier));
        if self.cfg.client_auth == ClientAuth::PrivateKeyJwt {
            let endpoint = d
                .metadata
                .token_endpoint()
                .map(|u| u.as_str().to_owned())
                .unwrap_or_default();
            let assertion = self.client_assertion(&endpoint)?;
            exchange = exchange
                .add_extra_param(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .add_extra_param("client_assertion", assertion);
        }
        let token = exchange.request_async(http).await.map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => Failure::provider(
                "code_rejected",
                None,
                format!("the token endpoint refused the code: {}", r.error()),
            ),
            RequestTokenError::Request(e) => Failure::unavailable(format!("token endpoint: {e}")),
            // The answer's body is not logged: it may hold tokens.
            RequestTokenError::Parse(e, _) => Failure::provider(
                "provider_error",
                None,
                format!("token endpoint: unreadable answer: {e}"),
            ),
            other => Failure::provider("provider_error", None, format!("token endpoint: {other}")),
        })?;
        let raw = token
            .id_token()
            .ok_or_else(|| {
                Failure::provider(
                    "id_token_invalid",
                    Some("other"),
                    "no ID token in the answer",
                )
            })?
            .to_string();
        let id: IdTokenExtra = raw.parse().map_err(|e: serde_json::Error| {
            Failure::provider("id_token_invalid", Some("other"), e.to_string())
        })?;
        let nonce = Nonce::new(nonce.to_owned());
        let (d, claims) = match self.verify(&d.client, &id, &nonce) {
            Ok(c) => (d, c),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let fresh = self.refresh_keys(http).await?;
                let claims = self
                    .verify(&fresh.client, &id, &nonce)
                    .map_err(id_token_failure)?;
                (fresh, claims)
            }
            Err(e) => return Err(id_token_failure(e)),
        };
        let mut merged = serde_json::to_value(claims)
            .map_err(|e| Failure::provider("id_token_invalid", Some("other"), e.to_string()))?;
        if self.cfg.userinfo {
            let info = self
                .userinfo(http, &d, token.access_token().clone(), claims)
                .await?;
            if let (Value::Object(m), Value::Object(i)) = (&mut merged, info) {
                m.extend(i);
            }
        }
        Ok(Verified {
            claims: merged,
            id_token: raw,
        })
    }

    /// The signed JWT that authenticates the gateway at the token endpoint (RFC 7523 §2.2):
    /// issued by and about the client, for the token endpoint, valid one minute, used once.
    fn client_assertion(&self, token_endpoint: &str) -> Result<String, Failure> {
        let fail = |why: &str| {
            Failure::provider("provider_error", None, format!("client assertion: {why}"))
        };
        let key = self
            .cfg
            .client_key
            .as_ref()
            .ok_or_else(|| fail("no private key"))?;
        let (alg, signing) = crate::config::parse_client_key(key.pem.expose_secret())
            .ok_or_else(|| fail("the private key does not sign"))?;
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = key.kid.clone();
        let now = unix_now();
        let jti = crate::auth::csrf::new_nonce().ok_or_else(|| fail("no randomness"))?;
        let claims = serde_json::json!({
            "iss": self.cfg.client_id,
            "sub": self.cfg.client_id,
            "aud": token_endpoint,
            "jti": jti,
            "iat": now,
            "exp": now + 60,
        });
        jsonwebtoken::encode(&header, &claims, &signing).map_err(|e| fail(&e.to_string()))
    }

    fn verify<'t>(
        &self,
        client: &OidcClient,
        id: &'t IdTokenExtra,
        nonce: &Nonce,
    ) -> Result<&'t IdTokenClaims<Extra, CoreGenderClaim>, ClaimsVerificationError> {
        let skew = chrono::Duration::from_std(self.cfg.clock_skew).unwrap_or_default();
        let acr = self.cfg.acr_values.clone();
        let verifier = client
            .id_token_verifier()
            // The token is valid until `exp` plus the tolerance.
            .set_time_fn(move || chrono::Utc::now() - skew)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > chrono::Utc::now() + skew {
                    Err(format!("issued in the future ({iat})"))
                } else {
                    Ok(())
                }
            })
            .set_auth_context_verifier_fn(move |got| {
                let got = got.map(|a| a.as_str());
                if super::claims::acr_satisfies(got, &acr) {
                    Ok(())
                } else {
                    Err(format!("acr {got:?}, required one of {acr:?}"))
                }
            });
        id.claims(&verifier, nonce)
    }

    async fn userinfo(
        &self,
        http: &HttpClient,
        d: &Discovered,
        access: openidconnect::AccessToken,
        id: &IdTokenClaims<Extra, CoreGenderClaim>,
    ) -> Result<Value, Failure> {
        let bad = |detail: String| Failure::provider("userinfo_invalid", None, detail);
        let req = d
            .client
            .user_info(access, Some(id.subject().clone()))
            .map_err(|e| bad(format!("userinfo: {e}")))?
            .require_signed_response(self.cfg.preset == OidcPreset::ProSanteConnect);
        let info: UserInfoClaims<Extra, CoreGenderClaim> =
            req.request_async(http).await.map_err(|e| match e {
                UserInfoError::Request(e) => Failure::unavailable(format!("userinfo: {e}")),
                UserInfoError::ClaimsVerification(e) => bad(format!("userinfo: {e}")),
                UserInfoError::Parse(e) => bad(format!("userinfo: unreadable answer: {e}")),
                other => bad(format!("userinfo: {other}")),
            })?;
        serde_json::to_value(&info).map_err(|e| bad(e.to_string()))
    }

    /// Where to send the browser to end its session at the provider too (RP-initiated logout),
    /// when the provider has an end-session endpoint.
    pub(crate) fn logout_url(&self, id_token: Option<&str>, state: &str) -> Option<String> {
        let d = self.discovered.load_full()?;
        let end = d
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut req = LogoutRequest::from(end)
            .set_client_id(ClientId::new(self.cfg.client_id.clone()))
            .set_state(CsrfToken::new(state.to_owned()));
        if let Ok(post) = PostLogoutRedirectUrl::new(self.cfg.post_logout_uri.clone()) {
            req = req.set_post_logout_redirect_uri(post);
        }
        if let Some(t) = id_token.and_then(|t| t.parse::<IdTokenExtra>().ok()) {
            req = req.set_id_token_hint(&t);
        }
        Some(req.http_get_url().into())
    }

    /// The origin of the provider's end-session endpoint, for the sign-out form's
    /// Content-Security-Policy (`form-action`).
    pub(crate) fn logout_origin(&self) -> Option<String> {
        let d = self.discovered.load_full()?;
        let end = d
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()?;
        Some(end.url().origin().ascii_serialization())
    }
}

/// Sorts an ID-token refusal for the log: which check failed.
fn id_token_failure(e: ClaimsVerificationError) -> Failure {
    let detail = match &e {
        ClaimsVerificationError::InvalidAuthContext(_) => {
            return Failure::refused("acr_insufficient", e.to_string());
        }
        ClaimsVerificationError::SignatureVerification(_) => "signature",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidNonce(_) => "nonce",
        _ => "other",
    };
    Failure::provider("id_token_invalid", Some(detail), e.to_string())
}
