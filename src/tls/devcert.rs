//! `vigie dev-cert`: a local certificate authority and an ECDSA P-256 server certificate, so a
//! newcomer can serve HTTPS without any openssl incantation. It is the practice CA of
//! [`super::ca`] with its files in the output folder: the CA is reused when it already exists
//! there, so browsers need to trust it only once.

use std::fs;
use std::path::{Path, PathBuf};

use super::TlsError;
use super::ca::{CaFiles, LocalCa};

/// The files written by [`generate`].
#[derive(Debug)]
pub struct DevCert {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_reused: bool,
}

/// Creates (or reuses) `out/ca.crt` + `out/ca.key` and writes `out/server.crt` (leaf then CA)
/// and `out/server.key` for `name`, `localhost`, `127.0.0.1` and `::1`.
pub fn generate(out: &Path, name: &str) -> Result<DevCert, TlsError> {
    fs::create_dir_all(out).map_err(|source| TlsError::Write {
        path: out.to_owned(),
        source,
    })?;
    let files = CaFiles::in_dir(out);
    let (ca, ca_reused) = if files.exist() {
        (LocalCa::load(files)?, true)
    } else {
        let ca = LocalCa::create(files, "Vigie development CA (do not trust in production)")?;
        (ca, false)
    };
    let mut names = vec![name.to_ascii_lowercase()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    let (cert, key) = ca.issue_to(&names, 365, out)?;
    Ok(DevCert {
        ca_cert: ca.files.cert.clone(),
        cert,
        key,
        ca_reused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_loads_and_covers_names() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), "viewer.test").unwrap();
        assert!(!first.ca_reused);
        let loaded = crate::tls::load(&first.cert, &first.key).unwrap();
        for name in ["viewer.test", "localhost", "127.0.0.1", "::1"] {
            assert!(loaded.info.covers(name), "{name}");
        }
        assert_eq!(loaded.info.chain_len, 2);
        let second = generate(dir.path(), "other.test").unwrap();
        assert!(second.ca_reused, "the CA must be kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&second.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
