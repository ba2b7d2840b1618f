//! `vigie breach report`: the first draft of the GDPR art. 33 notification, from the audit
//! trail of a period (the draft itself: `audit/report/`). Exit status as `vigie audit report`.

use std::path::Path;
use std::process::ExitCode;

use super::audit::{open, print};
use crate::audit::report;
use crate::lang::Lang;

pub(super) fn report(config: &Path, from: Option<&str>, to: Option<&str>, lang: Lang) -> ExitCode {
    let (trail, period) = match open(config, from, to) {
        Ok(t) => t,
        Err(code) => return code,
    };
    print(report::breach_report(
        &trail,
        period,
        time::OffsetDateTime::now_utc(),
        lang,
    ))
}
