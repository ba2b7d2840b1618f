//! `upstream:`: the viewer's URL, its credentials, timeouts and the connection bound.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::Validator;
use crate::config::Upstream;
use crate::config::file::{FileCredentials, FileUpstream};

/// `upstream.max_connections` by default: below Orthanc's default `HttpThreadsCount` (50), which
/// is how many connections it serves at once (a connection beyond waits in its queue until another
/// has been idle 1 s), with 10 left for Orthanc's other HTTP clients (scripts, peers, a second
/// gateway during a rolling restart).
const DEFAULT_UPSTREAM_CONNECTIONS: usize = 40;

impl Validator {
    pub(super) fn upstream(&mut self, u: Option<FileUpstream>) -> Option<Upstream> {
        let u = self.required(
            u,
            "upstream",
            "add `upstream:` with `url: \"http://127.0.0.1:8042\"` (the viewer's internal address)",
        )?;
        let url = self
            .required(
                u.url,
                "upstream.url",
                "the viewer's internal address, e.g. \"http://127.0.0.1:8042\"",
            )
            .and_then(|s| self.upstream_url(&s));
        let connect_timeout = self.duration(
            u.connect_timeout.as_deref(),
            "upstream.connect_timeout",
            Duration::from_secs(5),
        );
        let response_timeout = self.duration(
            u.response_timeout.as_deref(),
            "upstream.response_timeout",
            Duration::from_secs(300),
        );
        let pool_idle_timeout = self.duration(
            u.pool_idle_timeout.as_deref(),
            "upstream.pool_idle_timeout",
            Duration::from_millis(500),
        );
        if pool_idle_timeout >= Duration::from_secs(1) {
            self.warning(
                "upstream.pool_idle_timeout",
                "Orthanc closes idle connections after 1 s",
                "keep this below the upstream's own keep-alive timeout (default 500ms)",
            );
        }
        let max_connections = u.max_connections.unwrap_or(DEFAULT_UPSTREAM_CONNECTIONS);
        if max_connections == 0 {
            self.error(
                "upstream.max_connections",
                "must be at least 1",
                "stay below the number of connections the viewer serves at once, e.g. 40 for Orthanc (HttpThreadsCount: 50)",
            );
        }
        let queue_timeout = self.duration(
            u.queue_timeout.as_deref(),
            "upstream.queue_timeout",
            Duration::from_secs(30),
        );
        let health_path = u.health_path.unwrap_or_else(|| "/".into());
        if !health_path.starts_with('/') {
            self.error(
                "upstream.health_path",
                format!("`{health_path}` does not start with /"),
                "e.g. \"/system\" for Orthanc",
            );
        }
        let credentials = u.credentials.and_then(|c| self.credentials(c));
        let (url, authority) = url?;
        Some(Upstream {
            url,
            authority,
            connect_timeout,
            response_timeout,
            pool_idle_timeout,
            pool_max_idle: u.pool_max_idle.unwrap_or(128),
            max_connections: max_connections.max(1),
            queue_timeout,
            health_path,
            credentials,
        })
    }

    pub(super) fn credentials(&mut self, c: FileCredentials) -> Option<SecretString> {
        use base64::Engine as _;
        const AT: &str = "upstream.credentials";
        let username = self.required(
            c.username,
            "upstream.credentials.username",
            "the user name the viewer expects, e.g. gateway",
        )?;
        if username.contains(':') {
            self.error(
                "upstream.credentials.username",
                "a Basic user name cannot contain ':'",
                "choose another user name",
            );
            return None;
        }
        let keys = (c.password, c.password_file, c.password_env);
        let password = match self.secret(AT, "password", keys) {
            Ok(Some((password, _))) => password,
            Ok(None) => {
                self.error(
                    AT,
                    "no password given",
                    "set one of password_file (preferred), password_env or password",
                );
                return None;
            }
            Err(()) => return None,
        };
        let password = password.expose_secret();
        if password.is_empty() {
            self.error(AT, "the password is empty", "give the viewer's password");
            return None;
        }
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let value = format!("Basic {token}");
        if http::HeaderValue::from_str(&value).is_err() {
            self.error(
                AT,
                "the user name or password cannot be sent in a header",
                "use printable characters only",
            );
            return None;
        }
        Some(value.into())
    }

    pub(super) fn upstream_url(&mut self, s: &str) -> Option<(http::Uri, http::uri::Authority)> {
        const PATH: &str = "upstream.url";
        let uri: http::Uri = match s.trim().parse() {
            Ok(u) => u,
            Err(_) => {
                self.error(
                    PATH,
                    format!("`{s}` is not a URL"),
                    "write e.g. \"http://127.0.0.1:8042\"",
                );
                return None;
            }
        };
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                self.error(
                    PATH,
                    "https upstreams are not supported yet",
                    "reach the viewer over plain HTTP on a private or loopback network, e.g. \"http://orthanc:8042\"",
                );
                return None;
            }
            _ => {
                self.error(
                    PATH,
                    format!("`{s}` has no http:// scheme"),
                    "write e.g. \"http://127.0.0.1:8042\"",
                );
                return None;
            }
        }
        let Some(authority) = uri.authority().cloned() else {
            self.error(
                PATH,
                "the URL has no host",
                "write e.g. \"http://127.0.0.1:8042\"",
            );
            return None;
        };
        if authority.as_str().contains('@') {
            self.error(
                PATH,
                "credentials in the upstream URL would be logged and shown in errors",
                "remove user:password@ from the URL",
            );
            return None;
        }
        if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
            self.error(
                PATH,
                "the upstream URL must not have a path or query",
                "the gateway forwards every path as is; write only scheme, host and port",
            );
            return None;
        }
        let uri = http::Uri::builder()
            .scheme("http")
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .ok()?;
        Some((uri, authority))
    }
}
