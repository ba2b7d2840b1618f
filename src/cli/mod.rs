//! The `vigie` command line: one subcommand per file, one shared `--config` argument, and the
//! helpers every subcommand uses to load the configuration and print problems. `main.rs` only
//! calls [`main`].
//!
//! | subcommand | file |
//! |---|---|
//! | `serve` | `serve.rs` |
//! | `check`, `check --exposure` | `check.rs` (the checks themselves: `diagnose/`) |
//! | `health` | `health.rs` |
//! | `hash-password`, `user add`, `rotate-keys` | `accounts.rs` |
//! | `dev-cert` | `dev_cert.rs` |
//! | `audit verify`, `audit report`, `audit patient` | `audit.rs` (the trail itself: `audit/`) |
//! | `alert test` | `alert.rs` (the alerts themselves: `alert/`) |
//! | `breach report` | `breach.rs` (the draft itself: `audit/report/`) |

mod accounts;
mod alert;
mod audit;
mod breach;
mod ca;
mod check;
mod dev_cert;
mod health;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError, Problem};
use crate::lang::Lang;

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

/// The configuration file, shared by every subcommand that reads one.
#[derive(Args)]
struct ConfigArg {
    /// The configuration file.
    #[arg(long, short, default_value = "config/vigie.yaml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Log format; default: JSON in containers, text elsewhere (or `log.format`).
        #[arg(long, value_enum)]
        log_format: Option<CliLogFormat>,
    },
    /// Validate the configuration and everything it points to, without serving.
    ///
    /// Exit status: 0 nothing to report, 1 errors, 3 warnings only.
    Check {
        #[command(flatten)]
        config: ConfigArg,
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
        #[command(flatten)]
        config: ConfigArg,
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
        #[command(flatten)]
        config: ConfigArg,
        /// Also drop the previous keys: once the gateway applies it, every session ends and
        /// everybody signs in again (for a suspected breach).
        #[arg(long)]
        end_all_sessions: bool,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Breach alerts.
    Alert {
        #[command(subcommand)]
        action: AlertAction,
    },
    /// A personal data breach: the first draft of the notification to the CNIL.
    Breach {
        #[command(subcommand)]
        action: BreachAction,
    },
    /// The practice's own certificate authority, for a gateway without a public name.
    Ca {
        #[command(subcommand)]
        action: CaAction,
    },
    /// Create a local CA and an ECDSA P-256 server certificate for development (the practice
    /// CA's code, with the CA in the output folder).
    DevCert {
        #[arg(long, default_value = "certs/")]
        out: PathBuf,
        #[arg(long, default_value = "localhost")]
        name: String,
    },
}

#[derive(Subcommand)]
enum CaAction {
    /// Create the CA in state_dir/ca/ (ECDSA P-256, ten years; never replaces an existing one)
    /// and print how to install it on the doctors' computers.
    Init {
        #[command(flatten)]
        config: ConfigArg,
        /// The practice's name, in the CA's name (what the doctors' computers show).
        #[arg(long)]
        name: Option<String>,
    },
    /// Issue a server certificate (ECDSA P-256) for NAME and any further names or addresses.
    Issue {
        #[command(flatten)]
        config: ConfigArg,
        /// The host names and IP addresses the doctors use to reach the gateway.
        #[arg(required = true)]
        names: Vec<String>,
        /// Validity in days (397 at most, what browsers accept).
        #[arg(long, default_value_t = crate::tls::ca::MAX_DAYS)]
        days: u32,
        /// Where to write server.crt and server.key (default: state_dir/ca/issued/NAME/).
        #[arg(long)]
        out: Option<PathBuf>,
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
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check that no record was altered, removed, reordered or cut off since it was written:
    /// follows the chain of hashes through every file and checks every seal. Exit status 0
    /// intact, 1 broken (the first broken record is named).
    Verify {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Who accessed which patients and studies in a period, when, from where, and what was
    /// refused (sign-ins, lockouts, the access policy) or raised an alert. Verifies the trail
    /// first; exit status 2 when it is broken (the report says where, at its top).
    Report {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        period: PeriodArgs,
        /// Only this account.
        #[arg(long)]
        user: Option<String>,
        /// Only this patient: the DICOM PatientID, or the upstream's own id (exact).
        #[arg(long)]
        patient: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: CliFormat,
        /// Language of the text (default: from LANG).
        #[arg(long, value_enum)]
        lang: Option<CliLang>,
    },
    /// One patient's access history, oldest first, and a sentence to send them: the answer to
    /// "who saw my images?" (GDPR art. 15). Exit status as `report`.
    Patient {
        /// The DICOM PatientID (or the upstream's own id).
        id: String,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        period: PeriodArgs,
        #[arg(long, value_enum, default_value = "text")]
        format: CliFormat,
        /// Language of the text (default: from LANG).
        #[arg(long, value_enum)]
        lang: Option<CliLang>,
    },
}

#[derive(Subcommand)]
enum BreachAction {
    /// The first draft of the GDPR art. 33 notification, in the order of the CNIL's form: what
    /// the trail shows (alerts, refused sign-ins, lockouts, volumes, downloads), the persons and
    /// records concerned, the accounts and addresses involved, what the gateway did, the
    /// 72-hour deadline from the first alert, and blanks for the practice. Exit status as
    /// `audit report`.
    Report {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        period: PeriodArgs,
        /// Language of the draft (default: from LANG).
        #[arg(long, value_enum)]
        lang: Option<CliLang>,
    },
}

/// The period a report covers, UTC; default: the last 30 days.
#[derive(Args)]
struct PeriodArgs {
    /// Start: YYYY-MM-DD (from 00:00:00 UTC) or RFC 3339; default: 30 days before --to.
    #[arg(long)]
    from: Option<String>,
    /// End, included: YYYY-MM-DD (to 23:59:59 UTC) or RFC 3339; default: now.
    #[arg(long)]
    to: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum CliFormat {
    Text,
    Json,
    Csv,
}

impl From<CliFormat> for crate::audit::report::Format {
    fn from(f: CliFormat) -> Self {
        match f {
            CliFormat::Text => Self::Text,
            CliFormat::Json => Self::Json,
            CliFormat::Csv => Self::Csv,
        }
    }
}

#[derive(Subcommand)]
enum AlertAction {
    /// Send a test alert through every configured channel (alerts.email, alerts.webhook) and
    /// say per channel what happened. Exit status 0 all delivered, 1 one failed or none is
    /// configured.
    Test {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CliLang {
    Fr,
    En,
}

impl From<CliLang> for Lang {
    fn from(l: CliLang) -> Lang {
        match l {
            CliLang::Fr => Lang::Fr,
            CliLang::En => Lang::En,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum CliLogFormat {
    Json,
    Text,
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config, log_format } => serve::run(&config.config, log_format),
        Command::Check {
            config,
            exposure: true,
            lang,
            json,
            ..
        } => check::exposure(&config.config, lang.map(Lang::from), json),
        Command::Check {
            config, offline, ..
        } => check::check(&config.config, offline),
        Command::Health { config } => health::run(&config.config),
        Command::HashPassword => report(accounts::hash_password()),
        Command::User {
            action:
                UserAction::Add {
                    name,
                    roles,
                    config,
                },
        } => report(accounts::user_add(&config.config, &name, &roles)),
        Command::RotateKeys {
            config,
            end_all_sessions,
        } => report(accounts::rotate_keys(&config.config, end_all_sessions)),
        Command::Audit {
            action: AuditAction::Verify { config },
        } => audit::verify_trail(&config.config),
        Command::Alert {
            action: AlertAction::Test { config },
        } => alert::test(&config.config),
        Command::Audit {
            action:
                AuditAction::Report {
                    config,
                    period,
                    user,
                    patient,
                    format,
                    lang,
                },
        } => audit::report(audit::ReportArgs {
            config: &config.config,
            from: period.from.as_deref(),
            to: period.to.as_deref(),
            user,
            patient,
            format: format.into(),
            lang: lang.map_or_else(Lang::from_env, Lang::from),
        }),
        Command::Audit {
            action:
                AuditAction::Patient {
                    id,
                    config,
                    period,
                    format,
                    lang,
                },
        } => audit::patient(
            &config.config,
            &id,
            period.from.as_deref(),
            period.to.as_deref(),
            format.into(),
            lang.map_or_else(Lang::from_env, Lang::from),
        ),
        Command::Breach {
            action:
                BreachAction::Report {
                    config,
                    period,
                    lang,
                },
        } => breach::report(
            &config.config,
            period.from.as_deref(),
            period.to.as_deref(),
            lang.map_or_else(Lang::from_env, Lang::from),
        ),
        Command::Ca { action } => match action {
            CaAction::Init { config, name } => report(ca::init(&config.config, name.as_deref())),
            CaAction::Issue {
                config,
                names,
                days,
                out,
            } => report(ca::issue(&config.config, &names, days, out.as_deref())),
        },
        Command::DevCert { out, name } => report(dev_cert::run(&out, &name)),
    }
}

/// Exit status of a subcommand that either works or says why not.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_problems(problems: &[Problem]) {
    for p in problems {
        eprintln!("{p}");
    }
}

/// Loads and validates the configuration; on failure prints every problem and returns the exit
/// status to end with.
fn load(path: &Path) -> Result<(Config, Vec<Problem>), ExitCode> {
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

/// A single-threaded runtime for the subcommands that talk to the network once.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}
