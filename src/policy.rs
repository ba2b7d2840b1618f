//! The access policy: which roles may use which paths and methods. Rules are read in order and
//! the first that matches decides; when rules exist and none matches, the request is refused.
//! Without an `access:` section every signed-in user reaches everything (and `vigie check` says
//! so). Paths are matched after normalisation, case-insensitively, at segment boundaries; an
//! `exact` rule matches its own path only (Orthanc's `POST /instances` upload, not `POST
//! /instances/{id}/export`).

use http::Method;

/// One line of the access policy: requests whose normalised path starts with `path` (at a
/// segment boundary; is `path` when `exact`) and whose method is in `methods` (all when `None`)
/// need one of `roles` (`*`: any signed-in user; empty: nobody).
#[derive(Debug, Clone)]
pub struct AccessRule {
    pub path: String,
    /// The path must be `path` itself (a trailing `/` aside), not only start with it.
    pub exact: bool,
    pub methods: Option<Vec<Method>>,
    pub roles: Vec<String>,
}

/// Whether `roles` may send `method` to `path` (normalised).
pub(crate) fn allows(
    rules: Option<&[AccessRule]>,
    method: &Method,
    path: &str,
    roles: &[String],
) -> bool {
    let Some(rules) = rules else {
        return true;
    };
    for rule in rules {
        let matches = if rule.exact {
            exact_matches(&rule.path, path)
        } else {
            prefix_matches(&rule.path, path)
        };
        if !matches {
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

/// `/instances` matches `/instances` and `/instances/` (Orthanc ignores a trailing slash), not
/// `/instances/x`; `/` matches `/` only. A `*` segment matches exactly one non-empty segment.
fn exact_matches(want: &str, path: &str) -> bool {
    let want = want.strip_suffix('/').unwrap_or(want);
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut got = path.split('/');
    want.split('/').all(|w| match got.next() {
        Some(g) if w == "*" => !g.is_empty(),
        Some(g) => g.eq_ignore_ascii_case(w),
        None => false,
    }) && got.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, methods: Option<&[&str]>, roles: &[&str]) -> AccessRule {
        AccessRule {
            path: path.into(),
            exact: false,
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

    #[test]
    fn exact_rules_match_their_path_only() {
        assert!(exact_matches("/", "/"));
        assert!(!exact_matches("/", "/app"));
        assert!(!exact_matches("/", "/app/"));
        assert!(exact_matches("/instances", "/instances"));
        assert!(exact_matches("/instances", "/INSTANCES/"));
        assert!(exact_matches("/instances/", "/instances"));
        assert!(!exact_matches("/instances", "/instances/x"));
        assert!(!exact_matches("/instances", "/instances/x/export"));
        assert!(!exact_matches("/instances", "/instancesx"));
        assert!(!exact_matches("/instances", "/"));
        assert!(exact_matches(
            "/dicom-web/studies/*",
            "/dicom-web/studies/1.2.3"
        ));
        assert!(exact_matches(
            "/dicom-web/studies/*",
            "/dicom-web/studies/1.2.3/"
        ));
        assert!(!exact_matches("/dicom-web/studies/*", "/dicom-web/studies"));
        assert!(!exact_matches(
            "/dicom-web/studies/*",
            "/dicom-web/studies/1.2.3/series"
        ));
        // A prefix rule for the same path still covers what is below it.
        let mut upload = rule("/instances", Some(&["POST"]), &["upload"]);
        upload.exact = true;
        let rules = vec![upload, rule("/", None, &["admin"])];
        let r = Some(rules.as_slice());
        let uploader = ["upload".to_string()];
        assert!(allows(r, &Method::POST, "/instances", &uploader));
        assert!(allows(r, &Method::POST, "/instances/", &uploader));
        assert!(!allows(r, &Method::POST, "/instances/x/export", &uploader));
        assert!(!allows(r, &Method::GET, "/instances", &uploader));
    }
}
