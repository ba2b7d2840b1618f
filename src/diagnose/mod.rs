//! Diagnostics: what `vigie check`, `vigie serve` (before it starts) and `vigie check
//! --exposure` say about a deployment. One result type ([`Finding`]: a level, the check, the YAML
//! key to look at, what was seen and what to change, in French or English), one file per
//! concern, and one set of thresholds, so the three commands never disagree.
//!
//! - `vigie check` and `vigie serve` run [`check`]: the certificate files and whether the
//!   upstream accepts connections. `serve` refuses to start on a [`Level::Critical`] finding.
//! - `vigie check --exposure` runs [`inspect`]: the same two, plus everything that looks at the
//!   running deployment from the inside (the gateway's TLS, where the upstream sits, whether it
//!   wants credentials, sign-in, policy, ports, the plain-HTTP and admin listeners). The checks
//!   only read: handshakes, plain GETs, TCP connections, the configuration.

mod audit;
mod certificate;
mod gateway_tls;
mod health;
mod oidc;
mod plain_http;
mod policy;
mod ports;
mod probe;
mod render;
mod renewal;
mod signin;
mod upstream;

use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, Problem, Severity};
pub(crate) use crate::lang::Lang;

pub(crate) use certificate::load_problem;
pub(crate) use health::health;
pub(crate) use render::render;

/// How serious a finding is. `High` and `Critical` make the commands exit 1; `Critical` also
/// stops `vigie serve` from starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    Ok,
    Info,
    Warning,
    High,
    Critical,
}

impl Level {
    /// The level as the text report prints it.
    pub(crate) fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Level::Ok, _) => "OK",
            (Level::Info, _) => "INFO",
            (Level::Warning, Lang::En) => "WARNING",
            (Level::Warning, Lang::Fr) => "ATTENTION",
            (Level::High, Lang::En) => "HIGH",
            (Level::High, Lang::Fr) => "GRAVE",
            (Level::Critical, Lang::En) => "CRITICAL",
            (Level::Critical, Lang::Fr) => "CRITIQUE",
        }
    }
}

/// What a check found, in the report's language.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    pub level: Level,
    /// Stable identifier of the check (`certificate`, `tls`, `upstream`, `upstream_address`,
    /// `upstream_credentials`, `second_factor`, `accounts`, `policy`, `viewer_ports`,
    /// `gateway`, `plain_http`, `admin_listener`, `audit`, `oidc`, `oidc_assurance`, `renewal`).
    pub check: &'static str,
    /// The configuration key to look at (`tls.cert_file`, `server_aliases[1]`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub message: String,
    /// What to change; empty when there is nothing to do.
    pub fix: String,
}

impl Finding {
    /// The finding as a configuration problem (`error: key: message` + hint), the way `vigie
    /// check` and `vigie serve` print them; `None` for findings that need no action.
    pub(crate) fn as_problem(&self) -> Option<Problem> {
        let severity = match self.level {
            Level::Ok | Level::Info => return None,
            Level::Warning => Severity::Warning,
            Level::High | Level::Critical => Severity::Error,
        };
        Some(Problem {
            severity,
            path: self.key.clone().unwrap_or_else(|| self.check.to_string()),
            message: self.message.clone(),
            hint: self.fix.clone(),
        })
    }
}

/// Options of the exposure inspection.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub lang: Lang,
    /// Timeout of each connection attempt.
    pub timeout: Duration,
    /// The viewer's usual ports, probed on this machine's addresses (the upstream's own port is
    /// added).
    pub viewer_ports: Vec<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lang: Lang::from_env(),
            timeout: Duration::from_secs(2),
            viewer_ports: vec![8042, 4242],
        }
    }
}

/// Which of [`check`]'s probes to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckOptions {
    /// Try a TCP connection to the upstream.
    pub upstream: bool,
}

/// Findings as they are added, each in the report's language.
struct Report {
    lang: Lang,
    findings: Vec<Finding>,
}

impl Report {
    fn new(lang: Lang) -> Report {
        Report {
            lang,
            findings: Vec::new(),
        }
    }

    /// Adds a finding; `msg` and `fix` are (French, English).
    fn add(&mut self, level: Level, check: &'static str, msg: (String, String), fix: (&str, &str)) {
        self.add_at(level, check, None, msg, fix);
    }

    /// Adds a finding about one configuration key.
    fn add_at(
        &mut self,
        level: Level,
        check: &'static str,
        key: Option<String>,
        msg: (String, String),
        fix: (&str, &str),
    ) {
        self.findings.push(Finding {
            level,
            check,
            key,
            message: self.lang.pick_text(msg.0, msg.1),
            fix: self.lang.pick_text(fix.0, fix.1).to_string(),
        });
    }
}

/// Both languages of a message, formatted in place.
macro_rules! say {
    ($fr:expr, $en:expr $(,)?) => {
        (format!($fr), format!($en))
    };
}
use say;

/// What `vigie check` and `vigie serve` look at beyond the file itself: the certificate files
/// and, unless `offline`, whether the upstream accepts connections.
pub(crate) fn check(config: &Config, opts: CheckOptions, lang: Lang) -> Vec<Finding> {
    let mut r = Report::new(lang);
    certificate::check(config, None, &mut r);
    renewal::check(config, &mut r);
    if opts.upstream {
        upstream::reachable(config, &mut r);
    }
    r.findings
}

/// What `vigie check` says of the OpenID providers: whether each answers as configured.
pub(crate) async fn providers(config: &Config, lang: Lang) -> Vec<Finding> {
    let mut r = Report::new(lang);
    oidc::reachable(config, &mut r).await;
    r.findings
}

/// Runs every check against `config` and the deployment it describes.
pub(crate) async fn inspect(config: &Config, opts: &Options) -> Vec<Finding> {
    let mut r = Report::new(opts.lang);
    let served = gateway_tls::check(config, opts, &mut r).await;
    if let Some((chain, info)) = certificate::check(config, served.as_deref(), &mut r) {
        certificate::trust(config, &chain, &info, &mut r);
    }
    renewal::check(config, &mut r);
    upstream::address(config, &mut r).await;
    if upstream::reachable(config, &mut r) {
        let _open = upstream::credentials(config, opts, &mut r).await;
    }
    signin::second_factor(config, &mut r);
    oidc::assurance(config, &mut r);
    oidc::reachable(config, &mut r).await;
    policy::check(config, &mut r);
    ports::viewer_ports(config, opts, &mut r).await;
    plain_http::check(config, opts, &mut r).await;
    ports::admin_listener(config, &mut r);
    audit::trail(config, &mut r);
    r.findings
}

/// What the alerts check periodically (`crate::alert`): the certificate files' findings that
/// need action (as `vigie check` judges them), and, when `upstream` is true, the upstream's
/// finding when it answers without credentials.
pub(crate) async fn watch(config: &Config, lang: Lang, upstream: bool) -> Vec<Finding> {
    let mut r = Report::new(lang);
    certificate::check(config, None, &mut r);
    r.findings
        .retain(|f| f.level >= Level::Warning && f.check == "certificate");
    if upstream {
        let opts = Options {
            lang,
            ..Options::default()
        };
        let mut u = Report::new(lang);
        if upstream::credentials(config, &opts, &mut u).await {
            r.findings.extend(
                u.findings
                    .into_iter()
                    .filter(|f| f.check == "upstream_credentials" && f.level == Level::High),
            );
        }
    }
    r.findings
}

/// Exit status for a set of findings: 1 high or critical, 3 warnings only, 0 otherwise.
pub(crate) fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.level).max() {
        Some(Level::High | Level::Critical) => 1,
        Some(Level::Warning) => 3,
        _ => 0,
    }
}

/// Whether `vigie serve` must refuse to start.
pub(crate) fn blocks_start(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Critical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(level: Level) -> Finding {
        Finding {
            level,
            check: "x",
            key: None,
            message: String::new(),
            fix: String::new(),
        }
    }

    #[test]
    fn exit_code_follows_the_worst_finding() {
        let f = finding;
        assert_eq!(exit_code(&[f(Level::Ok), f(Level::Info)]), 0);
        assert_eq!(exit_code(&[f(Level::Ok), f(Level::Warning)]), 3);
        assert_eq!(exit_code(&[f(Level::Warning), f(Level::High)]), 1);
        assert_eq!(exit_code(&[f(Level::Critical)]), 1);
    }

    #[test]
    fn only_critical_findings_stop_the_start_and_only_actions_become_problems() {
        assert!(!blocks_start(&[
            finding(Level::High),
            finding(Level::Warning)
        ]));
        assert!(blocks_start(&[
            finding(Level::Ok),
            finding(Level::Critical)
        ]));
        assert!(finding(Level::Info).as_problem().is_none());
        let p = finding(Level::High).as_problem().unwrap();
        assert_eq!((p.severity, p.path.as_str()), (Severity::Error, "x"));
        let p = finding(Level::Warning).as_problem().unwrap();
        assert_eq!(p.severity, Severity::Warning);
    }
}
