//! `vigie audit verify`: checks the whole audit trail under the configuration's `state_dir`.
//! Exit status 0 intact; 1 broken (the first broken record is named) or no valid configuration.

use std::path::Path;
use std::process::ExitCode;

use super::load;
use crate::audit::{AuditPaths, Verified, verify};

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
