//! Alerts by webhook: one JSON POST over a fresh connection (alerts are rare; no pool to keep),
//! through hyper and rustls like the rest of the gateway, trusting the system's authorities
//! and an optional CA file. `http://` only to this machine (the configuration refuses it
//! elsewhere). The secret header is marked sensitive and never logged.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::SendError;
use crate::config::WebhookChannel;

/// The whole exchange at most.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A configured webhook.
pub(crate) struct Webhook {
    url: http::Uri,
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
    header: Option<(http::HeaderName, HeaderValue)>,
    target: String,
}

impl Webhook {
    /// Prepares the TLS client (no connection yet). Fails on an unreadable CA file.
    pub(crate) fn new(c: &WebhookChannel) -> Result<Webhook, String> {
        let host = c
            .url
            .host()
            .unwrap_or_default()
            .trim_matches(|ch| ch == '[' || ch == ']')
            .to_owned();
        let https = c.url.scheme_str() == Some("https");
        let port = c.url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            Some(crate::tls::client_connector(c.ca_file.as_deref())?)
        } else {
            None
        };
        let header = match &c.header {
            Some((name, secret)) => {
                let mut value = HeaderValue::from_str(secret.expose_secret())
                    .map_err(|_| "the secret cannot be a header value".to_string())?;
                value.set_sensitive(true);
                Some((name.clone(), value))
            }
            None => None,
        };
        Ok(Webhook {
            target: format!("{}://{host}:{port}", if https { "https" } else { "http" }),
            url: c.url.clone(),
            host,
            port,
            tls,
            header,
        })
    }

    /// Where it posts (scheme, host and port: the path may hold a token).
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// POSTs `body` (JSON); any 2xx answer is success.
    pub(crate) async fn send(&self, body: String) -> Result<(), SendError> {
        let retry = |message: String| SendError {
            message,
            permanent: false,
        };
        let status = tokio::time::timeout(TIMEOUT, self.exchange(body))
            .await
            .map_err(|_| retry("no answer within 15 s".into()))??;
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError {
                message: format!("the receiver answered {status}"),
                // A client error will not fix itself; a server error may.
                permanent: status.is_client_error()
                    && status != http::StatusCode::TOO_MANY_REQUESTS,
            })
        }
    }

    async fn exchange(&self, body: String) -> Result<http::StatusCode, SendError> {
        let retry = |message: String| SendError {
            message,
            permanent: false,
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| retry(format!("cannot connect to {}: {e}", self.target)))?;
        match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| SendError {
                    message: e.to_string(),
                    permanent: true,
                })?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| retry(format!("TLS with {}: {e}", self.target)))?;
                self.post(stream, body).await
            }
            None => self.post(tcp, body).await,
        }
    }

    async fn post<S>(&self, io: S, body: String) -> Result<http::StatusCode, SendError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let retry = |message: String| SendError {
            message,
            permanent: false,
        };
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| retry(e.to_string()))?;
        tokio::spawn(conn);
        let path = self
            .url
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let authority = self
            .url
            .authority()
            .map_or(self.host.clone(), |a| a.as_str().to_owned());
        let mut req = Request::post(path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "vigie-alert");
        if let Some((name, value)) = &self.header {
            req = req.header(name, value.clone());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| retry(e.to_string()))?;
        let res = send
            .send_request(req)
            .await
            .map_err(|e| retry(e.to_string()))?;
        let status = res.status();
        // Read the (small) answer so the receiver sees a clean end.
        let _ = res.into_body().collect().await;
        Ok(status)
    }
}
