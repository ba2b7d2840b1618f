//! The reports read from the trail: who accessed which patients and studies (`vigie audit
//! report`), one patient's access history (`vigie audit patient`, a GDPR art. 15 request), and
//! the first draft of the breach notification (`vigie breach report`, GDPR art. 33).
//!
//! Every report verifies the trail first and says at its top whether the chain verified, up to
//! which record, and which record is broken if not; a broken trail is still read and reported,
//! under a warning, and the command ends with status 2.
//!
//! - `record.rs`: the trail's events as read back (our own `Deserialize` types; unknown types
//!   are counted, not fatal).
//! - `trail.rs`: verifying, then reading the records of a period.
//! - `access.rs`: the access report's aggregation (per patient and study; refusals, alerts).
//! - `patient.rs`: one patient's history and the sentence for the patient.
//! - `breach.rs`: what the art. 33 draft says and its 72-hour deadline; `breach_text.rs`, the
//!   draft in French or English.
//! - `text.rs`, `csv.rs`: the renderings (JSON is the aggregation's `Serialize`).
//! - `words.rs`: the bilingual words and dates.
//!
//! Times are UTC throughout, and every report says so. A report never prints a session id
//! whole (a reference of its first 8 characters in JSON and CSV): the trail holds no password,
//! token or cookie, and a report, which travels further than the trail, holds even less.

mod access;
mod breach;
mod breach_text;
mod csv;
mod patient;
mod record;
mod text;
mod trail;
mod words;

#[cfg(test)]
mod tests;

use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use crate::lang::Lang;

pub(crate) use access::AccessReport;
pub(crate) use breach::BreachReport;
pub(crate) use patient::PatientReport;
pub(crate) use trail::Trail;

/// How a report is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Aligned columns, for an administrator.
    Text,
    /// One JSON document with stable field names.
    Json,
    /// One row per access record, RFC 4180.
    Csv,
}

/// The period a report covers: both ends included, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Period {
    pub(crate) from: OffsetDateTime,
    pub(crate) to: OffsetDateTime,
}

/// The default period: the last 30 days.
pub(crate) const DEFAULT_DAYS: i64 = 30;

impl Period {
    /// From `--from` and `--to` (each `YYYY-MM-DD` or RFC 3339); a date alone is the start of
    /// that day for `from` and its end for `to`. Without `--to`: `now`; without `--from`: 30
    /// days before the end.
    pub(crate) fn parse(
        from: Option<&str>,
        to: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Period, String> {
        let to = match to {
            Some(t) => parse_bound(t, true)?,
            None => now,
        };
        let from = match from {
            Some(f) => parse_bound(f, false)?,
            None => to - Duration::days(DEFAULT_DAYS),
        };
        if from > to {
            return Err(format!(
                "--from ({}) is after --to ({})",
                words::stamp(from),
                words::stamp(to)
            ));
        }
        Ok(Period { from, to })
    }

    /// Whether `t` falls in the period.
    pub(crate) fn contains(&self, t: OffsetDateTime) -> bool {
        self.from <= t && t <= self.to
    }

    /// Whether `[first, last]` meets the period.
    pub(crate) fn overlaps(&self, first: OffsetDateTime, last: OffsetDateTime) -> bool {
        first <= self.to && last >= self.from
    }
}

/// One end of the period: `YYYY-MM-DD` (the day's first or last instant) or RFC 3339.
fn parse_bound(text: &str, end: bool) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t.to_offset(UtcOffset::UTC));
    }
    let day = parse_date(text).ok_or_else(|| {
        format!("`{text}` is not a date: write YYYY-MM-DD or RFC 3339 (2026-03-01T08:00:00Z)")
    })?;
    let time = match end {
        true => Time::from_hms_nano(23, 59, 59, 999_999_999).unwrap_or(Time::MIDNIGHT),
        false => Time::MIDNIGHT,
    };
    Ok(day.with_time(time).assume_utc())
}

fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// What the access report is asked.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) period: Period,
    /// Only this account's records (exact name).
    pub(crate) user: Option<String>,
    /// Only this patient's records: the DICOM PatientID or the upstream's own id, exact.
    pub(crate) patient: Option<String>,
}

/// A rendered report and whether the trail it was read from verified.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub(crate) body: String,
    pub(crate) intact: bool,
    /// What to say on standard error besides (CSV has nowhere else to say it).
    pub(crate) notice: Option<String>,
}

/// `vigie audit report`.
pub(crate) fn access_report(trail: &Trail, query: &Query, format: Format, lang: Lang) -> Rendered {
    let report = AccessReport::build(trail, query);
    let body = match format {
        Format::Text => text::access(&report, lang),
        Format::Json => json(&report),
        Format::Csv => csv::accesses(&report.all_accesses()),
    };
    Rendered {
        intact: trail.integrity.intact,
        notice: (format == Format::Csv).then(|| text::integrity_line(&trail.integrity, lang)),
        body,
    }
}

/// `vigie audit patient`.
pub(crate) fn patient_report(
    trail: &Trail,
    patient: &str,
    period: Period,
    format: Format,
    lang: Lang,
) -> Rendered {
    let report = PatientReport::build(trail, patient, period, lang);
    let body = match format {
        Format::Text => patient::text(&report, lang),
        Format::Json => json(&report),
        Format::Csv => csv::accesses(&report.accesses.iter().collect::<Vec<_>>()),
    };
    Rendered {
        intact: trail.integrity.intact,
        notice: (format == Format::Csv).then(|| text::integrity_line(&trail.integrity, lang)),
        body,
    }
}

/// `vigie breach report`.
pub(crate) fn breach_report(
    trail: &Trail,
    period: Period,
    now: OffsetDateTime,
    lang: Lang,
) -> Rendered {
    let report = BreachReport::build(trail, period, now);
    Rendered {
        body: breach_text::text(&report, lang),
        intact: trail.integrity.intact,
        notice: None,
    }
}

fn json(value: &impl serde::Serialize) -> String {
    match serde_json::to_string_pretty(value) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        // Our own plain structs with string keys: serde_json cannot fail on them.
        Err(e) => format!("{{\"error\":\"{e}\"}}\n"),
    }
}
