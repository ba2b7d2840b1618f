//! The served certificate's source, set up at start: the administrator's files, or a
//! certificate the gateway obtains and renews itself (the practice CA, ACME) with its
//! renewal task, whose repeated failures become an alert.

use std::sync::Arc;

use time::OffsetDateTime;
use tracing::{error, info};

use crate::alert::{Alert, Alerts, Facts, Severity};
use crate::config::{AcmeChallenge, CertSource, Config, Problem};
use crate::tls::CertStore;
use crate::tls::acme::{AcmeClient, Challenges};
use crate::tls::renew::{Issuer, Renewer, Status};

/// The live certificate, and what keeps it valid when the gateway obtains it itself.
pub(super) struct Certificate {
    pub store: Arc<CertStore>,
    pub renewer: Option<Renewer>,
    /// The http-01 answers the plain-HTTP listener gives.
    pub challenges: Option<Arc<Challenges>>,
}

pub(super) fn open(config: &Config, alerts: &Alerts) -> Result<Certificate, Problem> {
    let t = &config.tls;
    // `alpn`: the same answers, given during the TLS handshake with tls-alpn-01.
    let (issuer, challenges, alpn) = match &t.source {
        CertSource::Files => {
            return CertStore::open(&t.cert_file, &t.key_file)
                .map(|s| Certificate {
                    store: Arc::new(s),
                    renewer: None,
                    challenges: None,
                })
                .map_err(|e| crate::diagnose::load_problem(&e, t));
        }
        CertSource::LocalCa => (
            Issuer::LocalCa {
                ca_dir: config.state_dir.join("ca"),
            },
            None,
            None,
        ),
        CertSource::Acme(a) => {
            let challenges = Arc::new(Challenges::new(a.dir.join("challenges")));
            let alpn = (a.challenge == AcmeChallenge::TlsAlpn01).then(|| challenges.clone());
            (
                Issuer::Acme(Arc::new(AcmeClient::new(a.clone(), challenges.clone()))),
                Some(challenges),
                alpn,
            )
        }
    };
    let (store, damaged) = CertStore::open_managed(&t.cert_file, &t.key_file, alpn);
    match (&damaged, store.current()) {
        (Some(e), _) => error!(
            error = %e,
            "the stored certificate cannot be used: a new one is obtained now"
        ),
        (None, None) => info!(
            file = %t.cert_file.display(),
            "no certificate yet: obtaining one now (connections are refused until it is there)"
        ),
        (None, Some(_)) => {}
    }
    let names = std::iter::once(config.server_name.clone())
        .chain(config.server_aliases.iter().cloned())
        .collect();
    let alerts = alerts.clone();
    let alert_on = config.alerts.certificate;
    let on_failure = Arc::new(
        move |status: &Status, info: Option<&crate::tls::CertInfo>| {
            if !alert_on {
                return;
            }
            let now = crate::host::unix_now_i64();
            let days = info.map(|i| i.seconds_left(now) / 86_400);
            let severity = match days {
                None | Some(..7) => Severity::Critical,
                Some(..14) => Severity::High,
                _ => Severity::Warning,
            };
            alerts.raise(Alert {
                at: OffsetDateTime::now_utc(),
                severity,
                facts: Facts::CertificateRenewal {
                    failures: status.failures,
                    days_left: days,
                    error: status.last_error.clone().unwrap_or_default(),
                },
            });
        },
    );
    let store = Arc::new(store);
    Ok(Certificate {
        store: store.clone(),
        renewer: Some(Renewer {
            issuer,
            store,
            names,
            on_failure,
        }),
        challenges,
    })
}
