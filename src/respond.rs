//! The one mapping from "the gateway answers this request itself" to a response: every way it
//! refuses or fails a request is a [`Refusal`], turned into a generic error page
//! (`crate::error_page`) in [`Refusal::respond`], and the gateway's redirects are built by
//! [`redirect`]. Each of these responses carries its [`Reason`] as an extension, which the access
//! log (`crate::middleware::trace`) writes on the request's line: the client sees a generic
//! page, the administrator sees why.

use http::header::{CACHE_CONTROL, LOCATION};
use http::{HeaderValue, Response, StatusCode, Version};

use crate::body::Body;
use crate::error_page;

/// Why the gateway answered a request itself: a short `snake_case` word for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reason(pub &'static str);

/// A request the gateway answers itself because it refuses it or cannot serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The request is refused as sent (malformed, ambiguous, wrong host, cross-site, too large
    /// or too slow). `close`: the rest of the connection cannot be trusted (HTTP/1.x).
    Refused {
        status: StatusCode,
        reason: &'static str,
        close: bool,
    },
    /// Signed in, but not allowed this path or action.
    Forbidden { reason: &'static str },
    /// The upstream failed, did not answer in time, or answered something the gateway will not
    /// relay (502, 503 or 504).
    Upstream {
        status: StatusCode,
        reason: &'static str,
        close: bool,
    },
    /// The gateway itself cannot serve the request now (its store, its randomness).
    Unavailable {
        status: StatusCode,
        reason: &'static str,
    },
}

impl Refusal {
    /// A refusal of the request as sent.
    pub(crate) fn refused(status: StatusCode, reason: &'static str, close: bool) -> Refusal {
        Refusal::Refused {
            status,
            reason,
            close,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match *self {
            Refusal::Refused { status, .. }
            | Refusal::Upstream { status, .. }
            | Refusal::Unavailable { status, .. } => status,
            Refusal::Forbidden { .. } => StatusCode::FORBIDDEN,
        }
    }

    pub(crate) fn reason(&self) -> &'static str {
        match *self {
            Refusal::Refused { reason, .. }
            | Refusal::Forbidden { reason }
            | Refusal::Upstream { reason, .. }
            | Refusal::Unavailable { reason, .. } => reason,
        }
    }

    fn close(&self) -> bool {
        match *self {
            Refusal::Refused { close, .. } | Refusal::Upstream { close, .. } => close,
            Refusal::Forbidden { .. } | Refusal::Unavailable { .. } => false,
        }
    }

    /// The generic error page, with the reason for the access log.
    pub(crate) fn respond(self, version: Version) -> Response<Body> {
        with_reason(
            error_page::response(self.status(), version, self.close()),
            self.reason(),
        )
    }
}

/// A redirect to `location` (a path of this origin or an absolute URL), with the reason for the
/// access log. A 303 (to or from sign-in) depends on the session and is never cached; the
/// permanent ones to HTTPS (301, 308) are meant to be.
pub(crate) fn redirect(status: StatusCode, location: &str, reason: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::Empty);
    *res.status_mut() = status;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(LOCATION, v);
    }
    if status == StatusCode::SEE_OTHER {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    with_reason(res, reason)
}

/// Names why the gateway answered `res` itself.
pub(crate) fn with_reason(mut res: Response<Body>, reason: &'static str) -> Response<Body> {
    res.extensions_mut().insert(Reason(reason));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_a_generic_page_that_keeps_its_reason() {
        let res =
            Refusal::refused(StatusCode::BAD_REQUEST, "smuggling", true).respond(Version::HTTP_11);
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()["connection"], "close");
        assert_eq!(res.extensions().get::<Reason>(), Some(&Reason("smuggling")));
        let res = Refusal::Forbidden {
            reason: "access_policy",
        }
        .respond(Version::HTTP_2);
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get("connection").is_none());
        let res = redirect(StatusCode::SEE_OTHER, "/_vigie/login", "no_session");
        assert_eq!(res.headers()["location"], "/_vigie/login");
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(
            res.extensions().get::<Reason>(),
            Some(&Reason("no_session"))
        );
        let res = redirect(
            StatusCode::MOVED_PERMANENTLY,
            "https://a.example/",
            "https_only",
        );
        assert!(res.headers().get("cache-control").is_none());
    }
}
