//! Test harness: a real upstream HTTP server, the real gateway (in-process or as the `vigie`
//! binary), and real TLS clients. Everything binds to 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub type UpBody = BoxBody<Bytes, Infallible>;

/// A development CA and server certificate in a temporary folder.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let made = vigie::tls::devcert::generate(dir.path(), "viewer.test").unwrap();
        Certs {
            ca: made.ca_cert,
            cert: made.cert,
            key: made.key,
            dir,
        }
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&self.ca).unwrap()
    }
}

/// What the upstream saw.
#[derive(Default)]
pub struct UpstreamStats {
    pub connections: AtomicUsize,
    /// Connections open now (until the HTTP connection ends; an upgraded one counts until then).
    pub open: AtomicUsize,
    /// The most connections that were open at once.
    pub max_open: AtomicUsize,
    pub requests: AtomicUsize,
    pub uploaded: AtomicU64,
    /// `/upload` bodies that broke off (the gateway aborted the request).
    pub body_errors: AtomicUsize,
    /// Every request line's path and query, in order.
    pub paths: std::sync::Mutex<Vec<String>>,
}

/// A real HTTP/1.1 server standing in for Orthanc. Routes:
/// `/echo` (request line and headers as JSON), `/bytes/N` (N bytes, Range supported),
/// `/upload` (counts the body), `/redirect`, `/slow/MS`, `/hop` (hop-by-hop and software headers),
/// `/headers?name=value&...` (answers with those response headers, repeats allowed),
/// `/ws` (WebSocket echo); anything else: 200 "ok".
pub struct Upstream {
    pub addr: SocketAddr,
    pub stats: Arc<UpstreamStats>,
    tasks: JoinSet<()>,
}

impl Upstream {
    /// Starts on a fresh port; `idle_close` closes idle keep-alive connections like Orthanc (1 s).
    pub async fn start(idle_close: Option<Duration>) -> Upstream {
        Upstream::start_at("127.0.0.1:0".parse().unwrap(), idle_close).await
    }

    pub async fn start_at(addr: SocketAddr, idle_close: Option<Duration>) -> Upstream {
        Upstream::start_with(addr, idle_close, None).await
    }

    /// Like Orthanc with `"AuthenticationEnabled": true`: every request without this exact
    /// `Authorization` header value gets 401.
    pub async fn start_protected(addr: SocketAddr, authorization: &str) -> Upstream {
        Upstream::start_with(addr, None, Some(Arc::from(authorization))).await
    }

    async fn start_with(
        addr: SocketAddr,
        idle_close: Option<Duration>,
        require: Option<Arc<str>>,
    ) -> Upstream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        let listener = socket.listen(1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(UpstreamStats::default());
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(
            listener,
            stats.clone(),
            idle_close,
            addr,
            require,
        ));
        Upstream { addr, stats, tasks }
    }

    /// Stops accepting and drops every open connection.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    stats: Arc<UpstreamStats>,
    idle_close: Option<Duration>,
    me: SocketAddr,
    require: Option<Arc<str>>,
) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let now = stats.open.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_open.fetch_max(now, Ordering::SeqCst);
        let stats = stats.clone();
        let require = require.clone();
        conns.spawn(async move {
            let open = OpenGuard(stats.clone());
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new());
            b.header_read_timeout(idle_close);
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let stats = stats.clone();
                let allowed = require.as_deref().is_none_or(|want| {
                    req.headers()
                        .get("authorization")
                        .is_some_and(|v| v.as_bytes() == want.as_bytes())
                });
                async move {
                    if !allowed {
                        return Ok::<_, Infallible>(full(StatusCode::UNAUTHORIZED, "unauthorized"));
                    }
                    Ok::<_, Infallible>(route(req, stats, me).await)
                }
            });
            let _ = b
                .serve_connection(TokioIo::new(tcp), svc)
                .with_upgrades()
                .await;
            drop(open);
        });
    }
}

/// Counts a connection as open until dropped (also when its task is cancelled).
struct OpenGuard(Arc<UpstreamStats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<UpBody> {
    let mut r = Response::new(http_body_util::Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

/// The byte at offset `i` of every `/bytes/N` answer.
pub fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// `len` bytes of the pattern starting at offset `pos`, without copying (len <= 256 KiB).
pub fn pattern_chunk(pos: u64, len: usize) -> Bytes {
    static PATTERN: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
        (0..(256 * 1024 + 251) as u64)
            .map(pattern)
            .collect::<Vec<u8>>()
            .into()
    });
    let start = (pos % 251) as usize;
    PATTERN.slice(start..start + len)
}

/// How many 256 KiB slices of `data`, found at offset `pos` of a stream, differ from the pattern.
pub fn pattern_mismatches(pos: u64, data: &[u8]) -> u64 {
    let mut wrong = 0;
    let mut off = 0;
    while off < data.len() {
        let len = (data.len() - off).min(256 * 1024);
        if data[off..off + len] != pattern_chunk(pos + off as u64, len)[..] {
            wrong += 1;
        }
        off += len;
    }
    wrong
}

async fn route(
    mut req: Request<Incoming>,
    stats: Arc<UpstreamStats>,
    me: SocketAddr,
) -> Response<UpBody> {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_owned();
    stats.paths.lock().unwrap().push(
        req.uri()
            .path_and_query()
            .map_or(String::new(), |p| p.to_string()),
    );
    if path == "/echo" {
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let json = serde_json::json!({
            "method": req.method().as_str(),
            "uri": req.uri().to_string(),
            "version": format!("{:?}", req.version()),
            "headers": headers,
        });
        let mut r = full(StatusCode::OK, json.to_string());
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        return r;
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let total: u64 = n.parse().unwrap_or(0);
        let (start, end, status) = match req
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
        {
            Some((a, b)) => {
                let a: u64 = a.parse().unwrap_or(0);
                let b: u64 = b.parse().unwrap_or(total - 1).min(total - 1);
                (a, b + 1, StatusCode::PARTIAL_CONTENT)
            }
            None => (0, total, StatusCode::OK),
        };
        let stream = futures_util::stream::unfold(start, move |pos| async move {
            if pos >= end {
                return None;
            }
            let len = (end - pos).min(64 * 1024);
            let chunk = pattern_chunk(pos, len as usize);
            Some((Ok::<_, Infallible>(Frame::data(chunk)), pos + len))
        });
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert("content-length", (end - start).to_string().parse().unwrap());
        r.headers_mut()
            .insert("accept-ranges", "bytes".parse().unwrap());
        if status == StatusCode::PARTIAL_CONTENT {
            r.headers_mut().insert(
                "content-range",
                format!("bytes {start}-{}/{total}", end - 1)
                    .parse()
                    .unwrap(),
            );
        }
        return r;
    }
    if path == "/upload" {
        let mut body = req.into_body();
        let mut n = 0u64;
        let mut sum = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                stats.body_errors.fetch_add(1, Ordering::Relaxed);
                return full(StatusCode::BAD_REQUEST, "body error");
            };
            if let Some(d) = frame.data_ref() {
                sum += pattern_mismatches(n, d);
                n += d.len() as u64;
            }
        }
        stats.uploaded.fetch_add(n, Ordering::Relaxed);
        return full(StatusCode::OK, format!("{n} {sum}"));
    }
    if path == "/redirect" {
        let mut r = full(StatusCode::FOUND, "");
        r.headers_mut().insert(
            "location",
            format!("http://{me}/app/explorer.html?x=1")
                .parse()
                .unwrap(),
        );
        r.headers_mut().insert(
            "content-location",
            format!("http://{me}/x").parse().unwrap(),
        );
        return r;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        return full(StatusCode::OK, "slow");
    }
    if path == "/headers" {
        let mut r = full(StatusCode::OK, "headers");
        let query = req.uri().query().unwrap_or("").to_owned();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            r.headers_mut().append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(&v).unwrap(),
            );
        }
        return r;
    }
    if path == "/hop" {
        let mut r = full(StatusCode::OK, "hop");
        let h = r.headers_mut();
        h.insert("connection", "X-Up-Hop".parse().unwrap());
        h.insert("x-up-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("server", "Orthanc".parse().unwrap());
        h.insert("x-powered-by", "PHP/5".parse().unwrap());
        h.insert("cache-control", "public, max-age=3600".parse().unwrap());
        h.insert("x-end-to-end", "kept".parse().unwrap());
        return r;
    }
    if path == "/ws" {
        let key = req
            .headers()
            .get("sec-websocket-key")
            .cloned()
            .unwrap_or_else(|| "x".parse().unwrap());
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_close() {
                    break;
                }
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut r = full(StatusCode::SWITCHING_PROTOCOLS, "");
        let h = r.headers_mut();
        h.insert("connection", "upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("sec-websocket-accept", accept.parse().unwrap());
        return r;
    }
    full(StatusCode::OK, "ok")
}

/// The account every default test configuration has (roles doctor and admin).
pub const TEST_USER: &str = "dr.test";
pub const TEST_PASSWORD: &str = "Radio-Thorax-2026";
/// RFC 6238's test key ("12345678901234567890"), base32.
pub const TEST_TOTP: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// An argon2id hash of `TEST_PASSWORD`, computed once per test binary.
pub fn test_hash() -> &'static str {
    static HASH: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| vigie::credentials::password::hash(TEST_PASSWORD).unwrap());
    &HASH
}

/// One `auth.users` entry with `TEST_PASSWORD` and `TEST_TOTP`.
pub fn user_yaml(name: &str, roles: &str) -> String {
    format!(
        "    - username: {name}\n      password_hash: \"{}\"\n      totp_secret: {TEST_TOTP}\n      roles: {roles}\n",
        test_hash()
    )
}

/// The access policy of the default test configuration (Orthanc's preset, shortened).
pub const TEST_ACCESS: &str = "access:\n  - path: /tools/execute-script\n    roles: []\n  \
    - path: /tools/\n    roles: [admin]\n  - path: /\n    methods: [DELETE]\n    roles: [admin]\n  \
    - path: /\n    roles: [doctor, admin]\n";

/// The `access:` section of the shipped Orthanc preset (`config/orthanc.example.yaml`), as an
/// administrator would copy it.
pub fn orthanc_preset() -> String {
    let preset = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/orthanc.example.yaml"),
    )
    .unwrap();
    let at = preset
        .find("\naccess:")
        .expect("access: in the Orthanc preset");
    preset[at + 1..].to_string()
}

/// A gateway configuration for tests (all listeners on 127.0.0.1:0) with `TEST_USER` (roles
/// doctor and admin) as its only account and `TEST_ACCESS`; `extra` is appended.
pub fn config_yaml(certs: &Certs, upstream: &str, extra: &str) -> String {
    let auth = format!(
        "auth:\n  users:\n{}{TEST_ACCESS}",
        user_yaml(TEST_USER, "[doctor, admin]")
    );
    config_yaml_with_auth(certs, upstream, &auth, extra)
}

/// As [`config_yaml`], with the `auth:` section (and any `access:`) given whole.
pub fn config_yaml_with_auth(certs: &Certs, upstream: &str, auth: &str, extra: &str) -> String {
    format!(
        r#"
state_dir: "{state}"
{auth}
server_name: viewer.test
server_aliases: [localhost]
listen:
  https: "127.0.0.1:0"
  http: "127.0.0.1:0"
  admin: "127.0.0.1:0"
tls:
  cert_file: "{cert}"
  key_file: "{key}"
  reload_interval: 200ms
upstream:
  url: "{upstream}"
  connect_timeout: 1s
  response_timeout: 2s
{extra}
"#,
        cert = certs.cert.display(),
        key = certs.key.display(),
        state = certs.dir.path().join("state").display(),
    )
}

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
    let secret = vigie::credentials::totp::decode_secret(totp_b32).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = vigie::credentials::totp::code_at(&secret, now).unwrap();
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

/// The gateway running in this process.
pub struct Gw {
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// `Cookie` header value of `TEST_USER`'s session (empty when the configuration has no
    /// such user).
    pub cookie: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Gw {
    pub async fn start(yaml: &str) -> Gw {
        let (config, _) = vigie::config::Config::from_yaml(yaml).unwrap();
        let gw = vigie::Gateway::bind(config).await.unwrap();
        let (https, http, admin) = (gw.https_addr(), gw.http_addr(), gw.admin_addr());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(gw.serve(async move {
            let _ = rx.await;
        }));
        let mut gw = Gw {
            https,
            http,
            admin,
            cookie: String::new(),
            stop: Some(tx),
            task,
        };
        if yaml.contains(&format!("username: {TEST_USER}\n")) {
            gw.cookie = sign_in(&certs_for(yaml), https, TEST_USER, TEST_PASSWORD, TEST_TOTP)
                .await
                .expect("test user cannot sign in");
        }
        gw
    }

    /// A client for `TEST_USER`'s session.
    pub fn client(&self, certs: &Certs, h2: bool) -> reqwest::Client {
        session_client(certs, self.https, h2, &self.cookie)
    }

    /// Asks for a graceful shutdown and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://viewer.test:{}{path}", self.https.port())
    }

    /// The admin listener's Prometheus exposition.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.admin.unwrap());
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }
}

/// The CA file a configuration's certificate comes from (its folder's `ca.crt`), for helpers
/// that only see the YAML.
fn certs_for(yaml: &str) -> Certs {
    let cert = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("cert_file: "))
        .unwrap()
        .trim_matches('"');
    let dir = Path::new(cert).parent().unwrap();
    Certs {
        dir: tempfile::tempdir().unwrap(),
        ca: dir.join("ca.crt"),
        cert: PathBuf::from(cert),
        key: dir.join("server.key"),
    }
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

/// A raw TLS connection to the gateway, for requests no well-behaved client would send.
pub async fn tls_connect(
    certs: &Certs,
    addr: SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.ca_der()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(vigie::tls::provider())
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

/// The `vigie` binary built for these tests.
pub fn vigie_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vigie"))
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The gateway as a separate process (for signals and memory measurements).
pub struct GwProcess {
    pub child: tokio::process::Child,
    pub https: SocketAddr,
    /// `Cookie` header value of `TEST_USER`'s session.
    pub cookie: String,
    pub lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub config: tempfile::NamedTempFile,
}

impl GwProcess {
    pub async fn start(yaml: &str) -> GwProcess {
        use std::io::Write;
        use tokio::io::AsyncBufReadExt;
        let mut config = tempfile::NamedTempFile::new().unwrap();
        config.write_all(yaml.as_bytes()).unwrap();
        let mut child = tokio::process::Command::new(vigie_bin())
            .args(["serve", "--log-format", "json", "--config"])
            .arg(config.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let https = loop {
            let line = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("gateway did not start")
                .expect("gateway exited before listening");
            if line.contains("vigie listening") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                break v["https"].as_str().unwrap().parse().unwrap();
            }
        };
        let cookie = if yaml.contains(&format!("username: {TEST_USER}\n")) {
            sign_in(&certs_for(yaml), https, TEST_USER, TEST_PASSWORD, TEST_TOTP)
                .await
                .expect("test user cannot sign in")
        } else {
            String::new()
        };
        GwProcess {
            child,
            https,
            cookie,
            lines: rx,
            config,
        }
    }

    /// A client for `TEST_USER`'s session.
    pub fn client(&self, certs: &Certs, h2: bool) -> reqwest::Client {
        session_client(certs, self.https, h2, &self.cookie)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_log(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"))
                .unwrap_or_else(|| panic!("gateway exited before logging {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }
}
