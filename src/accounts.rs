//! Account administration from the command line: `vigie hash-password`, `vigie user add` and
//! `vigie rotate-keys`. Files are replaced atomically and privately ([`crate::files`]) with a
//! `.bak` copy of the previous version (private too: it holds the same hashes and secrets), and
//! a change is written only if the result still validates: bad input loses nothing.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use crate::auth::keys::KeyRing;
use crate::config::{Config, ConfigError};
use crate::credentials::{password, totp};
use crate::files::{self, Mode};

/// What can go wrong, in the administrator's words.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("the password is refused: {0}")]
    Weak(String),
    #[error("the two passwords differ")]
    Mismatch,
    // The cause is part of the message, not a chained source: `{:#}` would print it twice.
    #[error("cannot read the password: {0}")]
    Input(std::io::Error),
    #[error("`{0}` is not a valid user name: use letters, digits and . _ - @ (at most 64)")]
    BadName(String),
    #[error("`{0}` is not a role name: use letters, digits, _ and -")]
    BadRole(String),
    #[error("the user `{0}` already exists")]
    Exists(String),
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("the file would no longer be valid after the change, nothing was written:\n{0}")]
    WouldBreak(String),
    #[error("{0}")]
    Other(String),
}

/// Reads a new password: twice at a no-echo prompt on a terminal, once from standard input
/// otherwise (scripts). Refuses weak ones.
pub(crate) fn read_new_password() -> Result<String, AccountError> {
    let pw = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("New password: ").map_err(AccountError::Input)?;
        let b = rpassword::prompt_password("Same password again: ").map_err(AccountError::Input)?;
        if a != b {
            return Err(AccountError::Mismatch);
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(AccountError::Input)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    password::strength(&pw).map_err(AccountError::Weak)?;
    Ok(pw)
}

/// A new account, ready to be written.
#[derive(Debug)]
pub(crate) struct NewUser {
    pub username: String,
    pub roles: Vec<String>,
    pub password_hash: String,
    /// Base32.
    pub totp_secret: String,
}

impl NewUser {
    /// Checks the name and roles, hashes the password, draws a TOTP secret.
    pub(crate) fn create(
        username: &str,
        roles: &[String],
        password: &str,
    ) -> Result<NewUser, AccountError> {
        if !crate::config::valid_username(username) {
            return Err(AccountError::BadName(username.to_owned()));
        }
        if roles.is_empty() {
            return Err(AccountError::BadRole(String::new()));
        }
        for r in roles {
            if !crate::config::valid_role(r) {
                return Err(AccountError::BadRole(r.clone()));
            }
        }
        password::strength(password).map_err(AccountError::Weak)?;
        Ok(NewUser {
            username: username.to_owned(),
            roles: roles.to_vec(),
            password_hash: password::hash(password).map_err(AccountError::Other)?,
            totp_secret: totp::new_secret().map_err(AccountError::Other)?,
        })
    }

    /// The YAML list item, indented by `indent` spaces.
    fn yaml_item(&self, indent: usize) -> String {
        let pad = " ".repeat(indent);
        format!(
            "{pad}- username: {}\n{pad}  password_hash: \"{}\"\n{pad}  totp_secret: {}\n{pad}  roles: [{}]\n",
            self.username,
            self.password_hash,
            self.totp_secret,
            self.roles.join(", ")
        )
    }

    /// The `otpauth://` URI for the phone's authenticator app.
    pub(crate) fn otpauth_uri(&self) -> Option<String> {
        let secret = totp::decode_secret(&self.totp_secret).ok()?;
        totp::otpauth_uri(&secret, &self.username)
    }
}

/// Where `user add` wrote.
#[derive(Debug)]
pub(crate) struct Added {
    pub file: PathBuf,
}

/// Appends `user` to the accounts of the configuration at `config_path`: to `auth.users_file`
/// when it is set (the file is created with mode 0600 if absent), otherwise to `auth.users` in
/// the configuration file itself.
pub(crate) fn add_user(config_path: &Path, user: &NewUser) -> Result<Added, AccountError> {
    let (config, _) = Config::load(config_path)?;
    if config
        .auth
        .users
        .iter()
        .any(|u| u.username == user.username)
    {
        return Err(AccountError::Exists(user.username.clone()));
    }
    if let Some(users_file) = &config.auth.users_file {
        let old = std::fs::read_to_string(users_file).unwrap_or_default();
        let mut new = old.clone();
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        if new.trim().is_empty() || new.trim() == "[]" {
            new = String::from("# Vigie accounts (written by `vigie user add`).\n");
        }
        new.push_str(&user.yaml_item(0));
        write_checked(users_file, &old, &new, |_| {
            Config::load(config_path)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        return Ok(Added {
            file: users_file.clone(),
        });
    }
    let old = std::fs::read_to_string(config_path).map_err(|source| AccountError::Write {
        path: config_path.to_owned(),
        cause: source,
    })?;
    let new = insert_inline(&old, user);
    write_checked(config_path, &old, &new, |text| {
        Config::from_yaml(text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    Ok(Added {
        file: config_path.to_owned(),
    })
}

/// Inserts the user into `auth.users` of a configuration text, keeping every other line.
fn insert_inline(text: &str, user: &NewUser) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let is_content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let Some(auth_at) = lines.iter().position(|l| l.trim_end() == "auth:") else {
        let mut out = text.to_owned();
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("auth:\n  users:\n");
        out.push_str(&user.yaml_item(4));
        return out;
    };
    // The auth block: following lines indented more than `auth:` (or blank / comments).
    let auth_end = lines[auth_at + 1..]
        .iter()
        .position(|l| is_content(l) && indent_of(l) == 0)
        .map_or(lines.len(), |p| auth_at + 1 + p);
    let users_at = (auth_at + 1..auth_end).find(|&i| {
        let t = lines[i].trim();
        t == "users:" || t == "users: []"
    });
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match users_at {
        None => {
            let mut block = vec!["  users:".to_string()];
            block.extend(user.yaml_item(4).lines().map(str::to_owned));
            out.splice(auth_at + 1..auth_at + 1, block);
        }
        Some(u) => {
            let ind = indent_of(lines[u]);
            out[u] = format!("{}users:", " ".repeat(ind));
            // The list ends at the first content line indented no more than `users:` that is
            // not a list item at that indentation.
            let mut end = u + 1;
            for (i, l) in lines.iter().enumerate().take(auth_end).skip(u + 1) {
                if !is_content(l) {
                    continue;
                }
                let li = indent_of(l);
                if li > ind || (li == ind && l.trim_start().starts_with('-')) {
                    end = i + 1;
                } else {
                    break;
                }
            }
            let item_indent = lines[u + 1..end]
                .iter()
                .find(|l| l.trim_start().starts_with('-'))
                .map_or(ind + 2, |l| indent_of(l));
            out.splice(
                end..end,
                user.yaml_item(item_indent).lines().map(str::to_owned),
            );
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Writes `new` to `path` only if `still_valid` accepts it; keeps `path.bak`; private mode.
fn write_checked(
    path: &Path,
    old: &str,
    new: &str,
    still_valid: impl Fn(&str) -> Result<(), String>,
) -> Result<(), AccountError> {
    let err = |source| AccountError::Write {
        path: path.to_owned(),
        cause: source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if path.exists() {
        files::replace(&path.with_extension("bak"), old.as_bytes(), Mode::Private).map_err(err)?;
    }
    files::replace(path, new.as_bytes(), Mode::Private).map_err(err)?;
    // Validate the file in place (a users file is only valid together with its configuration);
    // put the old content back if it broke anything.
    if let Err(why) = still_valid(new) {
        let _ = files::replace(path, old.as_bytes(), Mode::Private);
        return Err(AccountError::WouldBreak(why));
    }
    Ok(())
}

/// A QR code for the terminal (two rows per character).
pub(crate) fn qr_for_terminal(data: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// Puts a new session-signing key in front; older keys keep verifying for the session lifetime.
/// Starts signing with a new key. With `end_all_sessions`, the older keys are dropped too, so
/// that every existing session stops verifying once the gateway reloads the keys.
pub(crate) fn rotate_keys(
    config_path: &Path,
    end_all_sessions: bool,
) -> Result<String, AccountError> {
    let (config, _) = Config::load(config_path)?;
    let now = crate::host::unix_now();
    crate::store::create_private_dir(&config.state_dir)
        .map_err(|e| AccountError::Other(e.to_string()))?;
    let mut ring = KeyRing::load_or_create(&config.state_dir, now)
        .map_err(|e| AccountError::Other(e.to_string()))?;
    if end_all_sessions {
        ring.replace_all(&config.state_dir, now)
    } else {
        ring.rotate(
            &config.state_dir,
            now,
            config.auth.absolute_timeout.as_secs() + 3600,
        )
    }
    .map_err(|e| AccountError::Other(e.to_string()))?;
    Ok(ring.keys[0].kid.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> NewUser {
        NewUser {
            username: "dr.new".into(),
            roles: vec!["doctor".into()],
            password_hash: "$argon2id$x".into(),
            totp_secret: "ABC".into(),
        }
    }

    #[test]
    fn inline_insertion_keeps_everything_else() {
        let cases = [
            (
                "server_name: a\n",
                "auth:\n  users:\n    - username: dr.new",
            ),
            (
                "auth:\n  idle_timeout: 5m\nlog:\n  level: info\n",
                "auth:\n  users:\n    - username: dr.new",
            ),
            (
                "auth:\n  users: []\n  idle_timeout: 5m\n",
                "  users:\n    - username: dr.new",
            ),
            (
                "auth:\n  users:\n  - username: old\n    roles: [admin]\n  idle_timeout: 5m\n# end\n",
                "  - username: old\n    roles: [admin]\n  - username: dr.new",
            ),
        ];
        for (text, want) in cases {
            let out = insert_inline(text, &user());
            assert!(out.contains(want), "{text:?} ->\n{out}");
            for line in text.lines() {
                if line.trim() != "users: []" {
                    assert!(out.contains(line), "lost {line:?}:\n{out}");
                }
            }
        }
    }

    /// The users file and its `.bak` hold password hashes and TOTP secrets: links planted under
    /// the names the rewrite used to write through (`users.tmp`, `users.bak`) are not followed,
    /// and both files are private.
    #[cfg(unix)]
    #[test]
    fn rewrite_follows_no_planted_link_and_stays_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.yaml");
        std::fs::write(&path, "old").unwrap();
        let outside = |name: &str| {
            let target = dir.path().join(name);
            std::fs::write(&target, "untouched").unwrap();
            target
        };
        let (tmp_target, bak_target) = (outside("a"), outside("b"));
        std::os::unix::fs::symlink(&tmp_target, dir.path().join("users.tmp")).unwrap();
        std::os::unix::fs::symlink(&bak_target, dir.path().join("users.bak")).unwrap();
        write_checked(&path, "old", "new", |_| Ok(())).unwrap();
        for target in [&tmp_target, &bak_target] {
            assert_eq!(std::fs::read_to_string(target).unwrap(), "untouched");
        }
        let bak = dir.path().join("users.bak");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(&bak).unwrap(), "old");
        for f in [&path, &bak] {
            let meta = std::fs::symlink_metadata(f).unwrap();
            assert!(meta.is_file(), "{f:?}");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f:?}");
        }
        // A change that would break the configuration puts the old content back.
        let refused = write_checked(&path, "new", "broken", |_| Err("no".into()));
        assert!(matches!(refused, Err(AccountError::WouldBreak(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn refuses_bad_names_roles_and_passwords() {
        let roles = vec!["doctor".to_string()];
        assert!(matches!(
            NewUser::create("bad name", &roles, "Radio-Thorax-2026"),
            Err(AccountError::BadName(_))
        ));
        assert!(matches!(
            NewUser::create("ok", &["a b".to_string()], "Radio-Thorax-2026"),
            Err(AccountError::BadRole(_))
        ));
        assert!(matches!(
            NewUser::create("ok", &roles, "password"),
            Err(AccountError::Weak(_))
        ));
    }
}
