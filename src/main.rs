//! The `vigie` command line. Everything it runs lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use vigie::config::{CheckOptions, Config, ConfigError, LogFormat, Problem, Severity};

#[derive(Parser)]
#[command(
    name = "vigie",
    version,
    about = "A secure HTTPS gateway for medical-imaging viewers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short, default_value = "config/vigie.yaml")]
        config: PathBuf,
        /// Log format; default: JSON in containers, text elsewhere (or `log.format`).
        #[arg(long, value_enum)]
        log_format: Option<CliLogFormat>,
    },
    /// Validate the configuration and everything it points to, without serving.
    ///
    /// Exit status: 0 nothing to report, 1 errors, 3 warnings only.
    Check {
        #[arg(long, short, default_value = "config/vigie.yaml")]
        config: PathBuf,
        /// Skip the connection test to the upstream (e.g. when linting in CI).
        #[arg(long)]
        offline: bool,
    },
    /// Create a local CA and an ECDSA P-256 server certificate for development.
    DevCert {
        #[arg(long, default_value = "certs/")]
        out: PathBuf,
        #[arg(long, default_value = "localhost")]
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CliLogFormat {
    Json,
    Text,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_format } => serve(&config, log_format),
        Command::Check { config, offline } => check(&config, offline),
        Command::DevCert { out, name } => match dev_cert(&out, &name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn print_problems(problems: &[Problem]) {
    for p in problems {
        eprintln!("{p}");
    }
}

fn load(path: &std::path::Path) -> Result<(Config, Vec<Problem>), ExitCode> {
    Config::load(path).map_err(|e: ConfigError| {
        let problems = e.problems();
        eprintln!(
            "{}: {} problem(s) in the configuration",
            path.display(),
            problems.len()
        );
        print_problems(&problems);
        ExitCode::FAILURE
    })
}

fn check(path: &std::path::Path, offline: bool) -> ExitCode {
    let (config, mut problems) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    problems.extend(vigie::config::check_environment(
        &config,
        CheckOptions { upstream: !offline },
    ));
    print_problems(&problems);
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

fn serve(path: &std::path::Path, log_format: Option<CliLogFormat>) -> ExitCode {
    let (config, mut problems) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    problems.extend(vigie::config::check_environment(
        &config,
        CheckOptions { upstream: true },
    ));
    if problems.iter().any(|p| p.severity == Severity::Error) {
        eprintln!("{}: the gateway cannot start", path.display());
        print_problems(&problems);
        return ExitCode::FAILURE;
    }
    let format = match log_format {
        Some(CliLogFormat::Json) => Some(LogFormat::Json),
        Some(CliLogFormat::Text) => Some(LogFormat::Text),
        None => config.log.format,
    };
    let _guard = vigie::telemetry::init(format, &config.log.level);
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
    match runtime.block_on(vigie::run(config, shutdown_signal())) {
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

fn dev_cert(out: &std::path::Path, name: &str) -> anyhow::Result<()> {
    let made = vigie::tls::devcert::generate(out, name)
        .with_context(|| format!("creating a development certificate in {}", out.display()))?;
    println!(
        "{} CA: {}",
        if made.ca_reused { "reused" } else { "created" },
        made.ca_cert.display()
    );
    println!("certificate: {}", made.cert.display());
    println!("key:         {}", made.key.display());
    println!(
        "Browsers will trust the gateway once {} is imported as an authority (development only).",
        made.ca_cert.display()
    );
    Ok(())
}
