//! The runtime settings of `alerts:` (validated in `validate/alerts.rs`): which rules watch the
//! trail with which thresholds, where alerts go (email, webhook), and how often one may repeat.
//! The rules themselves are `crate::alert`.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// `alerts:`. Every rule has a default; without a channel, alerts are still recorded in the
/// trail and logged.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `fr` (default) or `en`: the language of the messages.
    pub english: bool,
    pub email: Option<EmailChannel>,
    pub webhook: Option<WebhookChannel>,
    /// The same rule about the same account or address at most once in this time (default 1 h).
    pub repeat_after: Duration,
    /// Alerts sent at most per hour, over all rules (default 30).
    pub max_per_hour: u32,
    /// How often the upstream and the certificate are checked (default 1 h; the first check one
    /// interval after the start, which `vigie serve` already checks).
    pub check_interval: Duration,
    pub failed_sign_ins: FailedSignIns,
    pub lockout: bool,
    pub volume: Volume,
    pub downloads: bool,
    pub new_address: bool,
    /// `None`: no working hours set (the default).
    pub off_hours: Option<WorkingHours>,
    pub upstream_open: bool,
    /// The certificate files as `vigie check` judges them: under 14 days left, expired, or not
    /// covering a served name.
    pub certificate: bool,
    pub audit_failure: bool,
}

/// `alerts.failed_sign_ins`: so many refusals within `window`; 0 turns a count off.
#[derive(Debug, Clone)]
pub struct FailedSignIns {
    pub per_account: u32,
    pub per_address: u32,
    pub overall: u32,
    pub window: Duration,
}

/// `alerts.volume`: one user reaching so many distinct studies or patients within `window`; 0
/// turns a count off.
#[derive(Debug, Clone)]
pub struct Volume {
    pub studies: u32,
    pub patients: u32,
    pub window: Duration,
}

/// `alerts.off_hours`: when activity is expected; anything else raises an alert.
#[derive(Debug, Clone)]
pub struct WorkingHours {
    /// Minutes after midnight: `[start, end)`; `start > end` spans midnight.
    pub start: u16,
    pub end: u16,
    /// Monday = 0 … Sunday = 6.
    pub days: [bool; 7],
    /// The IANA zone's name, as written (`Europe/Paris`).
    pub time_zone: String,
    /// The zone, resolved from the system's tz database at validation.
    pub zone: jiff::tz::TimeZone,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain SMTP: only to a relay on this machine (loopback).
    None,
}

/// `alerts.email`.
#[derive(Debug, Clone)]
pub struct EmailChannel {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// A CA (PEM) trusted besides the system's, for a relay with a private certificate.
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub from: String,
    pub to: Vec<String>,
}

/// `alerts.webhook`.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    /// `https://…`, or `http://` to a loopback address.
    pub url: http::Uri,
    pub ca_file: Option<PathBuf>,
    /// A header carrying a shared secret (`X-Vigie-Token: …`), when configured.
    pub header: Option<(http::HeaderName, SecretString)>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            english: false,
            email: None,
            webhook: None,
            repeat_after: Duration::from_secs(3600),
            max_per_hour: 30,
            check_interval: Duration::from_secs(3600),
            failed_sign_ins: FailedSignIns {
                per_account: 3,
                per_address: 5,
                overall: 20,
                window: Duration::from_secs(600),
            },
            lockout: true,
            volume: Volume {
                studies: 50,
                patients: 50,
                window: Duration::from_secs(3600),
            },
            downloads: true,
            new_address: true,
            off_hours: None,
            upstream_open: true,
            certificate: true,
            audit_failure: true,
        }
    }
}
