//! Loading a PEM certificate chain and key from disk, and reading what an administrator needs to
//! know about the leaf certificate: validity dates and the names it covers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::aws_lc_rs::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use super::TlsError;

/// A certificate chain and its key, ready for rustls, plus the leaf's details.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// What the leaf certificate says about itself.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    pub dns_names: Vec<String>,
    pub ip_addrs: Vec<IpAddr>,
    pub chain_len: usize,
}

impl CertInfo {
    /// Whether the certificate is valid for `name` (a DNS name or an IP address), following
    /// RFC 6125: a wildcard covers exactly one left-most label.
    pub fn covers(&self, name: &str) -> bool {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.ip_addrs.contains(&ip);
        }
        let name = name.to_ascii_lowercase();
        self.dns_names.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(suffix) => name
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => pattern == name,
            }
        })
    }

    /// Seconds until expiry (negative once expired).
    pub fn seconds_left(&self, now_unix: i64) -> i64 {
        self.not_after - now_unix
    }
}

/// Reads the chain and key, checks that they belong together and parses the leaf.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, TlsError> {
    let chain = read_chain(cert_path)?;
    let key = read_key(key_path)?;
    let signing_key = any_supported_type(&key).map_err(|source| TlsError::UnsupportedKey {
        path: key_path.to_owned(),
        source,
    })?;
    let info = inspect(&chain, cert_path)?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|_| TlsError::KeyMismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
    })?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        info,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_owned(),
            reason: format!("not a PEM certificate file ({e})"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::BadCertificate {
            path: path.to_owned(),
            reason: "no `BEGIN CERTIFICATE` block found".into(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::BadKey {
        path: path.to_owned(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no `BEGIN PRIVATE KEY` (PKCS#8, RSA or EC) block found".into()
            }
            other => format!("not a PEM private key ({other})"),
        },
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads the leaf of a chain received from a server (as `vigie check --exposure` does).
pub fn describe(chain: &[CertificateDer<'_>]) -> Option<CertInfo> {
    if chain.is_empty() {
        return None;
    }
    inspect(chain, Path::new("(served chain)")).ok()
}

fn inspect(chain: &[CertificateDer<'_>], path: &Path) -> Result<CertInfo, TlsError> {
    let bad = |reason: String| TlsError::BadCertificate {
        path: PathBuf::from(path),
        reason,
    };
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| bad(format!("the first certificate cannot be parsed ({e})")))?;
    let mut dns_names = Vec::new();
    let mut ip_addrs = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns_names.push(n.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => ip_addrs.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                    16 => ip_addrs.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        subject: leaf.subject().to_string(),
        issuer: leaf.issuer().to_string(),
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
        dns_names,
        ip_addrs,
        chain_len: chain.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(names: &[&str]) -> CertInfo {
        CertInfo {
            subject: String::new(),
            issuer: String::new(),
            not_before: 0,
            not_after: 0,
            dns_names: names.iter().map(|s| s.to_string()).collect(),
            ip_addrs: vec!["127.0.0.1".parse().unwrap()],
            chain_len: 1,
        }
    }

    #[test]
    fn wildcards_cover_one_label() {
        let i = info(&["*.example.org", "viewer.clinic.fr"]);
        assert!(i.covers("a.example.org"));
        assert!(i.covers("VIEWER.clinic.fr"));
        assert!(!i.covers("example.org"));
        assert!(!i.covers("a.b.example.org"));
        assert!(!i.covers("clinic.fr"));
        assert!(i.covers("127.0.0.1"));
        assert!(!i.covers("::1"));
    }
}
