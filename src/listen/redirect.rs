//! The optional plain-HTTP listener: every request is redirected to the HTTPS origin built from
//! `server_name` (never from the client's `Host`, which would make an open redirect). It never
//! proxies anything. One exception, when the practice has its own CA (`vigie ca init`): a doctor
//! whose computer does not trust it yet cannot reach the HTTPS pages, so this listener offers
//! the CA certificate (`/_vigie/ca.crt`) and a page with its fingerprint to compare
//! (`/_vigie/ca`). The CA is read at start.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::plain::serve_plain;
use crate::body::Body;
use crate::respond;
use crate::state::GatewayState;
use crate::tls::acme::Challenges;

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<GatewayState>,
    challenges: Option<Arc<Challenges>>,
    stop: watch::Receiver<bool>,
) {
    let cfg = &shared.config;
    let port = cfg.listen.public_https_port;
    let origin: Arc<str> = if port == 443 {
        format!("https://{}", cfg.server_name).into()
    } else {
        format!("https://{}:{port}", cfg.server_name).into()
    };
    let ca = crate::tls::ca::PublishedCa::read(&cfg.state_dir).map(Arc::new);
    serve_plain(listener, shared.clone(), stop, 1024, move |_| {
        let origin = origin.clone();
        let ca = ca.clone();
        let challenges = challenges.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let acme = challenges
                .as_deref()
                .zip(req.uri().path().strip_prefix(ACME_PATH));
            let res = match (&ca, req.uri().path()) {
                _ if acme.is_some() => acme_answer(acme),
                (Some(ca), CA_CERT | CA_PAGE)
                    if req.method() == Method::GET || req.method() == Method::HEAD =>
                {
                    ca_download(ca, req.uri().path(), &origin)
                }
                _ => redirect(&origin, &req),
            };
            async move { Ok::<_, Infallible>(res) }
        })
    })
    .await;
}

fn redirect(origin: &str, req: &Request<Incoming>) -> Response<Body> {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    // Only origin-form targets are echoed; anything else goes to the front page.
    let pq = if pq.starts_with('/') && !pq.starts_with("//") {
        pq
    } else {
        "/"
    };
    // 301 is what every browser caches for GET; 308 keeps the method and body of the others.
    let status = if req.method() == Method::GET || req.method() == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    respond::redirect(status, &format!("{origin}{pq}"), "https_only")
}

/// Where the ACME CA looks for its http-01 answer (RFC 8555 §8.3).
const ACME_PATH: &str = "/.well-known/acme-challenge/";

/// The key authorization for `token`, or 404: a token the gateway did not publish is not
/// redirected either (the CA must see the failure, not a page).
fn acme_answer(challenge: Option<(&Challenges, &str)>) -> Response<Body> {
    use http::HeaderValue;
    use http::header::{CACHE_CONTROL, CONTENT_TYPE};
    match challenge.and_then(|(c, token)| c.http(token)) {
        Some(answer) => {
            let mut res = Response::new(Body::full(answer));
            let h = res.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            respond::with_reason(res, "acme_challenge")
        }
        None => {
            let mut res = Response::new(Body::full("not found\n"));
            *res.status_mut() = StatusCode::NOT_FOUND;
            respond::with_reason(res, "acme_challenge_unknown")
        }
    }
}

/// The practice CA's certificate, for download.
const CA_CERT: &str = "/_vigie/ca.crt";
/// The page that offers it, with its fingerprint.
const CA_PAGE: &str = "/_vigie/ca";

fn ca_download(ca: &crate::tls::ca::PublishedCa, path: &str, origin: &str) -> Response<Body> {
    use http::HeaderValue;
    use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
    let (body, kind) = if path == CA_CERT {
        (ca.pem.clone(), "application/x-x509-ca-cert")
    } else {
        let fp = &ca.fingerprint;
        (
            format!(
                "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>Vigie</title></head><body>\
<h1>Autorit\u{e9} de certification du cabinet</h1>\
<p>Pour acc\u{e9}der \u{e0} <a href=\"{origin}/\">{origin}</a>, installez une fois sur cet ordinateur \
<a href=\"{CA_CERT}\">le certificat de l'autorit\u{e9}</a>, apr\u{e8}s avoir v\u{e9}rifi\u{e9} avec l'administrateur \
que son empreinte SHA-256 est bien :</p><p><code>{fp}</code></p>\
<h1 lang=\"en\">The practice's certificate authority</h1>\
<p lang=\"en\">To reach <a href=\"{origin}/\">{origin}</a>, install <a href=\"{CA_CERT}\">the authority's \
certificate</a> on this computer once, after checking with the administrator that its SHA-256 \
fingerprint is:</p><p><code>{fp}</code></p></body></html>"
            ),
            "text/html; charset=utf-8",
        )
    };
    let mut res = Response::new(Body::full(body));
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    );
    if path == CA_CERT {
        h.insert(
            CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"vigie-ca.crt\""),
        );
    }
    respond::with_reason(res, "ca_download")
}
