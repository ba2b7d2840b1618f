//! The one reader of comma-separated header lists (`Connection: keep-alive, Upgrade`,
//! `Upgrade: websocket`), RFC 9110 §5.6.1: every field line of the header, split on commas,
//! each token trimmed of spaces and tabs. The h2c refusal (the guard), the WebSocket handshake
//! check and the hop-by-hop stripping (the proxy) all read lists through it.

use http::HeaderMap;
use http::header::AsHeaderName;

/// The tokens of every `name` field in `headers`, in order. A field value that is not visible
/// ASCII yields one `None`, so each caller decides what an unreadable value means (the guard
/// refuses it; the other readers skip it).
pub(crate) fn list_tokens<'a, K: AsHeaderName>(
    headers: &'a HeaderMap,
    name: K,
) -> impl Iterator<Item = Option<&'a str>> + 'a {
    headers.get_all(name).into_iter().flat_map(|value| {
        let (text, unreadable) = match value.to_str() {
            Ok(s) => (Some(s), None),
            Err(_) => (None, Some(None)),
        };
        text.into_iter()
            .flat_map(|s| s.split(','))
            .map(|t| Some(t.trim_matches([' ', '\t'])))
            .chain(unreadable)
    })
}

/// Whether a `name` field lists `token` (ASCII case-insensitive); unreadable values do not.
pub(crate) fn has_token<K: AsHeaderName>(headers: &HeaderMap, name: K, token: &str) -> bool {
    list_tokens(headers, name).any(|t| t.is_some_and(|t| t.eq_ignore_ascii_case(token)))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http::header::{CONNECTION, UPGRADE};

    use super::*;

    #[test]
    fn every_field_line_split_and_trimmed() {
        let mut h = HeaderMap::new();
        h.append(
            CONNECTION,
            HeaderValue::from_static("keep-alive ,\tUpgrade"),
        );
        h.append(CONNECTION, HeaderValue::from_static("x-a,,x-b"));
        let got: Vec<_> = list_tokens(&h, CONNECTION).collect();
        assert_eq!(
            got,
            [
                Some("keep-alive"),
                Some("Upgrade"),
                Some("x-a"),
                Some(""),
                Some("x-b")
            ]
        );
        assert!(has_token(&h, CONNECTION, "upgrade"));
        assert!(!has_token(&h, CONNECTION, "close"));
        assert!(!has_token(&h, UPGRADE, "websocket"));
    }

    #[test]
    fn an_unreadable_value_is_one_none() {
        let mut h = HeaderMap::new();
        h.append(UPGRADE, HeaderValue::from_bytes(b"websocket\xff").unwrap());
        h.append(UPGRADE, HeaderValue::from_static("h2c"));
        let got: Vec<_> = list_tokens(&h, UPGRADE).collect();
        assert_eq!(got, [None, Some("h2c")]);
        assert!(!has_token(&h, UPGRADE, "websocket"));
    }
}
