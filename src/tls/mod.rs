//! TLS termination with rustls: the server configuration (TLS 1.3 and 1.2, AEAD + ECDHE suites,
//! ALPN h2/http1.1, X25519MLKEM768 offered first), certificates loaded from PEM files and
//! reloaded when they change, and the local development CA.

pub(crate) mod acme;
pub mod ca;
mod certs;
pub mod devcert;
pub(crate) mod renew;
pub(crate) mod store;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;

pub use certs::{CertInfo, LoadedCert, describe, load};
pub use store::CertStore;

use crate::config::{TlsMinVersion, TlsSettings};

/// What can go wrong with certificates and keys. Each variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("{path}: unsupported private key: {source}")]
    UnsupportedKey {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the key {key} does not belong to the certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot create the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "a certificate authority already exists at {path}: replacing it would make every computer that trusts it stop trusting the gateway"
    )]
    CaExists { path: PathBuf },
}

/// The TLS client of the gateway's own outgoing connections (the alert webhook, the OpenID
/// providers): the system's certificate authorities, those of `ca_file` (PEM) too when given,
/// and [`provider`]'s algorithms.
pub(crate) fn client_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, String> {
    Ok(tokio_rustls::TlsConnector::from(client_config(ca_file)?))
}

/// The client configuration of [`client_connector`].
pub(crate) fn client_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        for cert in crate::config::read_ca_file(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The crypto provider Vigie uses everywhere: aws-lc-rs, whose suites are exactly the modern set
/// (TLS 1.3 suites, TLS 1.2 ECDHE + AES-GCM/ChaCha20-Poly1305, no CBC, no RSA key exchange) and
/// whose key-exchange groups put the hybrid post-quantum X25519MLKEM768 first.
///
/// The suites are listed in Mozilla's "intermediate" order, AES-128-GCM first: every suite is
/// strong, and AES-128 costs 10 AES rounds per block where AES-256 costs 14 (the provider's own
/// order puts AES-256 first). The server enforces this order, so scanners see a defined one.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::aws_lc_rs::default_provider()
    })
}

/// Builds the rustls server configuration around a certificate store.
pub fn server_config(
    settings: &TlsSettings,
    store: Arc<CertStore>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if let crate::config::CertSource::Acme(a) = &settings.source
        && a.challenge == crate::config::AcmeChallenge::TlsAlpn01
    {
        // Offered last: only a client asking for nothing else (the CA checking) gets it.
        config.alpn_protocols.push(acme::ACME_TLS_ALPN.to_vec());
    }
    // Our order (see `provider`), not the client's: a defined preference that does not depend
    // on what each client happens to list first.
    config.ignore_client_order = true;
    // Resumption spares the handshake cost for returning browsers: stateful for TLS 1.2,
    // rotating-key tickets (6 h) for TLS 1.3.
    config.session_storage = ServerSessionMemoryCache::new(16 * 1024);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    config.send_tls13_tickets = 2;
    Ok(Arc::new(config))
}
