//! `tls:`: where the certificate comes from (files, the practice CA, or ACME), the minimum
//! version, the reload interval.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Validator;
use super::oidc::read_ca_file;
use crate::config::file::{FileAcme, FileTls};
use crate::config::{
    AcmeChallenge, AcmeSettings, CertSource, LETS_ENCRYPT, LETS_ENCRYPT_STAGING, Listen,
    TlsMinVersion, TlsSettings,
};

/// What `tls:` needs from the rest of the file.
pub(super) struct TlsContext<'a> {
    pub state_dir: &'a Path,
    /// `server_name` then `server_aliases`, when valid.
    pub names: Vec<(String, String)>,
    pub listen: Option<&'a Listen>,
}

impl Validator {
    pub(super) fn tls(&mut self, t: Option<FileTls>, cx: &TlsContext<'_>) -> Option<TlsSettings> {
        let t = self.required(
            t,
            "tls",
            "add `tls:` with `acme:` (a public name, Let's Encrypt), `local_ca: true` (the practice's own authority, `vigie ca init`) or cert_file and key_file",
        )?;
        let min_version = match t.min_version.as_deref().map(str::trim) {
            None | Some("1.2") => TlsMinVersion::Tls12,
            Some("1.3") => TlsMinVersion::Tls13,
            Some(other) => {
                self.error(
                    "tls.min_version",
                    format!("`{other}` is not a supported TLS version"),
                    "use \"1.2\" (default, widest support) or \"1.3\"; older versions are insecure",
                );
                TlsMinVersion::Tls12
            }
        };
        let reload_interval = self.duration(
            t.reload_interval.as_deref(),
            "tls.reload_interval",
            Duration::from_secs(10),
        );
        let files = t.cert_file.is_some() || t.key_file.is_some();
        let local_ca = t.local_ca.unwrap_or(false);
        let sources = [files, local_ca, t.acme.is_some()];
        if sources.iter().filter(|s| **s).count() > 1 {
            let at = if t.acme.is_some() {
                "tls.acme"
            } else {
                "tls.local_ca"
            };
            self.error(
                at,
                "more than one certificate source is set",
                "keep one: `acme:` (public name), `local_ca: true` (practice CA) or cert_file/key_file (your own files)",
            );
            return None;
        }
        let (source, cert_file, key_file) = if let Some(acme) = t.acme {
            let acme = self.acme(acme, cx)?;
            let (cert, key) = (acme.dir.join("server.crt"), acme.dir.join("server.key"));
            (CertSource::Acme(acme), cert, key)
        } else if local_ca {
            let (_, first) = cx.names.first()?;
            let dir = cx.state_dir.join("ca").join("issued").join(first);
            (
                CertSource::LocalCa,
                dir.join("server.crt"),
                dir.join("server.key"),
            )
        } else {
            let cert_file = self.required(
                t.cert_file,
                "tls.cert_file",
                "path to the PEM certificate chain, e.g. certs/server.crt (or use `acme:` or `local_ca: true` instead of files)",
            );
            let key_file = self.required(
                t.key_file,
                "tls.key_file",
                "path to the PEM private key, e.g. certs/server.key",
            );
            (
                CertSource::Files,
                PathBuf::from(cert_file?),
                PathBuf::from(key_file?),
            )
        };
        Some(TlsSettings {
            source,
            cert_file,
            key_file,
            min_version,
            reload_interval,
        })
    }

    fn acme(&mut self, a: FileAcme, cx: &TlsContext<'_>) -> Option<AcmeSettings> {
        let email = self
            .required(
                a.email,
                "tls.acme.email",
                "the administrator's address, given to the CA for its account (policy changes, problems with the account)",
            )
            .and_then(|e| {
                let e = e.trim().trim_start_matches("mailto:").to_string();
                let ok = e
                    .split_once('@')
                    .is_some_and(|(u, d)| !u.is_empty() && d.contains('.'))
                    && !e.contains(char::is_whitespace);
                if !ok {
                    self.error(
                        "tls.acme.email",
                        format!("`{e}` is not an email address"),
                        "write e.g. it@cabinet-radiologie.fr",
                    );
                }
                ok.then_some(e)
            });
        if a.accept_terms != Some(true) {
            self.error(
                "tls.acme.accept_terms",
                "the CA's terms of service are not accepted",
                "read them (Let's Encrypt: https://letsencrypt.org/repository/) and set accept_terms: true",
            );
        }
        let directory = match a.directory.as_deref().map(str::trim) {
            None | Some("letsencrypt") => Some(LETS_ENCRYPT.to_string()),
            Some("letsencrypt-staging") => Some(LETS_ENCRYPT_STAGING.to_string()),
            Some(url) => match url.parse::<http::Uri>() {
                Ok(u) if u.scheme_str() == Some("https") && u.host().is_some() => {
                    Some(url.to_string())
                }
                _ => {
                    self.error(
                        "tls.acme.directory",
                        format!("`{url}` is not an https:// URL"),
                        "leave it out for Let's Encrypt, write `letsencrypt-staging` to try a setup, or give your CA's directory URL (https://…/directory)",
                    );
                    None
                }
            },
        };
        let challenge = match a.challenge.as_deref().map(str::trim) {
            None | Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
            Some("http-01") => {
                if cx.listen.is_some_and(|l| l.http.is_none()) {
                    self.error(
                        "tls.acme.challenge",
                        "http-01 is answered on the plain-HTTP listener, and listen.http is not set",
                        "add listen.http (the CA connects to port 80) or use tls-alpn-01 (port 443 only)",
                    );
                }
                AcmeChallenge::Http01
            }
            Some(other) => {
                self.error(
                    "tls.acme.challenge",
                    format!("`{other}` is not a supported challenge"),
                    "use tls-alpn-01 (default: port 443 only) or http-01 (port 80, listen.http)",
                );
                AcmeChallenge::TlsAlpn01
            }
        };
        let ca_file = a.ca_file.map(PathBuf::from);
        if let Some(path) = &ca_file
            && let Err(why) = read_ca_file(path)
        {
            self.error(
                "tls.acme.ca_file",
                why,
                "a PEM file of the authorities that sign your ACME server's own HTTPS certificate",
            );
        }
        let mut names = Vec::new();
        for (path, name) in &cx.names {
            if name.parse::<std::net::IpAddr>().is_ok() {
                self.error(
                    path,
                    format!("`{name}` is an IP address: ACME certificates are for DNS names"),
                    "use a DNS name, or `local_ca: true` for a gateway reached by its address",
                );
            } else if name.starts_with("*.") || name == "localhost" || !name.contains('.') {
                self.error(
                    path,
                    format!("`{name}` cannot get a certificate from a public ACME CA"),
                    "use the public name the internet box's address has in DNS, or `local_ca: true` on a practice network",
                );
            } else {
                names.push(name.clone());
            }
        }
        let base = match a.dir.map(PathBuf::from) {
            Some(d) if d.is_absolute() => d,
            Some(d) => {
                self.error(
                    "tls.acme.dir",
                    format!("`{}` is not an absolute path", d.display()),
                    "give the absolute path of a folder every replica mounts (e.g. /var/lib/vigie-acme), or leave it out for state_dir/acme",
                );
                return None;
            }
            None => cx.state_dir.join("acme"),
        };
        let directory = directory?;
        let dir = base.join(directory_slug(&directory));
        Some(AcmeSettings {
            email: email?,
            directory,
            challenge,
            ca_file,
            names,
            dir,
        })
    }
}

/// The folder of one CA's account and certificate: its host and port, so that moving from the
/// staging directory to production starts a new account and certificate beside the old ones.
fn directory_slug(url: &str) -> String {
    let authority = url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.as_str().to_string()))
        .unwrap_or_else(|| "acme".into());
    authority
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::{CertSource, Config, ConfigError};

    const BASE: &str = "server_name: viewer.example.org\nlisten:\n  https: \"0.0.0.0:8443\"\n\
                        upstream:\n  url: \"http://127.0.0.1:8042\"\nstate_dir: /srv/vigie\n\
                        auth:\n  users: []\n";

    fn load(extra: &str) -> Result<Config, Vec<(String, String)>> {
        match Config::from_yaml(&format!("{BASE}{extra}")) {
            Ok((c, _)) => Ok(c),
            Err(ConfigError::Invalid(p)) => Err(p.into_iter().map(|p| (p.path, p.hint)).collect()),
            Err(e) => panic!("{e}"),
        }
    }

    fn paths(extra: &str) -> Vec<String> {
        load(extra)
            .unwrap_err()
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    const ACME: &str = "tls:\n  acme:\n    email: it@cabinet.fr\n    accept_terms: true\n";

    #[test]
    fn acme_defaults_to_lets_encrypt_and_tls_alpn() {
        let c = load(ACME).unwrap();
        let CertSource::Acme(a) = &c.tls.source else {
            panic!("{:?}", c.tls.source)
        };
        assert_eq!(a.directory, crate::config::LETS_ENCRYPT);
        assert_eq!(a.challenge, crate::config::AcmeChallenge::TlsAlpn01);
        assert_eq!(a.names, ["viewer.example.org"]);
        assert_eq!(
            c.tls.cert_file,
            std::path::Path::new("/srv/vigie/acme/acme-v02.api.letsencrypt.org/server.crt")
        );
        let staging = load(&format!("{ACME}    directory: letsencrypt-staging\n")).unwrap();
        let CertSource::Acme(a) = &staging.tls.source else {
            panic!()
        };
        assert_eq!(a.directory, crate::config::LETS_ENCRYPT_STAGING);
    }

    #[test]
    fn acme_mistakes_name_their_key() {
        for (extra, want) in [
            (
                "tls:\n  acme:\n    email: it@cabinet.fr\n".to_string(),
                "tls.acme.accept_terms",
            ),
            (
                "tls:\n  acme:\n    email: nobody\n    accept_terms: true\n".into(),
                "tls.acme.email",
            ),
            (
                format!("{ACME}    challenge: http-01\n"),
                "tls.acme.challenge",
            ),
            (
                format!("{ACME}    challenge: dns-01\n"),
                "tls.acme.challenge",
            ),
            (
                format!("{ACME}    directory: http://acme.lan/dir\n"),
                "tls.acme.directory",
            ),
            (
                format!("{ACME}    ca_file: /nonexistent/ca.pem\n"),
                "tls.acme.ca_file",
            ),
            (format!("{ACME}    dir: shared/acme\n"), "tls.acme.dir"),
            (
                format!("{ACME}  cert_file: a.crt\n  key_file: a.key\n"),
                "tls.acme",
            ),
            (
                format!("{ACME}server_aliases: [192.168.1.20]\n"),
                "server_aliases[0]",
            ),
            (
                "tls:\n  local_ca: true\n  cert_file: a.crt\n".into(),
                "tls.local_ca",
            ),
            ("tls: {}\n".into(), "tls.cert_file"),
        ] {
            let p = paths(&extra);
            assert!(p.iter().any(|x| x == want), "{extra}: {p:?}");
        }
    }

    #[test]
    fn the_local_ca_certificate_lives_beside_the_ca() {
        let c = load("tls:\n  local_ca: true\n").unwrap();
        assert_eq!(c.tls.source, CertSource::LocalCa);
        assert_eq!(
            c.tls.cert_file,
            std::path::Path::new("/srv/vigie/ca/issued/viewer.example.org/server.crt")
        );
    }

    #[test]
    fn each_ca_has_its_own_folder() {
        assert_eq!(
            super::directory_slug(crate::config::LETS_ENCRYPT),
            "acme-v02.api.letsencrypt.org"
        );
        assert_eq!(
            super::directory_slug("https://127.0.0.1:14000/dir"),
            "127.0.0.1_14000"
        );
    }
}
