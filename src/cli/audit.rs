//! `vigie audit verify`, `vigie audit report` and `vigie audit patient`: the trail under the
//! configuration's `audit.dir`, checked or read. Exit status: 0 done on an intact trail; 1 no
//! valid configuration, a bad argument or an unreadable trail; for `verify` also a broken trail;
//! 2 a report written from a broken trail (it says so at its top).

use std::path::Path;
use std::process::ExitCode;

use super::load;
use crate::audit::report::{self, Format, Period, Query, Rendered, Trail};
use crate::audit::{AuditPaths, Verified, verify};
use crate::lang::Lang;

pub(super) fn verify_trail(path: &Path) -> ExitCode {
    let (config, _) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let paths = AuditPaths::of(&config);
    match verify(&paths) {
        Ok(Verified {
            files,
            records,
            seals,
            unsealed,
            ..
        }) => {
            println!(
                "{}: the audit trail is intact: {records} record(s) in {files} file(s), {seals} seal(s){}",
                paths.dir.display(),
                match unsealed {
                    0 => String::new(),
                    n => format!("; the last {n} line(s) are not sealed yet"),
                }
            );
            ExitCode::SUCCESS
        }
        Err(broken) => {
            eprintln!("the audit trail is broken: {broken}");
            eprintln!(
                "  hint: keep a copy of {} as it is (it is evidence), then look for who could write there",
                paths.dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// The period and the trail every report starts from.
pub(super) fn open(
    config: &Path,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Trail, Period), ExitCode> {
    let (config, _) = load(config)?;
    let period = Period::parse(from, to, time::OffsetDateTime::now_utc()).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })?;
    let trail = Trail::read(&AuditPaths::of(&config), period).map_err(|e| {
        eprintln!("error: the audit trail cannot be read: {e}");
        ExitCode::FAILURE
    })?;
    Ok((trail, period))
}

/// Prints a report; 2 when its trail is broken.
pub(super) fn print(r: Rendered) -> ExitCode {
    print!("{}", r.body);
    if let Some(notice) = r.notice {
        eprintln!("{notice}");
    }
    if r.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// What `vigie audit report` is asked.
pub(super) struct ReportArgs<'a> {
    pub(super) config: &'a Path,
    pub(super) from: Option<&'a str>,
    pub(super) to: Option<&'a str>,
    pub(super) user: Option<String>,
    pub(super) patient: Option<String>,
    pub(super) format: Format,
    pub(super) lang: Lang,
}

pub(super) fn report(a: ReportArgs<'_>) -> ExitCode {
    let (trail, period) = match open(a.config, a.from, a.to) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let query = Query {
        period,
        user: a.user,
        patient: a.patient,
    };
    print(report::access_report(&trail, &query, a.format, a.lang))
}

pub(super) fn patient(
    config: &Path,
    id: &str,
    from: Option<&str>,
    to: Option<&str>,
    format: Format,
    lang: Lang,
) -> ExitCode {
    let (trail, period) = match open(config, from, to) {
        Ok(t) => t,
        Err(code) => return code,
    };
    print(report::patient_report(&trail, id, period, format, lang))
}
