//! The only place where a failure becomes an HTTP response. Pages are short, bilingual and
//! generic: what went wrong is logged with the request id, never shown to the client.
//!
//! The markup is the askama template `templates/error.html`. A page depends only on its status,
//! so each one (400 to 599) is rendered once, on first use, and shared after that: a refusal
//! costs a reference count, not a rendering.

use std::sync::OnceLock;

use askama::Template;
use askama::filters::Safe;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode, Version};

use crate::body::Body;

/// One error page. The explanations are ours, written as HTML.
#[derive(Template)]
#[template(path = "error.html")]
struct Page {
    code: u16,
    reason: &'static str,
    en: Safe<&'static str>,
    fr: Safe<&'static str>,
}

/// The statuses whose page is kept once rendered: every client and server error.
const FIRST: u16 = 400;
const KEPT: usize = 200;
static PAGES: [OnceLock<Bytes>; KEPT] = [const { OnceLock::new() }; KEPT];

/// A generic error page for `status`. For HTTP/1.x, `close` asks hyper to close the connection
/// after the response (used for framing errors, after which the stream cannot be trusted).
pub(crate) fn response(status: StatusCode, version: Version, close: bool) -> Response<Body> {
    let mut res = Response::new(Body::full(page(status)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
        ),
    );
    if close && version < Version::HTTP_2 {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// The page's body: the kept one, or rendered now for a status outside 400 to 599.
fn page(status: StatusCode) -> Bytes {
    match PAGES.get(usize::from(status.as_u16().wrapping_sub(FIRST))) {
        Some(kept) => kept.get_or_init(|| render(status)).clone(),
        None => render(status),
    }
}

fn render(status: StatusCode) -> Bytes {
    let (en, fr) = explain(status);
    let page = Page {
        code: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error"),
        en: Safe(en),
        fr: Safe(fr),
    };
    // Rendering writes numbers and strings into a String and does not fail; were it to, the
    // status alone, with an empty body, still says what happened.
    Bytes::from(page.render().unwrap_or_default())
}

fn explain(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => (
            "The request was malformed and has been refused.",
            "La requête est mal formée et a été refusée.",
        ),
        403 => (
            "Access to this resource is refused.",
            "L'accès à cette ressource est refusé.",
        ),
        404 => ("This page does not exist.", "Cette page n'existe pas."),
        408 => (
            "The request took too long to arrive.",
            "La requête a mis trop de temps à arriver.",
        ),
        413 => (
            "The request is too large.",
            "La requête est trop volumineuse.",
        ),
        421 => (
            "This server does not serve the requested host name.",
            "Ce serveur ne dessert pas le nom d'hôte demandé.",
        ),
        431 => (
            "The request headers are too large.",
            "Les en-têtes de la requête sont trop volumineux.",
        ),
        502 => (
            "The imaging viewer is not answering. Please try again in a moment.",
            "Le visualiseur d'images ne répond pas. Réessayez dans un instant.",
        ),
        503 => (
            "The service is temporarily unavailable. Please try again in a moment.",
            "Le service est momentanément indisponible. Réessayez dans un instant.",
        ),
        504 => (
            "The imaging viewer took too long to answer. Please try again.",
            "Le visualiseur d'images a mis trop de temps à répondre. Réessayez.",
        ),
        _ => (
            "The request could not be completed.",
            "La requête n'a pas pu aboutir.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(res: Response<Body>) -> Bytes {
        http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes()
    }

    /// The page as the hand-written `format!` code produced it, recorded before the move to a
    /// template; kept pages are shared, other statuses rendered each time.
    #[tokio::test]
    async fn pages_render_as_before_and_once() {
        let a = response(StatusCode::NOT_FOUND, Version::HTTP_11, false);
        assert_eq!(a.headers()["content-security-policy"], CSP_BEFORE);
        assert!(a.headers().get("connection").is_none());
        let a = body(a).await;
        assert_eq!(a, PAGE_404);
        let b = body(response(StatusCode::NOT_FOUND, Version::HTTP_2, true)).await;
        assert_eq!(a.as_ptr(), b.as_ptr());
        let closing = response(StatusCode::BAD_REQUEST, Version::HTTP_11, true);
        assert_eq!(closing.headers()["connection"], "close");
        let ok = body(response(StatusCode::OK, Version::HTTP_11, false)).await;
        assert!(ok.starts_with(b"<!doctype html>") && ok.ends_with(b"</html>\n"));
    }

    const CSP_BEFORE: &str =
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'";

    const PAGE_404: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width\"><title>404 Not Found</title>\
        <style>body{font:16px/1.5 system-ui,sans-serif;margin:3rem auto;max-width:36rem;padding:0 1rem;color:#1f2933}h1{font-size:1.25rem}p{color:#52606d}</style>\
        </head><body><h1>404 · Not Found</h1><p>This page does not exist.</p>\
        <p lang=\"fr\">Cette page n'existe pas.</p></body></html>\n";
}
