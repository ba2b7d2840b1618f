//! The text renderings' common parts (the header every report starts with: period, time zone,
//! the chain's state; aligned tables) and the access report in text.

use std::fmt::Write as _;

use super::access::{AccessReport, PeriodOut, TrailOut};
use super::trail::Integrity;
use super::words::{clean, dicom_date, operation, stamp_text};
use crate::lang::Lang;

/// One line saying how far the chain verified, or where it broke.
pub(super) fn integrity_line(i: &Integrity, lang: Lang) -> String {
    match (&i.broken, i.verified_through) {
        (None, None) => lang
            .pick_text(
                "Journal d'audit : vide (aucun enregistrement à vérifier).",
                "Audit trail: empty (no record to verify).",
            )
            .to_string(),
        (None, Some(last)) => {
            let unsealed = match (i.unsealed, lang) {
                (0, _) => String::new(),
                (n, Lang::Fr) => format!(" ; les {n} dernières lignes ne sont pas encore scellées"),
                (n, Lang::En) => format!("; the last {n} line(s) are not sealed yet"),
            };
            lang.pick_text(
                format!(
                    "Journal d'audit : intègre, chaîne vérifiée jusqu'à l'enregistrement {last} ({} fichier(s)){unsealed}.",
                    i.files
                ),
                format!(
                    "Audit trail: intact, chain verified through record {last} ({} file(s)){unsealed}.",
                    i.files
                ),
            )
        }
        (Some(b), through) => {
            let at = match b.line {
                0 => clean(&b.file),
                n => format!("{}:{n}", clean(&b.file)),
            };
            let through = match (through, lang) {
                (Some(t), Lang::Fr) => {
                    format!(
                        "Les enregistrements 0 à {t} sont vérifiés ; la suite a pu être modifiée."
                    )
                }
                (Some(t), Lang::En) => {
                    format!("Records 0 to {t} verified; what follows may have been altered.")
                }
                (None, Lang::Fr) => "Aucun enregistrement n'a pu être vérifié.".to_string(),
                (None, Lang::En) => "No record could be verified.".to_string(),
            };
            lang.pick_text(
                format!(
                    "!!! ATTENTION : LE JOURNAL D'AUDIT EST ROMPU ({at}) : {}.\n!!! {through} Gardez une copie du répertoire telle quelle : c'est une preuve.",
                    clean(&b.what)
                ),
                format!(
                    "!!! WARNING: THE AUDIT TRAIL IS BROKEN ({at}): {}.\n!!! {through} Keep a copy of the directory as it is: it is evidence.",
                    clean(&b.what)
                ),
            )
        }
    }
}

/// The header every text report starts with.
pub(super) fn header(
    out: &mut String,
    title: &str,
    trail: &TrailOut,
    period: &PeriodOut,
    lang: Lang,
) {
    let _ = writeln!(out, "{title}");
    let _ = writeln!(out, "{}", "=".repeat(title.chars().count()));
    let _ = writeln!(
        out,
        "{} {} → {} (UTC)",
        lang.pick_text("Période :", "Period:"),
        stamp_text(&period.from),
        stamp_text(&period.to)
    );
    let _ = writeln!(
        out,
        "{}",
        lang.pick_text(
            "Fuseau horaire : UTC (toutes les heures de ce rapport).",
            "Time zone: UTC (every time in this report)."
        )
    );
    let _ = writeln!(out, "{}", integrity_line(&trail.integrity, lang));
    if trail.unknown_records + trail.unreadable_lines > 0 {
        let _ = writeln!(
            out,
            "{}",
            lang.pick_text(
                format!(
                    "Non lus : {} enregistrement(s) d'un type inconnu de cette version, {} ligne(s) illisible(s).",
                    trail.unknown_records, trail.unreadable_lines
                ),
                format!(
                    "Not read: {} record(s) of a type this version does not know, {} unreadable line(s).",
                    trail.unknown_records, trail.unreadable_lines
                ),
            )
        );
    }
    out.push('\n');
}

/// Rows under a header, each column as wide as its widest cell; cells made terminal-safe.
pub(super) fn table(out: &mut String, indent: &str, head: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::from(indent);
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let _ = write!(l, "{c:<w$}");
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&mut head.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
}

/// `P-1  DOE^JANE  (upstream 6f1c…)`.
pub(super) fn patient_label(p: &super::record::Patient) -> String {
    let mut s = p.id.clone();
    if let Some(n) = &p.name {
        let _ = write!(s, "  {n}");
    }
    if let Some(u) = &p.upstream_id {
        let _ = write!(s, "  (upstream {u})");
    }
    clean(&s)
}

/// `1.2.840…  2026-02-27  CT THORAX`.
pub(super) fn study_label(s: Option<&super::record::Study>, lang: Lang) -> String {
    let Some(s) = s else {
        return lang
            .pick_text("(aucune étude nommée)", "(no study named)")
            .to_string();
    };
    let mut l = s.uid.clone();
    if let Some(d) = &s.date {
        let _ = write!(l, "  {}", dicom_date(d));
    }
    if let Some(d) = &s.description {
        let _ = write!(l, "  {d}");
    }
    clean(&l)
}

/// `vigie audit report --format text`.
pub(super) fn access(r: &AccessReport, lang: Lang) -> String {
    let mut out = String::new();
    let title = lang.pick_text(
        "Vigie : rapport des accès aux données des patients",
        "Vigie: report of the accesses to patient data",
    );
    header(&mut out, title, &r.trail, &r.period, lang);
    if r.filters.user.is_some() || r.filters.patient.is_some() {
        let mut f = Vec::new();
        if let Some(u) = &r.filters.user {
            f.push(format!("{} {u}", lang.pick_text("utilisateur", "user")));
        }
        if let Some(p) = &r.filters.patient {
            f.push(format!("patient {p}"));
        }
        let _ = writeln!(
            out,
            "{} {}\n",
            lang.pick_text("Filtres :", "Filters:"),
            clean(&f.join(", "))
        );
    }
    let t = &r.totals;
    let _ = writeln!(
        out,
        "{}",
        lang.pick_text(
            format!(
                "Accès : {} patient(s), {} étude(s), {} enregistrement(s) d'accès, {} requête(s).",
                t.patients, t.studies, t.access_records, t.requests
            ),
            format!(
                "Accesses: {} patient(s), {} study(ies), {} access record(s), {} request(s).",
                t.patients, t.studies, t.access_records, t.requests
            ),
        )
    );
    let head = access_head(lang);
    for p in &r.patients {
        let _ = writeln!(out, "\nPatient {}", patient_label(&p.patient));
        for s in &p.studies {
            let _ = writeln!(
                out,
                "  {} {}",
                lang.pick_text("Étude", "Study"),
                study_label(s.study.as_ref(), lang)
            );
            let rows: Vec<Vec<String>> = s.accesses.iter().map(|a| access_row(a, lang)).collect();
            table(&mut out, "    ", &head, &rows);
        }
    }
    if !r.unresolved.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            lang.pick_text(
                "Accès non rattachés à un patient (ressource demandée, raison) :",
                "Accesses not resolved to a patient (resource asked for, why):"
            )
        );
        let mut head = head.to_vec();
        head.push(lang.pick_text("ressource", "resource"));
        let rows: Vec<Vec<String>> = r
            .unresolved
            .iter()
            .map(|a| {
                let mut row = access_row(a, lang);
                row.push(match (&a.unresolved, &a.path) {
                    (Some(u), _) => format!("{} ({})", u.resource, u.why),
                    (None, Some(p)) => p.clone(),
                    (None, None) => String::new(),
                });
                row
            })
            .collect();
        table(&mut out, "  ", &head, &rows);
    }
    if r.filters.patient.is_none() {
        refusals_and_alerts(&mut out, r, lang);
    }
    out
}

fn access_head(lang: Lang) -> [&'static str; 6] {
    match lang {
        Lang::Fr => [
            "utilisateur",
            "opération",
            "début",
            "fin",
            "requêtes",
            "adresse",
        ],
        Lang::En => ["user", "operation", "first", "last", "requests", "address"],
    }
}

fn access_row(a: &super::access::Access, lang: Lang) -> Vec<String> {
    vec![
        a.user.clone(),
        operation(&a.operation, lang),
        stamp_text(&a.first),
        stamp_text(&a.last),
        match a.failed {
            0 => a.requests.to_string(),
            f => format!(
                "{} ({f} {})",
                a.requests,
                lang.pick_text("en échec", "failed")
            ),
        },
        a.client.clone(),
    ]
}

fn refusals_and_alerts(out: &mut String, r: &AccessReport, lang: Lang) {
    let none = lang.pick_text("  aucun", "  none");
    let f = &r.refusals;
    let _ = writeln!(
        out,
        "\n{} ({})",
        lang.pick_text("Connexions refusées", "Sign-ins refused"),
        f.sign_ins.len()
    );
    if f.sign_ins.is_empty() {
        let _ = writeln!(out, "{none}");
    } else {
        let head = match lang {
            Lang::Fr => ["heure", "compte", "adresse", "raison", "échecs"],
            Lang::En => ["time", "account", "address", "reason", "failures"],
        };
        let rows: Vec<Vec<String>> = f
            .sign_ins
            .iter()
            .map(|s| {
                vec![
                    stamp_text(&s.time),
                    account(s.account.as_deref(), lang),
                    s.client.clone(),
                    s.reason.clone(),
                    s.failures.to_string(),
                ]
            })
            .collect();
        table(out, "  ", &head, &rows);
    }
    let _ = writeln!(
        out,
        "\n{} ({})",
        lang.pick_text("Verrouillages", "Lockouts"),
        f.lockouts.len()
    );
    if f.lockouts.is_empty() {
        let _ = writeln!(out, "{none}");
    } else {
        let head = match lang {
            Lang::Fr => ["heure", "compte", "adresse", "durée (s)"],
            Lang::En => ["time", "account", "address", "seconds"],
        };
        let rows: Vec<Vec<String>> = f
            .lockouts
            .iter()
            .map(|l| {
                vec![
                    stamp_text(&l.time),
                    account(l.account.as_deref(), lang),
                    l.client.clone(),
                    l.seconds.to_string(),
                ]
            })
            .collect();
        table(out, "  ", &head, &rows);
    }
    let _ = writeln!(
        out,
        "\n{} ({})",
        lang.pick_text(
            "Refus de la politique d'accès (403)",
            "Refused by the access policy (403)"
        ),
        f.policy.len()
    );
    if f.policy.is_empty() {
        let _ = writeln!(out, "{none}");
    } else {
        let head = match lang {
            Lang::Fr => ["heure", "utilisateur", "adresse", "méthode", "chemin"],
            Lang::En => ["time", "user", "address", "method", "path"],
        };
        let rows: Vec<Vec<String>> = f
            .policy
            .iter()
            .map(|p| {
                vec![
                    stamp_text(&p.time),
                    p.user.clone(),
                    p.client.clone(),
                    p.method.clone(),
                    p.path.clone(),
                ]
            })
            .collect();
        table(out, "  ", &head, &rows);
    }
    if r.filters.user.is_some() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{} ({})",
        lang.pick_text("Alertes", "Alerts"),
        r.alerts.len()
    );
    if r.alerts.is_empty() {
        let _ = writeln!(out, "{none}");
    } else {
        alert_table(out, "  ", &r.alerts, lang);
    }
}

/// The alerts raised, one row each (the report and the breach draft).
pub(super) fn alert_table(
    out: &mut String,
    indent: &str,
    alerts: &[super::access::Alert],
    lang: Lang,
) {
    let head = match lang {
        Lang::Fr => ["heure", "gravité", "règle", "résumé"],
        Lang::En => ["time", "severity", "rule", "summary"],
    };
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                stamp_text(&a.time),
                a.severity.clone(),
                a.rule.clone(),
                a.summary.clone(),
            ]
        })
        .collect();
    table(out, indent, &head, &rows);
}

/// An account name, or what stands for a name that is no account.
pub(super) fn account(a: Option<&str>, lang: Lang) -> String {
    match a {
        Some(a) => a.to_string(),
        None => lang
            .pick_text(
                "(nom inconnu, non enregistré)",
                "(unknown name, not recorded)",
            )
            .to_string(),
    }
}
