//! The paths the gateway keeps for itself: everything under [`PREFIX`] is answered by the
//! gateway (sign-in pages, their stylesheet) and never reaches the upstream, whatever the access
//! policy says. The cookie names are in `crate::auth::session` and `crate::auth::csrf`. The
//! page templates (`templates/`) name these constants too, as `crate::http_util::reserved::…`.

/// Every path of the gateway's own starts with this.
pub(crate) const PREFIX: &str = "/_vigie/";
/// The sign-in page and form.
pub(crate) const LOGIN: &str = "/_vigie/login";
/// The sign-in page after signing out.
pub(crate) const LOGIN_SIGNED_OUT: &str = "/_vigie/login?signed_out=1";
/// Sign-in, with the page to go back to after it (percent-encoded) appended.
pub(crate) const LOGIN_NEXT: &str = "/_vigie/login?next=";
/// The sign-out page and form.
pub(crate) const LOGOUT: &str = "/_vigie/logout";
/// The OpenID Connect endpoints: `{OIDC}{provider}/start`, `.../callback`, `.../signed-out`.
pub(crate) const OIDC: &str = "/_vigie/oidc/";
/// The sign-in pages' stylesheet.
pub(crate) const STYLESHEET: &str = "/_vigie/assets/vigie.css";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_prefix() {
        for p in [
            LOGIN,
            LOGIN_SIGNED_OUT,
            LOGIN_NEXT,
            LOGOUT,
            OIDC,
            STYLESHEET,
        ] {
            assert!(p.starts_with(PREFIX), "{p}");
        }
    }
}
