//! Turns the serde mirror into the runtime [`Config`], collecting every problem with its YAML
//! path instead of stopping at the first one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::file::{
    FileAccessRule, FileAuth, FileConfig, FileCredentials, FileLimits, FileLog, FileTls,
    FileUpstream, FileUser,
};
use super::units::{parse_duration, parse_size};
use crate::policy::AccessRule;

use super::{
    AuthSettings, Config, ConfigError, Limits, Listen, LogFormat, LogSettings, Problem, Secret,
    Severity, TlsMinVersion, TlsSettings, Upstream, User,
};

/// `upstream.max_connections` by default: below Orthanc's default `HttpThreadsCount` (50), which
/// is how many connections it serves at once (a connection beyond waits in its queue until another
/// has been idle 1 s), with 10 left for Orthanc's other HTTP clients (scripts, peers, a second
/// gateway during a rolling restart).
const DEFAULT_UPSTREAM_CONNECTIONS: usize = 40;

pub(super) fn from_yaml(text: &str) -> Result<(Config, Vec<Problem>), ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::Invalid(vec![Problem::error(
            ".",
            "the configuration file is empty",
            "start from config/vigie.example.yaml",
        )]));
    }
    let mut path = String::new();
    let parsed: Result<FileConfig, _> = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    let file = parsed.map_err(|e| {
        let path = if path.is_empty() { ".".into() } else { path };
        ConfigError::Invalid(vec![Problem::error(
            &path,
            // Without the quoted source lines: they may hold a password or a TOTP secret, and
            // these problems reach the log on a reload.
            e.without_snippet().to_string(),
            "fix this line; every key is described in config/vigie.example.yaml",
        )])
    })?;
    let mut v = Validator::default();
    let config = v.config(file);
    if v.problems.iter().any(|p| p.severity == Severity::Error) {
        return Err(ConfigError::Invalid(v.problems));
    }
    match config {
        Some(c) => Ok((c, v.problems)),
        // Unreachable in practice: every `None` above comes with an error problem.
        None => Err(ConfigError::Invalid(v.problems)),
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn error(&mut self, path: &str, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Problem::error(path, message, hint));
    }

    fn warning(&mut self, path: &str, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.push(Problem::warning(path, message, hint));
    }

    fn required<T>(&mut self, value: Option<T>, path: &str, hint: &str) -> Option<T> {
        if value.is_none() {
            self.error(path, "this key is required", hint);
        }
        value
    }

    fn duration(&mut self, value: Option<&str>, path: &str, default: Duration) -> Duration {
        let Some(text) = value else { return default };
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.error(path, "must be longer than zero", "e.g. `30s`");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(
                    path,
                    e,
                    "durations look like `500ms`, `30s`, `15m` or `12h`",
                );
                default
            }
        }
    }

    fn size(&mut self, value: Option<&str>, path: &str, default: u64) -> u64 {
        let Some(text) = value else { return default };
        parse_size(text).unwrap_or_else(|e| {
            self.error(path, e, "sizes look like `16KiB`, `512MiB` or `4GiB`");
            default
        })
    }

    fn addr(&mut self, value: &str, path: &str) -> Option<SocketAddr> {
        match value.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    path,
                    format!("`{value}` is not an IP:PORT address"),
                    "write e.g. \"0.0.0.0:8443\" or \"[::]:8443\" (host names are not accepted)",
                );
                None
            }
        }
    }

    fn config(&mut self, f: FileConfig) -> Option<Config> {
        let server_name = self
            .required(
                f.server_name,
                "server_name",
                "the public host name of the gateway, e.g. viewer.example.org",
            )
            .and_then(|n| self.host_name(&n, "server_name"));
        let server_aliases: Vec<String> = f
            .server_aliases
            .iter()
            .enumerate()
            .filter_map(|(i, a)| self.host_name(a, &format!("server_aliases[{i}]")))
            .collect();
        let listen = self.listen(f.listen);
        let tls = self.tls(f.tls);
        let upstream = self.upstream(f.upstream);
        let limits = self.limits(&f.limits);
        let log = self.log(&f.log);
        let auth = self.auth(f.auth);
        let access = f.access.map(|rules| self.access(rules));
        self.policy_warnings(access.as_deref(), &auth);
        let state_dir = PathBuf::from(f.state_dir.unwrap_or_else(|| "/var/lib/vigie".into()));
        if let (Some(l), Some(u)) = (&listen, &upstream) {
            self.loop_check(l, u);
        }
        Some(Config {
            server_name: server_name?,
            server_aliases,
            listen: listen?,
            tls: tls?,
            upstream: upstream?,
            limits,
            no_store: f.responses.no_store.unwrap_or(true),
            log,
            state_dir,
            auth,
            access,
            source: None,
        })
    }

    fn auth(&mut self, a: FileAuth) -> AuthSettings {
        let second_factor = match a.second_factor.as_deref().map(str::trim) {
            None | Some("totp") => true,
            Some("off") => {
                self.warning(
                    "auth.second_factor",
                    "the second factor is OFF: a stolen password is enough to see patient images",
                    "remote access to health data needs two factors (ANS rules, since 1 January 2026); remove this line",
                );
                false
            }
            Some(other) => {
                self.error(
                    "auth.second_factor",
                    format!("`{other}` is not a second factor"),
                    "use \"totp\" (the default) or, at your own risk, \"off\"",
                );
                true
            }
        };
        let mut users = Vec::new();
        if let Some(list) = a.users {
            for (i, u) in list.into_iter().enumerate() {
                if let Some(u) = self.user(u, &format!("auth.users[{i}]"), second_factor) {
                    users.push(u);
                }
            }
        }
        let users_file = a.users_file.map(PathBuf::from);
        if let Some(path) = &users_file {
            self.users_file(path, second_factor, &mut users);
        }
        let mut seen = std::collections::HashSet::new();
        for u in &users {
            if !seen.insert(u.username.clone()) {
                self.error(
                    "auth.users",
                    format!("the user `{}` is defined twice", u.username),
                    "keep one entry per user name",
                );
            }
        }
        if users.iter().all(|u| u.disabled) {
            self.warning(
                "auth.users",
                "there is no enabled user: nobody can sign in",
                "add one with `vigie user add NAME --roles doctor --config PATH`",
            );
        }
        let idle_timeout = self.duration(
            a.idle_timeout.as_deref(),
            "auth.idle_timeout",
            Duration::from_secs(15 * 60),
        );
        let absolute_timeout = self.duration(
            a.absolute_timeout.as_deref(),
            "auth.absolute_timeout",
            Duration::from_secs(12 * 3600),
        );
        if idle_timeout > absolute_timeout {
            self.error(
                "auth.idle_timeout",
                "the idle timeout is longer than the absolute session lifetime",
                "keep idle_timeout (default 15m) below absolute_timeout (default 12h)",
            );
        }
        let max_failures = a.max_failures.unwrap_or(5);
        if max_failures == 0 {
            self.error(
                "auth.max_failures",
                "must be at least 1",
                "the default is 5",
            );
        }
        AuthSettings {
            users,
            users_file,
            second_factor,
            idle_timeout,
            absolute_timeout,
            max_failures: max_failures.max(1),
            lockout: self.duration(
                a.lockout.as_deref(),
                "auth.lockout",
                Duration::from_secs(15 * 60),
            ),
            failure_delay: self.duration(
                a.failure_delay.as_deref(),
                "auth.failure_delay",
                Duration::from_millis(250),
            ),
        }
    }

    fn users_file(&mut self, path: &std::path::Path, second_factor: bool, users: &mut Vec<User>) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // `vigie user add` creates it; an absent file is an empty list.
                return;
            }
            Err(e) => {
                self.error(
                    "auth.users_file",
                    format!("cannot read {}: {e}", path.display()),
                    "check the path and that the gateway's user may read the file",
                );
                return;
            }
        };
        if text.trim().is_empty() {
            return;
        }
        let parsed: Result<Vec<FileUser>, _> = serde_saphyr::from_str(&text);
        match parsed {
            Ok(list) => {
                for (i, u) in list.into_iter().enumerate() {
                    let at = format!("auth.users_file({})[{i}]", path.display());
                    if let Some(u) = self.user(u, &at, second_factor) {
                        users.push(u);
                    }
                }
            }
            Err(e) => self.error(
                "auth.users_file",
                format!("{}: {}", path.display(), e.without_snippet()),
                "the file is a YAML list of users with the same keys as auth.users",
            ),
        }
    }

    fn user(&mut self, u: FileUser, at: &str, second_factor: bool) -> Option<User> {
        let username = self.required(u.username, &format!("{at}.username"), "e.g. dr.martin")?;
        let at = format!("{at}({username})");
        if !super::valid_username(&username) {
            self.error(
                &format!("{at}.username"),
                format!("`{username}` is not a valid user name"),
                "use letters, digits and . _ - @ (at most 64)",
            );
        }
        let password_hash = self.required(
            u.password_hash,
            &format!("{at}.password_hash"),
            "create one with `vigie hash-password`",
        );
        if let Some(h) = &password_hash
            && let Err(why) = crate::credentials::password::check_phc(h)
        {
            self.error(
                &format!("{at}.password_hash"),
                why,
                "create one with `vigie hash-password` (argon2id, m=19456 t=2 p=1 or stronger)",
            );
        }
        let totp_secret = match (u.totp_secret, u.totp_secret_file) {
            (Some(_), Some(_)) => {
                self.error(
                    &format!("{at}.totp_secret"),
                    "both totp_secret and totp_secret_file are set",
                    "keep one of them",
                );
                None
            }
            (Some(s), None) => self.totp(&s, &format!("{at}.totp_secret")),
            (None, Some(f)) => match std::fs::read_to_string(&f) {
                Ok(s) => self.totp(&s, &format!("{at}.totp_secret_file")),
                Err(e) => {
                    self.error(
                        &format!("{at}.totp_secret_file"),
                        format!("cannot read {f}: {e}"),
                        "check the path and the file's permissions",
                    );
                    None
                }
            },
            (None, None) => None,
        };
        let disabled = u.disabled.unwrap_or(false);
        if second_factor && totp_secret.is_none() && !disabled {
            self.error(
                &format!("{at}.totp_secret"),
                "this user has no TOTP secret, and the second factor is required",
                "`vigie user add` creates one; or set totp_secret (base32) or totp_secret_file",
            );
        }
        let roles = u.roles.unwrap_or_default();
        if roles.is_empty() {
            self.error(
                &format!("{at}.roles"),
                "the user has no role",
                "e.g. roles: [doctor] or roles: [admin]",
            );
        }
        for r in &roles {
            if !super::valid_role(r) {
                self.error(
                    &format!("{at}.roles"),
                    format!("`{r}` is not a role name"),
                    "use letters, digits, _ and -, e.g. doctor, admin",
                );
            }
        }
        Some(User {
            username,
            password_hash: password_hash?,
            totp_secret,
            roles,
            disabled,
        })
    }

    fn totp(&mut self, text: &str, at: &str) -> Option<Secret<Vec<u8>>> {
        match crate::credentials::totp::decode_secret(text) {
            Ok(bytes) => Some(Secret::new(bytes)),
            Err(why) => {
                self.error(
                    at,
                    why,
                    "a base32 secret of at least 16 bytes (26 characters), as `vigie user add` makes",
                );
                None
            }
        }
    }

    /// Names the openings an administrator most likely did not intend.
    fn policy_warnings(&mut self, access: Option<&[AccessRule]>, auth: &AuthSettings) {
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

    fn access(&mut self, rules: Vec<FileAccessRule>) -> Vec<AccessRule> {
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

    fn host_name(&mut self, name: &str, path: &str) -> Option<String> {
        let n = name.trim().to_ascii_lowercase();
        if n.contains("://") || n.contains('/') {
            self.error(
                path,
                format!("`{name}` looks like a URL"),
                "write only the host name, e.g. viewer.example.org (no https://, no path)",
            );
            return None;
        }
        if n.parse::<std::net::IpAddr>().is_ok() {
            return Some(n);
        }
        if n.contains(':') {
            self.error(
                path,
                format!("`{name}` contains a port"),
                "write only the host name; ports belong in listen.https",
            );
            return None;
        }
        let valid = !n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            self.error(
                path,
                format!("`{name}` is not a valid host name"),
                "use letters, digits, dots and dashes, e.g. viewer.example.org",
            );
            return None;
        }
        Some(n)
    }

    fn listen(&mut self, l: Option<super::file::FileListen>) -> Option<Listen> {
        let l = self.required(
            l,
            "listen",
            "add `listen:` with at least `https: \"0.0.0.0:8443\"`",
        )?;
        let https = self
            .required(
                l.https,
                "listen.https",
                "the address browsers connect to, e.g. \"0.0.0.0:8443\"",
            )
            .and_then(|a| self.addr(&a, "listen.https"));
        let http = l.http.and_then(|a| self.addr(&a, "listen.http"));
        let admin = l.admin.and_then(|a| self.addr(&a, "listen.admin"));
        if let Some(a) = admin
            && !a.ip().is_loopback()
        {
            self.warning(
                "listen.admin",
                format!("the admin listener {a} is not on loopback"),
                "metrics and health need no exposure to the internet; prefer \"127.0.0.1:9901\"",
            );
        }
        let named = [
            ("listen.https", https),
            ("listen.http", http),
            ("listen.admin", admin),
        ];
        for (i, (pa, a)) in named.iter().enumerate() {
            for (pb, b) in &named[i + 1..] {
                if let (Some(a), Some(b)) = (a, b)
                    && a.port() != 0
                    && a.port() == b.port()
                    && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
                {
                    self.error(
                        pb,
                        format!("{b} collides with {pa} ({a})"),
                        "give each listener its own port",
                    );
                }
            }
        }
        if l.public_https_port == Some(0) {
            self.error(
                "listen.public_https_port",
                "must be a port between 1 and 65535",
                "the port browsers use, usually 443",
            );
        }
        let https = https?;
        Some(Listen {
            https,
            http,
            admin,
            public_https_port: l.public_https_port.unwrap_or(match https.port() {
                0 => 443,
                p => p,
            }),
        })
    }

    fn tls(&mut self, t: Option<FileTls>) -> Option<TlsSettings> {
        let t = self.required(
            t,
            "tls",
            "add `tls:` with cert_file and key_file (`vigie dev-cert` makes a local pair)",
        )?;
        let cert_file = self.required(
            t.cert_file,
            "tls.cert_file",
            "path to the PEM certificate chain, e.g. certs/server.crt",
        );
        let key_file = self.required(
            t.key_file,
            "tls.key_file",
            "path to the PEM private key, e.g. certs/server.key",
        );
        let min_version = match t.min_version.as_deref().map(str::trim) {
            None | Some("1.2") => TlsMinVersion::Tls12,
            Some("1.3") => TlsMinVersion::Tls13,
            Some(other) => {
                self.error(
                    "tls.min_version",
                    format!("`{other}` is not a supported TLS version"),
                    "use \"1.2\" (default, widest support) or \"1.3\"; older versions are insecure",
                );
                TlsMinVersion::Tls12
            }
        };
        let reload_interval = self.duration(
            t.reload_interval.as_deref(),
            "tls.reload_interval",
            Duration::from_secs(10),
        );
        Some(TlsSettings {
            cert_file: PathBuf::from(cert_file?),
            key_file: PathBuf::from(key_file?),
            min_version,
            reload_interval,
        })
    }

    fn upstream(&mut self, u: Option<FileUpstream>) -> Option<Upstream> {
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

    fn credentials(&mut self, c: FileCredentials) -> Option<Secret<http::HeaderValue>> {
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
        let password = match (c.password, c.password_file, c.password_env) {
            (Some(p), None, None) => p,
            (None, Some(f), None) => match std::fs::read_to_string(&f) {
                Ok(p) => p.trim_end_matches(['\r', '\n']).to_owned(),
                Err(e) => {
                    self.error(
                        "upstream.credentials.password_file",
                        format!("cannot read {f}: {e}"),
                        "check the path (e.g. a Docker secret under /run/secrets/) and its permissions",
                    );
                    return None;
                }
            },
            (None, None, Some(var)) => match std::env::var(&var) {
                Ok(p) => p,
                Err(_) => {
                    self.error(
                        "upstream.credentials.password_env",
                        format!("the environment variable {var} is not set"),
                        "set it in the gateway's environment, or use password_file",
                    );
                    return None;
                }
            },
            (None, None, None) => {
                self.error(
                    AT,
                    "no password given",
                    "set one of password_file (preferred), password_env or password",
                );
                return None;
            }
            _ => {
                self.error(
                    AT,
                    "more than one of password, password_file and password_env is set",
                    "keep exactly one",
                );
                return None;
            }
        };
        if password.is_empty() {
            self.error(AT, "the password is empty", "give the viewer's password");
            return None;
        }
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let mut value = http::HeaderValue::from_str(&format!("Basic {token}")).ok()?;
        value.set_sensitive(true);
        Some(Secret::new(value))
    }

    fn upstream_url(&mut self, s: &str) -> Option<(http::Uri, http::uri::Authority)> {
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

    fn loop_check(&mut self, l: &Listen, u: &Upstream) {
        let port = u.authority.port_u16().unwrap_or(80);
        let host = u
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback_host = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback() || ip.is_unspecified())
                .unwrap_or(false);
        for (path, addr) in [("listen.https", Some(l.https)), ("listen.http", l.http)] {
            if let Some(a) = addr
                && a.port() == port
                && loopback_host
            {
                self.error(
                    "upstream.url",
                    format!("the upstream is the gateway's own {path} address"),
                    "point upstream.url at the viewer (e.g. Orthanc on port 8042), not at Vigie",
                );
            }
        }
    }

    fn limits(&mut self, l: &FileLimits) -> Limits {
        let max_header_bytes = self.size(
            l.max_header_bytes.as_deref(),
            "limits.max_header_bytes",
            32 * 1024,
        );
        if !(8192..=1 << 20).contains(&max_header_bytes) {
            self.error(
                "limits.max_header_bytes",
                "must be between 8KiB and 1MiB",
                "the default 32KiB suits browsers and DICOMweb clients",
            );
        }
        let max_connections = l.max_connections.unwrap_or(4096);
        if max_connections == 0 {
            self.error("limits.max_connections", "must be at least 1", "e.g. 4096");
        }
        let per_client = l.max_connections_per_client.unwrap_or(256);
        if per_client == 0 {
            self.error(
                "limits.max_connections_per_client",
                "must be at least 1",
                "e.g. 256; raise it when many users share one public address (a hospital's NAT)",
            );
        } else if per_client > max_connections {
            self.warning(
                "limits.max_connections_per_client",
                "is above limits.max_connections: one client can still take every place",
                "keep it well below max_connections (default 256 of 4096)",
            );
        }
        let max_headers = l.max_headers.unwrap_or(100);
        if max_headers == 0 {
            self.error("limits.max_headers", "must be at least 1", "e.g. 100");
        }
        let streams = l.h2_max_concurrent_streams.unwrap_or(128);
        if streams == 0 {
            self.error(
                "limits.h2_max_concurrent_streams",
                "must be at least 1",
                "e.g. 128",
            );
        }
        Limits {
            max_connections: max_connections.max(1),
            max_connections_per_client: per_client.max(1),
            tls_handshake_timeout: self.duration(
                l.tls_handshake_timeout.as_deref(),
                "limits.tls_handshake_timeout",
                Duration::from_secs(10),
            ),
            header_read_timeout: self.duration(
                l.header_read_timeout.as_deref(),
                "limits.header_read_timeout",
                Duration::from_secs(15),
            ),
            keepalive_timeout: self.duration(
                l.keepalive_timeout.as_deref(),
                "limits.keepalive_timeout",
                Duration::from_secs(75),
            ),
            max_header_bytes: max_header_bytes.clamp(8192, 1 << 20) as usize,
            max_headers: max_headers.max(1),
            h2_max_concurrent_streams: streams.max(1),
            max_request_body: self.size(
                l.max_request_body.as_deref(),
                "limits.max_request_body",
                16 << 30,
            ),
            body_idle_timeout: self.duration(
                l.body_idle_timeout.as_deref(),
                "limits.body_idle_timeout",
                Duration::from_secs(30),
            ),
            send_timeout: self.duration(
                l.send_timeout.as_deref(),
                "limits.send_timeout",
                Duration::from_secs(60),
            ),
            drain_timeout: self.duration(
                l.drain_timeout.as_deref(),
                "limits.drain_timeout",
                Duration::from_secs(30),
            ),
            worker_threads: l.worker_threads.unwrap_or(0),
        }
    }

    fn log(&mut self, l: &FileLog) -> LogSettings {
        let format = match l.format.as_deref() {
            None | Some("auto") => None,
            Some("json") => Some(LogFormat::Json),
            Some("text") => Some(LogFormat::Text),
            Some(other) => {
                self.error(
                    "log.format",
                    format!("`{other}` is not a log format"),
                    "use \"json\", \"text\" or \"auto\" (JSON in containers)",
                );
                None
            }
        };
        let level = l.level.clone().unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::builder()
            .parse(&level)
            .is_err()
        {
            self.error(
                "log.level",
                format!("`{level}` is not a log level or filter"),
                "use error, warn, info, debug or trace",
            );
        }
        LogSettings {
            format,
            level,
            access_log: l.access_log.unwrap_or(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static GOOD_TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let hash = crate::credentials::password::hash("Radio-Thorax-2026").unwrap();
        format!(
            "{BASE}state_dir: /tmp/vigie-test\nauth:\n  users:\n    - username: dr.martin\n      \
             password_hash: \"{hash}\"\n      totp_secret: GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n      \
             roles: [doctor]\naccess:\n  - path: /tools/execute-script\n    roles: []\n  - path: /tools/\n    roles: [admin]\n  - path: /\n    roles: [doctor]\n"
        )
    });

    const BASE: &str = r#"
server_name: viewer.example.org
listen:
  https: "0.0.0.0:8443"
  http: "0.0.0.0:8080"
  admin: "127.0.0.1:9901"
tls:
  cert_file: certs/server.crt
  key_file: certs/server.key
upstream:
  url: "http://127.0.0.1:8042"
"#;

    #[allow(non_snake_case)]
    fn GOOD() -> String {
        GOOD_TEXT.clone()
    }

    fn problems(yaml: &str) -> Vec<Problem> {
        match from_yaml(yaml) {
            Ok((_, warnings)) => warnings,
            Err(ConfigError::Invalid(p)) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn paths(yaml: &str) -> Vec<String> {
        problems(yaml).into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn good_config_has_defaults() {
        let (c, w) = from_yaml(&GOOD()).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.server_name, "viewer.example.org");
        assert_eq!(c.upstream.authority.as_str(), "127.0.0.1:8042");
        assert_eq!(c.upstream.pool_idle_timeout, Duration::from_millis(500));
        assert!(c.no_store);
        assert_eq!(c.limits.max_header_bytes, 32 * 1024);
    }

    #[test]
    fn unknown_key_is_an_error_with_its_path() {
        let p = problems(&GOOD().replace("key_file:", "key_flie:"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "tls.key_flie");
        assert!(p[0].message.contains("unknown field"), "{}", p[0].message);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let yaml = r#"
server_name: https://viewer.example.org/
listen:
  https: "8443"
  http: "0.0.0.0:8443"
tls:
  cert_file: a.crt
  min_version: "1.0"
upstream:
  url: "ftp://orthanc"
  connect_timeout: "30"
limits:
  max_header_bytes: 12 parsecs
"#;
        let p = paths(yaml);
        for want in [
            "server_name",
            "listen.https",
            "tls.key_file",
            "tls.min_version",
            "upstream.url",
            "upstream.connect_timeout",
            "limits.max_header_bytes",
        ] {
            assert!(p.iter().any(|x| x == want), "missing {want} in {p:?}");
        }
    }

    #[test]
    fn colliding_listeners_and_self_loop() {
        let yaml = GOOD()
            .replace("0.0.0.0:8080", "0.0.0.0:8443")
            .replace("127.0.0.1:8042", "127.0.0.1:8443");
        let p = paths(&yaml);
        assert!(p.contains(&"listen.http".to_string()), "{p:?}");
        assert!(p.contains(&"upstream.url".to_string()), "{p:?}");
    }

    #[test]
    fn upstream_url_shapes() {
        for (url, want) in [
            ("http://user:pw@10.0.0.2:8042", "credentials"),
            ("http://10.0.0.2:8042/orthanc", "path"),
            ("https://10.0.0.2", "https"),
            ("10.0.0.2:8042", "scheme"),
        ] {
            let p = problems(&GOOD().replace("http://127.0.0.1:8042", url));
            assert_eq!(p.len(), 1, "{url}: {p:?}");
            assert_eq!(p[0].path, "upstream.url");
            assert!(p[0].message.contains(want), "{url}: {}", p[0].message);
            assert!(!p[0].message.contains("pw"), "credentials echoed back");
        }
    }

    #[test]
    fn type_errors_and_syntax_errors_name_the_path() {
        let p = problems(&format!("{}limits:\n  max_connections: -3\n", GOOD()));
        assert_eq!(p[0].path, "limits.max_connections");
        let p = problems("server_name: [unclosed\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("line 1"), "{}", p[0].message);
    }

    #[test]
    fn warnings_do_not_stop() {
        let yaml = GOOD().replace("127.0.0.1:9901", "0.0.0.0:9901").replace(
            "  url: \"http://127.0.0.1:8042\"\n",
            "  url: \"http://127.0.0.1:8042\"\n  pool_idle_timeout: 2s\n",
        );
        let (_, w) = from_yaml(&yaml).unwrap();
        let p: Vec<_> = w.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(p, ["listen.admin", "upstream.pool_idle_timeout"]);
    }

    #[test]
    fn yaml_errors_do_not_quote_secrets() {
        // Found by tests/properties.rs (config_from_any_tree, users_file_from_anything): the
        // YAML parser's message quoted the lines around the error, secrets included.
        let yaml = "upstream:\n  credentials:\n    username: {\n    password: Sekr3t-Marker\n";
        let p = problems(yaml);
        assert_eq!(p[0].path, "upstream.credentials.username");
        assert!(p[0].message.contains("line 3"), "{}", p[0].message);
        assert!(!p[0].message.contains("Sekr3t"), "{}", p[0].message);

        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.yaml");
        std::fs::write(&users, "-\n  username: *a\n  totp_secret: Sekr3t-Marker\n").unwrap();
        let yaml = format!(
            "{BASE}auth:\n  users_file: {:?}\n",
            users.display().to_string()
        );
        let p = problems(&yaml);
        assert_eq!(p[0].path, "auth.users_file");
        assert!(p[0].message.contains("line 2"), "{}", p[0].message);
        assert!(!p[0].message.contains("Sekr3t"), "{}", p[0].message);
    }

    #[test]
    fn upstream_connection_bound() {
        let (c, _) = from_yaml(&GOOD()).unwrap();
        assert_eq!(c.upstream.max_connections, 40);
        assert_eq!(c.upstream.queue_timeout, Duration::from_secs(30));
        let yaml = GOOD().replace(
            "  url: \"http://127.0.0.1:8042\"\n",
            "  url: \"http://127.0.0.1:8042\"\n  max_connections: 0\n  queue_timeout: 0s\n",
        );
        let p = problems(&yaml);
        let at: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(at, ["upstream.max_connections", "upstream.queue_timeout"]);
        assert!(p[0].hint.contains("HttpThreadsCount"), "{}", p[0].hint);
    }

    #[test]
    fn empty_file() {
        assert_eq!(paths("  \n"), ["."]);
    }
}
