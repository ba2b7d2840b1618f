//! Clients of the gateway: reqwest clients that trust the test CA, raw TLS exchanges, the
//! sign-in through the real form, and readers of what the echo route saw.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::fixtures::{Certs, totp_now};

/// Signs in through the real form (GET the page for its CSRF token, POST the fields) and
/// returns the `Cookie` header value for the session, or the failure page.
pub async fn sign_in(
    certs: &Certs,
    addr: SocketAddr,
    user: &str,
    password: &str,
    totp_b32: &str,
) -> Result<String, (u16, String)> {
    let c = client(certs, addr, true);
    let base = format!("https://viewer.test:{}", addr.port());
    let page = c.get(format!("{base}/_vigie/login")).send().await.unwrap();
    let csrf_cookie = set_cookie(&page, "__Host-vigie-csrf").expect("no CSRF cookie");
    let html = page.text().await.unwrap();
    let token = hidden_field(&html, "csrf").expect("no csrf field");
    let code = totp_now(totp_b32);
    let res = c
        .post(format!("{base}/_vigie/login"))
        .header("cookie", format!("__Host-vigie-csrf={csrf_cookie}"))
        .form(&[
            ("username", user),
            ("password", password),
            ("totp", code.as_str()),
            ("csrf", token.as_str()),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    match set_cookie(&res, "__Host-vigie") {
        Some(v) if res.status() == 303 => Ok(format!("__Host-vigie={v}")),
        _ => {
            let status = res.status().as_u16();
            Err((status, res.text().await.unwrap_or_default()))
        }
    }
}

/// The value a response sets for cookie `name`.
pub fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (k, rest) = v.split_once('=')?;
            (k == name).then(|| rest.split(';').next().unwrap_or("").to_owned())
        })
}

/// The value of a hidden form field in a page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

/// A client that sends `cookie` with every request.
pub fn session_client(certs: &Certs, gw: SocketAddr, h2: bool, cookie: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if !cookie.is_empty() {
        headers.insert("cookie", cookie.parse().unwrap());
    }
    client_builder(certs, gw, h2)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A reqwest client that trusts the test CA and resolves `viewer.test` to the gateway.
pub fn client(certs: &Certs, gw: SocketAddr, h2: bool) -> reqwest::Client {
    client_builder(certs, gw, h2).build().unwrap()
}

fn client_builder(certs: &Certs, gw: SocketAddr, h2: bool) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap();
    let b = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("viewer.test", gw)
        .resolve("localhost", gw)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60));
    if h2 { b } else { b.http1_only() }
}

/// The gateway's rustls provider (its cipher suites and key exchanges), for clients built here.
pub fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    vigie::tls::provider()
}

/// A raw TLS connection to the gateway, for requests no well-behaved client would send.
pub async fn tls_connect(
    certs: &Certs,
    addr: SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.ca_der()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(tls_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let connector = TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends raw bytes and reads until the server closes (or `limit` passes); returns the text.
pub async fn raw_exchange(
    stream: &mut TlsStream<TcpStream>,
    request: &[u8],
    limit: Duration,
) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The echo route's view of the request headers, as (name, value) pairs.
pub fn echoed_headers(json: &serde_json::Value) -> Vec<(String, String)> {
    json["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn header<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The chain a gateway at `addr` serves for `name` with `alpn` offered, through a TLS client
/// that trusts only the certificates of `roots_pem` (the handshake fails otherwise).
pub async fn verified_chain(
    addr: std::net::SocketAddr,
    roots_pem: &str,
    name: &str,
    alpn: &[&[u8]],
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(vigie::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .to_vec())
}
