//! Refuses requests before anything else looks at them: framing that two HTTP parsers could read
//! differently (request smuggling), request targets that are not origin-form, protocol switches
//! to cleartext HTTP/2, oversized bodies, host names this gateway does not serve (421, so a
//! browser that coalesced connections retries on its own), ambiguous path spellings (see
//! `normalize`), and unsafe requests or protocol switches (WebSocket handshakes) another site
//! makes a browser send (see `auth::csrf`).
//! The request continues with its path normalised.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::header::{self, HeaderMap};
use http::{Method, Request, Response, StatusCode, Version};
use tower::{Layer, Service};
use tracing::debug;

use crate::body::Body;
use crate::config::Config;
use crate::conn::ConnInfo;
use crate::http_util::authority::{request_host, split_authority};
use crate::http_util::tokens::list_tokens;
use crate::middleware::request_id::RequestId;
use crate::respond::Refusal;

/// Applies the checks in the module documentation.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    config: Arc<Config>,
    conn: ConnInfo,
}

impl GuardLayer {
    pub fn new(config: Arc<Config>, conn: ConnInfo) -> Self {
        GuardLayer { config, conn }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

impl<S, B> Service<Request<B>> for Guard<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Read for every request, so that a flag never outlives the head it was raised for.
        let conflict = self.layer.conn.activity.take_framing_conflict();
        let checked = check(&req, &self.layer.config, self.layer.conn.sni_ok, conflict)
            .and_then(|()| normalize_uri(&mut req));
        match checked {
            Ok(()) => Either::Left(self.inner.call(req)),
            Err(refusal) => {
                let id = req
                    .extensions()
                    .get::<RequestId>()
                    .and_then(|r| r.0.to_str().ok());
                debug!(
                    id,
                    status = refusal.status().as_u16(),
                    reason = refusal.reason(),
                    "request refused"
                );
                Either::Right(ready(Ok(refusal.respond(req.version()))))
            }
        }
    }
}

fn refuse(status: StatusCode, reason: &'static str) -> Result<(), Refusal> {
    // After a framing error the rest of the stream cannot be trusted: close it. A wrong host
    // or a cross-site request says nothing about the stream.
    let close = !matches!(
        status,
        StatusCode::MISDIRECTED_REQUEST | StatusCode::FORBIDDEN
    );
    Err(Refusal::refused(status, reason, close))
}

fn check<B>(
    req: &Request<B>,
    config: &Config,
    sni_ok: bool,
    framing_conflict: bool,
) -> Result<(), Refusal> {
    let h = req.headers();
    if req.method() == Method::CONNECT || req.method() == Method::TRACE {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "method");
    }
    // The access policy judges the method on the wire: anything else (lower-case spellings,
    // WebDAV and other extension methods) could mean something different to the upstream.
    if !is_standard(req.method()) {
        return refuse(StatusCode::NOT_IMPLEMENTED, "method");
    }
    // Orthanc runs the method named by these headers, or by `?_method=` on a GET, instead of
    // the one on the wire: a GET link would then DELETE past the policy and the cross-site
    // check.
    if fakes_method(req) {
        return refuse(StatusCode::BAD_REQUEST, "method_override");
    }
    let h1 = req.version() < Version::HTTP_2;
    let uri = req.uri();
    // HTTP/1 targets must be origin-form ("/path?query"); absolute-form is for forward proxies
    // and "*" is only meaningful to the gateway itself. HTTP/2 always carries scheme+authority.
    if (h1 && (uri.scheme().is_some() || uri.authority().is_some())) || !uri.path().starts_with('/')
    {
        return refuse(StatusCode::BAD_REQUEST, "target_not_origin_form");
    }
    // hyper drops Content-Length when Transfer-Encoding is present; the connection's head
    // scanner saw the original head.
    if framing_conflict
        || (h.contains_key(header::CONTENT_LENGTH) && h.contains_key(header::TRANSFER_ENCODING))
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "content_length_and_transfer_encoding",
        );
    }
    if has_h2c(h) {
        return refuse(StatusCode::BAD_REQUEST, "h2c_upgrade");
    }
    let Some(host) = request_host(req) else {
        return refuse(StatusCode::BAD_REQUEST, "host");
    };
    let Some((name, _port)) = split_authority(host) else {
        return refuse(StatusCode::BAD_REQUEST, "malformed_host");
    };
    if !sni_ok || !config.accepts_host(name) {
        return refuse(StatusCode::MISDIRECTED_REQUEST, "unknown_host");
    }
    if let Some(len) = h.get(header::CONTENT_LENGTH)
        && let Some(len) = len.to_str().ok().and_then(|s| s.parse::<u64>().ok())
        && len > config.limits.max_request_body
    {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    }
    if crate::auth::csrf::is_cross_site(req.method(), h, host) {
        return refuse(StatusCode::FORBIDDEN, "cross_site");
    }
    Ok(())
}

/// Replaces the request path by its normalised form (the query is kept as sent).
fn normalize_uri<B>(req: &mut Request<B>) -> Result<(), Refusal> {
    let path = req.uri().path();
    let normal = match crate::http_util::path::normalize(path) {
        Ok(n) => n,
        Err(reason) => {
            return refuse(StatusCode::BAD_REQUEST, reason);
        }
    };
    let normal = match normal {
        std::borrow::Cow::Borrowed(_) => return Ok(()),
        std::borrow::Cow::Owned(n) if n == path => return Ok(()),
        std::borrow::Cow::Owned(n) => n,
    };
    let pq = match req.uri().query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    match http::Uri::from_parts(parts) {
        Ok(uri) => {
            *req.uri_mut() = uri;
            Ok(())
        }
        Err(_) => refuse(StatusCode::BAD_REQUEST, "path"),
    }
}

fn is_standard(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::PATCH
            | Method::OPTIONS
    )
}

/// Whether the request asks the upstream to run another method than its own: the
/// `X-HTTP-Method-Override` family of headers, or a `_method` query parameter (in any case or
/// percent-encoding).
fn fakes_method<B>(req: &Request<B>) -> bool {
    const HEADERS: [&str; 3] = [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ];
    if HEADERS.iter().any(|h| req.headers().contains_key(*h)) {
        return true;
    }
    let Some(q) = req.uri().query() else {
        return false;
    };
    // Cheap test first: most queries have neither an escape nor the word.
    let b = q.as_bytes();
    let maybe = memchr::memchr(b'%', b).is_some()
        || b.windows(7).any(|w| w.eq_ignore_ascii_case(b"_method"));
    maybe && form_urlencoded::parse(b).any(|(k, _)| k.trim().eq_ignore_ascii_case("_method"))
}

/// An h2c upgrade attempt (any token starting `h2c`); an unreadable `Upgrade` counts as one.
fn has_h2c(h: &HeaderMap) -> bool {
    h.contains_key("http2-settings")
        || list_tokens(h, header::UPGRADE)
            .any(|t| t.is_none_or(|t| t.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("h2c"))))
}
