//! `vigie health`: for container health checks, asks the running gateway's admin listener
//! whether it is ready. Exit status 0 ready, 1 not.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::{load, runtime};

pub(super) fn run(path: &Path) -> ExitCode {
    let (config, _) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(crate::diagnose::health(&config, Duration::from_secs(5))) {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}
