//! The gateway's OpenID Connect endpoints under `/_vigie/oidc/{provider}/`: `start` (send the
//! browser to the provider), `callback` (the provider's answer: checked, then a session), and
//! `signed-out` (where the provider returns the browser after RP-initiated logout). Every
//! failure is one log line naming the provider, the reason and the client, and a page in the
//! user's language that names none of it.

use std::net::IpAddr;

use http::header::SET_COOKIE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use subtle::ConstantTimeEq;
use tracing::{error, warn};

use super::pending::TTL;
use super::{Failure, FailureKind, claims};
use crate::auth::next::{lang_of, safe_next};
use crate::auth::pages::{self, Lang, OidcNotice};
use crate::auth::{Auth, session};
use crate::body::Body;
use crate::http_util::reserved::{LOGIN_SIGNED_OUT, OIDC};
use crate::respond::{self, Refusal};
use crate::store::ExternalSession;

/// The cookie binding a sign-in in flight to the browser that started it.
pub(crate) const BINDING: &str = "__Host-vigie-oidc";

/// Serves `/_vigie/oidc/...`.
pub(crate) async fn handle(auth: &Auth, req: Request<Incoming>, client: IpAddr) -> Response<Body> {
    let version = req.version();
    let rest = req.uri().path().strip_prefix(OIDC).unwrap_or_default();
    let Some((name, action)) = rest.split_once('/') else {
        return Refusal::refused(StatusCode::NOT_FOUND, "no_such_page", false).respond(version);
    };
    if auth.oidc().provider(name).is_none() {
        return Refusal::refused(StatusCode::NOT_FOUND, "no_such_page", false).respond(version);
    }
    // GET only: a HEAD would start a sign-in, or spend one, for nothing.
    if req.method() != Method::GET {
        return Refusal::refused(StatusCode::METHOD_NOT_ALLOWED, "method", false).respond(version);
    }
    match action {
        "start" => start(auth, &req, name, client).await,
        "callback" => callback(auth, &req, name, client).await,
        "signed-out" => respond::redirect(StatusCode::SEE_OTHER, LOGIN_SIGNED_OUT, "signed_out"),
        _ => Refusal::refused(StatusCode::NOT_FOUND, "no_such_page", false).respond(version),
    }
}

/// The browser's binding value, when it has a well-formed one.
fn binding_of(req: &Request<Incoming>) -> Option<&str> {
    session::cookie_value(req.headers(), BINDING).filter(|v| {
        v.len() >= 16
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn binding_cookie(value: &str, max_age: i64) -> Option<HeaderValue> {
    let mut c = session::host_cookie(BINDING, value, cookie::SameSite::Lax);
    c.set_max_age(cookie::time::Duration::seconds(max_age));
    HeaderValue::from_str(&c.to_string()).ok()
}

async fn start(auth: &Auth, req: &Request<Incoming>, name: &str, client: IpAddr) -> Response<Body> {
    let mut next = "/".to_owned();
    let mut explicit = None;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "next" => next = safe_next(&v),
            "lang" => explicit = Some(v.into_owned()),
            _ => {}
        }
    }
    let lang = lang_of(req, explicit.as_deref());
    match auth.client_locked(client).await {
        Ok(false) => {}
        Ok(true) => {
            warn!(provider = name, reason = "locked", %client, "OpenID sign-in refused");
            return page(
                lang,
                OidcNotice::Locked,
                StatusCode::TOO_MANY_REQUESTS,
                req.version(),
            );
        }
        Err(e) => return store_failed(&e, req.version()),
    }
    // One value per browser: sign-ins started in two tabs both stay valid.
    let binding = match binding_of(req) {
        Some(b) => b.to_owned(),
        None => match crate::auth::csrf::new_nonce() {
            Some(b) => b,
            None => return store_failed(&"no randomness", req.version()),
        },
    };
    match auth.oidc().start(name, next, lang, &binding, client).await {
        Ok(url) => {
            let mut res = respond::redirect(StatusCode::SEE_OTHER, &url, "oidc_start");
            // The flow lives ten minutes; so does the cookie (renewed by each start).
            if let Some(c) = binding_cookie(&binding, TTL as i64) {
                res.headers_mut().append(SET_COOKIE, c);
            }
            res
        }
        Err(f) => fail(auth, name, client, None, f, lang, req.version()).await,
    }
}

async fn callback(
    auth: &Auth,
    req: &Request<Incoming>,
    name: &str,
    client: IpAddr,
) -> Response<Body> {
    let version = req.version();
    let mut q = CallbackQuery::default();
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        let slot = match &*k {
            "code" => &mut q.code,
            "state" => &mut q.state,
            "iss" => &mut q.iss,
            "error" => &mut q.error,
            _ => continue,
        };
        // A parameter given twice is not an answer any provider sends.
        if slot.replace(v.into_owned()).is_some() {
            q.repeated = true;
        }
    }
    let fallback_lang = lang_of(req, None);
    let flow = q.state.as_deref().and_then(|s| auth.oidc().pending.take(s));
    let Some(flow) = flow else {
        let f = Failure::bad_request("state_unknown", "no sign-in in flight has this state");
        return fail(auth, name, client, None, f, fallback_lang, version).await;
    };
    let lang = flow.lang;
    let checks = || -> Result<String, Failure> {
        if flow.provider != name {
            return Err(Failure::bad_request(
                "state_unknown",
                "the state belongs to another provider's sign-in",
            ));
        }
        if crate::host::unix_now().saturating_sub(flow.created) > TTL {
            return Err(Failure::bad_request(
                "state_expired",
                "the sign-in started more than 10 minutes ago",
            ));
        }
        let same_browser = binding_of(req)
            .is_some_and(|b| bool::from(b.as_bytes().ct_eq(flow.binding.as_bytes())));
        if !same_browser {
            return Err(Failure::bad_request(
                "binding_mismatch",
                "the browser bringing the answer is not the one that started the sign-in",
            ));
        }
        if q.repeated {
            return Err(Failure::bad_request(
                "provider_error",
                "a parameter of the answer is repeated",
            ));
        }
        let provider = auth.oidc().provider(name).map(|p| p.cfg.issuer.as_str());
        if let (Some(iss), Some(expected)) = (&q.iss, provider)
            && iss.trim_end_matches('/') != expected
        {
            return Err(Failure::bad_request(
                "issuer_mismatch",
                format!("the answer says it comes from {iss}"),
            ));
        }
        if let Some(e) = &q.error {
            return Err(if e == "access_denied" {
                Failure {
                    kind: FailureKind::Cancelled,
                    reason: "cancelled",
                    detail: None,
                    log: "the provider answered access_denied".into(),
                }
            } else {
                Failure::provider(
                    "provider_error",
                    None,
                    format!("the provider answered error={}", printable(e)),
                )
            });
        }
        q.code
            .clone()
            .ok_or_else(|| Failure::provider("provider_error", None, "the answer has no code"))
    };
    let code = match checks() {
        Ok(c) => c,
        Err(f) => return fail(auth, name, client, None, f, lang, version).await,
    };
    let Some(provider) = auth.oidc().provider(name).cloned() else {
        let f = Failure::bad_request("state_unknown", "no such provider");
        return fail(auth, name, client, None, f, lang, version).await;
    };
    let verified = match provider.finish(&code, flow.verifier, &flow.nonce).await {
        Ok(v) => v,
        Err(f) => return fail(auth, name, client, None, f, lang, version).await,
    };
    // The rules as the configuration says now (they reload without a restart).
    let settings = auth.settings();
    let Some(rules) = settings.oidc.iter().find(|p| p.name == name) else {
        let f = Failure::refused("not_allowed", "the provider is no longer configured");
        return fail(auth, name, client, None, f, lang, version).await;
    };
    let mapped = match claims::map(rules, &verified.claims) {
        Ok(m) => m,
        Err(u) => {
            let account = claims::map_username(rules, &verified.claims);
            let f = Failure::refused(u.reason(), "the provider's claims do not admit this user");
            return fail(auth, name, client, account, f, lang, version).await;
        }
    };
    if auth.is_local_account(&mapped.username) {
        let f = Failure::refused("local_name_clash", "a local account has the same user name");
        return fail(auth, name, client, Some(mapped.username), f, lang, version).await;
    }
    let external = ExternalSession {
        provider: name.to_owned(),
        roles: mapped.roles,
        rules: super::rules_digest(rules),
        id_token: Some(verified.id_token),
    };
    match auth
        .sign_in_external(&mapped.username, external, client)
        .await
    {
        Ok(cookie) => {
            let mut res = respond::redirect(StatusCode::SEE_OTHER, &flow.next, "signed_in");
            res.headers_mut().append(SET_COOKIE, cookie);
            if let Some(c) = binding_cookie("", 0) {
                res.headers_mut().append(SET_COOKIE, c);
            }
            res
        }
        Err(e) => store_failed(&e, version),
    }
}

/// The callback's parameters.
#[derive(Default)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    repeated: bool,
}

/// At most 64 visible ASCII characters of a value from the request, for a log line.
fn printable(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

/// Logs a failed sign-in, counts it against the client address (unless the user cancelled or
/// the provider is down: neither says anything about the client), and answers with its page.
async fn fail(
    auth: &Auth,
    provider: &str,
    client: IpAddr,
    account: Option<String>,
    f: Failure,
    lang: Lang,
    version: http::Version,
) -> Response<Body> {
    warn!(
        provider,
        reason = f.reason,
        detail = f.detail.unwrap_or(""),
        %client,
        error = %f.log,
        "OpenID sign-in refused"
    );
    if !matches!(f.kind, FailureKind::Cancelled | FailureKind::Unavailable)
        && let Err(e) = auth
            .record_external_failure(client, f.reason, account)
            .await
    {
        error!(error = %e, "sign-in failure could not be recorded");
    }
    let notice = match (f.kind, f.reason) {
        (_, "acr_insufficient") => OidcNotice::Assurance,
        (FailureKind::BadRequest, _) => OidcNotice::Retry,
        (FailureKind::Cancelled, _) => OidcNotice::Cancelled,
        (FailureKind::Refused, _) => OidcNotice::Refused,
        (FailureKind::Provider, _) => OidcNotice::Invalid,
        (FailureKind::Unavailable, _) => OidcNotice::Unavailable,
    };
    respond::with_reason(page(lang, notice, f.status(), version), f.reason)
}

fn page(
    lang: Lang,
    notice: OidcNotice,
    status: StatusCode,
    version: http::Version,
) -> Response<Body> {
    pages::html(status, &pages::oidc_failed(lang, notice), version)
}

fn store_failed(e: &dyn std::fmt::Display, version: http::Version) -> Response<Body> {
    error!(error = %e, "OpenID sign-in could not be recorded");
    Refusal::Unavailable {
        status: StatusCode::SERVICE_UNAVAILABLE,
        reason: "store_unavailable",
    }
    .respond(version)
}
