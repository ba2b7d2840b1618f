//! The gateway's own pages (sign-in, sign-out), server-rendered, in French or English, usable
//! without JavaScript, with no external resource and a strict Content-Security-Policy.

use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::Body;

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

struct Text {
    title: &'static str,
    tagline: &'static str,
    username: &'static str,
    password: &'static str,
    code: &'static str,
    code_hint: &'static str,
    submit: &'static str,
    failed: &'static str,
    expired: &'static str,
    signed_out: &'static str,
    footer: &'static str,
    other_lang: &'static str,
    signout_title: &'static str,
    signout_as: &'static str,
    signout_button: &'static str,
    back: &'static str,
}

const FR: Text = Text {
    title: "Connexion",
    tagline: "Accès sécurisé aux images médicales",
    username: "Identifiant",
    password: "Mot de passe",
    code: "Code de vérification",
    code_hint: "Les 6 chiffres affichés par votre application d'authentification.",
    submit: "Se connecter",
    failed: "La connexion a échoué. Vérifiez vos informations et réessayez.",
    expired: "Votre session a expiré après {} minutes d'inactivité. Reconnectez-vous pour continuer.",
    signed_out: "Vous êtes déconnecté.",
    footer: "Accès réservé aux professionnels de santé autorisés. Chaque accès est enregistré.",
    other_lang: "English",
    signout_title: "Déconnexion",
    signout_as: "Connecté en tant que",
    signout_button: "Se déconnecter",
    back: "Revenir au visualiseur",
};

const EN: Text = Text {
    title: "Sign in",
    tagline: "Secure access to medical images",
    username: "User name",
    password: "Password",
    code: "Verification code",
    code_hint: "The 6 digits shown by your authenticator app.",
    submit: "Sign in",
    failed: "Sign-in failed. Check your details and try again.",
    expired: "Your session expired after {} minutes of inactivity. Sign in again to continue.",
    signed_out: "You are signed out.",
    footer: "For authorised health professionals only. Every access is recorded.",
    other_lang: "Français",
    signout_title: "Sign out",
    signout_as: "Signed in as",
    signout_button: "Sign out",
    back: "Back to the viewer",
};

fn text(lang: Lang) -> &'static Text {
    match lang {
        Lang::Fr => &FR,
        Lang::En => &EN,
    }
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn shell(lang: Lang, title: &str, main: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><link rel=\"icon\" href=\"data:,\">\
<title>{title} · Vigie</title><link rel=\"stylesheet\" href=\"/_vigie/assets/vigie.css\"></head>\
<body><main class=\"card\">\
<header><div class=\"brand\" aria-hidden=\"true\">V</div><div><p class=\"name\">Vigie</p>\
<p class=\"tagline\">{tagline}</p></div></header>{main}</main>\
<footer><p>{footer}</p></footer></body></html>\n",
        code = lang.code(),
        tagline = text(lang).tagline,
        footer = text(lang).footer,
    )
}

/// The sign-in page. `next` is already validated; `csrf` is the form token.
pub(crate) fn login(lang: Lang, notice: Notice, next: &str, csrf: &str, username: &str) -> String {
    let t = text(lang);
    let notice = match notice {
        Notice::None => String::new(),
        Notice::Failed => format!("<p class=\"notice error\" role=\"alert\">{}</p>", t.failed),
        Notice::Expired { minutes } => format!(
            "<p class=\"notice info\" role=\"status\">{}</p>",
            t.expired.replace("{}", &minutes.to_string())
        ),
        Notice::SignedOut => format!(
            "<p class=\"notice info\" role=\"status\">{}</p>",
            t.signed_out
        ),
    };
    let other = match lang {
        Lang::Fr => "en",
        Lang::En => "fr",
    };
    let switch_href = format!(
        "/_vigie/login?lang={other}&amp;next={}",
        escape(
            &percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        )
    );
    let main = format!(
        "<h1>{title}</h1>{notice}\
<form method=\"post\" action=\"/_vigie/login\" novalidate>\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\">\
<input type=\"hidden\" name=\"lang\" value=\"{code}\">\
<label for=\"username\">{lu}</label>\
<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" \
spellcheck=\"false\" required value=\"{username}\"{autofocus_user}>\
<label for=\"password\">{lp}</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{autofocus_pw}>\
<label for=\"totp\">{lc}</label>\
<input id=\"totp\" name=\"totp\" type=\"text\" inputmode=\"numeric\" pattern=\"[0-9]{{6}}\" maxlength=\"6\" \
autocomplete=\"one-time-code\" aria-describedby=\"totp-hint\" required>\
<p id=\"totp-hint\" class=\"hint\">{hint}</p>\
<button type=\"submit\">{submit}</button></form>\
<p class=\"lang\"><a href=\"{switch_href}\" lang=\"{other}\">{other_lang}</a></p>",
        title = t.title,
        csrf = escape(csrf),
        next = escape(next),
        code = lang.code(),
        lu = t.username,
        lp = t.password,
        lc = t.code,
        hint = t.code_hint,
        submit = t.submit,
        username = escape(username),
        autofocus_user = if username.is_empty() {
            " autofocus"
        } else {
            ""
        },
        autofocus_pw = if username.is_empty() {
            ""
        } else {
            " autofocus"
        },
        other_lang = t.other_lang,
    );
    shell(lang, t.title, &main)
}

/// The sign-out page: who is signed in, and the (POST) button.
pub(crate) fn logout(lang: Lang, user: &str, csrf: &str) -> String {
    let t = text(lang);
    let main = format!(
        "<h1>{title}</h1><p>{as_} <strong>{user}</strong></p>\
<form method=\"post\" action=\"/_vigie/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\">{button}</button></form><p class=\"lang\"><a href=\"/\">{back}</a></p>",
        title = t.signout_title,
        as_ = t.signout_as,
        user = escape(user),
        csrf = escape(csrf),
        button = t.signout_button,
        back = t.back,
    );
    shell(lang, t.signout_title, &main)
}

/// An HTML response with the pages' headers.
pub(crate) fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(Body::full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
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
        let p = login(Lang::En, Notice::Failed, "/a\"><script>", "tok", "<b>");
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
        let p = login(Lang::Fr, Notice::Expired { minutes: 15 }, "/", "t", "");
        assert!(p.contains("15 minutes d'inactivité"));
    }
}
