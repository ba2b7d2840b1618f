//! What an alert says: the facts a rule found ([`Facts`]), and their wording in French or
//! English for a mail (a subject line and a body: what happened, when, who or what is
//! concerned, what to do) and for the webhook (JSON). Never a password, a token, a cookie or an
//! image: the facts hold names, addresses, counts and times only.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use super::{Alert, Severity};
use crate::lang::Lang;

/// Who a count of failed sign-ins is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    Account(String),
    Address(IpAddr),
    /// Every account and address together.
    All,
}

/// What a rule found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Facts {
    FailedSignIns {
        scope: Scope,
        count: usize,
        window: Duration,
    },
    Lockout {
        account: Option<String>,
        client: IpAddr,
        seconds: u64,
    },
    Volume {
        user: String,
        /// `studies` or `patients`.
        what: &'static str,
        count: usize,
        window: Duration,
    },
    /// Data that left as files (`download`) or was sent elsewhere (`export`). No patient is
    /// named in the alert: the trail has who it was.
    Download {
        user: String,
        client: IpAddr,
        export: bool,
        bytes: u64,
    },
    NewAddress {
        user: String,
        client: IpAddr,
    },
    OffHours {
        user: String,
        client: IpAddr,
        /// The local time, in the configured zone (`2026-03-14 23:12 Europe/Paris`).
        local: String,
        /// `signed in`, `viewed`, …
        action: &'static str,
    },
    UpstreamOpen {
        detail: String,
    },
    Certificate {
        detail: String,
    },
    /// The gateway keeps failing to renew the certificate it obtains itself (ACME, the
    /// practice CA). The error is the CA's or the system's message, never a key.
    CertificateRenewal {
        failures: u32,
        /// Days the served certificate has left; `None` when there is none yet.
        days_left: Option<i64>,
        error: String,
    },
    AuditFailure {
        detail: String,
    },
    /// `vigie alert test`.
    Test,
}

impl Facts {
    pub(crate) fn rule(&self) -> &'static str {
        match self {
            Facts::FailedSignIns { .. } => "failed_sign_ins",
            Facts::Lockout { .. } => "lockout",
            Facts::Volume { .. } => "volume",
            Facts::Download { .. } => "download",
            Facts::NewAddress { .. } => "new_address",
            Facts::OffHours { .. } => "off_hours",
            Facts::UpstreamOpen { .. } => "upstream_open",
            Facts::Certificate { .. } => "certificate",
            Facts::CertificateRenewal { .. } => "certificate_renewal",
            Facts::AuditFailure { .. } => "audit_failure",
            Facts::Test => "test",
        }
    }

    pub(crate) fn subject(&self) -> String {
        match self {
            Facts::FailedSignIns { scope, .. } => match scope {
                Scope::Account(a) => format!("account {a}"),
                Scope::Address(ip) => format!("address {ip}"),
                Scope::All => "all".into(),
            },
            Facts::Lockout {
                account: Some(a), ..
            } => format!("account {a}"),
            Facts::Lockout { client, .. } => format!("address {client}"),
            Facts::Volume { user, what, .. } => format!("user {user} {what}"),
            Facts::Download { user, .. } | Facts::OffHours { user, .. } => format!("user {user}"),
            Facts::NewAddress { user, client } => format!("user {user} from {client}"),
            Facts::UpstreamOpen { .. }
            | Facts::Certificate { .. }
            | Facts::CertificateRenewal { .. }
            | Facts::AuditFailure { .. }
            | Facts::Test => String::new(),
        }
    }

    /// One line naming what happened and to whom (the mail's subject, the trail's summary).
    pub(crate) fn headline(&self, lang: Lang) -> String {
        let fr = lang == Lang::Fr;
        match self {
            Facts::FailedSignIns {
                scope,
                count,
                window,
            } => {
                let w = minutes(*window);
                match (scope, fr) {
                    (Scope::Account(a), true) => {
                        format!("{count} connexions refusées pour le compte {a} en {w} min")
                    }
                    (Scope::Account(a), false) => {
                        format!("{count} failed sign-ins for account {a} within {w} min")
                    }
                    (Scope::Address(ip), true) => {
                        format!("{count} connexions refusées depuis l'adresse {ip} en {w} min")
                    }
                    (Scope::Address(ip), false) => {
                        format!("{count} failed sign-ins from address {ip} within {w} min")
                    }
                    (Scope::All, true) => format!("{count} connexions refusées en {w} min"),
                    (Scope::All, false) => format!("{count} failed sign-ins within {w} min"),
                }
            }
            Facts::Lockout {
                account,
                client,
                seconds,
            } => {
                let m = seconds.div_ceil(60);
                match (account, fr) {
                    (Some(a), true) => format!("compte {a} bloqué {m} min (depuis {client})"),
                    (Some(a), false) => format!("account {a} locked for {m} min (from {client})"),
                    (None, true) => format!("adresse {client} bloquée {m} min"),
                    (None, false) => format!("address {client} locked out for {m} min"),
                }
            }
            Facts::Volume {
                user,
                what,
                count,
                window,
            } => {
                let w = minutes(*window);
                let fr_what = if *what == "studies" {
                    "examens"
                } else {
                    "patients"
                };
                if fr {
                    format!("{user} a consulté {count} {fr_what} différents en {w} min")
                } else {
                    format!("{user} accessed {count} distinct {what} within {w} min")
                }
            }
            Facts::Download {
                user,
                client,
                export,
                bytes,
            } => {
                let mb = format!("{:.1}", *bytes as f64 / 1_000_000.0);
                match (export, fr) {
                    (false, true) => {
                        format!("{user} a téléchargé des images ({mb} Mo, depuis {client})")
                    }
                    (false, false) => format!("{user} downloaded images ({mb} MB, from {client})"),
                    (true, true) => {
                        format!("{user} a envoyé des images ailleurs (depuis {client})")
                    }
                    (true, false) => format!("{user} sent images elsewhere (from {client})"),
                }
            }
            Facts::NewAddress { user, client } => {
                if fr {
                    format!("{user} s'est connecté depuis une adresse nouvelle : {client}")
                } else {
                    format!("{user} signed in from a new address: {client}")
                }
            }
            Facts::OffHours {
                user,
                client,
                local,
                action,
            } => {
                if fr {
                    let a = match *action {
                        "signed in" => "connexion",
                        "downloaded" => "téléchargement",
                        "searched" => "recherche",
                        _ => "accès aux données",
                    };
                    format!("{a} de {user} hors des heures d'ouverture ({local}, depuis {client})")
                } else {
                    format!("{user} {action} outside working hours ({local}, from {client})")
                }
            }
            Facts::UpstreamOpen { .. } => lang
                .pick_text(
                    "le visualiseur répond sans identifiants",
                    "the viewer answers without credentials",
                )
                .into(),
            Facts::Certificate { detail } => lang.pick_text(
                format!("certificat : {detail}"),
                format!("certificate: {detail}"),
            ),
            Facts::CertificateRenewal {
                failures,
                days_left,
                error,
            } => match days_left {
                Some(d) => lang.pick_text(
                    format!("le renouvellement du certificat échoue ({failures} essais ; il expire dans {d} jours) : {error}"),
                    format!("certificate renewal keeps failing ({failures} attempts; it expires in {d} days): {error}"),
                ),
                None => lang.pick_text(
                    format!("aucun certificat n'a pu être obtenu ({failures} essais ; les connexions sont refusées) : {error}"),
                    format!("no certificate could be obtained ({failures} attempts; connections are refused): {error}"),
                ),
            },
            Facts::AuditFailure { detail } => lang.pick_text(
                format!("le journal d'audit ne peut pas être écrit : {detail}"),
                format!("the audit trail cannot be written: {detail}"),
            ),
            Facts::Test => lang
                .pick_text(
                    "alerte de test (vigie alert test)",
                    "test alert (vigie alert test)",
                )
                .into(),
        }
    }

    /// What to do about it.
    pub(crate) fn advice(&self, lang: Lang) -> &'static str {
        match self {
            Facts::FailedSignIns { .. } => lang.pick_text(
                "Si ce n'est pas une erreur de frappe d'un collègue, quelqu'un essaie des mots de passe : vérifiez l'adresse, prévenez le titulaire du compte, et changez son mot de passe s'il a pu être deviné.",
                "Unless a colleague mistyped, someone is trying passwords: check the address, tell the account's owner, and change the password if it could have been guessed.",
            ),
            Facts::Lockout { .. } => lang.pick_text(
                "Le blocage se lève seul. Si le titulaire du compte n'y est pour rien, changez son mot de passe et regardez d'où venaient les essais (vigie audit report).",
                "The lockout lifts by itself. If the account's owner was not the one trying, change the password and look where the attempts came from (vigie audit report).",
            ),
            Facts::Volume { .. } => lang.pick_text(
                "Demandez à cet utilisateur ce qu'il consultait. S'il ne le sait pas, désactivez son compte (disabled: true) : ses sessions prennent fin.",
                "Ask this user what they were looking at. If they do not know, disable the account (disabled: true): its sessions end.",
            ),
            Facts::Download { .. } => lang.pick_text(
                "Des images sont sorties en fichier. Vérifiez que c'était prévu (un envoi à un confrère, un CD au patient).",
                "Images left as a file. Check that it was expected (sent to a colleague, a CD for the patient).",
            ),
            Facts::NewAddress { .. } => lang.pick_text(
                "Si ce n'est pas cet utilisateur (nouveau lieu, nouveau réseau), désactivez son compte et changez son mot de passe et son code TOTP.",
                "If it was not this user (a new place or network), disable the account and change its password and TOTP secret.",
            ),
            Facts::OffHours { .. } => lang.pick_text(
                "Vérifiez auprès de l'utilisateur qu'il travaillait bien à cette heure.",
                "Check with the user that they were indeed working at that time.",
            ),
            Facts::UpstreamOpen { .. } => lang.pick_text(
                "Quiconque atteint le port du visualiseur lit les images sans passer par Vigie : exigez un mot de passe dans le visualiseur (Orthanc : AuthenticationEnabled) et donnez-le à Vigie (upstream.credentials).",
                "Anyone who reaches the viewer's port reads the images without Vigie: require a password in the viewer (Orthanc: AuthenticationEnabled) and give it to Vigie (upstream.credentials).",
            ),
            Facts::Certificate { .. } => lang.pick_text(
                "Renouvelez le certificat et remplacez les fichiers (Vigie les recharge sans redémarrage) ; s'il l'obtient lui-même (ACME, autorité du cabinet), lancez vigie check pour la dernière erreur.",
                "Renew the certificate and replace the files (Vigie reloads them without a restart); when Vigie obtains it itself (ACME, practice CA), run vigie check for the last error.",
            ),
            Facts::CertificateRenewal { .. } => lang.pick_text(
                "Lancez vigie check : il donne la dernière erreur. En général, le nom ne pointe pas vers la box, ou la box ne redirige pas le port 443 (tls-alpn-01) ou 80 (http-01) vers Vigie. Vigie réessaie seul et garde le certificat actuel.",
                "Run vigie check: it shows the last error. Usually the name does not point to the internet box, or the box does not forward port 443 (tls-alpn-01) or 80 (http-01) to Vigie. Vigie keeps retrying and keeps the current certificate.",
            ),
            Facts::AuditFailure { .. } => lang.pick_text(
                "Les accès ne sont plus tous enregistrés : vérifiez l'espace disque et les droits du dossier d'audit, puis lancez vigie audit verify.",
                "Accesses are no longer all recorded: check the disk space and the audit directory's permissions, then run vigie audit verify.",
            ),
            Facts::Test => lang.pick_text(
                "Rien à faire : ce message montre que les alertes arrivent.",
                "Nothing to do: this message shows that alerts arrive.",
            ),
        }
    }
}

fn minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60)
}

/// An alert as it is sent: its rule, the count held back before it, and the gateway's name.
pub(crate) struct Outgoing<'a> {
    pub(crate) alert: &'a Alert,
    pub(crate) suppressed: u64,
    pub(crate) server: &'a str,
    pub(crate) lang: Lang,
}

impl Outgoing<'_> {
    /// The mail's subject line.
    pub(crate) fn subject(&self) -> String {
        let level = match (self.alert.severity, self.lang) {
            (Severity::Critical, Lang::Fr) => "CRITIQUE",
            (Severity::High, Lang::Fr) => "GRAVE",
            (Severity::Warning, Lang::Fr) => "ATTENTION",
            (Severity::Critical, Lang::En) => "CRITICAL",
            (Severity::High, Lang::En) => "HIGH",
            (Severity::Warning, Lang::En) => "WARNING",
            (Severity::Info, _) => "INFO",
        };
        format!(
            "[Vigie {}] {level}: {}",
            self.server,
            self.alert.facts.headline(self.lang)
        )
    }

    /// The mail's body, plain text.
    pub(crate) fn text(&self) -> String {
        let a = self.alert;
        let l = self.lang;
        let mut out = String::new();
        out.push_str(&a.facts.headline(l));
        out.push_str("\n\n");
        out.push_str(&format!(
            "{}: {}\n{}: {}\n{}: {}\n",
            l.pick_text("Règle", "Rule"),
            a.rule(),
            l.pick_text("Quand (UTC)", "When (UTC)"),
            rfc3339(a.at),
            l.pick_text("Passerelle", "Gateway"),
            self.server,
        ));
        if self.suppressed > 0 {
            out.push_str(&l.pick_text(
                format!(
                    "Alertes semblables retenues depuis la précédente : {}\n",
                    self.suppressed
                ),
                format!(
                    "Similar alerts held back since the previous one: {}\n",
                    self.suppressed
                ),
            ));
        }
        if let Facts::UpstreamOpen { detail } = &a.facts {
            out.push_str(detail);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(a.facts.advice(l));
        out.push_str("\n\n");
        out.push_str(l.pick_text(
            "Le détail est dans le journal d'audit (vigie audit report). Ce message ne contient aucun mot de passe ni aucune image.\n",
            "The details are in the audit trail (vigie audit report). This message holds no password and no image.\n",
        ));
        out
    }

    /// The webhook's JSON body.
    pub(crate) fn json(&self) -> serde_json::Value {
        let a = self.alert;
        json!({
            "source": "vigie",
            "gateway": self.server,
            "rule": a.rule(),
            "severity": a.severity.as_str(),
            "subject": a.subject(),
            "time": rfc3339(a.at),
            "summary": a.facts.headline(self.lang),
            "advice": a.facts.advice(self.lang),
            "suppressed": self.suppressed,
            // Chat services (Slack, Mattermost, Rocket.Chat) show `text`.
            "text": self.subject(),
        })
    }
}

/// RFC 3339, UTC, to the second.
pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}
