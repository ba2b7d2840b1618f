//! `auth:`: the sign-in settings, the accounts (in the file or in `auth.users_file`) and their
//! TOTP secrets.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice};

use super::Validator;
use crate::config::file::{FileAuth, FileUser};
use crate::config::{AuthSettings, User};

impl Validator {
    pub(super) fn auth(&mut self, a: FileAuth) -> AuthSettings {
        let second_factor = match a.second_factor.as_deref().map(str::trim) {
            None | Some("totp") => true,
            Some("off") => {
                self.warning(
                    "auth.second_factor",
                    "the second factor is OFF: a stolen password is enough to see patient images",
                    "remote access to health data needs two factors (ANS rules, since 1 January 2026); remove this line",
                );
                false
            }
            Some(other) => {
                self.error(
                    "auth.second_factor",
                    format!("`{other}` is not a second factor"),
                    "use \"totp\" (the default) or, at your own risk, \"off\"",
                );
                true
            }
        };
        let mut users = Vec::new();
        if let Some(list) = a.users {
            for (i, u) in list.into_iter().enumerate() {
                if let Some(u) = self.user(u, &format!("auth.users[{i}]"), second_factor) {
                    users.push(u);
                }
            }
        }
        let users_file = a.users_file.map(PathBuf::from);
        if let Some(path) = &users_file {
            self.users_file(path, second_factor, &mut users);
        }
        let mut seen = std::collections::HashSet::new();
        for u in &users {
            if !seen.insert(u.username.clone()) {
                self.error(
                    "auth.users",
                    format!("the user `{}` is defined twice", u.username),
                    "keep one entry per user name",
                );
            }
        }
        let idle_timeout = self.duration(
            a.idle_timeout.as_deref(),
            "auth.idle_timeout",
            Duration::from_secs(15 * 60),
        );
        let absolute_timeout = self.duration(
            a.absolute_timeout.as_deref(),
            "auth.absolute_timeout",
            Duration::from_secs(12 * 3600),
        );
        if idle_timeout > absolute_timeout {
            self.error(
                "auth.idle_timeout",
                "the idle timeout is longer than the absolute session lifetime",
                "keep idle_timeout (default 15m) below absolute_timeout (default 12h)",
            );
        }
        let max_failures = a.max_failures.unwrap_or(5);
        if max_failures == 0 {
            self.error(
                "auth.max_failures",
                "must be at least 1",
                "the default is 5",
            );
        }
        AuthSettings {
            users,
            users_file,
            second_factor,
            idle_timeout,
            absolute_timeout,
            max_failures: max_failures.max(1),
            lockout: self.duration(
                a.lockout.as_deref(),
                "auth.lockout",
                Duration::from_secs(15 * 60),
            ),
            failure_delay: self.duration(
                a.failure_delay.as_deref(),
                "auth.failure_delay",
                Duration::from_millis(250),
            ),
            // Filled in by `Validator::config`, which knows the gateway's origin.
            oidc: Vec::new(),
        }
    }

    pub(super) fn users_file(
        &mut self,
        path: &std::path::Path,
        second_factor: bool,
        users: &mut Vec<User>,
    ) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // `vigie user add` creates it; an absent file is an empty list.
                return;
            }
            Err(e) => {
                self.error(
                    "auth.users_file",
                    format!("cannot read {}: {e}", path.display()),
                    "check the path and that the gateway's user may read the file",
                );
                return;
            }
        };
        if text.trim().is_empty() {
            return;
        }
        let parsed: Result<Vec<FileUser>, _> = serde_saphyr::from_str(&text);
        match parsed {
            Ok(list) => {
                for (i, u) in list.into_iter().enumerate() {
                    let at = format!("auth.users_file({})[{i}]", path.display());
                    if let Some(u) = self.user(u, &at, second_factor) {
                        users.push(u);
                    }
                }
            }
            Err(e) => self.error(
                "auth.users_file",
                format!("{}: {}", path.display(), e.without_snippet()),
                "the file is a YAML list of users with the same keys as auth.users",
            ),
        }
    }

    pub(super) fn user(&mut self, u: FileUser, at: &str, second_factor: bool) -> Option<User> {
        let username = self.required(u.username, &format!("{at}.username"), "e.g. dr.martin")?;
        let at = format!("{at}({username})");
        if !crate::config::valid_username(&username) {
            self.error(
                &format!("{at}.username"),
                format!("`{username}` is not a valid user name"),
                "use letters, digits and . _ - @ (at most 64)",
            );
        }
        let password_hash = self.required(
            u.password_hash,
            &format!("{at}.password_hash"),
            "create one with `vigie hash-password`",
        );
        if let Some(h) = &password_hash
            && let Err(why) = crate::credentials::password::check_phc(h)
        {
            self.error(
                &format!("{at}.password_hash"),
                why,
                "create one with `vigie hash-password` (argon2id, m=19456 t=2 p=1 or stronger)",
            );
        }
        let keys = (u.totp_secret, u.totp_secret_file, u.totp_secret_env);
        let totp_secret = match self.secret(&at, "totp_secret", keys) {
            Ok(Some((text, key))) => self.totp(text.expose_secret(), &key),
            Ok(None) | Err(()) => None,
        };
        let disabled = u.disabled.unwrap_or(false);
        if second_factor && totp_secret.is_none() && !disabled {
            self.error(
                &format!("{at}.totp_secret"),
                "this user has no TOTP secret, and the second factor is required",
                "`vigie user add` creates one; or set totp_secret (base32), totp_secret_file or totp_secret_env",
            );
        }
        let roles = u.roles.unwrap_or_default();
        if roles.is_empty() {
            self.error(
                &format!("{at}.roles"),
                "the user has no role",
                "e.g. roles: [doctor] or roles: [admin]",
            );
        }
        for r in &roles {
            if !crate::config::valid_role(r) {
                self.error(
                    &format!("{at}.roles"),
                    format!("`{r}` is not a role name"),
                    "use letters, digits, _ and -, e.g. doctor, admin",
                );
            }
        }
        Some(User {
            username,
            password_hash: password_hash?,
            totp_secret,
            roles,
            disabled,
        })
    }

    pub(super) fn totp(&mut self, text: &str, at: &str) -> Option<SecretSlice<u8>> {
        match crate::credentials::totp::decode_secret(text) {
            Ok(bytes) => Some(bytes.into()),
            Err(why) => {
                self.error(
                    at,
                    why,
                    "a base32 secret of at least 16 bytes (26 characters), as `vigie user add` makes",
                );
                None
            }
        }
    }
}
