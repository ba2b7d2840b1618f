//! `access:`: the policy rules, and the warnings about openings an administrator most likely
//! did not intend.

use super::Validator;
use crate::config::AuthSettings;
use crate::config::file::FileAccessRule;
use crate::policy::AccessRule;

impl Validator {
    /// Names the openings an administrator most likely did not intend.
    pub(super) fn policy_warnings(&mut self, access: Option<&[AccessRule]>, auth: &AuthSettings) {
        let mut roles: Vec<String> = auth
            .users
            .iter()
            .flat_map(|u| u.roles.iter().cloned())
            .filter(|r| r != "admin")
            .collect();
        roles.push("doctor".into());
        roles.sort();
        roles.dedup();
        let post = http::Method::POST;
        if crate::policy::allows(access, &post, "/tools/execute-script", &roles) {
            self.warning(
                "access",
                "the access policy lets users without the admin role reach /tools/ \
                 (Orthanc's administration API, including Lua script execution)",
                "restrict /tools/ to admins and refuse /tools/execute-script to all; start from config/orthanc.example.yaml",
            );
        } else if crate::policy::allows(access, &post, "/tools/execute-script", &["admin".into()]) {
            self.warning(
                "access",
                "the access policy lets admins run Lua scripts on the viewer (/tools/execute-script)",
                "refuse /tools/execute-script to every role, as config/orthanc.example.yaml does",
            );
        }
    }

    pub(super) fn access(&mut self, rules: Vec<FileAccessRule>) -> Vec<AccessRule> {
        let mut out = Vec::new();
        for (i, r) in rules.into_iter().enumerate() {
            let at = format!("access[{i}]");
            let path = r.path.unwrap_or_else(|| "/".into());
            let partial_star = path.split('/').any(|seg| seg.contains('*') && seg != "*");
            if !path.starts_with('/') || path.contains("..") || path.contains('%') || partial_star {
                self.error(
                    &format!("{at}.path"),
                    format!("`{path}` is not a plain path prefix"),
                    "write a prefix such as /tools/, with * for one whole segment as in /studies/*/modify (no .., no %-encoding)",
                );
                continue;
            }
            let methods = match r.methods {
                None => None,
                Some(list) => {
                    let mut ms = Vec::new();
                    for m in list {
                        match http::Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()) {
                            Ok(m) => ms.push(m),
                            Err(_) => self.error(
                                &format!("{at}.methods"),
                                format!("`{m}` is not an HTTP method"),
                                "e.g. [GET, POST, PUT, DELETE]",
                            ),
                        }
                    }
                    Some(ms)
                }
            };
            let Some(roles) = r.roles else {
                self.error(
                    &format!("{at}.roles"),
                    "a rule needs `roles`",
                    "list the roles allowed, [\"*\"] for any signed-in user, or [] for nobody",
                );
                continue;
            };
            out.push(AccessRule {
                path: path.to_ascii_lowercase(),
                exact: r.exact.unwrap_or(false),
                methods,
                roles,
            });
        }
        out
    }
}
