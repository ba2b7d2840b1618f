//! The session gate: every path outside `/_vigie/` needs a valid session. The gate turns the
//! session cookie into an [`Identity`](crate::auth::Identity) in the request extensions, applies the access policy, and
//! refreshes the cookie's activity time. Without a session, a browser navigation is sent to the
//! sign-in page (303, with `next`); anything else (XHR, fetch, DICOMweb clients, WebSocket
//! handshakes) gets 401.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};
use tracing::debug;

use super::{MapResponse, ResponseMapper};
use crate::audit::Event;
use crate::audit::access::Pending;
use crate::audit::access::viewing::{AccessSink, Msg};
use crate::auth::{Auth, NoSession, TokenCache, session};
use crate::body::Body;
use crate::http_util::reserved;
use crate::middleware::request_id::RequestId;
use crate::policy;
use crate::policy::AccessRule;
use crate::respond::{self, Refusal};

/// Applies the gate; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct GateLayer {
    auth: Arc<Auth>,
    access: Option<Arc<[AccessRule]>>,
    /// This connection's last verified token (the layer is built once per connection).
    cache: Arc<TokenCache>,
    /// Name the user on responses ([`ServedTo`]) for the access log; off, that costs nothing.
    name_user: bool,
    /// The connection's client address, for the audit trail.
    client: IpAddr,
    /// Where accesses to patient data are recorded (`None`: they are not).
    access_sink: Option<AccessSink>,
}

impl GateLayer {
    pub(crate) fn new(
        auth: Arc<Auth>,
        access: Option<Arc<[AccessRule]>>,
        access_log: bool,
        client: IpAddr,
    ) -> Self {
        GateLayer {
            access_sink: auth.auditor().access().cloned(),
            auth,
            access,
            cache: Arc::default(),
            name_user: access_log,
            client,
        }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Gate<S> {
    inner: S,
    layer: GateLayer,
}

type Immediate = Ready<Result<Response<Body>, Infallible>>;

impl<S, B> Service<Request<B>> for Gate<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<MapResponse<S::Future, Refresh>, Immediate>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if req.uri().path().starts_with(reserved::PREFIX) {
            return Either::Left(MapResponse::new(
                self.inner.call(req),
                Refresh(None, None, None),
            ));
        }
        match self
            .layer
            .auth
            .authenticate_cached(req.headers(), &self.layer.cache)
        {
            Ok((identity, refresh)) => {
                let allowed = policy::allows(
                    self.layer.access.as_deref(),
                    req.method(),
                    req.uri().path(),
                    &identity.roles,
                );
                if !allowed {
                    debug!(user = %identity.user, path = req.uri().path(), "refused by the access policy");
                    self.layer.auth.audit(Event::AccessRefused {
                        user: identity.user.to_string(),
                        session: identity.session_id.to_string(),
                        client: self.layer.client,
                        method: req.method().to_string(),
                        path: req.uri().path().to_string(),
                        request_id: req
                            .extensions()
                            .get::<RequestId>()
                            .and_then(|r| r.0.to_str().ok())
                            .map(String::from),
                        reason: "access_policy",
                    });
                    let refusal = Refusal::Forbidden {
                        reason: "access_policy",
                    };
                    return Either::Right(ready(Ok(refusal.respond(req.version()))));
                }
                // The response's extension map is allocated only when something is put in it.
                let user = self.layer.name_user.then(|| identity.user.clone());
                let begun = self.layer.access_sink.as_ref().and_then(|sink| {
                    Pending::begin(
                        sink,
                        (&identity.user, &identity.session_id),
                        self.layer.client,
                        req.method(),
                        req.uri(),
                        req.extensions().get::<RequestId>().map(|r| &r.0),
                    )
                });
                let access = begun.map(|(pending, first)| {
                    if let Some(first) = first {
                        req.extensions_mut().insert(first);
                    }
                    pending
                });
                req.extensions_mut().insert(identity);
                Either::Left(MapResponse::new(
                    self.inner.call(req),
                    Refresh(refresh, user, access),
                ))
            }
            Err(why) => {
                let res = unauthenticated(&req, why);
                if let Some(sink) = &self.layer.access_sink {
                    sink.send(Msg::Refused {
                        at: time::OffsetDateTime::now_utc(),
                        client: self.layer.client,
                        reason: refusal_reason(why),
                        path: Box::from(req.uri().path()),
                    });
                }
                Either::Right(ready(Ok(res)))
            }
        }
    }
}

/// What `next` must escape inside a query string; `/`, `.`, `-`, `_` and `~` stay readable.
const NEXT_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// A browser loading a page (rather than a script fetching data).
fn is_navigation<B>(req: &Request<B>) -> bool {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return false;
    }
    if req.headers().contains_key(header::UPGRADE) {
        return false;
    }
    match req.headers().get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes() == b"navigate",
        None => req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    }
}

fn refusal_reason(why: NoSession) -> &'static str {
    match why {
        NoSession::Missing => "no_session",
        NoSession::Expired => "session_expired",
        NoSession::Invalid => "session_invalid",
    }
}

fn unauthenticated<B>(req: &Request<B>, why: NoSession) -> Response<Body> {
    let reason = refusal_reason(why);
    let mut res = if is_navigation(req) {
        let next = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let mut location = String::from(reserved::LOGIN_NEXT);
        location.extend(percent_encoding::utf8_percent_encode(next, NEXT_ENCODE));
        if why == NoSession::Expired {
            location.push_str("&expired=1");
        }
        respond::redirect(StatusCode::SEE_OTHER, &location, reason)
    } else {
        let refusal = Refusal::refused(StatusCode::UNAUTHORIZED, reason, false);
        refusal.respond(req.version())
    };
    if why != NoSession::Missing {
        res.headers_mut()
            .append(header::SET_COOKIE, session::clear_cookie());
    }
    res
}

/// The signed-in user a response was served to, for the access log (which sits above the gate).
#[derive(Debug, Clone)]
pub(crate) struct ServedTo(pub Arc<str>);

/// Adds the refreshed session cookie to the response, when there is one, names the user, and
/// passes on the access to patient data that the access log's completion finishes.
pub(crate) struct Refresh(Option<HeaderValue>, Option<Arc<str>>, Option<Pending>);

impl ResponseMapper<Body> for Refresh {
    type Output = Response<Body>;
    fn map(self, mut res: Response<Body>) -> Response<Body> {
        if let Some(cookie) = self.0 {
            res.headers_mut().append(header::SET_COOKIE, cookie);
        }
        if let Some(user) = self.1 {
            res.extensions_mut().insert(ServedTo(user));
        }
        if let Some(access) = self.2 {
            res.extensions_mut().insert(access);
        }
        res
    }
}
