//! `vigie alert test`: sends a test alert through every configured channel (`alerts.email`,
//! `alerts.webhook`), once each, and says per channel what happened. Exit status 0 when every
//! channel delivered, 1 when one failed or none is configured. Not recorded in the trail: it
//! is no security event.

use std::path::Path;
use std::process::ExitCode;

use super::{load, runtime};
use crate::alert::{Alert, Channels, Facts, Severity, lang};

pub(super) fn test(path: &Path) -> ExitCode {
    let (config, _) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let channels = Channels::from_config(&config);
    if !channels.any() {
        eprintln!("error: no alert channel is configured");
        eprintln!("  hint: set alerts.email (an SMTP server) or alerts.webhook (an https:// URL)");
        return ExitCode::FAILURE;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let alert = Alert {
        at: time::OffsetDateTime::now_utc(),
        severity: Severity::Info,
        facts: Facts::Test,
    };
    let outcomes = rt.block_on(channels.send(&alert, 0, lang(&config.alerts), false));
    let mut failed = false;
    for o in outcomes {
        let to = if o.target.is_empty() {
            String::new()
        } else {
            format!(" ({})", o.target)
        };
        match o.result {
            Ok(()) => println!("{}{to}: sent", o.channel),
            Err(e) => {
                failed = true;
                eprintln!("{}{to}: failed: {e}", o.channel);
            }
        }
    }
    if failed {
        eprintln!(
            "  hint: check the server's address and port, its TLS (alerts.*.ca_file for a private authority) and the credentials"
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
