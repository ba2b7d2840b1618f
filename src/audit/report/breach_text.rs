//! The art. 33 draft in French or English, in the order of the CNIL's online notification form:
//! the notification and its contact, the chronology (with the 72-hour deadline), the nature of
//! the incident, the data and persons concerned, the accounts and addresses, what the gateway
//! did, then the parts only the practice can write, marked `[À COMPLÉTER …]` / `[TO FILL IN …]`.
//!
//! Longer than our usual 500 lines: it is prose, each sentence in both languages side by side
//! (one function per section of the form), and splitting it would scatter one document.

use std::fmt::Write as _;

use super::breach::{BreachReport, Deadline, Figures, Involved};
use super::text::{account, alert_table, header, table};
use super::words::{clean, count, operation, span, stamp, stamp_text};
use crate::lang::Lang;

/// Where the CNIL takes notifications.
const CNIL_FORM: &str = "https://notifications.cnil.fr/notifications/index";

fn blank(lang: Lang, what: &str) -> String {
    lang.pick_text(
        format!("[À COMPLÉTER : {what}]"),
        format!("[TO FILL IN: {what}]"),
    )
}

fn section(out: &mut String, n: u8, fr: &str, en: &str, lang: Lang) {
    let _ = writeln!(out, "\n{n}. {}", lang.pick_text(fr, en));
}

/// The draft.
pub(super) fn text(r: &BreachReport, lang: Lang) -> String {
    let l = lang;
    let mut out = String::new();
    let title = l.pick_text(
        "Vigie : projet de notification d'une violation de données personnelles (RGPD, art. 33)",
        "Vigie: draft notification of a personal data breach (GDPR art. 33)",
    );
    header(&mut out, title, &r.trail, &r.period, l);
    let _ = writeln!(
        out,
        "{}",
        l.pick_text(
            format!(
                "Ce projet suit les rubriques du formulaire de notification en ligne de la CNIL ({CNIL_FORM}).\nIl rapporte ce que montre le journal d'audit de la passerelle ; le cabinet le vérifie,\ncomplète les parties marquées [À COMPLÉTER] et fait lui-même la notification."
            ),
            format!(
                "This draft follows the sections of the CNIL's online notification form ({CNIL_FORM}).\nIt reports what the gateway's audit trail shows; the practice checks it, completes the parts\nmarked [TO FILL IN] and submits the notification itself."
            ),
        )
    );

    section(
        &mut out,
        1,
        "Notification et contact",
        "Notification and contact",
        l,
    );
    let _ = writeln!(
        out,
        "  {} {}\n  {} {}\n  {} {}",
        l.pick_text("Type :", "Type:"),
        blank(
            l,
            l.pick_text(
                "notification initiale, ou complémentaire (n° de la notification initiale)",
                "initial notification, or complementary (number of the initial one)"
            )
        ),
        l.pick_text("Responsable du traitement :", "Controller:"),
        blank(
            l,
            l.pick_text(
                "nom du cabinet, adresse, SIRET",
                "name of the practice, address, registration number"
            )
        ),
        l.pick_text(
            "Contact (DPO ou autre personne) :",
            "Contact (DPO or other person):"
        ),
        blank(
            l,
            l.pick_text("nom, courriel, téléphone", "name, email, telephone")
        ),
    );

    section(&mut out, 2, "Chronologie", "Chronology", l);
    chronology(&mut out, r, l);

    section(
        &mut out,
        3,
        "Nature de l'incident (selon le journal d'audit)",
        "Nature of the incident (as the audit trail shows it)",
        l,
    );
    nature(&mut out, r, l);

    section(
        &mut out,
        4,
        "Données et personnes concernées",
        "Data and persons concerned",
        l,
    );
    concerned(&mut out, r, l);

    section(
        &mut out,
        5,
        "Comptes et adresses en cause",
        "Accounts and addresses involved",
        l,
    );
    involved(&mut out, r, l);

    section(
        &mut out,
        6,
        "Ce que la passerelle a fait",
        "What the gateway did",
        l,
    );
    gateway(&mut out, r, l);

    section(
        &mut out,
        7,
        "Conséquences probables pour les personnes",
        "Likely consequences for the persons",
        l,
    );
    let _ = writeln!(
        out,
        "  {}",
        blank(
            l,
            l.pick_text(
                "atteinte à la confidentialité de données de santé ; risque pour les personnes (faible, élevé) et pourquoi",
                "loss of confidentiality of health data; the risk to the persons (low, high) and why"
            )
        )
    );
    section(
        &mut out,
        8,
        "Mesures prises ou envisagées",
        "Measures taken or planned",
        l,
    );
    let _ = writeln!(
        out,
        "  {}",
        blank(
            l,
            l.pick_text(
                "mots de passe changés, comptes désactivés, `vigie rotate-keys --end-all-sessions`, plainte, mesures pour éviter que cela se reproduise",
                "passwords changed, accounts disabled, `vigie rotate-keys --end-all-sessions`, complaint filed, measures so that it does not happen again"
            )
        )
    );
    section(
        &mut out,
        9,
        "Information des personnes concernées (art. 34)",
        "Informing the persons concerned (art. 34)",
        l,
    );
    let _ = writeln!(
        out,
        "  {}",
        blank(
            l,
            l.pick_text(
                "informées (quand, comment), à informer, ou non et pourquoi ; obligatoire si le risque est élevé",
                "informed (when, how), to be informed, or not and why; required when the risk is high"
            )
        )
    );
    out
}

fn chronology(out: &mut String, r: &BreachReport, l: Lang) {
    let _ = writeln!(
        out,
        "  {} {} → {} (UTC)",
        l.pick_text("Période examinée :", "Period examined:"),
        stamp_text(&r.period.from),
        stamp_text(&r.period.to)
    );
    let first_sign = r
        .alerts
        .iter()
        .map(|a| &a.time)
        .chain(r.refusals.sign_ins.iter().map(|s| &s.time))
        .chain(r.refusals.lockouts.iter().map(|s| &s.time))
        .chain(r.refusals.policy.iter().map(|s| &s.time))
        .min();
    if let Some(t) = first_sign {
        let _ = writeln!(
            out,
            "  {} {} (UTC)",
            l.pick_text(
                "Premier signe dans le journal (début probable) :",
                "First sign in the trail (likely start):"
            ),
            stamp_text(t)
        );
    }
    let rule = r.first_rule.as_deref().map(clean).unwrap_or_default();
    match r.deadline {
        Deadline::Unknown => {
            let _ = writeln!(
                out,
                "  {}\n  {} {}",
                l.pick_text(
                    "Prise de connaissance : aucune alerte dans la période, le journal ne permet pas de la dater.",
                    "Awareness: no alert in the period; the trail cannot date it."
                ),
                l.pick_text("Date de prise de connaissance :", "Date of awareness:"),
                blank(
                    l,
                    l.pick_text(
                        "date et heure ; le délai de 72 heures court à partir d'elle",
                        "date and time; the 72 hours run from it"
                    )
                )
            );
        }
        Deadline::Running { awareness, due, .. } | Deadline::Overdue { awareness, due, .. } => {
            let _ = writeln!(
                out,
                "  {} {} (UTC)",
                l.pick_text("Prise de connaissance :", "Awareness:"),
                stamp(awareness)
            );
            let _ = writeln!(
                out,
                "  {}",
                l.pick_text(
                    format!(
                        "  Hypothèse : la première alerte de la période (règle {rule}). Si le cabinet a eu\n    connaissance de la violation autrement ou plus tôt, corrigez cette date : le délai court à partir d'elle."
                    ),
                    format!(
                        "  Assumed to be the first alert of the period (rule {rule}). If the practice learnt of\n    the breach otherwise or earlier, correct this date: the deadline runs from it."
                    ),
                )
            );
            let _ = writeln!(
                out,
                "  {} {} (UTC)",
                l.pick_text(
                    "Échéance de la notification (72 heures) :",
                    "Notification due (72 hours):"
                ),
                stamp(due)
            );
        }
    }
    let now = stamp(r.now);
    match r.deadline {
        Deadline::Running { left, .. } => {
            let _ = writeln!(
                out,
                "  {}",
                l.pick_text(
                    format!("Temps restant au {now} : {}.", span(left)),
                    format!("Time left as of {now}: {}.", span(left)),
                )
            );
        }
        Deadline::Overdue { late, .. } => {
            let _ = writeln!(
                out,
                "  {}",
                l.pick_text(
                    format!(
                        "!!! DÉLAI DÉPASSÉ de {} au {now} : notifiez sans attendre et indiquez les motifs du retard.",
                        span(late)
                    ),
                    format!(
                        "!!! OVERDUE by {} as of {now}: notify without delay and give the reasons for the delay.",
                        span(late)
                    ),
                )
            );
        }
        Deadline::Unknown => {}
    }
    let channels: Vec<String> = r
        .alerts
        .first()
        .map(|a| a.channels.clone())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {} {}",
        l.pick_text("Moyen de découverte :", "How it was discovered:"),
        match (r.alerts.is_empty(), channels.is_empty()) {
            (true, _) => blank(l, l.pick_text("comment", "how")),
            (false, true) => l
                .pick_text(
                    "alerte de la passerelle Vigie",
                    "an alert raised by the Vigie gateway"
                )
                .to_string(),
            (false, false) => format!(
                "{} ({})",
                l.pick_text(
                    "alerte de la passerelle Vigie",
                    "an alert raised by the Vigie gateway"
                ),
                clean(&channels.join("; "))
            ),
        }
    );
    let _ = writeln!(
        out,
        "  {} {}",
        l.pick_text("La violation est-elle terminée ?", "Is the breach over?"),
        blank(l, l.pick_text("oui, non, ne sait pas", "yes, no, unknown"))
    );
}

fn nature(out: &mut String, r: &BreachReport, l: Lang) {
    let _ = writeln!(
        out,
        "  {} ({})",
        l.pick_text("Alertes levées", "Alerts raised"),
        r.alerts.len()
    );
    if !r.alerts.is_empty() {
        alert_table(out, "    ", &r.alerts, l);
    }
    let f = &r.refusals;
    let _ = writeln!(
        out,
        "  {}",
        l.pick_text(
            format!(
                "Connexions refusées : {} ; verrouillages : {} ; requêtes refusées par la politique d'accès : {}.",
                f.sign_ins.len(),
                f.lockouts.len(),
                f.policy.len()
            ),
            format!(
                "Sign-ins refused: {}; lockouts: {}; requests refused by the access policy: {}.",
                f.sign_ins.len(),
                f.lockouts.len(),
                f.policy.len()
            ),
        )
    );
    let _ = writeln!(
        out,
        "  {}",
        l.pick_text(
            "Activité de chaque compte dans la période (* : compte en cause) :",
            "Each account's activity in the period (*: account involved):"
        )
    );
    if r.everyone.is_empty() && r.involved.is_empty() {
        let _ = writeln!(
            out,
            "    {}",
            l.pick_text(
                "aucun accès aux données des patients",
                "no access to patient data"
            )
        );
    } else {
        let head = match l {
            Lang::Fr => [
                "compte",
                "patients",
                "études",
                "consultations",
                "téléchargements",
                "autres",
                "requêtes",
                "octets",
            ],
            Lang::En => [
                "account",
                "patients",
                "studies",
                "viewings",
                "downloads",
                "other",
                "requests",
                "bytes",
            ],
        };
        let mut names: Vec<&String> = r.everyone.keys().chain(r.involved.keys()).collect();
        names.sort();
        names.dedup();
        let rows: Vec<Vec<String>> = names
            .into_iter()
            .map(|n| {
                let i = r.everyone.get(n).or_else(|| r.involved.get(n));
                let mark = if r.involved.contains_key(n) { "*" } else { "" };
                activity_row(&format!("{n}{mark}"), i, l)
            })
            .collect();
        table(out, "    ", &head, &rows);
    }
    let _ = writeln!(
        out,
        "  {} {}\n  {} {}",
        l.pick_text("Type de violation :", "Type of breach:"),
        blank(
            l,
            l.pick_text(
                "perte de confidentialité, d'intégrité, de disponibilité",
                "loss of confidentiality, integrity, availability"
            )
        ),
        l.pick_text("Origine et cause :", "Origin and cause:"),
        blank(
            l,
            l.pick_text(
                "par ex. mot de passe volé, acte interne malveillant, erreur",
                "e.g. stolen password, malicious insider, mistake"
            )
        )
    );
}

fn activity_row(name: &str, i: Option<&Involved>, l: Lang) -> Vec<String> {
    let Some(i) = i else {
        let mut row = vec!["0".to_string(); 8];
        row[0] = name.to_string();
        row[5] = String::new();
        return row;
    };
    let op = |o: &str| i.operations.get(o).copied().unwrap_or(0);
    let other: Vec<String> = i
        .operations
        .iter()
        .filter(|(o, _)| !matches!(o.as_str(), "view" | "download"))
        .map(|(o, n)| format!("{n} {}", operation(o, l)))
        .collect();
    vec![
        name.to_string(),
        i.patients.len().to_string(),
        i.studies.len().to_string(),
        op("view").to_string(),
        op("download").to_string(),
        other.join(", "),
        i.requests.to_string(),
        i.bytes.to_string(),
    ]
}

fn concerned(out: &mut String, r: &BreachReport, l: Lang) {
    let _ = writeln!(
        out,
        "  {}\n  {}",
        l.pick_text(
            "Catégories de personnes : patients du cabinet.",
            "Categories of persons: the practice's patients."
        ),
        l.pick_text(
            "Catégories de données : données de santé (images médicales, études DICOM), identité\n    (nom, identifiant patient), date et description des examens.",
            "Categories of data: health data (medical images, DICOM studies), identity (name, patient\n    ID), date and description of the examinations."
        )
    );
    let mine = BreachReport::figures(r.involved.values());
    let all = BreachReport::figures(r.everyone.values());
    let line = |f: Figures, fr: &str, en: &str| {
        let counts = [
            count(
                f.patients,
                l,
                ("patient", "patients"),
                ("patient", "patients"),
            ),
            count(f.studies, l, ("étude", "études"), ("study", "studies")),
            count(
                f.requests as usize,
                l,
                ("requête", "requêtes"),
                ("request", "requests"),
            ),
            count(
                f.downloads as usize,
                l,
                ("téléchargement", "téléchargements"),
                ("download", "downloads"),
            ),
        ];
        let [p, s, q, d] = counts;
        l.pick_text(
            format!("{fr} : {p}, {s}, {q} (dont {d})."),
            format!("{en}: {p}, {s}, {q} ({d})."),
        )
    };
    let _ = writeln!(
        out,
        "  {}",
        line(
            mine,
            "Nombre approximatif, par les comptes en cause",
            "Approximate numbers, by the accounts involved"
        )
    );
    let _ = writeln!(
        out,
        "  {}",
        line(
            all,
            "Pour comparaison, par tous les comptes",
            "For comparison, by every account"
        )
    );
    let _ = writeln!(
        out,
        "  {}",
        l.pick_text(
            "(personnes : patients distincts dont les données ont été consultées ; enregistrements : études et requêtes)",
            "(persons: distinct patients whose data was accessed; records: studies and requests)"
        )
    );
}

fn involved(out: &mut String, r: &BreachReport, l: Lang) {
    if r.involved.is_empty() {
        let _ = writeln!(
            out,
            "  {}",
            l.pick_text(
                "Comptes : aucun compte n'est mis en cause par le journal.",
                "Accounts: the trail ties no account to the incident."
            )
        );
    } else {
        let head = match l {
            Lang::Fr => ["compte", "pourquoi", "adresses utilisées"],
            Lang::En => ["account", "why", "addresses used"],
        };
        let rows: Vec<Vec<String>> = r
            .involved
            .values()
            .map(|i| {
                let why: Vec<&str> = i.why.iter().map(|w| why(w, l)).collect();
                vec![
                    i.user.clone(),
                    why.join(", "),
                    i.addresses.iter().cloned().collect::<Vec<_>>().join(", "),
                ]
            })
            .collect();
        table(out, "  ", &head, &rows);
    }
    if r.addresses.is_empty() {
        return;
    }
    out.push('\n');
    let head = match l {
        Lang::Fr => [
            "adresse",
            "connexions refusées",
            "verrouillages",
            "dans une alerte",
            "comptes",
        ],
        Lang::En => [
            "address",
            "sign-ins refused",
            "lockouts",
            "in an alert",
            "accounts",
        ],
    };
    let rows: Vec<Vec<String>> = r
        .addresses
        .iter()
        .map(|(addr, a)| {
            vec![
                addr.clone(),
                a.sign_in_failures.to_string(),
                a.lockouts.to_string(),
                l.pick_text(
                    if a.in_alert { "oui" } else { "" },
                    if a.in_alert { "yes" } else { "" },
                )
                .to_string(),
                a.accounts.iter().cloned().collect::<Vec<_>>().join(", "),
            ]
        })
        .collect();
    table(out, "  ", &head, &rows);
}

fn why(code: &str, l: Lang) -> &'static str {
    match code {
        "alert" => l.pick_text("nommé dans une alerte", "named in an alert"),
        "sign_in_refused" => l.pick_text("connexion refusée", "sign-in refused"),
        "locked_out" => l.pick_text("verrouillé", "locked out"),
        "access_refused" => l.pick_text("requête refusée", "request refused"),
        "session_revoked" => l.pick_text("session révoquée", "session revoked"),
        _ => "",
    }
}

fn gateway(out: &mut String, r: &BreachReport, l: Lang) {
    let mut any = false;
    for lock in &r.refusals.lockouts {
        any = true;
        let who = account(lock.account.as_deref(), l);
        let _ = writeln!(
            out,
            "  - {}",
            l.pick_text(
                format!(
                    "{} : verrouillage de {} depuis {} pour {} s.",
                    stamp_text(&lock.time),
                    clean(&who),
                    clean(&lock.client),
                    lock.seconds
                ),
                format!(
                    "{}: locked out {} from {} for {} s.",
                    stamp_text(&lock.time),
                    clean(&who),
                    clean(&lock.client),
                    lock.seconds
                ),
            )
        );
    }
    for rev in &r.revocations {
        any = true;
        let _ = writeln!(
            out,
            "  - {}",
            l.pick_text(
                format!(
                    "{} : session de {} révoquée ({}).",
                    stamp(rev.time),
                    clean(&rev.user),
                    clean(&rev.reason)
                ),
                format!(
                    "{}: ended a session of {} ({}).",
                    stamp(rev.time),
                    clean(&rev.user),
                    clean(&rev.reason)
                ),
            )
        );
    }
    for (time, all) in &r.key_rotations {
        any = true;
        let _ = writeln!(
            out,
            "  - {}: {}",
            stamp(*time),
            match all {
                true => l.pick_text(
                    "clés de session changées, toutes les sessions fermées (vigie rotate-keys --end-all-sessions).",
                    "session keys rotated and every session ended (vigie rotate-keys --end-all-sessions)."
                ),
                false => l.pick_text(
                    "clés de session changées (vigie rotate-keys).",
                    "session keys rotated (vigie rotate-keys)."
                ),
            }
        );
    }
    if !r.refusals.policy.is_empty() {
        any = true;
        let _ = writeln!(
            out,
            "  - {}",
            l.pick_text(
                format!(
                    "{} requête(s) refusée(s) par la politique d'accès (403).",
                    r.refusals.policy.len()
                ),
                format!(
                    "{} request(s) refused by the access policy (403).",
                    r.refusals.policy.len()
                ),
            )
        );
    }
    if !any {
        let _ = writeln!(
            out,
            "  {}",
            l.pick_text(
                "Aucun verrouillage, révocation ni refus dans la période.",
                "No lockout, revocation or refusal in the period."
            )
        );
    }
}
