//! The account and key subcommands: `hash-password`, `user add`, `rotate-keys`. What they change
//! on disk is done by `crate::accounts`; this reads the password and prints what to do next.

use std::path::Path;

use anyhow::Context as _;

use crate::accounts::{NewUser, add_user, qr_for_terminal, read_new_password};
use crate::audit::{AuditPaths, Event, Operator, record_and_seal};
use crate::config::Config;

/// `vigie hash-password`: prints an argon2id hash for `auth.users[].password_hash`.
pub(super) fn hash_password() -> anyhow::Result<()> {
    let pw = read_new_password()?;
    let hash = crate::credentials::password::hash(&pw).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

/// `vigie user add`: a new account with a fresh TOTP secret, shown as a QR code.
pub(super) fn user_add(config: &Path, name: &str, roles: &[String]) -> anyhow::Result<()> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!(
            "Password for {name} (at least 12 characters, mixing upper case, lower case, digits and symbols)."
        );
    }
    let pw = read_new_password()?;
    let user = NewUser::create(name, roles, &pw)?;
    let added = add_user(config, &user)?;
    record(
        config,
        &Event::AccountAdded {
            user: name.to_string(),
            roles: roles.to_vec(),
            file: added.file.display().to_string(),
            by: Operator::here(),
        },
    )?;
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

/// `vigie rotate-keys`: a new session-signing key (and, with `end_all_sessions`, no old ones).
pub(super) fn rotate_keys(config: &Path, end_all_sessions: bool) -> anyhow::Result<()> {
    let kid = crate::accounts::rotate_keys(config, end_all_sessions)?;
    record(
        config,
        &Event::KeysRotated {
            kid: kid.clone(),
            end_all_sessions,
            by: Operator::here(),
        },
    )?;
    println!(
        "new signing key {kid}: the running gateway uses it within tls.reload_interval (10 s by default), or at once on SIGHUP"
    );
    if end_all_sessions {
        println!("the previous keys are gone: every session ends then");
    }
    Ok(())
}

/// Records a change in the audit trail under the configuration's `state_dir`. The change is
/// already made: a failure here says so, and the command exits 1.
fn record(config: &Path, event: &Event) -> anyhow::Result<()> {
    let (config, _) = Config::load(config)?;
    let paths = AuditPaths::of(&config);
    record_and_seal(&paths, event).with_context(|| {
        format!(
            "the change is made, but it could not be recorded in the audit trail ({}); run `vigie audit verify`",
            paths.dir.display()
        )
    })?;
    Ok(())
}
