//! `vigie check` (the file and what it points to) and `vigie check --exposure` (the running
//! deployment, seen from the inside). The checks live in `diagnose/`; this prints them.

use std::path::Path;
use std::process::ExitCode;

use super::{load, print_problems, runtime};
use crate::config::Severity;
use crate::diagnose::{self, CheckOptions, Options};
use crate::lang::Lang;

/// `vigie check`: exit 0 nothing to report, 1 errors, 3 warnings only.
pub(super) fn check(path: &Path, offline: bool) -> ExitCode {
    let (config, mut problems) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let findings = diagnose::check(&config, CheckOptions { upstream: !offline }, Lang::En);
    problems.extend(findings.iter().filter_map(diagnose::Finding::as_problem));
    // Where a certificate the gateway obtains itself stands (account, next renewal): said
    // even when all is well.
    for f in &findings {
        if matches!(f.check, "renewal" | "certificate") && f.level <= diagnose::Level::Info {
            println!("tls: {}", f.message);
        }
    }
    if !offline && !config.auth.oidc.is_empty() {
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(code) => return code,
        };
        let findings = rt.block_on(diagnose::providers(&config, Lang::En));
        problems.extend(findings.iter().filter_map(diagnose::Finding::as_problem));
    }
    print_problems(&problems);
    for p in &config.auth.oidc {
        println!(
            "auth.oidc({}): register at the provider: redirect URI {} ; post-logout redirect URI {}",
            p.name, p.redirect_uri, p.post_logout_uri
        );
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = problems.len() - errors;
    if errors > 0 {
        eprintln!(
            "{}: {errors} error(s), {warnings} warning(s)",
            path.display()
        );
        ExitCode::FAILURE
    } else if warnings > 0 {
        eprintln!("{}: no errors, {warnings} warning(s)", path.display());
        ExitCode::from(3)
    } else {
        println!("{}: OK", path.display());
        ExitCode::SUCCESS
    }
}

/// `vigie check --exposure`: exit 0 nothing serious, 1 high or critical findings, 3 warnings.
pub(super) fn exposure(path: &Path, lang: Option<Lang>, json: bool) -> ExitCode {
    let (config, _) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let lang = lang.unwrap_or_else(Lang::from_env);
    let opts = Options {
        lang,
        ..Options::default()
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let findings = rt.block_on(diagnose::inspect(&config, &opts));
    if json {
        match serde_json::to_string_pretty(&findings) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let title = lang.pick_text(
            "Vigie : vérification de l'exposition de",
            "Vigie: exposure check of",
        );
        println!("{title} {} ({})\n", config.server_name, path.display());
        print!("{}", diagnose::render(&findings, lang));
    }
    ExitCode::from(diagnose::exit_code(&findings))
}
