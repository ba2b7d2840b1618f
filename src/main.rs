//! The `vigie` command line. Everything it runs lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use vigie::config::{Config, ConfigError, LogFormat, Problem, Severity};
use vigie::diagnose::{CheckOptions, check_environment};

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
        #[arg(long, conflicts_with = "exposure")]
        offline: bool,
        /// Inspect the running deployment from the inside: certificate, TLS versions, where the
        /// viewer is and whether it answers without credentials, second factor, access policy,
        /// the viewer's ports on this machine's network addresses. Exit status: 0 nothing
        /// serious, 1 high or critical findings, 3 warnings only.
        #[arg(long)]
        exposure: bool,
        /// Language of the exposure report (default: from LANG).
        #[arg(long, value_enum, requires = "exposure")]
        lang: Option<CliLang>,
        /// Print the exposure findings as JSON.
        #[arg(long, requires = "exposure")]
        json: bool,
    },
    /// Ask the running gateway whether it is ready (GET /readyz on `listen.admin`); for
    /// container health checks. Exit status 0 ready, 1 not.
    Health {
        #[arg(long, short, default_value = "config/vigie.yaml")]
        config: PathBuf,
    },
    /// Hash a password (argon2id) for `auth.users[].password_hash`. Reads it at a no-echo
    /// prompt, or one line from standard input; refuses weak passwords.
    HashPassword,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Start signing sessions with a new key; the previous keys keep verifying until their
    /// sessions expire. The running gateway applies it within `tls.reload_interval` (SIGHUP: at
    /// once).
    RotateKeys {
        #[arg(long, short, default_value = "config/vigie.yaml")]
        config: PathBuf,
        /// Also drop the previous keys: once the gateway applies it, every session ends and
        /// everybody signs in again (for a suspected breach).
        #[arg(long)]
        end_all_sessions: bool,
    },
    /// Create a local CA and an ECDSA P-256 server certificate for development.
    DevCert {
        #[arg(long, default_value = "certs/")]
        out: PathBuf,
        #[arg(long, default_value = "localhost")]
        name: String,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add an account with a fresh TOTP secret (shown as a QR code for the phone's app). Writes
    /// to `auth.users_file` when set, otherwise to `auth.users` in the configuration file.
    Add {
        name: String,
        /// Comma-separated roles, e.g. doctor or admin.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        #[arg(long, short, default_value = "config/vigie.yaml")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CliLang {
    Fr,
    En,
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
        Command::Check {
            config,
            exposure: true,
            lang,
            json,
            ..
        } => exposure(&config, lang, json),
        Command::Check { config, offline, .. } => check(&config, offline),
        Command::Health { config } => health(&config),
        Command::HashPassword => report(hash_password()),
        Command::User {
            action: UserAction::Add { name, roles, config },
        } => report(user_add(&config, &name, &roles)),
        Command::RotateKeys {
            config,
            end_all_sessions,
        } => report(
            vigie::accounts::rotate_keys(&config, end_all_sessions)
                .map(|kid| {
                    println!("new signing key {kid}: the running gateway uses it within tls.reload_interval (10 s by default), or at once on SIGHUP");
                    if end_all_sessions {
                        println!("the previous keys are gone: every session ends then");
                    }
                })
                .map_err(Into::into),
        ),
        Command::DevCert { out, name } => match dev_cert(&out, &name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> anyhow::Result<()> {
    let pw = vigie::accounts::read_new_password()?;
    let hash = vigie::credentials::password::hash(&pw).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

fn user_add(config: &std::path::Path, name: &str, roles: &[String]) -> anyhow::Result<()> {
    use vigie::accounts::{NewUser, add_user, qr_for_terminal};
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!(
            "Password for {name} (at least 12 characters, mixing upper case, lower case, digits and symbols)."
        );
    }
    let pw = vigie::accounts::read_new_password()?;
    let user = NewUser::create(name, roles, &pw)?;
    let added = add_user(config, &user)?;
    let uri = user
        .otpauth_uri()
        .ok_or_else(|| anyhow::anyhow!("cannot build the authenticator URI"))?;
    println!(
        "Added {name} ({}) to {}.",
        roles.join(", "),
        added.file.display()
    );
    println!();
    println!(
        "Scan this code with the phone's authenticator app (FreeOTP, Google Authenticator, …):"
    );
    if let Some(qr) = qr_for_terminal(&uri) {
        println!("{qr}");
    }
    println!("or enter it by hand: {uri}");
    println!();
    println!(
        "The running gateway reads the account within tls.reload_interval (10 s by default), or at once on SIGHUP."
    );
    Ok(())
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
    problems.extend(check_environment(
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

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn exposure(path: &std::path::Path, lang: Option<CliLang>, json: bool) -> ExitCode {
    use vigie::exposure::{Lang, Options};
    let (config, _) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let lang = match lang {
        Some(CliLang::Fr) => Lang::Fr,
        Some(CliLang::En) => Lang::En,
        None => Lang::from_env(),
    };
    let opts = Options {
        lang,
        ..Options::default()
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let findings = rt.block_on(vigie::exposure::inspect(&config, &opts));
    if json {
        match serde_json::to_string_pretty(&findings) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let title = match lang {
            Lang::Fr => "Vigie : vérification de l'exposition de",
            Lang::En => "Vigie: exposure check of",
        };
        println!("{title} {} ({})\n", config.server_name, path.display());
        print!("{}", vigie::exposure::render(&findings, lang));
    }
    ExitCode::from(vigie::exposure::exit_code(&findings))
}

fn health(path: &std::path::Path) -> ExitCode {
    let (config, _) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(vigie::exposure::health(
        &config,
        std::time::Duration::from_secs(5),
    )) {
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

fn serve(path: &std::path::Path, log_format: Option<CliLogFormat>) -> ExitCode {
    let (config, mut problems) = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    problems.extend(check_environment(&config, CheckOptions { upstream: true }));
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
