//! `tls:`: certificate and key paths, minimum version, reload interval.

use std::path::PathBuf;
use std::time::Duration;

use super::Validator;
use crate::config::file::FileTls;
use crate::config::{TlsMinVersion, TlsSettings};

impl Validator {
    pub(super) fn tls(&mut self, t: Option<FileTls>) -> Option<TlsSettings> {
        let t = self.required(
            t,
            "tls",
            "add `tls:` with cert_file and key_file (`vigie dev-cert` makes a local pair)",
        )?;
        let cert_file = self.required(
            t.cert_file,
            "tls.cert_file",
            "path to the PEM certificate chain, e.g. certs/server.crt",
        );
        let key_file = self.required(
            t.key_file,
            "tls.key_file",
            "path to the PEM private key, e.g. certs/server.key",
        );
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
        Some(TlsSettings {
            cert_file: PathBuf::from(cert_file?),
            key_file: PathBuf::from(key_file?),
            min_version,
            reload_interval,
        })
    }
}
