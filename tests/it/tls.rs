//! What the TLS listener offers: TLS 1.3 and 1.2 only, ECDHE + AEAD suites only, ALPN h2 and
//! http/1.1, and the hybrid post-quantum group X25519MLKEM768.

use std::sync::Arc;

use crate::support::*;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

async fn handshake(
    certs: &Certs,
    addr: std::net::SocketAddr,
    cfg: ClientConfig,
) -> Result<rustls::ClientConnection, std::io::Error> {
    let connector = TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from("viewer.test").unwrap(), tcp)
        .await?;
    let _ = certs;
    let (_, conn) = tls.into_inner();
    Ok(conn)
}

fn roots(certs: &Certs) -> RootCertStore {
    let mut r = RootCertStore::empty();
    r.add(certs.ca_der()).unwrap();
    r
}

#[tokio::test]
async fn tls13_offers_post_quantum_key_exchange_and_alpn() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    for (alpn, want) in [
        (vec![b"h2".to_vec(), b"http/1.1".to_vec()], &b"h2"[..]),
        (vec![b"http/1.1".to_vec()], &b"http/1.1"[..]),
    ] {
        let mut cfg = ClientConfig::builder_with_provider(tls_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(&certs))
            .with_no_client_auth();
        cfg.alpn_protocols = alpn;
        let conn = handshake(&certs, gw.https, cfg).await.unwrap();
        assert_eq!(conn.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(conn.alpn_protocol(), Some(want));
        assert_eq!(
            conn.negotiated_key_exchange_group().map(|g| g.name()),
            Some(rustls::NamedGroup::X25519MLKEM768)
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn tls12_negotiates_ecdhe_with_aead_only() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    let cfg = ClientConfig::builder_with_provider(tls_provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots(&certs))
        .with_no_client_auth();
    let conn = handshake(&certs, gw.https, cfg).await.unwrap();
    assert_eq!(conn.protocol_version(), Some(ProtocolVersion::TLSv1_2));
    let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
    assert!(suite.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{suite}");
    assert!(
        suite.contains("GCM") || suite.contains("CHACHA20_POLY1305"),
        "{suite}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn min_version_13_refuses_tls12() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url())
        .set("tls.min_version", "1.3")
        .start()
        .await;
    let cfg = ClientConfig::builder_with_provider(tls_provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots(&certs))
        .with_no_client_auth();
    assert!(handshake(&certs, gw.https, cfg).await.is_err());
    gw.shutdown().await;
}

/// OpenSSL can offer what rustls never would: old versions, CBC and RSA key exchange.
#[tokio::test]
async fn legacy_protocols_and_suites_are_refused() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("openssl not installed: skipping the legacy-client probes");
        return;
    }
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let gw = ConfigBuilder::new(&certs, &up.url()).start().await;
    let target = gw.https.to_string();
    let probe = move |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &target,
                "-servername",
                "viewer.test",
            ])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        out.status.success()
    };
    let (a, b, c, d, ok) = tokio::task::spawn_blocking(move || {
        (
            probe(&["-tls1_1"]),
            probe(&["-tls1"]),
            probe(&[
                "-tls1_2",
                "-cipher",
                "AES128-SHA:AES256-SHA256:ECDHE-ECDSA-AES128-SHA",
            ]),
            probe(&["-tls1_2", "-cipher", "AES128-GCM-SHA256"]),
            probe(&["-tls1_2"]),
        )
    })
    .await
    .unwrap();
    assert!(!a && !b, "TLS 1.0/1.1 accepted");
    assert!(!c, "CBC suite accepted");
    assert!(!d, "static-RSA key exchange accepted");
    assert!(ok, "a modern TLS 1.2 client was refused");
    gw.shutdown().await;
}
