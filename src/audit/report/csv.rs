//! `--format csv`: a header row, then one row per access record (RFC 4180: comma-separated,
//! CRLF line ends, a field quoted when it holds a comma, a quote or a line break, quotes
//! doubled). Written here rather than with a crate: it is these twenty lines.
//!
//! A field that a spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, a tab
//! or a carriage return) gets a leading `'`: patient names and descriptions come from whoever
//! wrote the DICOM file, and opening the report must not run what they wrote (OWASP, "CSV
//! injection").

use super::access::Access;
use super::words::dicom_date;

/// The columns, in order.
pub(super) const COLUMNS: [&str; 22] = [
    "seq",
    "kind",
    "first",
    "last",
    "user",
    "operation",
    "patient_id",
    "patient_name",
    "patient_upstream_id",
    "study_uid",
    "study_date",
    "study_description",
    "requests",
    "failed",
    "bytes",
    "client",
    "session_ref",
    "request_id",
    "method",
    "path",
    "status",
    "unresolved",
];

/// The rows of `accesses`, under the header.
pub(super) fn accesses(accesses: &[&Access]) -> String {
    let mut out = String::new();
    row(&mut out, COLUMNS.iter().map(|c| c.to_string()));
    for a in accesses {
        let p = a.patient.as_ref();
        let s = a.study.as_ref();
        let opt = |v: Option<&String>| v.cloned().unwrap_or_default();
        row(
            &mut out,
            [
                a.seq.to_string(),
                a.kind.to_string(),
                a.first.clone(),
                a.last.clone(),
                a.user.clone(),
                a.operation.clone(),
                opt(p.map(|p| &p.id)),
                opt(p.and_then(|p| p.name.as_ref())),
                opt(p.and_then(|p| p.upstream_id.as_ref())),
                opt(s.map(|s| &s.uid)),
                s.and_then(|s| s.date.as_deref())
                    .map(dicom_date)
                    .unwrap_or_default(),
                opt(s.and_then(|s| s.description.as_ref())),
                a.requests.to_string(),
                a.failed.to_string(),
                a.bytes.to_string(),
                a.client.clone(),
                a.session_ref.clone(),
                opt(a.request_id.as_ref()),
                opt(a.method.as_ref()),
                opt(a.path.as_ref()),
                a.status.map(|s| s.to_string()).unwrap_or_default(),
                a.unresolved
                    .as_ref()
                    .map(|u| format!("{} ({})", u.resource, u.why))
                    .unwrap_or_default(),
            ]
            .into_iter(),
        );
    }
    out
}

fn row(out: &mut String, fields: impl Iterator<Item = String>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&field(&f));
    }
    out.push_str("\r\n");
}

/// One field, quoted when RFC 4180 needs it, defused when a spreadsheet would evaluate it.
pub(super) fn field(value: &str) -> String {
    let defused = match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_string(),
    };
    if defused.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}
