//! Sign-in: accounts from the configuration, password + TOTP verification with brute-force
//! throttling, revocable sessions carried by a signed cookie, and the gateway's own pages.
//! The per-request check ([`Auth::authenticate`]) does no I/O and takes no lock; signing in
//! and out, which write to the store, are in `signin.rs`.
//!
//! A connection that outlives the request that opened it (a WebSocket tunnel) keeps the
//! [`SessionLease`] it was admitted with and asks [`Auth::session_standing`] again and again
//! whether the session would still admit a request: same store record, same account, same
//! keys, same timeouts. The session's activity, for the idle timeout, is the latest activity
//! time the gateway admitted or granted for it on any connection: the `act` of every admitted
//! cookie and of every refreshed cookie it signs. That is what decides whether the browser's
//! next request gets in; traffic inside a tunnel is not activity, since it cannot refresh the
//! cookie.

pub(crate) mod csrf;
pub(crate) mod keys;
mod next;
pub(crate) mod oidc;
pub(crate) mod pages;
pub mod routes;
pub(crate) mod session;
mod signin;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;
use secrecy::SecretSlice;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::audit::{Auditor, Event};
use crate::config::{AuthSettings, Config, User};
use crate::host::unix_now;
use crate::store::{SessionRecord, Store, StoreError};
use keys::KeyRing;
use session::{Claims, Tokens};
pub use signin::{SignIn, SignInError};

/// Who is making a request, as established by the session gate. Everything after the gate
/// reads only this.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: Arc<str>,
    pub roles: Arc<[String]>,
    pub session_id: Arc<str>,
    /// `X-Vigie-User` and `X-Vigie-Roles` for the upstream, built once per account.
    pub user_header: HeaderValue,
    pub roles_header: HeaderValue,
    /// The session as this connection verified it, for what outlives the request.
    pub session: Arc<SessionLease>,
}

/// The session a request was admitted with, as its connection verified it. What outlives the
/// request (a WebSocket tunnel) keeps it to recheck the session: see [`SessionWatch`].
pub struct SessionLease {
    claims: Claims,
    /// The cookie's token, verified again when the keys change.
    token: Box<str>,
    /// The key generation under which `token` was verified.
    generation: u64,
}

impl std::fmt::Debug for SessionLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLease")
            .field("user", &self.claims.sub)
            .field("expires", &self.claims.exp)
            .finish_non_exhaustive()
    }
}

/// A session being watched by a long-lived connection; see [`Auth::session_standing`].
#[derive(Debug)]
pub struct SessionWatch {
    lease: Arc<SessionLease>,
    /// The key generation under which the token was last found valid.
    generation: u64,
}

impl SessionWatch {
    pub fn new(lease: Arc<SessionLease>) -> SessionWatch {
        let generation = lease.generation;
        SessionWatch { lease, generation }
    }

    /// The account's name.
    pub fn user(&self) -> &str {
        &self.lease.claims.sub
    }

    /// Unix seconds: the session's absolute end.
    pub fn expires(&self) -> u64 {
        self.lease.claims.exp
    }
}

/// Why a session that admitted a connection no longer would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The absolute lifetime has passed.
    Expired,
    /// No activity for the idle timeout.
    Idle,
    /// Signed out or revoked: the store no longer holds it.
    Revoked,
    /// The account is gone or disabled.
    Account,
    /// The key that signed its token is gone (`rotate-keys --end-all-sessions`).
    Keys,
}

impl SessionEnd {
    /// For log lines.
    pub fn reason(self) -> &'static str {
        match self {
            SessionEnd::Expired => "session_expired",
            SessionEnd::Idle => "session_idle",
            SessionEnd::Revoked => "session_revoked",
            SessionEnd::Account => "account_disabled",
            SessionEnd::Keys => "keys_replaced",
        }
    }
}

/// An account as the request path needs it.
#[derive(Debug)]
pub struct Account {
    pub username: Arc<str>,
    pub roles: Arc<[String]>,
    user_header: HeaderValue,
    roles_header: HeaderValue,
    password_hash: String,
    totp_secret: Option<SecretSlice<u8>>,
    pub disabled: bool,
}

impl Account {
    /// An account with its upstream headers built once. User names and roles are validated to
    /// header-safe characters (the configuration's, and the names mapped from a provider's
    /// claims alike).
    fn new(username: &str, roles: Vec<String>) -> Account {
        Account {
            username: username.into(),
            user_header: HeaderValue::from_str(username)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
            roles_header: HeaderValue::from_str(&roles.join(","))
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            roles: roles.into(),
            password_hash: String::new(),
            totp_secret: None,
            disabled: false,
        }
    }

    /// The stand-in for a user who signed in through an OpenID provider: no password, no
    /// TOTP, the roles mapped at sign-in.
    fn external(username: &str, roles: &[String]) -> Account {
        Account::new(username, roles.to_vec())
    }
}

impl From<&User> for Account {
    fn from(u: &User) -> Account {
        Account {
            password_hash: u.password_hash.clone(),
            totp_secret: u.totp_secret.clone(),
            disabled: u.disabled,
            ..Account::new(&u.username, u.roles.clone())
        }
    }
}

/// Why a request has no identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    /// No cookie at all.
    Missing,
    /// A cookie that was once valid, but the idle timeout or the absolute lifetime passed.
    Expired,
    /// A forged, tampered, revoked or foreign token, or an account that is gone or disabled.
    Invalid,
}

/// Re-issue the cookie (new `act`) at most once a minute, and at least twice per idle period.
fn refresh_after(idle: u64) -> u64 {
    (idle / 2).clamp(1, 60)
}

/// The sign-in machinery shared by every connection.
pub struct Auth {
    settings: ArcSwap<AuthSettings>,
    accounts: ArcSwap<HashMap<Arc<str>, Arc<Account>>>,
    tokens: ArcSwap<Tokens>,
    /// Keys for form (CSRF) tokens: the session keys' newest entry.
    form_key: ArcSwap<SecretSlice<u8>>,
    store: Arc<Store>,
    audience: String,
    /// Bounds concurrent password verifications: each costs 19 MiB and tens of milliseconds.
    verifications: Semaphore,
    /// Bumped when the keys change, so per-connection caches of verified tokens start over.
    key_generation: AtomicU64,
    /// The audit trail's queue.
    auditor: Auditor,
    /// The OpenID Connect providers and the sign-ins in flight.
    oidc: Arc<oidc::Oidc>,
    /// The accounts of sessions opened through a provider, by session id: built once from the
    /// session's record, so the per-request check allocates nothing.
    external: ArcSwap<HashMap<Arc<str>, Arc<Account>>>,
}

/// The last token a connection presented, as verified, and the refreshed cookie already signed
/// for it. One per connection: the lock is only ever contended by one connection's HTTP/2
/// streams.
#[derive(Debug, Default)]
pub struct TokenCache(Mutex<Option<CachedToken>>);

#[derive(Debug)]
struct CachedToken {
    lease: Arc<SessionLease>,
    session_id: Arc<str>,
    /// The cookie with a fresh activity time, and when it was signed. It is sent once on the
    /// connection; a browser takes it at once, a client that ignores it gets the next one
    /// after another interval.
    refresh: Option<(HeaderValue, u64)>,
}

type Hit = (Arc<SessionLease>, Arc<str>, Option<(HeaderValue, u64)>);

impl TokenCache {
    fn lookup(&self, token: &str, generation: u64) -> Option<Hit> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let c = guard.as_ref()?;
        (c.lease.generation == generation && &*c.lease.token == token)
            .then(|| (c.lease.clone(), c.session_id.clone(), c.refresh.clone()))
    }

    fn store(&self, lease: Arc<SessionLease>, session_id: Arc<str>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(CachedToken {
            lease,
            session_id,
            refresh: None,
        });
    }

    fn store_refresh(&self, refresh: (HeaderValue, u64)) {
        if let Some(c) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            c.refresh = Some(refresh);
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("accounts", &self.accounts.load().len())
            .finish_non_exhaustive()
    }
}

/// Why the sign-in machinery could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error("OpenID Connect: {0}")]
    Oidc(String),
}

impl Auth {
    /// Opens the state store and the signing keys under `state_dir`, and drops the sessions of
    /// users who are no longer allowed in.
    pub(crate) fn open(config: &Config, auditor: Auditor) -> Result<Auth, AuthError> {
        let now = unix_now();
        let store = Arc::new(Store::open(&config.state_dir, now)?);
        let ring = KeyRing::load_or_create(&config.state_dir, now)?;
        let audience = format!("vigie:{}", config.server_name);
        let auth = Auth {
            settings: ArcSwap::from_pointee(config.auth.clone()),
            accounts: ArcSwap::from_pointee(HashMap::new()),
            tokens: ArcSwap::from_pointee(Tokens::new(&ring, &audience)),
            form_key: ArcSwap::from_pointee(ring.keys[0].bytes()),
            store,
            audience,
            verifications: Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            ),
            key_generation: AtomicU64::new(0),
            auditor,
            oidc: Arc::new(oidc::Oidc::new(&config.auth.oidc).map_err(AuthError::Oidc)?),
            external: ArcSwap::from_pointee(HashMap::new()),
        };
        auth.set_users(&config.auth)?;
        if !config.auth.second_factor {
            warn!(
                setting = "auth.second_factor",
                "the second factor is OFF: passwords alone protect patient images"
            );
        }
        Ok(auth)
    }

    /// Ends the sessions past their absolute timeout, and those idle longer than the idle
    /// timeout since the last activity this process saw (sessions loaded at start-up wait for
    /// their first request: their cookie alone knows their activity), and records each.
    /// Their cookies were already refused; this makes the end visible in the trail.
    pub(crate) fn sweep_sessions(&self) {
        let now = unix_now();
        let idle = self.settings.load().idle_timeout.as_secs();
        let mut ended = Vec::new();
        let result = self.store.retain_sessions(|sid, rec| {
            let activity = rec.activity.get();
            let reason = if rec.expires <= now {
                "absolute"
            } else if activity > 0 && now.saturating_sub(activity) > idle {
                "idle"
            } else {
                return true;
            };
            ended.push((sid.to_string(), rec.user.clone(), reason));
            false
        });
        if let Err(e) = result {
            warn!(error = %e, "cannot remove expired sessions from the store");
            return;
        }
        self.forget_external(ended.iter().map(|(sid, ..)| sid.as_str()));
        for (session, user, reason) in ended {
            self.audit(Event::SessionExpired {
                user,
                session,
                reason,
            });
        }
    }

    /// The trail's handle, for the request path's records of accesses to patient data.
    pub(crate) fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    /// Queues an event for the audit trail (never blocks).
    pub(crate) fn audit(&self, event: Event) {
        self.auditor.record(event);
    }

    /// Replaces the accounts (configuration reload) and revokes, at once and on disk, every
    /// session whose user is gone or disabled.
    pub fn set_users(&self, settings: &AuthSettings) -> Result<usize, StoreError> {
        let accounts: HashMap<Arc<str>, Arc<Account>> = settings
            .users
            .iter()
            .map(|u| {
                (
                    Arc::<str>::from(u.username.as_str()),
                    Arc::new(Account::from(u)),
                )
            })
            .collect();
        // Each provider's rules digested once, not once per session.
        let digests: HashMap<&str, String> = settings
            .oidc
            .iter()
            .map(|p| (p.name.as_str(), oidc::rules_digest(p)))
            .collect();
        let mut ended = Vec::new();
        let revoked = self.store.retain_sessions(|sid, rec| {
            let reason = match (&rec.external, accounts.get(rec.user.as_str())) {
                (Some(ext), _) => match external_standing(settings, &digests, &rec.user, ext) {
                    None => return true,
                    Some(reason) => reason,
                },
                (None, Some(a)) if !a.disabled => return true,
                (None, Some(_)) => "account_disabled",
                (None, None) => "account_removed",
            };
            ended.push((sid.to_string(), rec.user.clone(), reason));
            false
        })?;
        if revoked > 0 {
            info!(revoked, "sessions of removed or disabled users revoked");
        }
        self.forget_external(ended.iter().map(|(sid, ..)| sid.as_str()));
        for (session, user, reason) in ended {
            self.audit(Event::SessionRevoked {
                user,
                session,
                reason,
            });
        }
        self.accounts.store(Arc::new(accounts));
        self.settings.store(Arc::new(settings.clone()));
        Ok(revoked)
    }

    /// Reloads the signing keys (after `vigie rotate-keys`).
    pub fn reload_keys(&self, state_dir: &Path) -> Result<(), keys::KeyError> {
        let ring = KeyRing::load_or_create(state_dir, unix_now())?;
        self.tokens
            .store(Arc::new(Tokens::new(&ring, &self.audience)));
        self.form_key.store(Arc::new(ring.keys[0].bytes()));
        self.key_generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The OpenID Connect providers.
    pub(crate) fn oidc(&self) -> &Arc<oidc::Oidc> {
        &self.oidc
    }

    /// For a session opened through an OpenID provider: the provider, and the ID token to send
    /// back when the user signs out.
    pub(crate) fn session_provider(
        &self,
        sid: &str,
    ) -> Option<(Arc<oidc::provider::Provider>, Option<String>)> {
        let rec = self.store.session(sid, unix_now())?;
        let ext = rec.external.as_ref()?;
        let p = self.oidc.provider(&ext.provider)?.clone();
        Some((p, ext.id_token.clone()))
    }

    /// Whether a local account has this name (an OpenID user may not take it).
    pub(crate) fn is_local_account(&self, name: &str) -> bool {
        self.accounts.load().contains_key(name)
    }

    /// Drops the cached accounts of sessions that ended.
    fn forget_external<'a>(&self, sids: impl Iterator<Item = &'a str>) {
        let sids: Vec<&str> = sids.collect();
        if sids.is_empty() || self.external.load().is_empty() {
            return;
        }
        self.external.rcu(|m| {
            let mut m = HashMap::clone(m);
            for s in &sids {
                m.remove(*s);
            }
            m
        });
    }

    /// The account standing for an OpenID session's user, built once per session.
    fn external_account(
        &self,
        sid: &str,
        user: &str,
        ext: &crate::store::ExternalSession,
    ) -> Arc<Account> {
        if let Some(a) = self.external.load().get(sid) {
            return a.clone();
        }
        let account = Arc::new(Account::external(user, &ext.roles));
        let key: Arc<str> = sid.into();
        self.external.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(key.clone(), account.clone());
            m
        });
        account
    }

    pub fn settings(&self) -> Arc<AuthSettings> {
        self.settings.load_full()
    }

    pub(crate) fn form_key(&self) -> Arc<SecretSlice<u8>> {
        self.form_key.load_full()
    }

    /// The identity behind a session cookie, and a refreshed cookie when the activity time is
    /// more than a minute old. No I/O, no shared lock.
    pub fn authenticate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<(Identity, Option<HeaderValue>), NoSession> {
        self.authenticate_cached(headers, &TokenCache::default())
    }

    /// [`Auth::authenticate`] with a per-connection cache: a connection sends the same token
    /// with each request, so its signature is checked once, and a refreshed cookie is signed
    /// once a minute rather than for every request of a client that ignores it. Everything that
    /// can change (expiry, idle time, revocation, the account) is still checked every time.
    pub fn authenticate_cached(
        &self,
        headers: &http::HeaderMap,
        cache: &TokenCache,
    ) -> Result<(Identity, Option<HeaderValue>), NoSession> {
        let token = session::cookie_value(headers, session::COOKIE).ok_or(NoSession::Missing)?;
        let generation = self.key_generation.load(Ordering::Acquire);
        let cached = cache.lookup(token, generation);
        let (lease, session_id, mut refresh) = match cached {
            Some(hit) => hit,
            None => {
                let tokens = self.tokens.load();
                let claims = match tokens.verify(token) {
                    Ok(c) => c,
                    // An expired but otherwise genuine token: say so on the sign-in page.
                    Err(session::Refused::Invalid) if tokens.verify_ignoring_expiry(token) => {
                        return Err(NoSession::Expired);
                    }
                    Err(_) => return Err(NoSession::Invalid),
                };
                let session_id: Arc<str> = claims.sid.as_str().into();
                let lease = Arc::new(SessionLease {
                    claims,
                    token: token.into(),
                    generation,
                });
                cache.store(lease.clone(), session_id.clone());
                (lease, session_id, None)
            }
        };
        let claims = &lease.claims;
        let now = unix_now();
        let idle = self.settings.load().idle_timeout.as_secs();
        // `verify` tolerates a few seconds of clock skew; our own clock needs none.
        if now.saturating_sub(claims.act) > idle || claims.exp <= now {
            return Err(NoSession::Expired);
        }
        let (record, account) = self.standing(claims, now).map_err(|_| NoSession::Invalid)?;
        record.activity.advance(claims.act);
        let refresh_after = refresh_after(idle);
        if now.saturating_sub(claims.act) < refresh_after {
            refresh = None;
        } else if refresh
            .as_ref()
            .is_none_or(|(_, at)| now.saturating_sub(*at) >= refresh_after)
        {
            let fresh = Claims {
                act: now,
                ..Claims::clone(claims)
            };
            refresh = self
                .tokens
                .load()
                .sign(&fresh)
                .and_then(|t| session::set_cookie(&t))
                .map(|c| (c, now));
            if let Some(r) = &refresh {
                cache.store_refresh(r.clone());
                // Granted: the browser's next request carries this time.
                record.activity.advance(now);
            }
        } else {
            // Already sent on this connection within the interval.
            refresh = None;
        }
        Ok((
            Identity {
                user: account.username.clone(),
                roles: account.roles.clone(),
                session_id,
                user_header: account.user_header.clone(),
                roles_header: account.roles_header.clone(),
                session: lease,
            },
            refresh.map(|(c, _)| c),
        ))
    }

    /// The session's record and account, when both still admit it.
    fn standing(
        &self,
        claims: &Claims,
        now: u64,
    ) -> Result<(Arc<SessionRecord>, Arc<Account>), SessionEnd> {
        let record = self
            .store
            .session(&claims.sid, now)
            .filter(|r| r.user == claims.sub)
            .ok_or(SessionEnd::Revoked)?;
        if let Some(ext) = &record.external {
            let account = self.external_account(&claims.sid, &record.user, ext);
            return Ok((record, account));
        }
        let account = self
            .accounts
            .load()
            .get(claims.sub.as_str())
            .filter(|a| !a.disabled)
            .cloned()
            .ok_or(SessionEnd::Account)?;
        Ok((record, account))
    }

    /// Whether the session behind `watch` would still admit a request now: the checks of
    /// [`Auth::authenticate_cached`], with the session's latest activity (module documentation)
    /// in place of one cookie's. No I/O, no lock; the token's signature is verified again only
    /// after the keys changed.
    pub fn session_standing(&self, watch: &mut SessionWatch) -> Result<(), SessionEnd> {
        let claims = &watch.lease.claims;
        let now = unix_now();
        if claims.exp <= now {
            return Err(SessionEnd::Expired);
        }
        // The generation is bumped after the new keys are in place: reading it first means
        // the keys read next are at least as new.
        let generation = self.key_generation.load(Ordering::Acquire);
        if generation != watch.generation {
            if self.tokens.load().verify(&watch.lease.token).is_err() {
                return Err(SessionEnd::Keys);
            }
            watch.generation = generation;
        }
        let (record, _) = self.standing(claims, now)?;
        let idle = self.settings.load().idle_timeout.as_secs();
        if now.saturating_sub(record.activity.get().max(claims.act)) > idle {
            return Err(SessionEnd::Idle);
        }
        Ok(())
    }
}

/// Whether a session opened through an OpenID provider may go on under `settings`: `None` when
/// it may, else why it ends (the provider is gone, the user is disabled, or the provider's
/// rules changed since it opened).
fn external_standing(
    settings: &AuthSettings,
    digests: &HashMap<&str, String>,
    user: &str,
    ext: &crate::store::ExternalSession,
) -> Option<&'static str> {
    let (Some(p), Some(digest)) = (
        settings.oidc.iter().find(|p| p.name == ext.provider),
        digests.get(ext.provider.as_str()),
    ) else {
        return Some("provider_removed");
    };
    if p.disabled_users.iter().any(|u| u == user) {
        Some("account_disabled")
    } else if *digest != ext.rules {
        Some("provider_rules_changed")
    } else {
        None
    }
}
