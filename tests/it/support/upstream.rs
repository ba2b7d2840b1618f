//! The test upstream: a real HTTP/1.1 server standing in for Orthanc, with counters of what it
//! saw.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::fixtures::{pattern_chunk, pattern_mismatches};

pub type UpBody = BoxBody<Bytes, Infallible>;

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
    /// The Orthanc-shaped resources deleted (`DELETE /studies/{id}`): 404 afterwards.
    pub deleted: std::sync::Mutex<Vec<String>>,
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

/// The Orthanc of the audit tests: every instance is in series [`ORTHANC_SERIES`] of study
/// [`ORTHANC_STUDY`] of patient P-0042 (Orthanc's JSON shapes, as its REST API answers them);
/// an instance's `preview` is 1000 bytes.
pub const ORTHANC_SERIES: &str = "aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-eeeeeeee";
pub const ORTHANC_STUDY: &str = "11111111-22222222-33333333-44444444-55555555";
/// A second study of the same patient, that the tests delete without viewing it.
pub const ORTHANC_STUDY_2: &str = "22222222-22222222-33333333-44444444-55555555";
pub const ORTHANC_PATIENT: &str = "99999999-88888888-77777777-66666666-55555555";

fn orthanc_like(
    method: &http::Method,
    path: &str,
    stats: &UpstreamStats,
) -> Option<Response<UpBody>> {
    let json = |body: String| {
        let mut r = full(StatusCode::OK, body);
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    };
    let mut parts = path.trim_start_matches('/').split('/');
    let (level, id, rest) = (parts.next()?, parts.next()?, parts.next());
    if id.len() != 44 {
        return None;
    }
    if method == http::Method::DELETE {
        stats.deleted.lock().unwrap().push(path.to_string());
        return Some(json("{}".into()));
    }
    if stats.deleted.lock().unwrap().iter().any(|d| d == path) {
        return Some(full(StatusCode::NOT_FOUND, "{}"));
    }
    Some(match (level, rest) {
        ("instances", None) => json(format!(
            r#"{{"ID":"{id}","ParentSeries":"{ORTHANC_SERIES}"}}"#
        )),
        ("instances", Some(_)) => full(StatusCode::OK, vec![7u8; 1000]),
        ("series", None) => json(format!(
            r#"{{"ID":"{id}","ParentStudy":"{ORTHANC_STUDY}"}}"#
        )),
        ("studies", None) if id == ORTHANC_STUDY || id == ORTHANC_STUDY_2 => json(format!(
            r#"{{"ID":"{id}","ParentPatient":"{ORTHANC_PATIENT}","MainDicomTags":{{"StudyInstanceUID":"1.2.826.0.1.42","StudyDate":"20260301","StudyDescription":"CT THORAX"}},"PatientMainDicomTags":{{"PatientID":"P-0042","PatientName":"DOE^JANE"}}}}"#
        )),
        ("studies", Some("archive")) => full(StatusCode::OK, vec![1u8; 5000]),
        _ => return None,
    })
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
    if let Some(answer) = orthanc_like(req.method(), &path, &stats) {
        return answer;
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
