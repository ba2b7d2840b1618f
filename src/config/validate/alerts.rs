//! `alerts:`: the rules' thresholds, the working hours and their time zone, the email and
//! webhook channels (TLS unless the other end is on this machine) and their secrets.

use std::path::PathBuf;

use super::Validator;
use crate::config::file::{FileAlerts, FileEmail, FileOffHours, FileWebhook};
use crate::config::{
    AlertSettings, EmailChannel, FailedSignIns, SmtpSecurity, Volume, WebhookChannel, WorkingHours,
};

/// Whether `host` (a name or an IP, brackets allowed) is this machine.
pub(crate) fn loopback(host: &str) -> bool {
    let h = host.trim_matches(|c| c == '[' || c == ']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Validator {
    pub(super) fn alerts(&mut self, a: FileAlerts) -> AlertSettings {
        let d = AlertSettings::default();
        let english = match a.lang.as_deref() {
            None | Some("fr") => false,
            Some("en") => true,
            Some(other) => {
                self.error(
                    "alerts.lang",
                    format!("`{other}` is not a language of the alerts"),
                    "use \"fr\" or \"en\"",
                );
                false
            }
        };
        let max_per_hour = a.max_per_hour.unwrap_or(d.max_per_hour);
        if max_per_hour == 0 {
            self.error(
                "alerts.max_per_hour",
                "must be at least 1",
                "e.g. 30; use the rules' own keys to turn a rule off",
            );
        }
        let f = a.failed_sign_ins;
        let df = &d.failed_sign_ins;
        let failed_sign_ins = FailedSignIns {
            per_account: f
                .as_ref()
                .and_then(|f| f.per_account)
                .unwrap_or(df.per_account),
            per_address: f
                .as_ref()
                .and_then(|f| f.per_address)
                .unwrap_or(df.per_address),
            overall: f.as_ref().and_then(|f| f.overall).unwrap_or(df.overall),
            window: self.duration(
                f.as_ref().and_then(|f| f.window.as_deref()),
                "alerts.failed_sign_ins.window",
                df.window,
            ),
        };
        let v = a.volume;
        let volume = Volume {
            studies: v
                .as_ref()
                .and_then(|v| v.studies)
                .unwrap_or(d.volume.studies),
            patients: v
                .as_ref()
                .and_then(|v| v.patients)
                .unwrap_or(d.volume.patients),
            window: self.duration(
                v.as_ref().and_then(|v| v.window.as_deref()),
                "alerts.volume.window",
                d.volume.window,
            ),
        };
        AlertSettings {
            english,
            email: a.email.and_then(|e| self.email(e)),
            webhook: a.webhook.and_then(|w| self.webhook(w)),
            repeat_after: self.duration(
                a.repeat_after.as_deref(),
                "alerts.repeat_after",
                d.repeat_after,
            ),
            max_per_hour,
            check_interval: self.duration(
                a.check_interval.as_deref(),
                "alerts.check_interval",
                d.check_interval,
            ),
            failed_sign_ins,
            lockout: a.lockout.unwrap_or(d.lockout),
            volume,
            downloads: a.downloads.unwrap_or(d.downloads),
            new_address: a.new_address.unwrap_or(d.new_address),
            off_hours: a.off_hours.and_then(|o| self.off_hours(o)),
            upstream_open: a.upstream_open.unwrap_or(d.upstream_open),
            certificate: a.certificate.unwrap_or(d.certificate),
            audit_failure: a.audit_failure.unwrap_or(d.audit_failure),
        }
    }

    fn email(&mut self, e: FileEmail) -> Option<EmailChannel> {
        const AT: &str = "alerts.email";
        let smtp = self.required(
            e.smtp,
            "alerts.email.smtp",
            "the mail server as host:port, e.g. \"smtp.example.org:587\"",
        );
        let server = smtp.as_deref().and_then(|s| {
            let parsed = s
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim(), p.trim().parse::<u16>().ok()?)))
                .filter(|(h, p)| !h.is_empty() && *p != 0);
            if parsed.is_none() {
                self.error(
                    "alerts.email.smtp",
                    format!("`{s}` is not host:port"),
                    "e.g. \"smtp.example.org:587\" (STARTTLS) or \"smtp.example.org:465\" (tls)",
                );
            }
            parsed.map(|(h, p)| (h.trim_matches(|c| c == '[' || c == ']').to_owned(), p))
        });
        let security = match e.security.as_deref() {
            None | Some("starttls") => SmtpSecurity::StartTls,
            Some("tls") => SmtpSecurity::Tls,
            Some("none") => SmtpSecurity::None,
            Some(other) => {
                self.error(
                    "alerts.email.security",
                    format!("`{other}` is not a way to protect SMTP"),
                    "use \"starttls\" (port 587), \"tls\" (port 465) or \"none\" (a relay on this machine only)",
                );
                SmtpSecurity::StartTls
            }
        };
        if let Some((host, _)) = &server
            && security == SmtpSecurity::None
            && !loopback(host)
        {
            self.error(
                "alerts.email.security",
                format!("plain SMTP to {host} would send the alerts and the password in clear"),
                "use \"starttls\" or \"tls\"; \"none\" is for a relay on this machine (127.0.0.1)",
            );
        }
        let from = self.required(
            e.from,
            "alerts.email.from",
            "the sender's address, e.g. vigie@cabinet.example",
        );
        let from = from.filter(|f| self.mailbox(f, "alerts.email.from"));
        let to = e.to.unwrap_or_default();
        if to.is_empty() {
            self.error(
                "alerts.email.to",
                "no recipient",
                "list who reads the alerts, e.g. to: [dr.martin@cabinet.example]",
            );
        }
        let mut to_ok = true;
        for (i, t) in to.iter().enumerate() {
            to_ok &= self.mailbox(t, &format!("alerts.email.to[{i}]"));
        }
        let password = self
            .secret(
                AT,
                "password",
                (e.password, e.password_file, e.password_env),
            )
            .ok()?
            .map(|(s, _)| s);
        if password.is_some() != e.username.is_some() {
            self.error(
                "alerts.email.username",
                "username and password go together",
                "set both (the mail account Vigie sends from), or neither for a relay that needs none",
            );
        }
        if password.is_some() && security == SmtpSecurity::None {
            self.error(
                "alerts.email.password",
                "a password over plain SMTP",
                "use \"starttls\" or \"tls\", or a relay on this machine that needs no password",
            );
        }
        let ca_file = e.ca_file.map(PathBuf::from);
        let (host, port) = server?;
        (to_ok && !to.is_empty()).then_some(())?;
        Some(EmailChannel {
            host,
            port,
            security,
            ca_file,
            username: e.username,
            password,
            from: from?,
            to,
        })
    }

    fn mailbox(&mut self, text: &str, path: &str) -> bool {
        let ok = text.parse::<lettre::message::Mailbox>().is_ok();
        if !ok {
            self.error(
                path,
                format!("`{text}` is not an email address"),
                "e.g. dr.martin@cabinet.example or \"Dr Martin <dr.martin@cabinet.example>\"",
            );
        }
        ok
    }

    fn webhook(&mut self, w: FileWebhook) -> Option<WebhookChannel> {
        let text = self.required(
            w.url,
            "alerts.webhook.url",
            "the https:// address that receives the alerts as JSON",
        )?;
        let url = match text.parse::<http::Uri>() {
            Ok(u) if u.host().is_some() => u,
            _ => {
                self.error(
                    "alerts.webhook.url",
                    format!("`{text}` is not an absolute URL"),
                    "e.g. \"https://chat.example.org/hooks/vigie\"",
                );
                return None;
            }
        };
        let host = url.host().unwrap_or_default();
        match url.scheme_str() {
            Some("https") => {}
            Some("http") if loopback(host) => {}
            Some("http") => {
                self.error(
                    "alerts.webhook.url",
                    "http:// would send the alerts in clear",
                    "use https://; http:// is accepted only to this machine (127.0.0.1)",
                );
                return None;
            }
            _ => {
                self.error(
                    "alerts.webhook.url",
                    format!("`{text}` is neither https:// nor http://"),
                    "e.g. \"https://chat.example.org/hooks/vigie\"",
                );
                return None;
            }
        }
        if url.authority().is_some_and(|a| a.as_str().contains('@')) {
            self.error(
                "alerts.webhook.url",
                "the URL carries credentials",
                "put the secret in alerts.webhook.secret_file with a header name in alerts.webhook.header",
            );
            return None;
        }
        let secret = self
            .secret(
                "alerts.webhook",
                "secret",
                (w.secret, w.secret_file, w.secret_env),
            )
            .ok()?;
        let header = match (w.header, secret) {
            (None, None) => None,
            (Some(name), Some((value, key))) => {
                let Ok(name) = http::HeaderName::from_bytes(name.trim().as_bytes()) else {
                    self.error(
                        "alerts.webhook.header",
                        format!("`{name}` is not a header name"),
                        "e.g. X-Vigie-Token",
                    );
                    return None;
                };
                {
                    use secrecy::ExposeSecret;
                    if http::HeaderValue::from_str(value.expose_secret()).is_err() {
                        self.error(
                            &key,
                            "the secret cannot be sent in a header (control characters)",
                            "use printable characters only",
                        );
                        return None;
                    }
                }
                Some((name, value))
            }
            (Some(_), None) => {
                self.error(
                    "alerts.webhook.secret",
                    "a header name without a secret",
                    "set secret_file (or secret_env), or remove header",
                );
                return None;
            }
            (None, Some(_)) => {
                self.error(
                    "alerts.webhook.header",
                    "a secret without a header to carry it",
                    "name the header, e.g. header: X-Vigie-Token",
                );
                return None;
            }
        };
        Some(WebhookChannel {
            url,
            ca_file: w.ca_file.map(PathBuf::from),
            header,
        })
    }

    fn off_hours(&mut self, o: FileOffHours) -> Option<WorkingHours> {
        let hours = o.hours.unwrap_or_else(|| "07:00-20:00".into());
        let span = hours
            .split_once('-')
            .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
            .filter(|(a, b)| a != b);
        if span.is_none() {
            self.error(
                "alerts.off_hours.hours",
                format!("`{hours}` is not a span of hours"),
                "write it as \"07:00-20:00\" (24-hour clock; \"22:00-06:00\" spans midnight)",
            );
        }
        let days_text = o.days.unwrap_or_else(|| "mon-sat".into());
        let days = week_days(&days_text);
        if days.is_none() {
            self.error(
                "alerts.off_hours.days",
                format!("`{days_text}` is not a list of days"),
                "e.g. mon-fri, mon-sat or mon,tue,thu,fri",
            );
        }
        let Some(time_zone) = o.time_zone else {
            self.error(
                "alerts.off_hours.time_zone",
                "this key is required",
                "the practice's IANA time zone, e.g. Europe/Paris",
            );
            return None;
        };
        let zone = match jiff::tz::TimeZone::get(time_zone.trim()) {
            Ok(z) => z,
            Err(_) => {
                self.error(
                    "alerts.off_hours.time_zone",
                    format!("`{time_zone}` is not a time zone this machine knows"),
                    "an IANA name such as Europe/Paris or America/Martinique (the tzdata package provides them)",
                );
                return None;
            }
        };
        let (start, end) = span?;
        Some(WorkingHours {
            start,
            end,
            days: days?,
            time_zone,
            zone,
        })
    }
}

/// `07:30` → 450; `24:00` is the end of the day.
fn minutes(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `mon-fri`, `mon,wed,fri`, `sat-sun`, `mon-wed,fri`.
fn week_days(text: &str) -> Option<[bool; 7]> {
    let day = |d: &str| DAYS.iter().position(|x| x.eq_ignore_ascii_case(d.trim()));
    let mut days = [false; 7];
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                if a > b {
                    return None;
                }
                days[a..=b].iter_mut().for_each(|d| *d = true);
            }
            None => days[day(part)?] = true,
        }
    }
    Some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "server_name: viewer.example.org\nlisten:\n  https: \"0.0.0.0:8443\"\ntls:\n  cert_file: a.crt\n  key_file: a.key\nupstream:\n  url: \"http://127.0.0.1:8042\"\nstate_dir: /tmp/vigie-test\n";

    fn problems(alerts: &str) -> Vec<String> {
        match crate::config::Config::from_yaml(&format!("{BASE}alerts:\n{alerts}")) {
            Ok(_) => vec![],
            Err(e) => e
                .problems()
                .into_iter()
                .filter(|p| p.severity == crate::config::Severity::Error)
                .map(|p| p.path)
                .collect(),
        }
    }

    #[test]
    fn defaults_suit_a_small_practice() {
        let (c, _) = crate::config::Config::from_yaml(BASE).unwrap();
        let a = &c.alerts;
        assert!(a.email.is_none() && a.webhook.is_none() && a.off_hours.is_none());
        let f = &a.failed_sign_ins;
        assert_eq!((f.per_account, f.per_address, f.overall), (3, 5, 20));
        assert_eq!(f.window.as_secs(), 600);
        assert_eq!(a.volume.studies, 50);
        assert_eq!(a.repeat_after.as_secs(), 3600);
        assert!(!a.english);
    }

    #[test]
    fn channels_are_encrypted_unless_local_and_every_problem_names_its_key() {
        let ok = "  email:\n    smtp: \"127.0.0.1:25\"\n    security: none\n    from: v@c.test\n    to: [a@c.test]\n  webhook:\n    url: \"http://127.0.0.1:9/h\"\n";
        assert_eq!(problems(ok), Vec::<String>::new());
        let bad = "  lang: de\n  email:\n    smtp: \"smtp.example.org:25\"\n    security: none\n    from: nobody\n    to: []\n  webhook:\n    url: \"http://hooks.example.org/h\"\n  off_hours:\n    hours: \"7-20\"\n    time_zone: Mars/Olympus\n  repeat_after: 0s\n";
        let p = problems(bad);
        for want in [
            "alerts.lang",
            "alerts.email.security",
            "alerts.email.from",
            "alerts.email.to",
            "alerts.webhook.url",
            "alerts.off_hours.hours",
            "alerts.off_hours.time_zone",
            "alerts.repeat_after",
        ] {
            assert!(p.iter().any(|x| x == want), "missing {want} in {p:?}");
        }
        // A password goes with a user name, and never over plain SMTP.
        let pw = "  email:\n    smtp: \"127.0.0.1:25\"\n    security: none\n    password: x\n    from: v@c.test\n    to: [a@c.test]\n";
        let p = problems(pw);
        assert!(p.contains(&"alerts.email.username".to_string()), "{p:?}");
        assert!(p.contains(&"alerts.email.password".to_string()), "{p:?}");
        // A header needs its secret.
        let hdr = "  webhook:\n    url: \"https://hooks.example.org/h\"\n    header: X-Token\n";
        assert_eq!(problems(hdr), ["alerts.webhook.secret"]);
        assert_eq!(problems("  typo: 1\n"), ["alerts.typo"]);
    }

    #[test]
    fn hours_and_days() {
        assert_eq!(minutes("07:00"), Some(420));
        assert_eq!(minutes("24:00"), Some(1440));
        assert_eq!(minutes("7h"), None);
        assert_eq!(minutes("12:60"), None);
        let d = week_days("mon-fri").unwrap();
        assert_eq!(d, [true, true, true, true, true, false, false]);
        let d = week_days("mon,wed-thu,sun").unwrap();
        assert_eq!(d, [true, false, true, true, false, false, true]);
        assert!(week_days("fri-mon").is_none());
        assert!(week_days("lundi").is_none());
    }

    #[test]
    fn loopback_only_for_clear_text() {
        assert!(loopback("127.0.0.1"));
        assert!(loopback("[::1]"));
        assert!(loopback("localhost"));
        assert!(!loopback("smtp.example.org"));
        assert!(!loopback("10.0.0.2"));
    }
}
