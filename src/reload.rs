//! What a running gateway picks up without a restart, and how: it looks every
//! `tls.reload_interval` (and at once on SIGHUP) at the files involved and reloads what changed.
//! A file that fails to load changes nothing and is reported; the running version stays.
//!
//! | reloads                                   | when its files change, or on SIGHUP        |
//! |-------------------------------------------|--------------------------------------------|
//! | certificate and key (`tls.cert_file`, `tls.key_file`) | served to new connections at once |
//! | a certificate the gateway obtains itself (`tls.acme`, `tls.local_ca`) | renewed by `tls::renew`'s task, which reloads it; another replica's renewal is seen here as a file change |
//! | accounts (`auth.users`, `auth.users_file`) and the `auth` settings the request path reads, such as its timeouts | removed or disabled users lose their sessions at once |
//! | session-signing keys (`vigie rotate-keys`) | read before the accounts                   |
//! | OpenID providers' rules (`auth.oidc[].roles`, `allow`, `disabled_users`) | sessions of users disabled, of providers removed, and of providers whose rules changed end at once |
//!
//! Every other setting (listeners, upstream, limits, the access policy, logging, `state_dir`,
//! and the OpenID providers themselves: which there are, their issuers and client secrets) is
//! read once at start: changing it needs a restart.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::{error, info, info_span, warn};

use crate::config::Config;
use crate::files::FileStamp;
use crate::state::GatewayState;
use crate::tls::store::Reload;

/// Reloads the certificate when its files change (checked every `tls.reload_interval`) or on
/// SIGHUP. A failed reload keeps the current certificate. The accounts and session keys are
/// reloaded the same way: on SIGHUP, or when the configuration, `auth.users_file` or the keys
/// file changes (so that `vigie user add` and `vigie rotate-keys` need no signal).
pub(crate) async fn watch(shared: Arc<GatewayState>) {
    let certs = &shared.certs;
    let account_files = account_files(&shared.config);
    let mut account_stamps = FileStamp::of(&account_files);
    let mut expiry = ExpiryWarning {
        managed: shared.config.tls.source.is_managed(),
        ..ExpiryWarning::default()
    };
    let mut tick = tokio::time::interval(shared.config.tls.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
        };
        #[cfg(not(unix))]
        let forced = {
            tick.tick().await;
            false
        };
        let now_stamps = FileStamp::of(&account_files);
        if forced || now_stamps != account_stamps {
            account_stamps = now_stamps;
            reload_accounts(&shared);
        }
        let span = info_span!("certificate_reload", forced);
        let _enter = span.enter();
        match certs.reload(forced) {
            Reload::Unchanged => {}
            Reload::Reloaded => {
                if let Some(c) = certs.current() {
                    info!(subject = %c.info.subject, not_after = c.info.not_after, "certificate reloaded");
                }
            }
            Reload::Failed(e) => {
                shared.metrics.cert_reload_failed();
                error!(error = %e, "new certificate refused; still serving the previous one");
            }
        }
        if let Some(c) = certs.current() {
            shared.metrics.set_cert_expiry(c.info.not_after);
            expiry.check(c.info.not_after, crate::host::unix_now());
        }
    }
}

/// Under this much time left, the log says the certificate must be renewed.
const EXPIRY_LOG: u64 = 30 * 86_400;

/// The log's warning that the served certificate expires soon: at start and then once a day
/// while it does (`vigie check` reports it from 14 days, the alerts from 14 days too).
#[derive(Debug, Default)]
struct ExpiryWarning {
    /// Unix seconds of the last warning.
    last: Option<u64>,
    /// The gateway obtains the certificate itself (ACME, the practice CA).
    managed: bool,
}

impl ExpiryWarning {
    /// Whether to warn now, for a certificate valid until `not_after`; warns when so.
    fn check(&mut self, not_after: i64, now: u64) -> bool {
        let left = u64::try_from(not_after).unwrap_or(0).saturating_sub(now);
        let due = left < EXPIRY_LOG && self.last.is_none_or(|t| now.saturating_sub(t) >= 86_400);
        if due {
            self.last = Some(now);
            let advice = if self.managed {
                "it has not been renewed: `vigie check` shows the renewal's last error"
            } else {
                "renew it (tls.cert_file)"
            };
            warn!(
                days_left = left / 86_400,
                not_after,
                "the served certificate expires in {} day(s): {advice}",
                left / 86_400
            );
        }
        due
    }
}

/// The files whose change reloads the accounts and keys.
fn account_files(config: &Config) -> Vec<PathBuf> {
    config
        .source
        .iter()
        .chain(config.auth.users_file.iter())
        .cloned()
        .chain(std::iter::once(crate::auth::keys::path(&config.state_dir)))
        .collect()
}

/// On SIGHUP or a file change: re-reads the configuration's accounts (and `auth.users_file`) and the session
/// keys. Users removed or disabled lose their sessions at once. An invalid file changes nothing.
fn reload_accounts(shared: &GatewayState) {
    let Some(source) = &shared.config.source else {
        return;
    };
    // Keys first: "accounts reloaded" then means that everything read here is in force (a
    // script waiting for the line must not race the key change).
    if let Err(e) = shared.auth.reload_keys(&shared.config.state_dir) {
        error!(error = %e, "session keys not reloaded");
    }
    match Config::load(source) {
        Ok((fresh, _)) => match shared.auth.set_users(&fresh.auth) {
            Ok(revoked) => info!(users = fresh.auth.users.len(), revoked, "accounts reloaded"),
            Err(e) => error!(error = %e, "accounts not reloaded"),
        },
        Err(e) => error!(
            problems = %e,
            "configuration not reloaded: it has errors; the running accounts are kept"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_near_its_end_is_in_the_log_once_a_day() {
        let day = 86_400;
        let now = 1_800_000_000;
        let mut w = ExpiryWarning::default();
        assert!(
            !w.check(now as i64 + 31 * day as i64, now),
            "31 days: quiet"
        );
        assert!(
            w.check(now as i64 + 29 * day as i64, now),
            "29 days: warned"
        );
        assert!(
            !w.check(now as i64 + 29 * day as i64, now + 3600),
            "not again within a day"
        );
        assert!(
            w.check(now as i64 + 29 * day as i64, now + day),
            "the next day"
        );
        assert!(
            w.check(now as i64 - 10, now + 2 * day),
            "expired: still said"
        );
    }
}
