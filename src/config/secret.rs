//! Where a secret in the configuration comes from, the same three ways for every secret (the
//! upstream's password, each account's TOTP secret): `<name>` written in the file (fine for a
//! test, discouraged in production), `<name>_file` (a file, e.g. a Docker secret under
//! `/run/secrets/`; its trailing newline is dropped), or `<name>_env` (an environment variable).
//! Exactly one may be set. Once read, a secret lives in a `secrecy` box: zeroized when dropped,
//! `***` in `Debug`, read only through `expose_secret()`.

use std::path::PathBuf;

use secrecy::SecretString;

/// One secret's source, from the `<name>`, `<name>_file`, `<name>_env` keys.
#[derive(Debug)]
pub(crate) enum SecretSource {
    /// Written in the configuration file.
    Value(SecretString),
    /// Read from this file.
    File(PathBuf),
    /// Read from this environment variable.
    Env(String),
}

/// Why a secret could not be read: the key to look at (`password_file`) and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretError {
    /// The key, relative to the secret's section: `<name>`, `<name>_file` or `<name>_env`.
    pub key: String,
    pub message: String,
    pub hint: String,
}

/// More than one of the three keys is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ambiguous;

impl SecretSource {
    /// The source the three keys name: `Ok(None)` when none is set.
    pub(crate) fn from_keys(
        value: Option<String>,
        file: Option<String>,
        env: Option<String>,
    ) -> Result<Option<SecretSource>, Ambiguous> {
        match (value, file, env) {
            (None, None, None) => Ok(None),
            (Some(v), None, None) => Ok(Some(SecretSource::Value(v.into()))),
            (None, Some(f), None) => Ok(Some(SecretSource::File(f.into()))),
            (None, None, Some(e)) => Ok(Some(SecretSource::Env(e))),
            _ => Err(Ambiguous),
        }
    }

    /// The key this source was given by, for a secret called `name`.
    pub(crate) fn key(&self, name: &str) -> String {
        match self {
            SecretSource::Value(_) => name.to_string(),
            SecretSource::File(_) => format!("{name}_file"),
            SecretSource::Env(_) => format!("{name}_env"),
        }
    }

    /// Reads the secret called `name` (for the error's key and hint).
    pub(crate) fn read(&self, name: &str) -> Result<SecretString, SecretError> {
        match self {
            SecretSource::Value(v) => Ok(v.clone()),
            SecretSource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => Ok(text.trim_end_matches(['\r', '\n']).to_owned().into()),
                Err(e) => Err(SecretError {
                    key: self.key(name),
                    message: format!("cannot read {}: {e}", path.display()),
                    hint: "check the path (e.g. a Docker secret under /run/secrets/) and its permissions"
                        .into(),
                }),
            },
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) => Ok(v.into()),
                Err(_) => Err(SecretError {
                    key: self.key(name),
                    message: format!("the environment variable {var} is not set"),
                    hint: format!("set it in the gateway's environment, or use {name}_file"),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn exactly_one_key_names_the_source() {
        let s = |v: Option<&str>, f: Option<&str>, e: Option<&str>| {
            SecretSource::from_keys(v.map(Into::into), f.map(Into::into), e.map(Into::into))
        };
        assert!(matches!(s(None, None, None), Ok(None)));
        assert!(matches!(
            s(Some("x"), None, None),
            Ok(Some(SecretSource::Value(_)))
        ));
        assert!(matches!(
            s(None, Some("/f"), None),
            Ok(Some(SecretSource::File(_)))
        ));
        assert!(matches!(
            s(None, None, Some("V")),
            Ok(Some(SecretSource::Env(_)))
        ));
        assert_eq!(s(Some("x"), Some("/f"), None).err(), Some(Ambiguous));
        assert_eq!(s(None, Some("/f"), Some("V")).err(), Some(Ambiguous));
    }

    #[test]
    fn files_lose_their_trailing_newline_and_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        let got = SecretSource::File(path).read("password").unwrap();
        assert_eq!(got.expose_secret(), "s3cret");
        let missing = SecretSource::File(dir.path().join("nope")).read("password");
        assert_eq!(missing.unwrap_err().key, "password_file");
        let unset = SecretSource::Env("VIGIE_TEST_SURELY_UNSET_1F3A".into()).read("totp_secret");
        let e = unset.unwrap_err();
        assert_eq!(e.key, "totp_secret_env");
        assert!(e.hint.contains("totp_secret_file"), "{}", e.hint);
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretSource::Value("hunter2-secret".to_string().into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
