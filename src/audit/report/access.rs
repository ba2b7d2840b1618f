//! The access report's content: every access to patient data in the period, grouped per patient
//! and study, then the refusals (sign-ins, lockouts, the access policy's 403s) and the alerts.
//! Its `Serialize` is `--format json`; the field names below are stable (documented in
//! `docs/audit.md`): add fields, never rename one.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Query;
use super::record::{Ev, Patient, Study, Unresolved};
use super::trail::{Integrity, Record, Trail, instant};
use super::words::{session_ref, stamp};

/// One access record: a viewing (`study_access`, many requests grouped) or one request
/// (`data_access`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Access {
    /// The record's sequence number in the trail.
    pub(crate) seq: u64,
    /// `viewing` or `request`.
    pub(crate) kind: &'static str,
    pub(crate) user: String,
    /// `view`, `download`, `search`, `upload`, `modify`, `delete`, `export`.
    pub(crate) operation: String,
    /// RFC 3339, UTC: the first and last request (the same for one request).
    pub(crate) first: String,
    pub(crate) last: String,
    pub(crate) requests: u64,
    pub(crate) failed: u64,
    pub(crate) bytes: u64,
    pub(crate) client: String,
    /// The session id's first 8 characters.
    pub(crate) session_ref: String,
    pub(crate) request_id: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) status: Option<u16>,
    /// A search's criteria, `[["PatientID","P-1"]]`.
    pub(crate) criteria: Vec<(String, String)>,
    pub(crate) patient: Option<Patient>,
    pub(crate) study: Option<Study>,
    pub(crate) unresolved: Option<Unresolved>,
    #[serde(skip)]
    pub(crate) start: OffsetDateTime,
}

impl Access {
    /// The access a record is, if it is one.
    pub(super) fn of(r: &Record) -> Option<Access> {
        match r.ev.clone() {
            Ev::StudyAccess {
                user,
                session,
                client,
                operation,
                patient,
                study,
                unresolved,
                first,
                last,
                requests,
                failed,
                bytes,
                first_request,
            } => Some(Access {
                seq: r.seq,
                kind: "viewing",
                start: instant(&first).unwrap_or(r.time),
                user,
                operation,
                first,
                last,
                requests,
                failed,
                bytes,
                client,
                session_ref: session_ref(&session),
                request_id: first_request,
                method: None,
                path: None,
                status: None,
                criteria: Vec::new(),
                patient,
                study,
                unresolved,
            }),
            Ev::DataAccess {
                user,
                session,
                client,
                operation,
                method,
                path,
                criteria,
                status,
                bytes,
                request_id,
                patient,
                study,
                unresolved,
            } => {
                let at = rfc3339(r.time);
                Some(Access {
                    seq: r.seq,
                    kind: "request",
                    start: r.time,
                    user,
                    operation,
                    first: at.clone(),
                    last: at,
                    requests: 1,
                    failed: u64::from(status >= 400),
                    bytes,
                    client,
                    session_ref: session_ref(&session),
                    request_id,
                    method: Some(method),
                    path: Some(path),
                    status: Some(status),
                    criteria,
                    patient,
                    study,
                    unresolved,
                })
            }
            _ => None,
        }
    }

    /// Whether it concerns the patient `id`: their PatientID or the upstream's id, or a search
    /// for that PatientID.
    pub(super) fn concerns(&self, id: &str) -> bool {
        self.patient
            .as_ref()
            .is_some_and(|p| p.id == id || p.upstream_id.as_deref() == Some(id))
            || self
                .criteria
                .iter()
                .any(|(k, v)| (k.eq_ignore_ascii_case("PatientID") || k == "00100020") && v == id)
    }
}

/// The ids that name the patient `id` in `all`: `id` itself, and the PatientID of the records
/// whose upstream id it is (so that a search for that PatientID is found by either).
pub(super) fn patient_ids(all: &[Access], id: &str) -> Vec<String> {
    let mut ids = vec![id.to_string()];
    for p in all.iter().filter_map(|a| a.patient.as_ref()) {
        if p.upstream_id.as_deref() == Some(id) && !ids.contains(&p.id) {
            ids.push(p.id.clone());
        }
    }
    ids
}

/// Every access of the trail's period, oldest first.
pub(super) fn accesses(trail: &Trail) -> Vec<Access> {
    let mut all: Vec<Access> = trail.records.iter().filter_map(Access::of).collect();
    all.sort_by_key(|a| (a.start, a.seq));
    all
}

/// The access report.
#[derive(Debug, Serialize)]
pub(crate) struct AccessReport {
    /// `access`.
    pub(crate) report: &'static str,
    pub(crate) period: PeriodOut,
    pub(crate) trail: TrailOut,
    pub(crate) filters: Filters,
    pub(crate) totals: Totals,
    /// Per patient (by PatientID), per study (by StudyInstanceUID), the accesses.
    pub(crate) patients: Vec<PatientGroup>,
    /// Accesses the upstream could not resolve to a patient (and searches naming none).
    pub(crate) unresolved: Vec<Access>,
    /// Empty with `--patient`: refusals name no patient.
    pub(crate) refusals: Refusals,
    /// Empty with `--patient` or `--user`.
    pub(crate) alerts: Vec<Alert>,
}

/// The period, as given to the report.
#[derive(Debug, Serialize)]
pub(crate) struct PeriodOut {
    /// RFC 3339; both ends included.
    pub(crate) from: String,
    pub(crate) to: String,
    /// Always `UTC`.
    pub(crate) time_zone: &'static str,
}

impl PeriodOut {
    pub(super) fn of(p: super::Period) -> PeriodOut {
        PeriodOut {
            from: rfc3339(p.from),
            to: rfc3339(p.to),
            time_zone: "UTC",
        }
    }
}

/// The chain check, and what could not be read.
#[derive(Debug, Serialize)]
pub(crate) struct TrailOut {
    #[serde(flatten)]
    pub(crate) integrity: Integrity,
    pub(crate) unknown_records: u64,
    pub(crate) unreadable_lines: u64,
}

impl TrailOut {
    pub(super) fn of(t: &Trail) -> TrailOut {
        TrailOut {
            integrity: t.integrity.clone(),
            unknown_records: t.unknown,
            unreadable_lines: t.unreadable,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Filters {
    pub(crate) user: Option<String>,
    pub(crate) patient: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Totals {
    pub(crate) patients: usize,
    pub(crate) studies: usize,
    pub(crate) access_records: usize,
    pub(crate) requests: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct PatientGroup {
    pub(crate) patient: Patient,
    pub(crate) studies: Vec<StudyGroup>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StudyGroup {
    /// `null` for accesses to the patient that named no study.
    pub(crate) study: Option<Study>,
    pub(crate) accesses: Vec<Access>,
}

/// Sign-ins refused, lockouts and the access policy's refusals.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Refusals {
    pub(crate) sign_ins: Vec<SignInRefusal>,
    pub(crate) lockouts: Vec<Lockout>,
    pub(crate) policy: Vec<PolicyRefusal>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SignInRefusal {
    pub(crate) time: String,
    /// `null` when the name typed is no account (it is never recorded).
    pub(crate) account: Option<String>,
    pub(crate) client: String,
    pub(crate) reason: String,
    pub(crate) failures: u32,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Lockout {
    pub(crate) time: String,
    pub(crate) account: Option<String>,
    pub(crate) client: String,
    pub(crate) seconds: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PolicyRefusal {
    pub(crate) time: String,
    pub(crate) user: String,
    pub(crate) client: String,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) request_id: Option<String>,
    pub(crate) reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Alert {
    pub(crate) time: String,
    pub(crate) rule: String,
    pub(crate) severity: String,
    pub(crate) summary: String,
    pub(crate) channels: Vec<String>,
    pub(crate) suppressed: u64,
}

impl Refusals {
    /// The refusals of the period; with `user`, only those naming that account.
    pub(super) fn collect(trail: &Trail, user: Option<&str>) -> Refusals {
        let mut out = Refusals::default();
        let keep = |account: Option<&str>| user.is_none() || account == user;
        for r in &trail.records {
            let time = rfc3339(r.time);
            match &r.ev {
                Ev::SignInRefused {
                    account,
                    client,
                    reason,
                    failures,
                } if keep(account.as_deref()) => out.sign_ins.push(SignInRefusal {
                    time,
                    account: account.clone(),
                    client: client.clone(),
                    reason: reason.clone(),
                    failures: *failures,
                }),
                Ev::LockedOut {
                    account,
                    client,
                    seconds,
                } if keep(account.as_deref()) => out.lockouts.push(Lockout {
                    time,
                    account: account.clone(),
                    client: client.clone(),
                    seconds: *seconds,
                }),
                Ev::AccessRefused {
                    user: u,
                    client,
                    method,
                    path,
                    request_id,
                    reason,
                } if keep(Some(u)) => out.policy.push(PolicyRefusal {
                    time,
                    user: u.clone(),
                    client: client.clone(),
                    method: method.clone(),
                    path: path.clone(),
                    request_id: request_id.clone(),
                    reason: reason.clone(),
                }),
                _ => {}
            }
        }
        out
    }
}

/// The alerts of the period.
pub(super) fn alerts(trail: &Trail) -> Vec<Alert> {
    trail
        .records
        .iter()
        .filter_map(|r| match &r.ev {
            Ev::AlertRaised {
                rule,
                severity,
                summary,
                channels,
                suppressed,
            } => Some(Alert {
                time: rfc3339(r.time),
                rule: rule.clone(),
                severity: severity.clone(),
                summary: summary.clone(),
                channels: channels.clone(),
                suppressed: *suppressed,
            }),
            _ => None,
        })
        .collect()
}

impl AccessReport {
    /// Aggregates `trail`'s period under the query's filters.
    pub(crate) fn build(trail: &Trail, query: &Query) -> AccessReport {
        let all = accesses(trail);
        let ids = query
            .patient
            .as_deref()
            .map(|p| patient_ids(&all, p))
            .unwrap_or_default();
        let selected: Vec<Access> = all
            .into_iter()
            .filter(|a| query.user.as_ref().is_none_or(|u| a.user == *u))
            .filter(|a| ids.is_empty() || ids.iter().any(|id| a.concerns(id)))
            .collect();
        let totals_requests = selected.iter().map(|a| a.requests).sum();
        let access_records = selected.len();
        let mut by_patient: BTreeMap<String, (Patient, BTreeMap<Option<String>, StudyGroup>)> =
            BTreeMap::new();
        let mut unresolved = Vec::new();
        for a in selected {
            let Some(patient) = a.patient.clone() else {
                unresolved.push(a);
                continue;
            };
            let entry = by_patient
                .entry(patient.id.clone())
                .or_insert_with(|| (patient, BTreeMap::new()));
            let key = a.study.as_ref().map(|s| s.uid.clone());
            entry
                .1
                .entry(key)
                .or_insert_with(|| StudyGroup {
                    study: a.study.clone(),
                    accesses: Vec::new(),
                })
                .accesses
                .push(a);
        }
        let patients: Vec<PatientGroup> = by_patient
            .into_values()
            .map(|(patient, studies)| PatientGroup {
                patient,
                studies: studies.into_values().collect(),
            })
            .collect();
        let studies = patients
            .iter()
            .flat_map(|p| &p.studies)
            .filter(|s| s.study.is_some())
            .count();
        let with_context = query.patient.is_none();
        AccessReport {
            report: "access",
            period: PeriodOut::of(query.period),
            trail: TrailOut::of(trail),
            filters: Filters {
                user: query.user.clone(),
                patient: query.patient.clone(),
            },
            totals: Totals {
                patients: patients.len(),
                studies,
                access_records,
                requests: totals_requests,
            },
            patients,
            unresolved,
            refusals: match with_context {
                true => Refusals::collect(trail, query.user.as_deref()),
                false => Refusals::default(),
            },
            alerts: match with_context && query.user.is_none() {
                true => alerts(trail),
                false => Vec::new(),
            },
        }
    }

    /// Every access record, patients first (as grouped), then the unresolved ones.
    pub(crate) fn all_accesses(&self) -> Vec<&Access> {
        self.patients
            .iter()
            .flat_map(|p| &p.studies)
            .flat_map(|s| &s.accesses)
            .chain(&self.unresolved)
            .collect()
    }
}

/// RFC 3339, UTC, to the second.
pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| stamp(t))
}
