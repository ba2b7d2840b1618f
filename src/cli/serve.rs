//! `vigie serve`: checks what the configuration points to, starts the logs and the runtime,
//! and runs the gateway until SIGTERM or Ctrl-C.

use std::path::Path;
use std::process::ExitCode;

use super::{CliLogFormat, load, print_problems};
use crate::config::LogFormat;
use crate::diagnose::{self, CheckOptions};
use crate::lang::Lang;

/// `vigie serve`: refuses to start on a critical finding (certificate unusable, upstream not
/// reachable); the other findings become warnings in the log.
pub(super) fn run(path: &Path, log_format: Option<CliLogFormat>) -> ExitCode {
    let (config, mut problems) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let findings = diagnose::check(&config, CheckOptions { upstream: true }, Lang::En);
    problems.extend(findings.iter().filter_map(diagnose::Finding::as_problem));
    if diagnose::blocks_start(&findings) {
        eprintln!("{}: the gateway cannot start", path.display());
        print_problems(&problems);
        return ExitCode::FAILURE;
    }
    let format = match log_format {
        Some(CliLogFormat::Json) => Some(LogFormat::Json),
        Some(CliLogFormat::Text) => Some(LogFormat::Text),
        None => config.log.format,
    };
    let _guard = crate::telemetry::init(format, &config.log.level);
    for p in &problems {
        tracing::warn!(path = %p.path, hint = %p.hint, "{}", p.message);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("the gateway cannot start");
            eprintln!("{}: the gateway cannot start", path.display());
            print_problems(&e.problems());
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (container stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
