//! The gateway's own pages (sign-in, sign-out), server-rendered, in French or English, usable
//! without JavaScript, with no external resource and a strict Content-Security-Policy.
//!
//! The markup is in askama templates (`templates/page.html`, `login.html`, `logout.html`),
//! compiled into the binary; askama escapes every value. The texts below are ours and are
//! written as HTML ([`Safe`]); everything from a request (user name, `next`, tokens) is escaped.

use askama::Template;
use askama::filters::Safe;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode, Version};
use tracing::error;

use crate::body::Body;
use crate::respond::Refusal;

/// The stylesheet, served from `/_vigie/assets/vigie.css`.
pub(crate) const CSS: &str = include_str!("vigie.css");

/// Only our own stylesheet; no script at all; forms post to this origin only.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) use crate::lang::Lang;

/// What the sign-in page says above the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    None,
    Failed,
    Expired { minutes: u64 },
    SignedOut,
}

/// The pages' texts in one language: ours, written as HTML, so printed as they are.
struct Text {
    title: Safe<&'static str>,
    tagline: Safe<&'static str>,
    username: Safe<&'static str>,
    password: Safe<&'static str>,
    code: Safe<&'static str>,
    code_hint: Safe<&'static str>,
    submit: Safe<&'static str>,
    failed: Safe<&'static str>,
    /// Before and after the number of minutes.
    expired: (Safe<&'static str>, Safe<&'static str>),
    signed_out: Safe<&'static str>,
    footer: Safe<&'static str>,
    other_lang: Safe<&'static str>,
    signout_title: Safe<&'static str>,
    signout_as: Safe<&'static str>,
    signout_button: Safe<&'static str>,
    back: Safe<&'static str>,
    /// Before a provider's label on its button.
    sign_in_with: Safe<&'static str>,
    /// Between the providers' buttons and the password form.
    or: Safe<&'static str>,
    oidc_failed_title: Safe<&'static str>,
    oidc_retry: Safe<&'static str>,
    oidc_cancelled: Safe<&'static str>,
    oidc_refused: Safe<&'static str>,
    oidc_assurance: Safe<&'static str>,
    oidc_invalid: Safe<&'static str>,
    oidc_unavailable: Safe<&'static str>,
    oidc_locked: Safe<&'static str>,
    back_to_sign_in: Safe<&'static str>,
}

const FR: Text = Text {
    title: Safe("Connexion"),
    tagline: Safe("Accès sécurisé aux images médicales"),
    username: Safe("Identifiant"),
    password: Safe("Mot de passe"),
    code: Safe("Code de vérification"),
    code_hint: Safe("Les 6 chiffres affichés par votre application d'authentification."),
    submit: Safe("Se connecter"),
    failed: Safe("La connexion a échoué. Vérifiez vos informations et réessayez."),
    expired: (
        Safe("Votre session a expiré après "),
        Safe(" minutes d'inactivité. Reconnectez-vous pour continuer."),
    ),
    signed_out: Safe("Vous êtes déconnecté."),
    footer: Safe(
        "Accès réservé aux professionnels de santé autorisés. Chaque accès est enregistré.",
    ),
    other_lang: Safe("English"),
    signout_title: Safe("Déconnexion"),
    signout_as: Safe("Connecté en tant que"),
    signout_button: Safe("Se déconnecter"),
    back: Safe("Revenir au visualiseur"),
    sign_in_with: Safe("Se connecter avec "),
    or: Safe("ou avec un compte local"),
    oidc_failed_title: Safe("Connexion impossible"),
    oidc_retry: Safe(
        "Cette tentative de connexion n'est plus valable : elle a expiré, a déjà servi ou a été ouverte dans un autre navigateur. Recommencez depuis la page de connexion.",
    ),
    oidc_cancelled: Safe("La connexion a été annulée."),
    oidc_refused: Safe(
        "Votre identité a été vérifiée, mais ce compte n'a pas accès à ce service. Adressez-vous à l'administrateur du cabinet.",
    ),
    oidc_assurance: Safe(
        "Ce service demande une connexion forte (carte CPS ou application e-CPS). Reconnectez-vous avec l'une d'elles.",
    ),
    oidc_invalid: Safe(
        "Le service d'identification a renvoyé une réponse que Vigie ne peut pas accepter. Réessayez ; si cela se reproduit, prévenez l'administrateur.",
    ),
    oidc_unavailable: Safe(
        "Le service d'identification ne répond pas. Réessayez dans quelques minutes.",
    ),
    oidc_locked: Safe(
        "Trop de connexions ont échoué depuis cette adresse. Attendez quelques minutes avant de réessayer.",
    ),
    back_to_sign_in: Safe("Revenir à la page de connexion"),
};

const EN: Text = Text {
    title: Safe("Sign in"),
    tagline: Safe("Secure access to medical images"),
    username: Safe("User name"),
    password: Safe("Password"),
    code: Safe("Verification code"),
    code_hint: Safe("The 6 digits shown by your authenticator app."),
    submit: Safe("Sign in"),
    failed: Safe("Sign-in failed. Check your details and try again."),
    expired: (
        Safe("Your session expired after "),
        Safe(" minutes of inactivity. Sign in again to continue."),
    ),
    signed_out: Safe("You are signed out."),
    footer: Safe("For authorised health professionals only. Every access is recorded."),
    other_lang: Safe("Français"),
    signout_title: Safe("Sign out"),
    signout_as: Safe("Signed in as"),
    signout_button: Safe("Sign out"),
    back: Safe("Back to the viewer"),
    sign_in_with: Safe("Sign in with "),
    or: Safe("or with a local account"),
    oidc_failed_title: Safe("Sign-in failed"),
    oidc_retry: Safe(
        "This sign-in attempt is no longer valid: it expired, was already used, or was started in another browser. Start again from the sign-in page.",
    ),
    oidc_cancelled: Safe("Sign-in was cancelled."),
    oidc_refused: Safe(
        "Your identity was verified, but this account has no access to this service. Please contact the practice's administrator.",
    ),
    oidc_assurance: Safe(
        "This service requires a strong sign-in (CPS card or the e-CPS app). Please sign in again with one of them.",
    ),
    oidc_invalid: Safe(
        "The identity service sent an answer Vigie cannot accept. Please try again; if it happens again, tell the administrator.",
    ),
    oidc_unavailable: Safe(
        "The identity service is not answering. Please try again in a few minutes.",
    ),
    oidc_locked: Safe(
        "Too many sign-ins failed from this address. Please wait a few minutes before trying again.",
    ),
    back_to_sign_in: Safe("Back to the sign-in page"),
};

fn text(lang: Lang) -> &'static Text {
    lang.pick_text(&FR, &EN)
}

/// The sign-in page (`templates/login.html`).
#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct Login<'a> {
    code: &'static str,
    t: &'static Text,
    notice: Notice,
    csrf: &'a str,
    next: &'a str,
    username: &'a str,
    /// The other language's code, for the link that switches to it.
    other: &'static str,
    /// `next` percent-encoded, for that link's query.
    next_encoded: percent_encoding::PercentEncode<'a>,
    /// `(name, label)` of each OpenID provider: one button each.
    providers: &'a [(String, String)],
    /// The password form is shown (there are local accounts).
    local: bool,
}

/// The sign-in page. `next` is already validated; `csrf` is the form token.
#[cfg(test)]
pub(crate) fn login<'a>(
    lang: Lang,
    notice: Notice,
    next: &'a str,
    csrf: &'a str,
    username: &'a str,
) -> Login<'a> {
    login_with(lang, notice, next, csrf, username, &[], true)
}

/// The sign-in page with the OpenID providers' buttons, and the password form only when
/// `local`. `next` is already validated; `csrf` is the form token.
pub(crate) fn login_with<'a>(
    lang: Lang,
    notice: Notice,
    next: &'a str,
    csrf: &'a str,
    username: &'a str,
    providers: &'a [(String, String)],
    local: bool,
) -> Login<'a> {
    Login {
        code: lang.code(),
        t: text(lang),
        notice,
        csrf,
        next,
        username,
        other: lang.other().code(),
        next_encoded: percent_encoding::utf8_percent_encode(
            next,
            percent_encoding::NON_ALPHANUMERIC,
        ),
        providers,
        local,
    }
}

/// Why an OpenID sign-in failed, as the doctor is told (never the details: those are in the
/// log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OidcNotice {
    Retry,
    Cancelled,
    Refused,
    Assurance,
    Invalid,
    Unavailable,
    Locked,
}

/// The page ending a failed OpenID sign-in (`templates/oidc_failed.html`).
#[derive(Template)]
#[template(path = "oidc_failed.html")]
pub(crate) struct OidcFailed {
    code: &'static str,
    t: &'static Text,
    notice: OidcNotice,
}

pub(crate) fn oidc_failed(lang: Lang, notice: OidcNotice) -> OidcFailed {
    OidcFailed {
        code: lang.code(),
        t: text(lang),
        notice,
    }
}

/// The sign-out page (`templates/logout.html`): who is signed in, and the (POST) button.
#[derive(Template)]
#[template(path = "logout.html")]
pub(crate) struct Logout<'a> {
    code: &'static str,
    t: &'static Text,
    user: &'a str,
    csrf: &'a str,
}

/// The sign-out page for `user`, with its form token.
pub(crate) fn logout<'a>(lang: Lang, user: &'a str, csrf: &'a str) -> Logout<'a> {
    Logout {
        code: lang.code(),
        t: text(lang),
        user,
        csrf,
    }
}

/// `page` rendered as an HTML response with the pages' headers. Rendering writes strings and
/// numbers into a `String` and does not fail; were it to, a generic 500.
pub(crate) fn html(status: StatusCode, page: &impl Template, version: Version) -> Response<Body> {
    html_posting_to(status, page, version, None)
}

/// [`html`] for a page whose form may also lead to `origin` (the sign-out form, whose answer
/// redirects to the OpenID provider's end-session endpoint: browsers apply `form-action` to
/// the redirects that follow a form).
pub(crate) fn html_posting_to(
    status: StatusCode,
    page: &impl Template,
    version: Version,
    origin: Option<&str>,
) -> Response<Body> {
    let body = match page.render() {
        Ok(body) => body,
        Err(e) => {
            error!(error = %e, "page not rendered");
            let refusal = Refusal::Unavailable {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                reason: "page_render",
            };
            return refusal.respond(version);
        }
    };
    let mut res = Response::new(Body::full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let csp = match origin.and_then(|o| {
        HeaderValue::from_str(
            &CSP.replace("form-action 'self'", &format!("form-action 'self' {o}")),
        )
        .ok()
    }) {
        Some(v) => v,
        None => HeaderValue::from_static(CSP),
    };
    h.insert(CONTENT_SECURITY_POLICY, csp);
    res
}

/// The stylesheet response (cacheable: it changes only with the binary).
pub(crate) fn stylesheet() -> Response<Body> {
    let mut res = Response::new(Body::full(CSS));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_and_has_accessible_fields() {
        let p = login(Lang::En, Notice::Failed, "/a\"><script>", "tok", "<b>")
            .render()
            .unwrap();
        assert!(!p.contains("<script>") && !p.contains("<b>"));
        for want in [
            "autocomplete=\"username\"",
            "autocomplete=\"current-password\"",
            "autocomplete=\"one-time-code\"",
            "<label for=\"totp\">",
            "Sign-in failed",
        ] {
            assert!(p.contains(want), "{want}");
        }
        let p = login(Lang::Fr, Notice::Expired { minutes: 15 }, "/", "t", "")
            .render()
            .unwrap();
        assert!(p.contains("15 minutes d'inactivité"));
    }

    #[test]
    fn provider_buttons_beside_or_instead_of_the_form() {
        let providers = [
            ("psc".to_string(), "Pro Santé Connect".to_string()),
            ("clinic".to_string(), "<Clinique & co>".to_string()),
        ];
        let both = login_with(
            Lang::Fr,
            Notice::None,
            "/app?a=1",
            "t",
            "",
            &providers,
            true,
        )
        .render()
        .unwrap();
        for want in [
            "<a class=\"oidc\" id=\"oidc-psc\" href=\"/_vigie/oidc/psc/start?lang=fr&amp;next=%2Fapp%3Fa%3D1\">Se connecter avec Pro Santé Connect</a>",
            "id=\"oidc-clinic\"",
            "&#60;Clinique &#38; co&#62;",
            "ou avec un compte local",
            "<form method=\"post\"",
        ] {
            assert!(both.contains(want), "{want}\n{both}");
        }
        let only = login_with(Lang::En, Notice::None, "/", "t", "", &providers, false)
            .render()
            .unwrap();
        assert!(only.contains("Sign in with Pro Santé Connect"));
        assert!(
            !only.contains("<form")
                && !only.contains("password")
                && !only.contains("local account")
        );
    }

    #[test]
    fn oidc_failure_pages_say_what_to_do_and_nothing_else() {
        for (notice, fr, en) in [
            (OidcNotice::Retry, "n'est plus valable", "no longer valid"),
            (OidcNotice::Cancelled, "annulée", "cancelled"),
            (OidcNotice::Refused, "n'a pas accès", "no access"),
            (OidcNotice::Assurance, "connexion forte", "strong sign-in"),
            (OidcNotice::Invalid, "ne peut pas accepter", "cannot accept"),
            (OidcNotice::Unavailable, "ne répond pas", "not answering"),
            (
                OidcNotice::Locked,
                "Trop de connexions",
                "Too many sign-ins",
            ),
        ] {
            let p = oidc_failed(Lang::Fr, notice).render().unwrap();
            assert!(
                p.contains(fr) && p.contains("href=\"/_vigie/login?lang=fr\""),
                "{p}"
            );
            let p = oidc_failed(Lang::En, notice).render().unwrap();
            assert!(p.contains(en) && p.contains("<html lang=\"en\">"), "{p}");
        }
    }

    /// The pages as the hand-written `format!` code produced them (recorded before the move to
    /// templates), with askama's spelling of the escapes (`&#60;` for `&lt;`, `&#38;` for
    /// `&amp;`, `&#34;` for `&quot;`): the same characters for a browser.
    #[test]
    fn pages_render_as_before() {
        let p = login(
            Lang::En,
            Notice::Failed,
            "/a\"><script>&x='y'",
            "tok<&\"'>",
            "<b>dr.martin</b>",
        );
        assert_eq!(p.render().unwrap(), LOGIN_PAGE);
        let p = logout(Lang::Fr, "élodie&'\"", "c\"s<rf");
        assert_eq!(p.render().unwrap(), LOGOUT_PAGE);
    }

    const LOGIN_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <meta name=\"robots\" content=\"noindex\"><link rel=\"icon\" href=\"data:,\">\
        <title>Sign in · Vigie</title>\
        <link rel=\"stylesheet\" href=\"/_vigie/assets/vigie.css\"></head><body>\
        <main class=\"card\"><header><div class=\"brand\" aria-hidden=\"true\">V</div><div>\
        <p class=\"name\">Vigie</p><p class=\"tagline\">Secure access to medical images</p>\
        </div></header><h1>Sign in</h1>\
        <p class=\"notice error\" role=\"alert\">Sign-in failed. Check your details and try again.</p>\
        <form method=\"post\" action=\"/_vigie/login\" novalidate>\
        <input type=\"hidden\" name=\"csrf\" value=\"tok&#60;&#38;&#34;&#39;&#62;\">\
        <input type=\"hidden\" name=\"next\" value=\"/a&#34;&#62;&#60;script&#62;&#38;x=&#39;y&#39;\">\
        <input type=\"hidden\" name=\"lang\" value=\"en\">\
        <label for=\"username\">User name</label>\
        <input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required value=\"&#60;b&#62;dr.martin&#60;/b&#62;\">\
        <label for=\"password\">Password</label>\
        <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
        <label for=\"totp\">Verification code</label>\
        <input id=\"totp\" name=\"totp\" type=\"text\" inputmode=\"numeric\" pattern=\"[0-9]{6}\" maxlength=\"6\" autocomplete=\"one-time-code\" aria-describedby=\"totp-hint\" required>\
        <p id=\"totp-hint\" class=\"hint\">The 6 digits shown by your authenticator app.</p>\
        <button type=\"submit\">Sign in</button></form><p class=\"lang\">\
        <a href=\"/_vigie/login?lang=fr&amp;next=%2Fa%22%3E%3Cscript%3E%26x%3D%27y%27\" lang=\"fr\">Français</a>\
        </p></main><footer>\
        <p>For authorised health professionals only. Every access is recorded.</p></footer>\
        </body></html>\n";

    const LOGOUT_PAGE: &str = "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <meta name=\"robots\" content=\"noindex\"><link rel=\"icon\" href=\"data:,\">\
        <title>Déconnexion · Vigie</title>\
        <link rel=\"stylesheet\" href=\"/_vigie/assets/vigie.css\"></head><body>\
        <main class=\"card\"><header><div class=\"brand\" aria-hidden=\"true\">V</div><div>\
        <p class=\"name\">Vigie</p>\
        <p class=\"tagline\">Accès sécurisé aux images médicales</p></div></header>\
        <h1>Déconnexion</h1><p>Connecté en tant que <strong>élodie&#38;&#39;&#34;</strong></p>\
        <form method=\"post\" action=\"/_vigie/logout\">\
        <input type=\"hidden\" name=\"csrf\" value=\"c&#34;s&#60;rf\">\
        <button type=\"submit\">Se déconnecter</button></form><p class=\"lang\">\
        <a href=\"/\">Revenir au visualiseur</a></p></main><footer>\
        <p>Accès réservé aux professionnels de santé autorisés. Chaque accès est enregistré.</p>\
        </footer></body></html>\n";
}
