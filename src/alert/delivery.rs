//! From an alert to the people who must read it: deduplication and the hourly cap
//! ([`Limiter`]: the same rule and subject once per `alerts.repeat_after`, the count held back
//! told in the next one; at most `alerts.max_per_hour` in all), then the channels, each tried a
//! few times with a growing pause, and the alert's record in the trail with each channel's
//! outcome. All of it on a tokio task: nothing here waits on the request path or the writer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc::Receiver;
use tracing::{error, warn};

use super::email::Email;
use super::message::Outgoing;
use super::webhook::Webhook;
use super::{Alert, Facts, SendError};
use crate::audit::{Auditor, Event};
use crate::config::Config;
use crate::lang::Lang;

/// Pauses before the second, third and fourth attempts.
const RETRIES: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(60),
];
/// The checks that are not events repeat at most daily: a certificate expiring in 10 days
/// needs no hourly reminder.
const PERIODIC_REPEAT: Duration = Duration::from_secs(86_400);
/// Rule-and-subject pairs remembered at most.
const KEYS: usize = 10_000;

/// What the limiter decided for one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send it, telling how many like it were held back since the last one sent.
    Send {
        suppressed: u64,
    },
    Hold,
}

#[derive(Debug, Default)]
struct Entry {
    sent: Option<OffsetDateTime>,
    held: u64,
}

/// Deduplication per rule and subject, and the overall hourly cap; time is given.
#[derive(Debug)]
pub(crate) struct Limiter {
    repeat_after: Duration,
    max_per_hour: u32,
    last: HashMap<(&'static str, String), Entry>,
    sent: VecDeque<OffsetDateTime>,
}

impl Limiter {
    pub(crate) fn new(repeat_after: Duration, max_per_hour: u32) -> Limiter {
        Limiter {
            repeat_after,
            max_per_hour,
            last: HashMap::new(),
            sent: VecDeque::new(),
        }
    }

    pub(crate) fn admit(&mut self, alert: &Alert) -> Decision {
        let at = alert.at;
        let repeat = match alert.facts {
            Facts::Certificate { .. }
            | Facts::CertificateRenewal { .. }
            | Facts::UpstreamOpen { .. } => self.repeat_after.max(PERIODIC_REPEAT),
            _ => self.repeat_after,
        };
        if self.last.len() >= KEYS {
            let longest = self.repeat_after.max(PERIODIC_REPEAT);
            self.last
                .retain(|_, e| e.held > 0 || e.sent.is_some_and(|t| at - t < longest));
        }
        let entry = self
            .last
            .entry((alert.rule(), alert.subject()))
            .or_default();
        if entry.sent.is_some_and(|t| at - t < repeat) {
            entry.held += 1;
            return Decision::Hold;
        }
        while self
            .sent
            .front()
            .is_some_and(|t| at - *t >= Duration::from_secs(3600))
        {
            self.sent.pop_front();
        }
        // The test alert is asked for by a person: never held.
        if self.sent.len() >= self.max_per_hour as usize && !matches!(alert.facts, Facts::Test) {
            entry.held += 1;
            return Decision::Hold;
        }
        self.sent.push_back(at);
        entry.sent = Some(at);
        Decision::Send {
            suppressed: std::mem::take(&mut entry.held),
        }
    }
}

/// What happened on one channel.
#[derive(Debug, Clone)]
pub(crate) struct ChannelOutcome {
    /// `email` or `webhook`.
    pub(crate) channel: &'static str,
    /// Where to (`smtp.example.org:587 → 2 recipient(s)`, the webhook's host).
    pub(crate) target: String,
    pub(crate) result: Result<(), String>,
}

impl ChannelOutcome {
    /// `email: sent`, `webhook: failed (connection refused)`: as recorded in the trail.
    pub(crate) fn label(&self) -> String {
        match &self.result {
            Ok(()) => format!("{}: sent", self.channel),
            Err(e) => format!("{}: failed ({e})", self.channel),
        }
    }
}

/// The configured channels.
pub(crate) struct Channels {
    email: Option<Result<Email, String>>,
    webhook: Option<Result<Webhook, String>>,
    server: String,
}

impl Channels {
    /// Builds each configured channel; one that cannot be built (an unreadable CA file) fails
    /// each time it is used, with the reason.
    pub(crate) fn from_config(config: &Config) -> Channels {
        let a = &config.alerts;
        Channels {
            email: a.email.as_ref().map(Email::new),
            webhook: a.webhook.as_ref().map(Webhook::new),
            server: config.server_name.clone(),
        }
    }

    /// Whether any channel is configured.
    pub(crate) fn any(&self) -> bool {
        self.email.is_some() || self.webhook.is_some()
    }

    /// Sends `alert` through every channel, each with its retries (`retries: false`: once).
    pub(crate) async fn send(
        &self,
        alert: &Alert,
        suppressed: u64,
        lang: Lang,
        retries: bool,
    ) -> Vec<ChannelOutcome> {
        let out = Outgoing {
            alert,
            suppressed,
            server: &self.server,
            lang,
        };
        let mut outcomes = Vec::new();
        if let Some(email) = &self.email {
            let (target, result) = match email {
                Ok(e) => {
                    let (subject, text) = (out.subject(), out.text());
                    let result = attempts(retries, || e.send(&subject, &text)).await;
                    (e.target().to_owned(), result)
                }
                Err(why) => (String::new(), Err(why.clone())),
            };
            outcomes.push(ChannelOutcome {
                channel: "email",
                target,
                result,
            });
        }
        if let Some(webhook) = &self.webhook {
            let (target, result) = match webhook {
                Ok(w) => {
                    let body = out.json().to_string();
                    let result = attempts(retries, || w.send(body.clone())).await;
                    (w.target().to_owned(), result)
                }
                Err(why) => (String::new(), Err(why.clone())),
            };
            outcomes.push(ChannelOutcome {
                channel: "webhook",
                target,
                result,
            });
        }
        outcomes
    }
}

/// Runs `send` until it works, fails for good, or the retries are spent.
async fn attempts<F, Fut>(retries: bool, mut send: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SendError>>,
{
    let pauses: &[Duration] = if retries { &RETRIES } else { &[] };
    let mut pauses = pauses.iter();
    loop {
        match send().await {
            Ok(()) => return Ok(()),
            Err(e) => match pauses.next() {
                Some(p) if !e.permanent => {
                    warn!(error = %e.message, retry_in_s = p.as_secs(), "alert not delivered; retrying");
                    tokio::time::sleep(*p).await;
                }
                _ => return Err(e.message),
            },
        }
    }
}

/// The delivery task: limits, sends (each alert on its own task, so one's retries do not
/// delay the next), records.
pub(crate) async fn run(
    mut rx: Receiver<Alert>,
    channels: Arc<Channels>,
    mut limiter: Limiter,
    lang: Lang,
    auditor: Arc<OnceLock<Auditor>>,
) {
    while let Some(alert) = rx.recv().await {
        let Decision::Send { suppressed } = limiter.admit(&alert) else {
            continue;
        };
        let channels = channels.clone();
        let auditor = auditor.clone();
        tokio::spawn(async move {
            let outcomes = channels.send(&alert, suppressed, lang, true).await;
            let labels: Vec<String> = outcomes.iter().map(ChannelOutcome::label).collect();
            let summary = alert.facts.headline(Lang::En);
            warn!(
                rule = alert.rule(),
                severity = alert.severity.as_str(),
                suppressed,
                channels = %labels.join(", "),
                "alert: {summary}"
            );
            for o in outcomes.iter().filter(|o| o.result.is_err()) {
                error!(channel = o.channel, target = %o.target, "alert could not be delivered");
            }
            match auditor.get() {
                Some(a) => a.record(Event::AlertRaised {
                    rule: alert.rule().to_owned(),
                    severity: alert.severity.as_str().to_owned(),
                    summary,
                    channels: labels,
                    suppressed,
                }),
                None => error!(rule = alert.rule(), "alert not recorded: no audit trail"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use crate::alert::message::Scope;

    fn alert(s: i64, account: &str) -> Alert {
        Alert {
            at: OffsetDateTime::from_unix_timestamp(1_768_384_800 + s).unwrap(),
            severity: Severity::High,
            facts: Facts::FailedSignIns {
                scope: Scope::Account(account.into()),
                count: 3,
                window: Duration::from_secs(600),
            },
        }
    }

    #[test]
    fn once_per_rule_and_subject_per_period_with_the_count_held_back() {
        let mut l = Limiter::new(Duration::from_secs(3600), 30);
        assert_eq!(l.admit(&alert(0, "a")), Decision::Send { suppressed: 0 });
        assert_eq!(l.admit(&alert(10, "a")), Decision::Hold);
        assert_eq!(l.admit(&alert(20, "a")), Decision::Hold);
        // Another subject is not held.
        assert_eq!(l.admit(&alert(30, "b")), Decision::Send { suppressed: 0 });
        // An hour after the first: sent, saying two were held.
        assert_eq!(l.admit(&alert(3600, "a")), Decision::Send { suppressed: 2 });
        assert_eq!(l.admit(&alert(3601, "a")), Decision::Hold);
    }

    #[test]
    fn the_hourly_cap_holds_the_rest_and_counts_them() {
        let mut l = Limiter::new(Duration::from_secs(60), 3);
        for (i, who) in ["a", "b", "c"].iter().enumerate() {
            assert!(matches!(
                l.admit(&alert(i as i64, who)),
                Decision::Send { .. }
            ));
        }
        assert_eq!(l.admit(&alert(5, "d")), Decision::Hold);
        assert_eq!(l.admit(&alert(6, "d")), Decision::Hold);
        // An hour after the first three, "d" goes out with its two held back.
        assert_eq!(l.admit(&alert(3600, "d")), Decision::Send { suppressed: 2 });
    }

    #[test]
    fn periodic_findings_repeat_daily() {
        let mut l = Limiter::new(Duration::from_secs(3600), 30);
        let cert = |s: i64| Alert {
            at: OffsetDateTime::from_unix_timestamp(1_768_384_800 + s).unwrap(),
            severity: Severity::Warning,
            facts: Facts::Certificate {
                detail: "expires in 9 days".into(),
            },
        };
        assert!(matches!(l.admit(&cert(0)), Decision::Send { .. }));
        assert_eq!(l.admit(&cert(7200)), Decision::Hold);
        assert_eq!(l.admit(&cert(86_400)), Decision::Send { suppressed: 1 });
    }
}
