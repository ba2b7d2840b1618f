//! `vigie dev-cert`: a local certificate authority and an ECDSA P-256 server certificate, so a
//! newcomer can serve HTTPS without any openssl incantation. The CA is reused when it already
//! exists in the output folder, so browsers need to trust it only once.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use super::TlsError;
use crate::files::{self, Mode};

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
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    fs::create_dir_all(out).map_err(write_err(out))?;
    let ca_cert_path = out.join("ca.crt");
    let ca_key_path = out.join("ca.key");
    let now = OffsetDateTime::now_utc();

    let (ca_pem, ca_key, ca_reused) = match (
        fs::read_to_string(&ca_cert_path),
        fs::read_to_string(&ca_key_path),
    ) {
        (Ok(cert), Ok(key)) => (cert, KeyPair::from_pem(&key)?, true),
        _ => {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(
                DnType::CommonName,
                "Vigie development CA (do not trust in production)",
            );
            dn.push(DnType::OrganizationName, "Vigie");
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.not_before = now - Duration::hours(1);
            params.not_after = now + Duration::days(3650);
            let cert = params.self_signed(&key)?;
            write_file(&ca_cert_path, cert.pem().as_bytes(), false)?;
            write_file(&ca_key_path, key.serialize_pem().as_bytes(), true)?;
            (cert.pem(), key, false)
        }
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key)?;

    let mut names = vec![name.to_ascii_lowercase()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;

    let cert_path = out.join("server.crt");
    let key_path = out.join("server.key");
    write_file(
        &cert_path,
        format!("{}{}", cert.pem(), ca_pem).as_bytes(),
        false,
    )?;
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    Ok(DevCert {
        ca_cert: ca_cert_path,
        cert: cert_path,
        key: key_path,
        ca_reused,
    })
}

/// Replaces the file atomically ([`crate::files`]), so a running gateway watching it never reads
/// half of it. Private keys get mode 0600 from the start.
fn write_file(path: &Path, data: &[u8], private: bool) -> Result<(), TlsError> {
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
