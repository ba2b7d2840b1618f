//! `vigie audit patient ID`: one patient's access history, oldest first (who, when, from where,
//! what, which study), and the sentence the practice can send to the patient who asked "who saw
//! my images?" (GDPR art. 15). The patient is matched on their PatientID, the upstream's own id,
//! or a search for that PatientID.

use std::fmt::Write as _;

use serde::Serialize;

use super::access::{Access, PeriodOut, TrailOut, accesses, patient_ids};
use super::record::Patient;
use super::text::{header, patient_label, study_label, table};
use super::words::{clean, day, operation, operation_noun, stamp_text};
use super::{Period, Trail};
use crate::lang::Lang;

/// One patient's history. Its `Serialize` is `--format json`.
#[derive(Debug, Serialize)]
pub(crate) struct PatientReport {
    /// `patient`.
    pub(crate) report: &'static str,
    /// The id asked for.
    pub(crate) patient_id: String,
    /// The patient as the trail names them (the first record that resolved them).
    pub(crate) patient: Option<Patient>,
    pub(crate) period: PeriodOut,
    pub(crate) trail: TrailOut,
    /// Every access, oldest first.
    pub(crate) accesses: Vec<Access>,
    /// The accounts that accessed, in the order of their first access, each with what they did.
    pub(crate) people: Vec<Person>,
    /// The sentence for the patient, in the report's language.
    pub(crate) statement: String,
    #[serde(skip)]
    period_bounds: Period,
}

/// One account that accessed the patient's data.
#[derive(Debug, Serialize)]
pub(crate) struct Person {
    pub(crate) user: String,
    /// The operations, in the order first done.
    pub(crate) operations: Vec<String>,
    pub(crate) first: String,
    pub(crate) last: String,
}

impl PatientReport {
    /// The accesses to `id` in `trail`'s period.
    pub(crate) fn build(trail: &Trail, id: &str, period: Period, lang: Lang) -> PatientReport {
        let all = accesses(trail);
        let ids = patient_ids(&all, id);
        let accesses: Vec<Access> = all
            .into_iter()
            .filter(|a| ids.iter().any(|id| a.concerns(id)))
            .collect();
        let mut people: Vec<Person> = Vec::new();
        for a in &accesses {
            match people.iter_mut().find(|p| p.user == a.user) {
                Some(p) => {
                    if !p.operations.contains(&a.operation) {
                        p.operations.push(a.operation.clone());
                    }
                    if a.last > p.last {
                        p.last = a.last.clone();
                    }
                }
                None => people.push(Person {
                    user: a.user.clone(),
                    operations: vec![a.operation.clone()],
                    first: a.first.clone(),
                    last: a.last.clone(),
                }),
            }
        }
        let mut report = PatientReport {
            report: "patient",
            patient_id: id.to_string(),
            patient: accesses.iter().find_map(|a| a.patient.clone()),
            period: PeriodOut::of(period),
            trail: TrailOut::of(trail),
            accesses,
            people,
            statement: String::new(),
            period_bounds: period,
        };
        report.statement = report.statement(lang);
        report
    }

    /// The sentence for the patient, in `lang`.
    pub(crate) fn statement(&self, lang: Lang) -> String {
        let (from, to) = (
            day(self.period_bounds.from, lang),
            day(self.period_bounds.to, lang),
        );
        let id = clean(&self.patient_id);
        if self.people.is_empty() {
            return lang.pick_text(
                format!(
                    "Entre le {from} et le {to}, personne n'a accédé à vos images médicales (identifiant patient {id}) par la visionneuse du cabinet."
                ),
                format!(
                    "Between {from} and {to}, no one accessed your medical images (patient ID {id}) through the practice's image viewer."
                ),
            );
        }
        let who: Vec<String> = self
            .people
            .iter()
            .map(|p| {
                let ops: Vec<String> = p
                    .operations
                    .iter()
                    .map(|o| operation_noun(o, lang))
                    .collect();
                format!("{} ({})", clean(&p.user), ops.join(", "))
            })
            .collect();
        let n = self.people.len();
        lang.pick_text(
            format!(
                "Entre le {from} et le {to}, {n} {} accédé à vos images médicales (identifiant patient {id}) par la visionneuse du cabinet : {}.",
                if n == 1 { "personne a" } else { "personnes ont" },
                who.join(", ")
            ),
            format!(
                "Between {from} and {to}, {n} {} accessed your medical images (patient ID {id}) through the practice's image viewer: {}.",
                if n == 1 { "person" } else { "people" },
                who.join(", ")
            ),
        )
    }
}

/// `vigie audit patient --format text`.
pub(super) fn text(r: &PatientReport, lang: Lang) -> String {
    let mut out = String::new();
    let title = lang.pick_text(
        format!(
            "Vigie : historique des accès aux données du patient {}",
            clean(&r.patient_id)
        ),
        format!("Vigie: access history of patient {}", clean(&r.patient_id)),
    );
    header(&mut out, &title, &r.trail, &r.period, lang);
    if let Some(p) = &r.patient {
        let _ = writeln!(
            out,
            "{} {}",
            lang.pick_text("Patient :", "Patient:"),
            patient_label(p)
        );
    }
    let _ = writeln!(
        out,
        "{}\n",
        lang.pick_text(
            format!("{} enregistrement(s) d'accès.", r.accesses.len()),
            format!("{} access record(s).", r.accesses.len()),
        )
    );
    if !r.accesses.is_empty() {
        let head = match lang {
            Lang::Fr => ["début", "fin", "qui", "depuis", "quoi", "requêtes", "étude"],
            Lang::En => ["first", "last", "who", "from", "what", "requests", "study"],
        };
        let rows: Vec<Vec<String>> = r
            .accesses
            .iter()
            .map(|a| {
                vec![
                    stamp_text(&a.first),
                    stamp_text(&a.last),
                    a.user.clone(),
                    a.client.clone(),
                    operation(&a.operation, lang),
                    a.requests.to_string(),
                    match (&a.study, &a.unresolved, &a.path) {
                        (Some(s), ..) => study_label(Some(s), lang),
                        (None, Some(u), _) => u.resource.clone(),
                        (None, None, Some(p)) => p.clone(),
                        (None, None, None) => study_label(None, lang),
                    },
                ]
            })
            .collect();
        table(&mut out, "  ", &head, &rows);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{}",
        lang.pick_text("Texte pour le patient :", "For the patient:")
    );
    let _ = writeln!(out, "{}", r.statement);
    out
}
