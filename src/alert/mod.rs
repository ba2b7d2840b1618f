//! Breach alerts: rules that watch the audit trail's events as they are written, and the
//! delivery of what they find by email and webhook, rate-limited, each alert itself recorded
//! in the trail (`Event::AlertRaised`).
//!
//! - `rules.rs`: the rules and their windows, fed one event at a time with its time (no clock
//!   inside, so tests inject time); `seen.rs`: the addresses each user signed in from;
//!   `hours.rs`: working hours in the practice's time zone.
//! - `message.rs`: what an alert says, in French or English, as mail text and as JSON.
//! - `email.rs` (SMTP through `lettre`, rustls), `webhook.rs` (one JSON POST over hyper).
//! - `delivery.rs`: deduplication and the hourly cap, then the tokio task that sends, retries
//!   with backoff and records.
//! - `periodic.rs`: the checks that are not events (the upstream answering without credentials,
//!   the certificate's expiry), reusing `crate::diagnose`.
//!
//! The audit writer thread calls [`Alerts::observe`] after each record it writes: the rules
//! run there in memory (one uncontended lock), and an alert only crosses a channel to the
//! delivery task. Nothing here is on the request path. Rules never see `AlertRaised`, so an
//! alert cannot feed itself.

mod delivery;
mod email;
mod hours;
mod message;
mod periodic;
mod rules;
mod seen;
mod webhook;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use time::OffsetDateTime;
use tracing::{error, warn};

use crate::audit::{AuditError, Auditor, Event, Observer};
use crate::config::{AlertSettings, Config};
use crate::lang::Lang;

pub(crate) use delivery::{ChannelOutcome, Channels};
pub(crate) use message::Facts;
use rules::Rules;

/// How serious an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    Info,
    Warning,
    High,
    Critical,
}

impl Severity {
    /// The word recorded in the trail and sent in the webhook's JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Why a channel failed, and whether trying again can help.
#[derive(Debug)]
pub(crate) struct SendError {
    pub(crate) message: String,
    /// The server refused for good (a bad address, authentication refused): no retry.
    pub(crate) permanent: bool,
}

/// One alert: what a rule found, about whom, when.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    pub(crate) at: OffsetDateTime,
    pub(crate) severity: Severity,
    pub(crate) facts: Facts,
}

impl Alert {
    /// The rule's name (`failed_sign_ins`, `lockout`, …).
    pub(crate) fn rule(&self) -> &'static str {
        self.facts.rule()
    }

    /// Who or what it is about, for deduplication: `account dr.martin`, `address 192.0.2.7`.
    pub(crate) fn subject(&self) -> String {
        self.facts.subject()
    }
}

/// The handle the audit writer and the periodic checks hold: cheap to clone.
#[derive(Clone)]
pub(crate) struct Alerts {
    inner: Arc<Inner>,
}

struct Inner {
    rules: Mutex<Rules>,
    channels: Arc<Channels>,
    lang: Lang,
    tx: tokio::sync::mpsc::Sender<Alert>,
    /// Set once the trail's writer is running (it is started after the alerts, which it feeds).
    auditor: Arc<OnceLock<Auditor>>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").finish_non_exhaustive()
    }
}

/// Alerts waiting for delivery at most; beyond, they are logged and dropped.
const QUEUE: usize = 1024;

impl Alerts {
    /// Starts the delivery task (and the periodic checks) on the current tokio runtime. The
    /// rules' memory of addresses lives in `state_dir`. Both tasks end once every handle is
    /// dropped (the audit writer holds one).
    pub(crate) fn start(config: &Config) -> Alerts {
        let settings = &config.alerts;
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let auditor = Arc::new(OnceLock::new());
        let channels = Arc::new(Channels::from_config(config));
        tokio::spawn(delivery::run(
            rx,
            channels.clone(),
            delivery::Limiter::new(settings.repeat_after, settings.max_per_hour),
            lang(settings),
            auditor.clone(),
        ));
        let alerts = Alerts {
            inner: Arc::new(Inner {
                rules: Mutex::new(Rules::new(settings, seen::Seen::open(&config.state_dir))),
                channels,
                lang: lang(settings),
                tx,
                auditor,
            }),
        };
        tokio::spawn(periodic::run(
            Arc::new(config.clone()),
            WeakAlerts(Arc::downgrade(&alerts.inner)),
        ));
        alerts
    }

    /// Sends an alert at once, once per channel, without the trail (which could not be
    /// opened): for the start-up's broken chain, just before the gateway refuses to start.
    pub(crate) async fn send_now(&self, alert: Alert) -> Vec<ChannelOutcome> {
        warn!(
            rule = alert.rule(),
            "alert: {}",
            alert.facts.headline(Lang::En)
        );
        self.inner
            .channels
            .send(&alert, 0, self.inner.lang, false)
            .await
    }

    /// Gives the delivery task the trail to record its alerts in.
    pub(crate) fn attach(&self, auditor: Auditor) {
        let _ = self.inner.auditor.set(auditor);
    }

    /// Runs the rules on one event written to the trail at `at`. Never blocks on delivery.
    pub(crate) fn observe(&self, at: OffsetDateTime, event: &Event) {
        let found = match self.inner.rules.lock() {
            Ok(mut rules) => rules.observe(at, event),
            // A panic while holding the lock cannot happen on input (nothing here unwraps);
            // should it, the rules' state is still usable.
            Err(poisoned) => poisoned.into_inner().observe(at, event),
        };
        for alert in found {
            self.raise(alert);
        }
    }

    /// Hands an alert to the delivery task.
    pub(crate) fn raise(&self, alert: Alert) {
        if let Err(e) = self.inner.tx.try_send(alert) {
            let alert = match e {
                tokio::sync::mpsc::error::TrySendError::Full(a)
                | tokio::sync::mpsc::error::TrySendError::Closed(a) => a,
            };
            error!(
                rule = alert.rule(),
                subject = %alert.subject(),
                "alert dropped: the delivery queue is full or stopped"
            );
        }
    }

    /// The trail failed its check at start-up: told at once (the gateway then refuses to
    /// start, so there is no trail to record it in).
    pub(crate) async fn chain_broken(&self, error: &AuditError) {
        if !self.enabled_audit_failure() {
            return;
        }
        let alert = Alert {
            at: OffsetDateTime::now_utc(),
            severity: Severity::Critical,
            facts: Facts::AuditFailure {
                detail: error.to_string(),
            },
        };
        for o in self.send_now(alert).await {
            if let Err(e) = o.result {
                error!(channel = o.channel, error = %e, "alert could not be delivered");
            }
        }
    }

    /// The trail could not be written: raised from the writer thread.
    pub(crate) fn write_failed(&self, why: &str) {
        if !self.enabled_audit_failure() {
            return;
        }
        self.raise(Alert {
            at: OffsetDateTime::now_utc(),
            severity: Severity::Critical,
            facts: Facts::AuditFailure {
                detail: why.to_owned(),
            },
        });
    }

    fn enabled_audit_failure(&self) -> bool {
        match self.inner.rules.lock() {
            Ok(r) => r.audit_failure(),
            Err(p) => p.into_inner().audit_failure(),
        }
    }
}

impl Observer for Alerts {
    fn written(&self, at: OffsetDateTime, event: &Event) {
        self.observe(at, event);
    }

    fn failed(&self, error: &AuditError) {
        self.write_failed(&error.to_string());
    }
}

/// A handle that does not keep the tasks alive (the periodic checks hold this).
pub(crate) struct WeakAlerts(Weak<Inner>);

impl WeakAlerts {
    pub(crate) fn upgrade(&self) -> Option<Alerts> {
        self.0.upgrade().map(|inner| Alerts { inner })
    }
}

/// The language of the messages.
pub(crate) fn lang(settings: &AlertSettings) -> Lang {
    if settings.english { Lang::En } else { Lang::Fr }
}

/// An IPv6 address's /64 (one household or office's privacy addresses), an IPv4 address
/// itself: what "the same address" means to the rules.
pub(crate) fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}
