//! Signing in and out: the throttling state, the credentials (password and TOTP), then a new
//! session or a recorded failure with its growing delay. Every store call runs off the async
//! workers ([`blocking`]).

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;
use secrecy::ExposeSecret;
use tracing::{info, warn};

use super::session::{self, Claims};
use super::{Account, Auth};
use crate::audit::{Event, Method};
use crate::config::AuthSettings;
use crate::credentials::{password, totp};
use crate::host::unix_now;
use crate::store::{ExternalSession, LastActivity, SessionRecord, StoreError};

/// Outcome of a sign-in attempt. The page shows the same message for every failure.
#[derive(Debug)]
pub enum SignIn {
    Success { cookie: HeaderValue, user: Arc<str> },
    Failed,
}

impl Auth {
    /// Checks a sign-in attempt: throttling first, then password (always hashed, also for
    /// unknown users) and TOTP. Takes tens of milliseconds; failures add a growing delay.
    /// In phases: the throttling state, the credentials, then a new session or a recorded
    /// failure.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        code: &str,
        client: IpAddr,
    ) -> Result<SignIn, SignInError> {
        let settings = self.settings.load_full();
        let now = unix_now();
        let keys = ThrottleKeys {
            user: format!("user:{}", username.to_ascii_lowercase()),
            ip: format!("ip:{client}"),
        };
        let (user_fail, ip_fail) = {
            let (s, u, i) = (self.store.clone(), keys.user.clone(), keys.ip.clone());
            blocking(move || Ok((s.failures(&u)?, s.failures(&i)?))).await?
        };
        let locked = user_fail.locked_until > now || ip_fail.locked_until > now;
        let checked = self
            .check_credentials(username, password, code, &settings, now)
            .await;
        let success = !locked && checked.password_ok && checked.step.is_some();
        let success = match (
            success,
            &checked.account,
            settings.second_factor,
            checked.step,
        ) {
            (true, Some(a), true, Some(step)) => {
                // The code is consumed only now, so a wrong password cannot burn codes.
                let (s, u) = (self.store.clone(), a.username.to_string());
                blocking(move || s.consume_totp_step(&u, step)).await?
            }
            (ok, ..) => ok,
        };
        match (success, checked.account) {
            (true, Some(account)) => {
                let (cookie, session) = self.open_session(&account, keys, &settings, now).await?;
                info!(user = %account.username, %client, "signed in");
                self.audit(Event::SignedIn {
                    user: account.username.to_string(),
                    session,
                    client,
                    provider: None,
                    method: if settings.second_factor {
                        Method::PasswordTotp
                    } else {
                        Method::Password
                    },
                });
                Ok(SignIn::Success {
                    cookie,
                    user: account.username.clone(),
                })
            }
            (_, account) => {
                let reason = if locked {
                    "locked"
                } else if !checked.password_ok || checked.step.is_none() {
                    "bad_credentials"
                } else {
                    "replayed_code"
                };
                let account = account.map(|a| a.username.to_string());
                self.record_failure(keys, &settings, now, client, reason, account)
                    .await?;
                Ok(SignIn::Failed)
            }
        }
    }

    /// Sign-in phase: the password (hashed even for an unknown or disabled account, so that
    /// timing tells nothing) and the TOTP step the code matches. No store write.
    async fn check_credentials(
        &self,
        username: &str,
        password: &str,
        code: &str,
        settings: &AuthSettings,
        now: u64,
    ) -> Credentials {
        let account = self.accounts.load().get(username).cloned();
        let hash = match &account {
            Some(a) if !a.disabled => a.password_hash.clone(),
            _ => password::DUMMY_HASH.clone(),
        };
        let password_ok = {
            let _permit = self.verifications.acquire().await;
            let pw = password.to_owned();
            tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
                .await
                .unwrap_or(false)
        };
        let account = account.filter(|a| !a.disabled);
        let step = match (&account, settings.second_factor) {
            (Some(a), true) => a
                .totp_secret
                .as_ref()
                .and_then(|s| totp::matching_step(s.expose_secret(), code, now)),
            (Some(_), false) => Some(0),
            (None, _) => None,
        };
        Credentials {
            account,
            password_ok,
            step,
        }
    }

    /// Sign-in phase, on success: the session on disk, the failure counters cleared, the signed
    /// cookie.
    async fn open_session(
        &self,
        account: &Account,
        keys: ThrottleKeys,
        settings: &AuthSettings,
        now: u64,
    ) -> Result<(HeaderValue, String), SignInError> {
        self.new_session(
            &account.username,
            None,
            vec![keys.user, keys.ip],
            settings,
            now,
        )
        .await
    }

    /// A new session for `user` (with what stands in for an account when it comes from an
    /// OpenID provider), on disk, then its signed cookie; clears the `clear` failure counters.
    async fn new_session(
        &self,
        user: &str,
        external: Option<ExternalSession>,
        clear: Vec<String>,
        settings: &AuthSettings,
        now: u64,
    ) -> Result<(HeaderValue, String), SignInError> {
        let sid = new_session_id()?;
        let rec = SessionRecord {
            user: user.to_string(),
            created: now,
            expires: now + settings.absolute_timeout.as_secs(),
            activity: LastActivity::new(now),
            external,
        };
        let (s, id, r) = (self.store.clone(), sid.clone(), rec.clone());
        blocking(move || {
            s.create_session(&id, r)?;
            for key in &clear {
                s.clear_failures(key)?;
            }
            Ok(())
        })
        .await?;
        let claims = Claims {
            iss: "vigie".into(),
            aud: self.audience.clone(),
            sub: rec.user.clone(),
            sid: sid.clone(),
            iat: now,
            nbf: now,
            exp: rec.expires,
            act: now,
        };
        let cookie = self
            .tokens
            .load()
            .sign(&claims)
            .and_then(|t| session::set_cookie(&t))
            .ok_or(SignInError::Token)?;
        Ok((cookie, sid))
    }

    /// Opens the session of a user an OpenID provider vouched for (`oidc::routes` did every
    /// check), records it, and returns its cookie.
    pub(crate) async fn sign_in_external(
        &self,
        user: &str,
        external: ExternalSession,
        client: IpAddr,
    ) -> Result<HeaderValue, SignInError> {
        let settings = self.settings.load_full();
        let provider = external.provider.clone();
        let (cookie, session) = self
            .new_session(
                user,
                Some(external),
                vec![format!("ip:{client}")],
                &settings,
                unix_now(),
            )
            .await?;
        info!(user, %client, provider, "signed in");
        self.audit(Event::SignedIn {
            user: user.to_string(),
            session,
            client,
            provider: Some(provider),
            method: Method::Oidc,
        });
        Ok(cookie)
    }

    /// Whether sign-ins from `client` are locked out (too many failures).
    pub(crate) async fn client_locked(&self, client: IpAddr) -> Result<bool, SignInError> {
        let (s, key) = (self.store.clone(), format!("ip:{client}"));
        let f = blocking(move || s.failures(&key)).await?;
        Ok(f.locked_until > unix_now())
    }

    /// Counts a failed OpenID sign-in against the client address (the provider, not Vigie,
    /// throttles the account itself), and records it.
    pub(crate) async fn record_external_failure(
        &self,
        client: IpAddr,
        reason: &'static str,
        account: Option<String>,
    ) -> Result<(), SignInError> {
        let settings = self.settings.load_full();
        let keys = vec![format!("ip:{client}")];
        self.count_failure(keys, &settings, unix_now(), client, reason, account)
            .await
            .map(|_| ())
    }

    /// Sign-in phase, on failure: counted per account and per client address (a lockout after
    /// `auth.max_failures`), logged, then a growing delay.
    async fn record_failure(
        &self,
        keys: ThrottleKeys,
        settings: &AuthSettings,
        now: u64,
        client: IpAddr,
        reason: &'static str,
        account: Option<String>,
    ) -> Result<(), SignInError> {
        let keys = vec![keys.user, keys.ip];
        let failures = self
            .count_failure(keys, settings, now, client, reason, account)
            .await?;
        warn!(%client, reason, failures, "sign-in refused");
        // Growing delay: 1, 2, 4, 8, then 16 times auth.failure_delay (0.25 s by default).
        let n = failures.clamp(1, 5);
        tokio::time::sleep(settings.failure_delay * (1 << (n - 1))).await;
        Ok(())
    }

    /// A refused sign-in counted under each of `keys` (a lockout after `auth.max_failures`) and
    /// recorded, with the lockout when it starts (logged). Returns the highest count; the
    /// caller logs the refusal itself.
    async fn count_failure(
        &self,
        keys: Vec<String>,
        settings: &AuthSettings,
        now: u64,
        client: IpAddr,
        reason: &'static str,
        account: Option<String>,
    ) -> Result<u32, SignInError> {
        let (max, lock) = (settings.max_failures, settings.lockout.as_secs());
        let s = self.store.clone();
        let counts = blocking(move || {
            keys.iter()
                .map(|k| s.record_failure(k, now, max, lock))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        let failures = counts.iter().map(|f| f.count).max().unwrap_or(0);
        self.audit(Event::SignInRefused {
            account: account.clone(),
            client,
            reason,
            failures,
        });
        if counts.iter().any(|f| f.locked_until > now) {
            warn!(%client, "sign-in locked out for {} s", lock);
            self.audit(Event::LockedOut {
                account,
                client,
                seconds: lock,
            });
        }
        Ok(failures)
    }

    /// Ends a session at once (and on disk).
    pub(crate) async fn sign_out(
        &self,
        user: &str,
        session_id: &str,
        client: IpAddr,
    ) -> Result<(), SignInError> {
        let (s, sid) = (self.store.clone(), session_id.to_owned());
        blocking(move || s.revoke_session(&sid)).await?;
        self.forget_external(std::iter::once(session_id));
        self.audit(Event::SignedOut {
            user: user.to_string(),
            session: session_id.to_string(),
            client,
        });
        Ok(())
    }
}

/// The store keys a sign-in attempt is throttled under: the account and the client address.
struct ThrottleKeys {
    user: String,
    ip: String,
}

/// What the credentials of a sign-in attempt are worth (see `Auth::check_credentials`).
struct Credentials {
    /// The account, when it exists and is not disabled.
    account: Option<Arc<Account>>,
    password_ok: bool,
    /// The TOTP step the code matches (0 without a second factor).
    step: Option<u64>,
}

/// Why a sign-in or sign-out could not be carried out (not a refusal: a fault of the gateway).
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a blocking store task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot sign the session token")]
    Token,
    #[error("no randomness for a session id: {0}")]
    Randomness(getrandom::Error),
}

/// Runs store calls (blocking disk I/O) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SignInError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// 128 bits from the system's CSPRNG, base64url.
fn new_session_id() -> Result<String, SignInError> {
    use base64::Engine as _;
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(SignInError::Randomness)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}
