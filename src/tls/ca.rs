//! A practice's own certificate authority, for a gateway without a public name (reached on the
//! practice's network only): `vigie ca init` creates it under `state_dir/ca/` (ECDSA P-256, the
//! key 0600 and never written anywhere else), `vigie ca issue NAME` signs server certificates
//! with it (ECDSA P-256, 397 days at most, what browsers accept). `vigie dev-cert` is the same
//! code with a CA of its own in the output folder ([`super::devcert`]).

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use super::TlsError;
use crate::files::{self, Mode};

/// The longest server certificate browsers accept (CA/Browser Forum, since September 2020).
pub const MAX_DAYS: u32 = 397;
/// A CA lives ten years: installing it on every doctor's computer is done once.
const CA_DAYS: i64 = 3650;

/// A CA's files: `ca.crt` (public, to install on the doctors' computers) and `ca.key` (0600).
#[derive(Debug, Clone)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CaFiles {
    pub fn in_dir(dir: &Path) -> CaFiles {
        CaFiles {
            cert: dir.join("ca.crt"),
            key: dir.join("ca.key"),
        }
    }

    /// Whether both files are there.
    pub fn exist(&self) -> bool {
        self.cert.is_file() && self.key.is_file()
    }
}

/// A loaded CA, ready to sign.
pub struct LocalCa {
    pub files: CaFiles,
    /// PEM of the CA certificate (appended to each chain it issues).
    pub pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("cert", &self.files.cert)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Creates a CA named `common_name` in `files` (their folder must exist; the key is 0600).
    /// Refuses to replace an existing one: every computer that trusts it would stop.
    pub fn create(files: CaFiles, common_name: &str) -> Result<LocalCa, TlsError> {
        if files.cert.exists() || files.key.exists() {
            return Err(TlsError::CaExists {
                path: files.cert.clone(),
            });
        }
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "Vigie");
        params.distinguished_name = dn;
        // It signs server certificates only, never another authority.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(CA_DAYS);
        let cert = params.self_signed(&key)?;
        // The key first: a certificate without its key would look like a usable CA.
        write_file(&files.key, key.serialize_pem().as_bytes(), true)?;
        write_file(&files.cert, cert.pem().as_bytes(), false)?;
        Ok(LocalCa {
            files,
            pem: cert.pem(),
            key,
        })
    }

    /// Loads the CA of `files`.
    pub fn load(files: CaFiles) -> Result<LocalCa, TlsError> {
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let pem = read(&files.cert)?;
        let key = KeyPair::from_pem(&read(&files.key)?)?;
        // Signing with a key that is not the certificate's would make chains that never verify.
        Issuer::from_ca_cert_pem(&pem, &key)?;
        Ok(LocalCa { files, pem, key })
    }

    /// SHA-256 of the CA certificate (DER), as `AB:CD:…`: what the doctors compare before
    /// trusting the file they downloaded.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.pem).unwrap_or_default()
    }

    /// A server certificate for `names` (the first is its common name), valid `days` (at most
    /// [`MAX_DAYS`]), with a new ECDSA P-256 key: the chain (leaf then CA) and the key, as PEM.
    pub fn issue(&self, names: &[String], days: u32) -> Result<(String, String), TlsError> {
        let issuer = Issuer::from_ca_cert_pem(&self.pem, &self.key)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().map(String::as_str).unwrap_or("vigie"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(i64::from(days.clamp(1, MAX_DAYS)));
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((format!("{}{}", cert.pem(), self.pem), key.serialize_pem()))
    }

    /// [`LocalCa::issue`], written to `out/server.crt` and `out/server.key` (0600), each
    /// replaced atomically so that a gateway watching them never reads half of one.
    pub fn issue_to(
        &self,
        names: &[String],
        days: u32,
        out: &Path,
    ) -> Result<(PathBuf, PathBuf), TlsError> {
        let (chain, key) = self.issue(names, days)?;
        fs::create_dir_all(out).map_err(|source| TlsError::Write {
            path: out.to_owned(),
            source,
        })?;
        let (cert_path, key_path) = (out.join("server.crt"), out.join("server.key"));
        write_file(&key_path, key.as_bytes(), true)?;
        write_file(&cert_path, chain.as_bytes(), false)?;
        Ok((cert_path, key_path))
    }
}

/// The practice CA's certificate as the plain-HTTP listener offers it for download: its PEM and
/// SHA-256 fingerprint, read from `state_dir/ca/ca.crt` when there is one (the key is not read).
#[derive(Debug, Clone)]
pub struct PublishedCa {
    pub pem: String,
    pub fingerprint: String,
}

impl PublishedCa {
    pub fn read(state_dir: &Path) -> Option<PublishedCa> {
        let pem = fs::read_to_string(CaFiles::in_dir(&state_dir.join("ca")).cert).ok()?;
        let fingerprint = fingerprint(&pem)?;
        Some(PublishedCa { pem, fingerprint })
    }
}

/// SHA-256 of the first certificate of `pem` (DER), as `AB:CD:…`.
fn fingerprint(pem: &str) -> Option<String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    Some(
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Replaces the file atomically ([`crate::files`]); private keys get mode 0600 from the start.
pub(super) fn write_file(path: &Path, data: &[u8], private: bool) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mode = if private { Mode::Private } else { Mode::Public };
    files::replace(path, data, mode).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_issues_certificates_browsers_accept() {
        let dir = tempfile::tempdir().unwrap();
        let files = CaFiles::in_dir(&dir.path().join("ca"));
        crate::files::create_private_dir(&dir.path().join("ca")).unwrap();
        let ca = LocalCa::create(files.clone(), "Cabinet test CA").unwrap();
        assert_eq!(ca.fingerprint().len(), 32 * 3 - 1);
        let names = vec!["pacs.cabinet.lan".to_string(), "192.168.1.20".to_string()];
        let (cert, key) = ca
            .issue_to(&names, 10_000, &dir.path().join("issued"))
            .unwrap();
        let loaded = crate::tls::load(&cert, &key).unwrap();
        for n in &names {
            assert!(loaded.info.covers(n), "{n}");
        }
        assert_eq!(loaded.info.chain_len, 2);
        let days = (loaded.info.not_after - OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
        assert!((396..=397).contains(&days), "{days} days: capped at 397");
        // The same CA loads again and signs: its key never left the folder.
        let again = LocalCa::load(files.clone()).unwrap();
        assert_eq!(again.fingerprint(), ca.fingerprint());
        again.issue(&names, 30).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for (path, want) in [(&files.key, 0o600), (&key, 0o600)] {
                let mode = fs::metadata(path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, want, "{}", path.display());
            }
            let dir_mode = fs::metadata(files.key.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
    }

    #[test]
    fn an_existing_ca_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let files = CaFiles::in_dir(dir.path());
        let first = LocalCa::create(files.clone(), "A").unwrap();
        let err = LocalCa::create(files.clone(), "B").unwrap_err();
        assert!(matches!(err, TlsError::CaExists { .. }), "{err}");
        assert_eq!(
            LocalCa::load(files).unwrap().fingerprint(),
            first.fingerprint()
        );
    }
}
