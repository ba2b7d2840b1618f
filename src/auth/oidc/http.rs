//! The HTTP client the OpenID Connect exchanges go through (discovery, keys, token, userinfo):
//! one request per fresh connection (sign-ins are rare, and a provider's keep-alive would only be
//! held open), through hyper and rustls like the rest of the gateway, trusting the system's
//! authorities. `http://` only to this machine, whatever URL a discovery document names. No
//! redirect is followed; answers are capped in size and time.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The whole exchange at most: a provider slower than this is treated as down.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (a discovery document or a key set is a few KiB).
const MAX_BODY: usize = 1024 * 1024;

/// Why an exchange with a provider failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HttpError(pub(crate) String);

/// The client, shared by every provider.
#[derive(Clone)]
pub(crate) struct HttpClient {
    tls: TlsConnector,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client trusting the system's certificate authorities, and those of `ca_file` (PEM)
    /// when given (a practice's own provider behind its private authority).
    pub(crate) fn new(ca_file: Option<&std::path::Path>) -> Result<HttpClient, String> {
        Ok(HttpClient {
            tls: crate::tls::client_connector(ca_file)?,
        })
    }

    /// Sends `req` (an absolute URL) and reads the whole answer.
    pub(crate) async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        tokio::time::timeout(TIMEOUT, self.exchange(req))
            .await
            .map_err(|_| HttpError(format!("no answer within {} s", TIMEOUT.as_secs())))?
    }

    /// GETs `url`, asking for `accept`.
    pub(crate) async fn get(&self, url: &str, accept: &str) -> Result<HttpResponse, HttpError> {
        let req = Request::get(url)
            .header(header::ACCEPT, accept)
            .body(Vec::new())
            .map_err(|e| HttpError(e.to_string()))?;
        self.send(req).await
    }

    async fn exchange(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let uri = req.uri().clone();
        let host = uri
            .host()
            .ok_or_else(|| HttpError("the URL has no host".into()))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if crate::config::loopback(&host) => false,
            _ => {
                return Err(HttpError(format!(
                    "refusing {}://{host}: only https://, or http:// to this machine",
                    uri.scheme_str().unwrap_or("?")
                )));
            }
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| HttpError(format!("cannot connect to {host}:{port}: {e}")))?;
        if https {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| HttpError(format!("{host}: {e}")))?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| HttpError(format!("TLS with {host}:{port}: {e}")))?;
            request(stream, req).await
        } else {
            request(tcp, req).await
        }
    }
}

/// One HTTP/1.1 exchange on `io`, in origin form with a `Host` header.
async fn request<S>(io: S, req: HttpRequest) -> Result<HttpResponse, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let err = |e: &dyn std::fmt::Display| HttpError(e.to_string());
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| err(&e))?;
    tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|e| err(&e))?;
    parts
        .headers
        .insert(header::HOST, authority.parse().map_err(|e| err(&e))?);
    parts.headers.insert(
        header::USER_AGENT,
        header::HeaderValue::from_static("vigie"),
    );
    let res = send
        .send_request(Request::from_parts(parts, Full::new(Bytes::from(body))))
        .await
        .map_err(|e| err(&e))?;
    let (parts, body) = res.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| HttpError(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(Response::from_parts(parts, body.to_vec()))
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
