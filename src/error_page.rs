//! The only place where a failure becomes an HTTP response. Pages are short, bilingual and
//! generic: what went wrong is logged with the request id, never shown to the client.

use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode, Version};

use crate::body::Body;

/// A generic error page for `status`. For HTTP/1.x, `close` asks hyper to close the connection
/// after the response (used for framing errors, after which the stream cannot be trusted).
pub(crate) fn response(status: StatusCode, version: Version, close: bool) -> Response<Body> {
    let (en, fr) = explain(status);
    let reason = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>{code} {reason}</title>\
<style>body{{font:16px/1.5 system-ui,sans-serif;margin:3rem auto;max-width:36rem;padding:0 1rem;color:#1f2933}}\
h1{{font-size:1.25rem}}p{{color:#52606d}}</style></head><body>\
<h1>{code} · {reason}</h1><p>{en}</p><p lang=\"fr\">{fr}</p></body></html>\n",
        code = status.as_u16(),
    );
    let mut res = Response::new(Body::full(html));
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
