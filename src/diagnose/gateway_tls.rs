//! The gateway's own TLS, seen as a browser sees it: one handshake per TLS version with the
//! running gateway, the versions and ALPN it offers, and the chain it serves (judged in
//! `certificate.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use super::probe::local;
use super::{Level, Options, Report, say};
use crate::config::{Config, TlsMinVersion};
use crate::tls;

struct Handshake {
    chain: Vec<CertificateDer<'static>>,
    alpn_h2: bool,
}

/// Handshakes with the running gateway once per TLS version; returns the chain it serves.
pub(super) async fn check(
    config: &Config,
    opts: &Options,
    r: &mut Report,
) -> Option<Vec<CertificateDer<'static>>> {
    let addr = local(config.listen.https);
    let sni = config.server_name.clone();
    let t13 = handshake(addr, &sni, &rustls::version::TLS13, opts.timeout).await;
    let t12 = handshake(addr, &sni, &rustls::version::TLS12, opts.timeout).await;
    let (ok13, ok12) = (t13.is_ok(), t12.is_ok());
    if !ok13 && !ok12 {
        let why = t13.err().unwrap_or_default();
        r.add(
            Level::High,
            "gateway",
            say!(
                "Vigie ne répond pas en HTTPS sur {addr} ({why}) : les vérifications TLS portent sur les fichiers seulement.",
                "Vigie does not answer HTTPS on {addr} ({why}): the TLS checks only looked at the files.",
            ),
            (
                "Démarrez Vigie (docker compose up -d) ou corrigez listen.https, puis relancez cette vérification.",
                "Start Vigie (docker compose up -d) or correct listen.https, then run this check again.",
            ),
        );
        return None;
    }
    let mut versions = Vec::new();
    if ok13 {
        versions.push("TLS 1.3");
    }
    if ok12 {
        versions.push("TLS 1.2");
    }
    let versions = versions.join(", ");
    let h2 = t13.as_ref().or(t12.as_ref()).is_ok_and(|h| h.alpn_h2);
    let h2 = if h2 { " + HTTP/2" } else { "" };
    let min12 = config.tls.min_version == TlsMinVersion::Tls12;
    if ok12 && !min12 {
        r.add(
            Level::Warning,
            "tls",
            say!(
                "Vigie accepte TLS 1.2 alors que tls.min_version demande TLS 1.3 ({versions}).",
                "Vigie accepts TLS 1.2 although tls.min_version asks for TLS 1.3 ({versions}).",
            ),
            (
                "Redémarrez Vigie pour appliquer tls.min_version.",
                "Restart Vigie so that tls.min_version applies.",
            ),
        );
    } else {
        r.add(
            Level::Ok,
            "tls",
            say!(
                "Versions TLS proposées : {versions}{h2}, chiffrements modernes uniquement ; SSL, TLS 1.0 et 1.1 n'existent pas dans Vigie.",
                "TLS versions offered: {versions}{h2}, modern ciphers only; SSL, TLS 1.0 and 1.1 do not exist in Vigie.",
            ),
            ("", ""),
        );
    }
    t13.or(t12).ok().map(|h| h.chain)
}

async fn handshake(
    addr: SocketAddr,
    sni: &str,
    version: &'static rustls::SupportedProtocolVersion,
    timeout: Duration,
) -> Result<Handshake, String> {
    let provider = tls::provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let connect = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())
    };
    let stream = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| "timeout".to_string())??;
    let conn = stream.get_ref().1;
    Ok(Handshake {
        chain: conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default(),
        alpn_h2: conn.alpn_protocol() == Some(b"h2"),
    })
}

/// Accepts whatever certificate the gateway presents (it is judged separately, against the
/// system's authorities) but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
