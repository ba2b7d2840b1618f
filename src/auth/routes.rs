//! The gateway's own endpoints under `/_vigie/`: the sign-in form and its submission, sign-out,
//! and the stylesheet. No session is needed to reach them.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use secrecy::ExposeSecret;
use tracing::error;

pub(crate) use super::next::lang_of;
pub use super::next::safe_next;
use super::pages::{self, Lang, Notice};
use super::{Auth, NoSession, SignIn, csrf, session};
use crate::body::Body;
use crate::http_util::reserved::{LOGIN, LOGIN_SIGNED_OUT, LOGOUT, OIDC, STYLESHEET};
use crate::respond::{self, Refusal};

/// Largest sign-in or sign-out form accepted.
const MAX_FORM: usize = 8 * 1024;

/// Serves a `/_vigie/...` request. A form must arrive whole within `form_deadline`
/// (`limits.header_read_timeout`): it is as small as a request head.
pub async fn handle(
    auth: &Auth,
    req: Request<Incoming>,
    client: IpAddr,
    form_deadline: Duration,
) -> Response<Body> {
    let version = req.version();
    let path = req.uri().path().to_owned();
    if path.starts_with(OIDC) {
        return super::oidc::routes::handle(auth, req, client).await;
    }
    match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, LOGIN) => login_page(auth, &req),
        (&Method::POST, LOGIN) => login_submit(auth, req, client, form_deadline).await,
        (&Method::GET | &Method::HEAD, LOGOUT) => logout_page(auth, &req),
        (&Method::POST, LOGOUT) => logout_submit(auth, req, client, form_deadline).await,
        (&Method::GET | &Method::HEAD, STYLESHEET) => pages::stylesheet(),
        (_, LOGIN | LOGOUT) => {
            Refusal::refused(StatusCode::METHOD_NOT_ALLOWED, "method", false).respond(version)
        }
        _ => Refusal::refused(StatusCode::NOT_FOUND, "no_such_page", false).respond(version),
    }
}

/// Query parameters of the sign-in page.
struct LoginQuery {
    next: String,
    lang: Option<String>,
    expired: bool,
    signed_out: bool,
}

fn query(req: &Request<Incoming>) -> LoginQuery {
    let mut q = LoginQuery {
        next: "/".into(),
        lang: None,
        expired: false,
        signed_out: false,
    };
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "next" => q.next = safe_next(&v),
            "lang" => q.lang = Some(v.into_owned()),
            "expired" => q.expired = true,
            "signed_out" => q.signed_out = true,
            _ => {}
        }
    }
    q
}

fn redirect(to: &str, reason: &'static str) -> Response<Body> {
    respond::redirect(StatusCode::SEE_OTHER, to, reason)
}

fn login_page(auth: &Auth, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    if auth.authenticate(req.headers()).is_ok() {
        return redirect(&q.next, "already_signed_in");
    }
    let lang = lang_of(req, q.lang.as_deref());
    let notice = if q.expired {
        Notice::Expired {
            minutes: auth.settings().idle_timeout.as_secs().div_ceil(60),
        }
    } else if q.signed_out {
        Notice::SignedOut
    } else {
        Notice::None
    };
    render_login(auth, req, lang, notice, &q.next, "", StatusCode::OK)
}

/// Renders the form with a CSRF token bound to the browser's nonce cookie (set when absent).
fn render_login(
    auth: &Auth,
    req: &Request<Incoming>,
    lang: Lang,
    notice: Notice,
    next: &str,
    username: &str,
    status: StatusCode,
) -> Response<Body> {
    let existing = session::cookie_value(req.headers(), csrf::COOKIE)
        .filter(|n| {
            n.len() >= 16
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned);
    let (nonce, fresh) = match existing {
        Some(n) => (n, false),
        None => match csrf::new_nonce() {
            Some(n) => (n, true),
            None => {
                let refusal = Refusal::Unavailable {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    reason: "no_randomness",
                };
                return refusal.respond(req.version());
            }
        },
    };
    let token = csrf::token(auth.form_key().expose_secret(), "login", &nonce);
    let providers = auth.oidc().buttons();
    let local = !auth.settings().users.is_empty() || providers.is_empty();
    let page = pages::login_with(lang, notice, next, &token, username, &providers, local);
    let mut res = pages::html(status, &page, req.version());
    if fresh && let Some(c) = csrf::set_cookie(&nonce) {
        res.headers_mut().append(SET_COOKIE, c);
    }
    res
}

/// Why a form could not be read.
enum FormError {
    /// Not a form, too large, or the body broke off.
    Invalid,
    /// Not all there within the deadline (a client holding the connection open).
    Timeout,
}

impl FormError {
    fn response(&self, version: http::Version) -> Response<Body> {
        match self {
            FormError::Invalid => {
                Refusal::refused(StatusCode::BAD_REQUEST, "form_invalid", true).respond(version)
            }
            // The rest of the body is unread: the connection cannot carry another request.
            FormError::Timeout => {
                Refusal::refused(StatusCode::REQUEST_TIMEOUT, "form_timeout", true).respond(version)
            }
        }
    }
}

async fn read_form(
    req: Request<Incoming>,
    deadline: Duration,
) -> Result<(http::request::Parts, Vec<(String, String)>), FormError> {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(FormError::Invalid);
    }
    let bytes: Bytes = tokio::time::timeout(deadline, Limited::new(body, MAX_FORM).collect())
        .await
        .map_err(|_| FormError::Timeout)?
        .map_err(|_| FormError::Invalid)?
        .to_bytes();
    let fields = form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok((parts, fields))
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn login_submit(
    auth: &Auth,
    req: Request<Incoming>,
    client: IpAddr,
    deadline: Duration,
) -> Response<Body> {
    let version = req.version();
    let headers = req.headers().clone();
    let uri = req.uri().clone();
    let fields = match read_form(req, deadline).await {
        Ok((_, fields)) => fields,
        Err(e) => {
            tracing::debug!(%client, reason = "form", "sign-in form refused");
            return e.response(version);
        }
    };
    let next = safe_next(field(&fields, "next"));
    let lang = Lang::negotiate(
        Some(field(&fields, "lang")),
        headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let username = field(&fields, "username").trim();
    let nonce = session::cookie_value(&headers, csrf::COOKIE).unwrap_or("");
    let csrf_ok = !nonce.is_empty()
        && csrf::verify(
            auth.form_key().expose_secret(),
            "login",
            nonce,
            field(&fields, "csrf"),
        );
    // A request rebuilt only for rendering: the body has been read.
    let mut for_page = Request::new(());
    *for_page.headers_mut() = headers;
    *for_page.uri_mut() = uri;
    if !csrf_ok {
        tracing::warn!(%client, reason = "csrf", "sign-in refused");
        return render_failed(auth, &for_page, lang, &next, username);
    }
    match auth
        .sign_in(
            username,
            field(&fields, "password"),
            field(&fields, "totp"),
            client,
        )
        .await
    {
        Ok(SignIn::Success { cookie, .. }) => {
            let mut res = redirect(&next, "signed_in");
            res.headers_mut().append(SET_COOKIE, cookie);
            res
        }
        Ok(SignIn::Failed) => render_failed(auth, &for_page, lang, &next, username),
        Err(e) => {
            error!(error = %e, "sign-in could not be recorded");
            let refusal = Refusal::Unavailable {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: "store_unavailable",
            };
            refusal.respond(version)
        }
    }
}

/// The failure page: the same for every cause, with the user name kept.
fn render_failed(
    auth: &Auth,
    req: &Request<()>,
    lang: Lang,
    next: &str,
    username: &str,
) -> Response<Body> {
    let nonce = session::cookie_value(req.headers(), csrf::COOKIE)
        .map(str::to_owned)
        .or_else(csrf::new_nonce)
        .unwrap_or_default();
    let token = csrf::token(auth.form_key().expose_secret(), "login", &nonce);
    let providers = auth.oidc().buttons();
    let page = pages::login_with(
        lang,
        Notice::Failed,
        next,
        &token,
        username,
        &providers,
        true,
    );
    let mut res = pages::html(StatusCode::UNAUTHORIZED, &page, req.version());
    if session::cookie_value(req.headers(), csrf::COOKIE).is_none()
        && let Some(c) = csrf::set_cookie(&nonce)
    {
        res.headers_mut().append(SET_COOKIE, c);
    }
    res
}

fn logout_page(auth: &Auth, req: &Request<Incoming>) -> Response<Body> {
    let q = query(req);
    match auth.authenticate(req.headers()) {
        Ok((id, _)) => {
            let token = csrf::token(auth.form_key().expose_secret(), "logout", &id.session_id);
            let lang = lang_of(req, q.lang.as_deref());
            let page = pages::logout(lang, &id.user, &token);
            let provider = auth.session_provider(&id.session_id);
            let origin = provider.as_ref().and_then(|(p, _)| p.logout_origin());
            pages::html_posting_to(StatusCode::OK, &page, req.version(), origin.as_deref())
        }
        Err(_) => redirect(LOGIN, "no_session"),
    }
}

async fn logout_submit(
    auth: &Auth,
    req: Request<Incoming>,
    client: IpAddr,
    deadline: Duration,
) -> Response<Body> {
    let version = req.version();
    let identity = auth.authenticate(req.headers());
    let fields = match read_form(req, deadline).await {
        Ok((_, fields)) => fields,
        Err(e) => return e.response(version),
    };
    let (id, _) = match identity {
        Ok(i) => i,
        Err(NoSession::Missing | NoSession::Expired | NoSession::Invalid) => {
            let mut res = redirect(LOGIN_SIGNED_OUT, "no_session");
            res.headers_mut()
                .append(SET_COOKIE, session::clear_cookie());
            return res;
        }
    };
    if !csrf::verify(
        auth.form_key().expose_secret(),
        "logout",
        &id.session_id,
        field(&fields, "csrf"),
    ) {
        return Refusal::Forbidden { reason: "csrf" }.respond(version);
    }
    // Read before the session is gone: where to end the provider's session too.
    let provider = auth.session_provider(&id.session_id);
    if let Err(e) = auth.sign_out(&id.user, &id.session_id, client).await {
        error!(error = %e, "sign-out could not be recorded");
        let refusal = Refusal::Unavailable {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "store_unavailable",
        };
        return refusal.respond(version);
    }
    tracing::info!(user = %id.user, "signed out");
    let at_provider = provider.and_then(|(p, id_token)| {
        let state = csrf::new_nonce()?;
        p.logout_url(id_token.as_deref(), &state)
    });
    let mut res = redirect(
        at_provider.as_deref().unwrap_or(LOGIN_SIGNED_OUT),
        "signed_out",
    );
    res.headers_mut()
        .append(SET_COOKIE, session::clear_cookie());
    res
}
