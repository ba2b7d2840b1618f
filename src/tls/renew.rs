//! Keeping a certificate the gateway obtains itself (ACME, the practice CA) valid: when to
//! renew, the attempt, the retries, and the files.
//!
//! - **When:** at once when there is no usable certificate or it does not cover every
//!   configured name; otherwise when a third of its lifetime is left, or at a random time in
//!   the window the ACME CA suggests (ARI, RFC 9773) when it offers one.
//! - **Retries:** a failed attempt keeps the current certificate in service and is tried
//!   again after 10 s doubling to 1 h when the CA could not be reached, after 1 min doubling
//!   to 1 h when it refused (its limits count refusals: Let's Encrypt allows 5 failed checks
//!   per name and hour).
//! - **Files:** the key then the chain, each replaced atomically with mode 0600, then
//!   reloaded into the live store; `status.json` beside them says what happened last (`vigie
//!   check` reads it).
//! - **Replicas** sharing the ACME folder (`tls.acme.dir`) take a lock file before ordering: one
//!   orders, the others pick up its files (the reload watch sees them change).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::acme::{AcmeClient, IssueFailure};
use super::ca::{CaFiles, LocalCa};
use super::store::Reload;
use super::{CertInfo, CertStore};
use crate::files::{self, Mode};

/// How long a certificate from the practice CA is valid: renewed after 60 days, so a gateway
/// left alone keeps a valid one and a broken renewal has a month to be noticed.
pub(crate) const LOCAL_CA_DAYS: u32 = 90;

/// What the last attempts did, kept in `status.json` beside the certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Status {
    /// Unix seconds.
    pub last_attempt: Option<i64>,
    pub last_success: Option<i64>,
    /// Attempts failed in a row.
    pub failures: u32,
    pub last_error: Option<String>,
    /// The last failure was the CA not answering at all (network, DNS, its HTTPS not
    /// trusted), rather than the CA refusing.
    #[serde(default)]
    pub last_unreachable: bool,
    /// When the next attempt is planned (after a failure), or the renewal (after a success).
    pub next_renewal: Option<i64>,
    /// The ACME account's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The CA's suggested renewal window, when it offers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_window: Option<(i64, i64)>,
}

impl Status {
    /// The status file of a managed certificate in `dir`.
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join("status.json")
    }

    /// Reads it: `Ok(None)` before the first attempt.
    pub(crate) fn read(dir: &Path) -> Result<Option<Status>, String> {
        let path = Status::path(dir);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn write(&self, dir: &Path) {
        let result = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|json| files::replace(&Status::path(dir), &json, Mode::Private));
        if let Err(e) = result {
            error!(dir = %dir.display(), error = %e, "cannot write the certificate status file");
        }
    }
}

/// Where the certificate comes from.
pub(crate) enum Issuer {
    LocalCa { ca_dir: PathBuf },
    Acme(Arc<AcmeClient>),
}

/// What the gateway is told when renewal keeps failing (an alert).
pub(crate) type OnFailure = Arc<dyn Fn(&Status, Option<&CertInfo>) + Send + Sync>;

/// Renews one managed certificate; see the module documentation.
pub(crate) struct Renewer {
    pub issuer: Issuer,
    pub store: Arc<CertStore>,
    /// `server_name` then `server_aliases`.
    pub names: Vec<String>,
    pub on_failure: OnFailure,
}

/// Failures in a row after which the alert goes out (or at once under 14 days left).
const ALERT_AFTER: u32 = 3;
const ALERT_DAYS_LEFT: i64 = 14;

impl Renewer {
    fn dir(&self) -> PathBuf {
        let (cert, _) = self.store.files();
        cert.parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// Runs until the task is dropped.
    pub(crate) async fn run(self) {
        let dir = self.dir();
        // The folder and its parent (`state_dir/acme`, `state_dir/ca/issued`): 0700.
        let parent = dir.parent().map(Path::to_path_buf);
        if let Err(e) = parent
            .iter()
            .chain(std::iter::once(&dir))
            .try_for_each(|d| files::create_private_dir(d))
        {
            error!(dir = %dir.display(), error = %e, "cannot create the certificate folder");
        }
        let mut status = Status::read(&dir).ok().flatten().unwrap_or_default();
        // A new process starts afresh: what failed before a restart is retried at once.
        let mut retry_at: Option<i64> = None;
        let mut ari: Option<((i64, i64), i64)> = None;
        loop {
            let now = crate::host::unix_now_i64();
            let current = self.store.current();
            let info = current.as_ref().map(|c| &c.info);
            if let (Issuer::Acme(client), Some(cert)) = (&self.issuer, current.as_ref())
                && ari.is_none_or(|(_, again)| again <= now)
                && let Some(first) = cert.key.cert.first()
            {
                ari = client
                    .renewal_window(first)
                    .await
                    .map(|(w, again)| (w, now + again.as_secs() as i64));
                status.ari_window = ari.map(|(w, _)| w);
            }
            let due = due_at(info, &self.names, ari.map(|(w, _)| w), now);
            let next = retry_at.unwrap_or(due);
            if next > now {
                if status.next_renewal != Some(next) {
                    status.next_renewal = Some(next);
                    status.write(&dir);
                }
                let wait = Duration::from_secs((next - now).clamp(1, 3600) as u64);
                tokio::time::sleep(wait).await;
                continue;
            }
            let Some(_lock) = lock(&dir) else {
                // Another replica is ordering: its files will show up in the reload watch.
                tokio::time::sleep(Duration::from_secs(30)).await;
                continue;
            };
            // Another replica may have renewed just before the lock was ours.
            if matches!(self.store.reload(false), Reload::Reloaded) {
                let fresh = self.store.current();
                if due_at(fresh.as_ref().map(|c| &c.info), &self.names, None, now) > now {
                    retry_at = None;
                    continue;
                }
            }
            status.last_attempt = Some(now);
            match self.attempt(&mut status).await {
                Ok(info) => {
                    info!(
                        names = %self.names.join(","),
                        not_after = info.not_after,
                        issuer = %info.issuer,
                        "certificate obtained and served"
                    );
                    status.failures = 0;
                    status.last_success = Some(now);
                    status.last_error = None;
                    retry_at = None;
                    ari = None;
                }
                Err(f) => {
                    status.failures += 1;
                    status.last_error = Some(f.message.clone());
                    status.last_unreachable = f.unreachable;
                    let delay = backoff(status.failures, f.unreachable);
                    retry_at = Some(now + delay as i64);
                    status.next_renewal = retry_at;
                    let left = info.map(|i| i.seconds_left(now));
                    if left.is_some() {
                        error!(
                            error = %f.message,
                            failures = status.failures,
                            retry_in_s = delay,
                            days_left = left.map(|s| s / 86_400),
                            "certificate renewal failed; the current certificate stays in service"
                        );
                    } else {
                        error!(
                            error = %f.message,
                            failures = status.failures,
                            retry_in_s = delay,
                            "certificate renewal failed: no certificate yet, connections are refused until one is obtained"
                        );
                    }
                    if status.failures >= ALERT_AFTER
                        || left.is_some_and(|s| s < ALERT_DAYS_LEFT * 86_400)
                    {
                        (self.on_failure)(&status, info);
                    }
                }
            }
            status.write(&dir);
        }
    }

    /// One issuance: obtain, write, reload. The live certificate changes only when the new
    /// files loaded.
    async fn attempt(&self, status: &mut Status) -> Result<CertInfo, IssueFailure> {
        let (chain, key) = match &self.issuer {
            Issuer::LocalCa { ca_dir } => {
                let ca = LocalCa::load(CaFiles::in_dir(ca_dir)).map_err(|e| {
                    IssueFailure::refused(format!(
                        "the practice CA cannot be used ({e}): create it with `vigie ca init`"
                    ))
                })?;
                let (chain, key) = ca
                    .issue(&self.names, LOCAL_CA_DAYS)
                    .map_err(|e| IssueFailure::refused(e.to_string()))?;
                // The leaf alone: the CA is what the computers already trust, and sending it
                // again is wasted bytes in every handshake (scanners flag it).
                let end = "-----END CERTIFICATE-----";
                let leaf = chain
                    .find(end)
                    .map_or(chain.as_str(), |i| &chain[..i + end.len()]);
                (format!("{leaf}\n"), key)
            }
            Issuer::Acme(client) => {
                let current = self.store.current();
                let replaces = current.as_ref().and_then(|c| c.key.cert.first());
                let issued = client.obtain(replaces).await?;
                if let Ok(account) = client.account().await {
                    status.account = Some(account.id().to_string());
                }
                issued
            }
        };
        let (cert_path, key_path) = self.store.files();
        let write = |path: &Path, data: &str| {
            files::replace(path, data.as_bytes(), Mode::Private)
                .map_err(|e| IssueFailure::refused(format!("cannot write {}: {e}", path.display())))
        };
        // The key first: a chain beside the old key would not load, and the old pair stays
        // served until both are in place.
        write(key_path, &key)?;
        write(cert_path, &chain)?;
        match self.store.reload(true) {
            Reload::Failed(e) => Err(IssueFailure::refused(format!(
                "the new certificate does not load: {e}"
            ))),
            _ => {
                self.store.current().map(|c| c.info.clone()).ok_or_else(|| {
                    IssueFailure::refused("the new certificate does not load".into())
                })
            }
        }
    }
}

/// Takes the renewal lock of `dir` without waiting: `None` when another process holds it,
/// `Some(None)` when locking is impossible there (renewing without it beats not renewing).
fn lock(dir: &Path) -> Option<Option<File>> {
    let path = dir.join("renew.lock");
    let mut options = File::options();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = match options.open(&path) {
        Ok(f) => f,
        Err(e) => {
            warn!(file = %path.display(), error = %e, "cannot open the renewal lock; renewing without it");
            return Some(None);
        }
    };
    match file.try_lock() {
        Ok(()) => Some(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            info!("another gateway sharing this folder is renewing the certificate");
            None
        }
        Err(std::fs::TryLockError::Error(e)) => {
            warn!(file = %path.display(), error = %e, "cannot take the renewal lock; renewing without it");
            Some(None)
        }
    }
}

/// When the certificate should be renewed, in Unix seconds (`now` or earlier: at once).
pub(crate) fn due_at(
    info: Option<&CertInfo>,
    names: &[String],
    window: Option<(i64, i64)>,
    now: i64,
) -> i64 {
    let Some(info) = info else { return now };
    if !names.iter().all(|n| info.covers(n)) {
        return now;
    }
    if let Some((start, end)) = window
        && end > start
    {
        // RFC 9773 §4.2: a random time in the window spreads the CA's load.
        let mut b = [0u8; 8];
        let r = getrandom::fill(&mut b).map_or(0, |()| u64::from_le_bytes(b));
        return start + (r % (end - start) as u64) as i64;
    }
    let lifetime = (info.not_after - info.not_before).max(0);
    info.not_after - lifetime / 3
}

/// Seconds before the next attempt after `failures` failures in a row.
fn backoff(failures: u32, unreachable: bool) -> u64 {
    let base: u64 = if unreachable { 10 } else { 60 };
    base.saturating_mul(1 << failures.saturating_sub(1).min(12))
        .min(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: i64, not_after: i64) -> CertInfo {
        CertInfo {
            subject: String::new(),
            issuer: String::new(),
            not_before,
            not_after,
            dns_names: vec!["viewer.clinic.test".into()],
            ip_addrs: vec![],
            chain_len: 2,
        }
    }

    #[test]
    fn renewal_is_due_with_a_third_left_or_at_once() {
        let names = vec!["viewer.clinic.test".to_string()];
        let day = 86_400;
        let c = cert(0, 90 * day);
        assert_eq!(due_at(Some(&c), &names, None, 5), 60 * day);
        assert_eq!(due_at(None, &names, None, 5), 5, "no certificate: now");
        let more = vec!["viewer.clinic.test".to_string(), "pacs.clinic.test".into()];
        assert_eq!(due_at(Some(&c), &more, None, 5), 5, "a new name: now");
        for _ in 0..50 {
            let t = due_at(Some(&c), &names, Some((10 * day, 11 * day)), 5);
            assert!((10 * day..11 * day).contains(&t), "in the CA's window");
        }
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(backoff(1, true), 10);
        assert_eq!(backoff(2, true), 20);
        assert_eq!(backoff(1, false), 60);
        assert_eq!(backoff(4, false), 480);
        assert_eq!(backoff(40, false), 3600);
    }
}
