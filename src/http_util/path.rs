//! Path normalisation, before the session gate and the access policy look at a path, and before
//! the upstream sees it: the upstream receives exactly the path the policy judged.
//!
//! Unreserved characters written as `%XX` are decoded, other escapes are kept (in upper case),
//! and `//` runs collapse. Spellings whose meaning depends on the server reading them are
//! refused (400): `.` and `..` segments (browsers resolve them before sending), encoded `/`,
//! `\` raw or encoded, `;` path parameters, NUL and other control characters, bad escapes.
//!
//! Hand-written on purpose: which spellings are refused is the gateway's security semantics (no
//! auth bypass by URL spelling), and general-purpose URL crates normalise differently (they
//! resolve dot segments instead of refusing them, decode or keep escapes by their own rules).
//! It is checked by property tests against a model (`tests/it/properties/paths.rs`).

use std::borrow::Cow;

/// Why a path was refused.
pub type Refusal = &'static str;

/// The normalised form of a request path (without the query). Borrowed when the path is
/// already normal, as nearly every request's is: no allocation on that path.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, Refusal> {
    if !raw.starts_with('/') {
        return Err("path_not_absolute");
    }
    if already_normal(raw)? {
        return Ok(Cow::Borrowed(raw));
    }
    rewrite(raw).map(Cow::Owned)
}

/// One pass over a path without escapes: refuses what `rewrite` would refuse, and says whether
/// there is anything to rewrite (an escape or an empty segment).
fn already_normal(raw: &str) -> Result<bool, Refusal> {
    for &b in raw.as_bytes() {
        match b {
            b'%' => return Ok(false),
            b'\\' => return Err("backslash"),
            b';' => return Err("path_parameter"),
            0..=0x20 | 0x7f.. => return Err("control_character"),
            _ => {}
        }
    }
    let mut segments = raw[1..].split('/').peekable();
    while let Some(seg) = segments.next() {
        match seg {
            "." | ".." => return Err("dot_segment"),
            // Only the last segment may be empty ("/" or a trailing slash).
            "" if segments.peek().is_some() => return Ok(false),
            _ => {}
        }
    }
    Ok(true)
}

fn rewrite(raw: &str) -> Result<String, Refusal> {
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or("bad_escape")?;
                let v = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("bad_escape")?;
                match v {
                    b'/' | b'\\' => return Err("encoded_separator"),
                    0..=0x1f | 0x7f => return Err("control_character"),
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        decoded.push(v as char)
                    }
                    b';' => return Err("path_parameter"),
                    _ => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        decoded.push('%');
                        decoded.push(HEX[usize::from(v >> 4)] as char);
                        decoded.push(HEX[usize::from(v & 0xf)] as char);
                    }
                }
                i += 3;
            }
            b'\\' => return Err("backslash"),
            b';' => return Err("path_parameter"),
            0..=0x20 | 0x7f.. => return Err("control_character"),
            _ => {
                decoded.push(b as char);
                i += 1;
            }
        }
    }
    let trailing = decoded.ends_with('/') && decoded.len() > 1;
    let mut out = String::with_capacity(decoded.len());
    for seg in decoded.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err("dot_segment");
        }
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn spellings_that_mean_the_same_normalise_the_same() {
        for (raw, want) in [
            ("/", "/"),
            ("/tools/", "/tools/"),
            ("//tools//execute-script", "/tools/execute-script"),
            ("/%74ools/find", "/tools/find"),
            ("/app/explorer.html", "/app/explorer.html"),
            ("/a%20b/%c3%a9", "/a%20b/%C3%A9"),
            ("/instances/x/file", "/instances/x/file"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn normal_paths_are_not_copied() {
        use std::borrow::Cow;
        for raw in ["/", "/tools/", "/app/explorer.html", "/a-b_c.d~e/f@g"] {
            assert!(matches!(normalize(raw), Ok(Cow::Borrowed(_))), "{raw}");
        }
        for raw in ["//a", "/a//b", "/%41"] {
            assert!(matches!(normalize(raw), Ok(Cow::Owned(_))), "{raw}");
        }
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        for raw in [
            "/app/../tools/execute-script",
            "/app/%2e%2e/tools/",
            "/app/%2E%2e/tools/",
            "/./tools/",
            "/tools%2fexecute-script",
            "/tools%2Fexecute-script",
            "/tools\\execute-script",
            "/tools%5cexecute-script",
            "/tools;jsessionid=x/execute-script",
            "/tools/..;/x",
            "/tools/%3bx",
            "/a%00b",
            "/a%",
            "/a%zz",
            "relative",
        ] {
            assert!(
                normalize(raw).is_err(),
                "{raw} accepted: {:?}",
                normalize(raw)
            );
        }
    }
}
