//! The access policy: which roles may use which paths and methods. Rules are read in order and
//! the first that matches decides; when rules exist and none matches, the request is refused.
//! Without an `access:` section every signed-in user reaches everything (and `vigie check` says
//! so). Paths are matched after normalisation, case-insensitively, at segment boundaries.

use http::Method;

use crate::config::AccessRule;

/// Whether `roles` may send `method` to `path` (normalised).
pub fn allows(rules: Option<&[AccessRule]>, method: &Method, path: &str, roles: &[String]) -> bool {
    let Some(rules) = rules else {
        return true;
    };
    for rule in rules {
        if !prefix_matches(&rule.path, path) {
            continue;
        }
        if let Some(methods) = &rule.methods
            && !methods.contains(method)
        {
            continue;
        }
        return rule
            .roles
            .iter()
            .any(|r| r == "*" || roles.iter().any(|have| have == r));
    }
    false
}

/// `/tools/` matches `/tools/` and below; `/tools` matches `/tools` and below, not `/toolsx`.
/// A `*` segment matches exactly one non-empty segment: `/studies/*/modify` matches
/// `/studies/1b2c/modify`. `prefix` is lower case (validation made it so); `path` is compared
/// ignoring case, without allocating (this runs for every request).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let bare = prefix.trim_end_matches('/');
    if memchr::memchr(b'*', bare.as_bytes()).is_some() {
        let mut segments = path.split('/');
        return bare.split('/').all(|want| match segments.next() {
            Some(got) if want == "*" => !got.is_empty(),
            Some(got) => got.eq_ignore_ascii_case(want),
            None => false,
        });
    }
    let bare = bare.as_bytes();
    let path = path.as_bytes();
    if path.len() < bare.len() || !path[..bare.len()].eq_ignore_ascii_case(bare) {
        return false;
    }
    path.len() == bare.len() || path[bare.len()] == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, methods: Option<&[&str]>, roles: &[&str]) -> AccessRule {
        AccessRule {
            path: path.into(),
            methods: methods.map(|m| m.iter().map(|m| m.parse().unwrap()).collect()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn first_match_wins_and_default_denies() {
        let rules = vec![
            rule("/tools/execute-script", None, &[]),
            rule("/tools/", None, &["admin"]),
            rule("/", Some(&["DELETE"]), &["admin"]),
            rule("/", None, &["doctor", "admin"]),
        ];
        let r = Some(rules.as_slice());
        let doctor = ["doctor".to_string()];
        let admin = ["admin".to_string()];
        assert!(allows(r, &Method::GET, "/patients", &doctor));
        assert!(!allows(r, &Method::DELETE, "/studies/x", &doctor));
        assert!(allows(r, &Method::DELETE, "/studies/x", &admin));
        assert!(!allows(r, &Method::GET, "/tools/find", &doctor));
        assert!(!allows(r, &Method::GET, "/TOOLS/find", &doctor));
        assert!(allows(r, &Method::POST, "/tools/find", &admin));
        assert!(!allows(r, &Method::POST, "/tools/execute-script", &admin));
        assert!(!allows(
            r,
            &Method::GET,
            "/patients",
            &["nurse".to_string()]
        ));
        let partial = vec![rule("/app/", None, &["*"])];
        assert!(allows(Some(&partial), &Method::GET, "/app/x", &doctor));
        assert!(!allows(Some(&partial), &Method::GET, "/patients", &doctor));
        assert!(allows(None, &Method::DELETE, "/anything", &doctor));
    }

    #[test]
    fn segment_boundaries() {
        assert!(prefix_matches("/tools", "/tools"));
        assert!(prefix_matches("/tools", "/tools/x"));
        assert!(!prefix_matches("/tools", "/toolsx"));
        assert!(prefix_matches("/tools/", "/tools"));
        assert!(prefix_matches("/tools/", "/tools/"));
    }

    #[test]
    fn star_segments_match_one_segment() {
        assert!(prefix_matches("/studies/*/modify", "/studies/1b2c/modify"));
        assert!(prefix_matches("/studies/*/modify", "/Studies/1b2c/MODIFY"));
        assert!(prefix_matches("/*/*/modify", "/series/ab/modify"));
        assert!(prefix_matches(
            "/studies/*/modify/",
            "/studies/x/modify/more"
        ));
        assert!(!prefix_matches("/studies/*/modify", "/studies/x/modifyx"));
        assert!(!prefix_matches("/studies/*/modify", "/studies/modify"));
        assert!(!prefix_matches("/studies/*/modify", "/studies//modify"));
        assert!(!prefix_matches("/studies/*/modify", "/studies/x/y/modify"));
        assert!(!prefix_matches("/studies/*", "/studies"));
        assert!(prefix_matches("/studies/*", "/studies/x"));
    }
}
