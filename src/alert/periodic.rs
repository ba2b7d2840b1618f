//! The checks that are not events, run every `alerts.check_interval` (the first one interval
//! after the start: `vigie serve` has just checked the same things): the certificate files and
//! whether the upstream answers without credentials. Both come from `crate::diagnose`, so an
//! alert and `vigie check` never disagree.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{Alert, Facts, Severity, WeakAlerts, lang};
use crate::config::Config;

/// Runs the checks until the alerts are dropped.
pub(crate) async fn run(config: Arc<Config>, alerts: WeakAlerts) {
    let a = &config.alerts;
    if !a.certificate && !a.upstream_open {
        return;
    }
    let lang = lang(a);
    loop {
        tokio::time::sleep(a.check_interval).await;
        if alerts.upgrade().is_none() {
            return;
        }
        for f in crate::diagnose::watch(&config, lang, a.upstream_open).await {
            let facts = if f.check == "certificate" {
                if !a.certificate {
                    continue;
                }
                Facts::Certificate { detail: f.message }
            } else {
                Facts::UpstreamOpen { detail: f.message }
            };
            let severity = match f.level {
                crate::diagnose::Level::Critical => Severity::Critical,
                crate::diagnose::Level::High => Severity::High,
                _ => Severity::Warning,
            };
            let Some(alerts) = alerts.upgrade() else {
                return;
            };
            alerts.raise(Alert {
                at: OffsetDateTime::now_utc(),
                severity,
                facts,
            });
        }
    }
}
