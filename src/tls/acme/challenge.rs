//! The answers to the CA's challenges while an order is in flight: for `http-01`, the key
//! authorization the plain-HTTP listener returns at `/.well-known/acme-challenge/{token}`; for
//! `tls-alpn-01`, a self-signed certificate carrying the key authorization's digest (RFC 8737),
//! which the HTTPS listener presents to a client that offers only the `acme-tls/1` protocol.
//!
//! Each answer is kept in memory and also written to `challenges/` in the ACME folder, so that
//! replicas sharing that folder (`tls.acme.dir`) behind one address answer for the one that
//! ordered: the CA's check may reach any of them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rcgen::{CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::files::{self, Mode};

/// The ALPN protocol of the tls-alpn-01 check (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The challenge answers; see the module documentation.
#[derive(Debug)]
pub(crate) struct Challenges {
    http: Mutex<HashMap<String, String>>,
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    /// `<acme dir>/challenges`, shared with other replicas.
    dir: PathBuf,
}

impl Challenges {
    pub(crate) fn new(dir: PathBuf) -> Challenges {
        Challenges {
            http: Mutex::new(HashMap::new()),
            alpn: Mutex::new(HashMap::new()),
            dir,
        }
    }

    /// Publishes the `http-01` answer for `token`.
    pub(crate) fn add_http(&self, token: &str, key_authorization: &str) -> std::io::Result<()> {
        if !token_like(token) {
            return Err(std::io::Error::other("the CA sent a malformed token"));
        }
        lock(&self.http).insert(token.to_string(), key_authorization.to_string());
        self.write(&format!("http-{token}"), key_authorization.as_bytes())
    }

    /// Publishes the `tls-alpn-01` answer for `name`, from the key authorization's SHA-256.
    pub(crate) fn add_alpn(&self, name: &str, digest: &[u8]) -> std::io::Result<()> {
        let name = name.to_ascii_lowercase();
        if !name_like(&name) {
            return Err(std::io::Error::other("not a DNS name"));
        }
        let key = alpn_certificate(&name, digest).map_err(std::io::Error::other)?;
        lock(&self.alpn).insert(name.clone(), Arc::new(key));
        self.write(&format!("alpn-{name}"), B64.encode(digest).as_bytes())
    }

    /// Forgets every answer (the order is over, whatever its outcome).
    pub(crate) fn clear(&self) {
        lock(&self.http).clear();
        lock(&self.alpn).clear();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// The `http-01` answer for `token`, from this process or another replica.
    pub(crate) fn http(&self, token: &str) -> Option<String> {
        if !token_like(token) {
            return None;
        }
        if let Some(a) = lock(&self.http).get(token) {
            return Some(a.clone());
        }
        std::fs::read_to_string(self.dir.join(format!("http-{token}"))).ok()
    }

    /// The `tls-alpn-01` certificate for `name`, from this process or another replica.
    pub(crate) fn alpn(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        if !name_like(&name) {
            return None;
        }
        if let Some(k) = lock(&self.alpn).get(&name) {
            return Some(k.clone());
        }
        let text = std::fs::read_to_string(self.dir.join(format!("alpn-{name}"))).ok()?;
        let digest = B64.decode(text.trim()).ok()?;
        alpn_certificate(&name, &digest).ok().map(Arc::new)
    }

    fn write(&self, file: &str, data: &[u8]) -> std::io::Result<()> {
        files::create_private_dir(&self.dir)?;
        files::replace(&self.dir.join(file), data, Mode::Private)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A token is base64url (RFC 8555 §8.3): nothing that could leave the folder.
fn token_like(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn name_like(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && !n.starts_with('.')
        && !n.contains("..")
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// RFC 8737 §3: a self-signed certificate for `name` whose critical `acmeIdentifier`
/// extension holds the digest.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer =
        rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_shared_through_the_folder_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let a = Challenges::new(dir.path().join("challenges"));
        let b = Challenges::new(dir.path().join("challenges"));
        a.add_http("tok_en-1", "tok_en-1.thumb").unwrap();
        a.add_alpn("Viewer.Clinic.test", &[7u8; 32]).unwrap();
        assert_eq!(b.http("tok_en-1").as_deref(), Some("tok_en-1.thumb"));
        assert!(
            b.alpn("viewer.clinic.test").is_some(),
            "another replica answers"
        );
        assert!(b.http("../../etc/passwd").is_none());
        assert!(a.add_http("../x", "y").is_err());
        assert!(b.alpn("../x").is_none());
        a.clear();
        assert!(b.http("tok_en-1").is_none());
        assert!(a.alpn("viewer.clinic.test").is_none());
    }

    #[test]
    fn the_alpn_certificate_carries_the_digest() {
        let k = alpn_certificate("viewer.clinic.test", &[0xAB; 32]).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&k.cert[0]).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(ext.critical);
        // OCTET STRING of 32 bytes.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &[0xAB; 32]);
    }
}
