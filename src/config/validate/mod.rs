//! Turns the serde mirror into the runtime [`Config`], collecting every problem with its YAML
//! path instead of stopping at the first one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod access;
pub(crate) mod alerts;
mod audit;
mod auth;
mod limits;
mod listen;
mod log;
pub(crate) mod oidc;
mod tls;
mod upstream;

use secrecy::SecretString;

use super::file::FileConfig;
use super::secret::SecretSource;
use super::units::{parse_duration, parse_size};

use super::{Config, ConfigError, Problem, Severity};

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

    /// Reads the secret called `name` in the section at `at` from whichever of `name`,
    /// `name_file` and `name_env` is set (every secret follows this rule, see
    /// `config/secret.rs`): `Ok(Some((secret, its key's path)))`, `Ok(None)` when none is set
    /// (the caller says whether that is wrong), `Err(())` when a problem was recorded.
    fn secret(
        &mut self,
        at: &str,
        name: &str,
        keys: (Option<String>, Option<String>, Option<String>),
    ) -> Result<Option<(SecretString, String)>, ()> {
        let source = match SecretSource::from_keys(keys.0, keys.1, keys.2) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(_) => {
                self.error(
                    &format!("{at}.{name}"),
                    format!("more than one of {name}, {name}_file and {name}_env is set"),
                    "keep exactly one",
                );
                return Err(());
            }
        };
        match source.read(name) {
            Ok(secret) => Ok(Some((secret, format!("{at}.{}", source.key(name))))),
            Err(e) => {
                self.error(&format!("{at}.{}", e.key), e.message, e.hint);
                Err(())
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
        let state_dir = PathBuf::from(f.state_dir.unwrap_or_else(|| "/var/lib/vigie".into()));
        let tls = {
            let names = server_name
                .iter()
                .map(|n| ("server_name".to_string(), n.clone()))
                .chain(
                    server_aliases
                        .iter()
                        .enumerate()
                        .map(|(i, a)| (format!("server_aliases[{i}]"), a.clone())),
                )
                .collect();
            let cx = tls::TlsContext {
                state_dir: &state_dir,
                names,
                listen: listen.as_ref(),
            };
            self.tls(f.tls, &cx)
        };
        let upstream = self.upstream(f.upstream);
        let limits = self.limits(&f.limits);
        let log = self.log(&f.log);
        let mut file_auth = f.auth;
        let file_oidc = file_auth.oidc.take().unwrap_or_default();
        let mut auth = self.auth(file_auth);
        let origin = match (&server_name, &listen) {
            (Some(n), Some(l)) if l.public_https_port == 443 => Some(format!("https://{n}")),
            (Some(n), Some(l)) => Some(format!("https://{n}:{}", l.public_https_port)),
            _ => None,
        };
        auth.oidc = self.oidc(file_oidc, origin.as_deref());
        if auth.users.iter().all(|u| u.disabled) && auth.oidc.is_empty() {
            self.warning(
                "auth.users",
                "there is no enabled user: nobody can sign in",
                "add one with `vigie user add NAME --roles doctor --config PATH`",
            );
        }
        let access = f.access.map(|rules| self.access(rules));
        self.policy_warnings(access.as_deref(), &auth);
        let audit = self.audit(f.audit.unwrap_or_default(), &state_dir);
        let alerts = self.alerts(f.alerts.unwrap_or_default());
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
            audit,
            auth,
            access,
            alerts,
            source: None,
        })
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
    fn every_secret_comes_from_a_value_a_file_or_the_environment() {
        use secrecy::ExposeSecret;
        const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("totp");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "orthanc-pass\n").unwrap();
        // The environment form is read from a variable every test process has (setting one
        // needs `unsafe`, which the crate forbids); tests/it/config_cli.rs sets its own for the
        // TOTP form on the `vigie` process.
        let path_var = std::env::var("PATH").unwrap();
        let with = |totp_key: &str, totp: &str, pw_key: &str, pw: &str| {
            GOOD()
                .replace(
                    &format!("totp_secret: {SECRET}"),
                    &format!("{totp_key}: \"{totp}\""),
                )
                .replace(
                    "upstream:\n",
                    &format!(
                        "upstream:\n  credentials:\n    username: gw\n    {pw_key}: \"{pw}\"\n"
                    ),
                )
        };
        let want_totp = crate::credentials::totp::decode_secret(SECRET).unwrap();
        let file_s = file.display().to_string();
        let pw_s = pw.display().to_string();
        for yaml in [
            with("totp_secret", SECRET, "password", "orthanc-pass"),
            with("totp_secret_file", &file_s, "password_file", &pw_s),
        ] {
            let (c, _) = from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            let user = &c.auth.users[0];
            assert_eq!(
                user.totp_secret.as_ref().unwrap().expose_secret(),
                &want_totp[..]
            );
            let auth = c.upstream.authorization().unwrap();
            assert_eq!(auth, "Basic Z3c6b3J0aGFuYy1wYXNz"); // gw:orthanc-pass
            assert!(auth.is_sensitive());
        }
        let (c, _) = from_yaml(&with("totp_secret", SECRET, "password_env", "PATH")).unwrap();
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("gw:{path_var}"));
        assert_eq!(
            c.upstream.authorization().unwrap(),
            format!("Basic {token}").as_str()
        );
        // Two sources at once, a missing file, an unset variable: each names its key.
        let both = GOOD().replace(
            &format!("totp_secret: {SECRET}"),
            &format!("totp_secret: {SECRET}\n      totp_secret_env: VIGIE_TOTP"),
        );
        let p = problems(&both);
        assert!(
            p.iter()
                .any(|p| p.path == "auth.users[0](dr.martin).totp_secret"
                    && p.message.contains("totp_secret_env")),
            "{p:?}"
        );
        let missing = with("totp_secret_file", "/nonexistent/totp", "password", "x-y-z");
        assert!(paths(&missing).contains(&"auth.users[0](dr.martin).totp_secret_file".to_string()));
        let unset = with(
            "totp_secret_env",
            "VIGIE_TEST_UNSET_7C1E",
            "password_env",
            "VIGIE_TEST_UNSET_7C1E",
        );
        let unset = paths(&unset);
        assert!(
            unset.contains(&"upstream.credentials.password_env".to_string()),
            "{unset:?}"
        );
        assert!(
            unset.contains(&"auth.users[0](dr.martin).totp_secret_env".to_string()),
            "{unset:?}"
        );
    }

    #[test]
    fn the_audit_directory_is_absolute_and_apart_from_the_state_directory() {
        let (c, _) = from_yaml(&GOOD()).unwrap();
        assert_eq!(c.audit.dir, PathBuf::from("/tmp/vigie-test/audit"));
        let (c, _) = from_yaml(&(GOOD() + "audit:\n  dir: /srv/vigie-audit\n")).unwrap();
        assert_eq!(c.audit.dir, PathBuf::from("/srv/vigie-audit"));
        for bad in [
            "audit:\n  dir: relative/audit\n",
            "audit:\n  dir: /tmp/vigie-test\n",
        ] {
            assert_eq!(paths(&(GOOD() + bad)), ["audit.dir"], "{bad}");
        }
    }

    #[test]
    fn long_comment_blocks_after_an_empty_section_parse() {
        // An administrator's notes: 150 comment lines under a section left empty. The YAML
        // parser, keeping comments, gave up after 96 ("too many buffered comments").
        let notes: String = (0..150).map(|n| format!("  # note {n}\n")).collect();
        let yaml = GOOD() + "audit:\n" + &notes;
        let (c, _) = from_yaml(&yaml).expect("parses");
        assert!(c.audit.record_access);
    }

    #[test]
    fn audit_settings_have_defaults_and_bounds() {
        let (c, warnings) = from_yaml(&GOOD()).unwrap();
        assert!(c.audit.record_access);
        assert!(!c.audit.stdout);
        assert_eq!(c.audit.viewing_idle, Duration::from_secs(900));
        assert_eq!(c.audit.retention, Duration::from_secs(365 * 86_400));
        assert!(warnings.iter().all(|w| !w.path.starts_with("audit")));
        let (c, _) = from_yaml(
            &(GOOD() + "audit:\n  viewing_idle: 2s\n  retention: 12months\n  stdout: true\n"),
        )
        .unwrap();
        assert_eq!(c.audit.viewing_idle, Duration::from_secs(2));
        assert!(c.audit.retention > Duration::from_secs(365 * 86_400));
        assert!(c.audit.stdout);
        for bad in [
            "audit:\n  viewing_idle: 2d\n",
            "audit:\n  viewing_idle: 10\n",
        ] {
            assert_eq!(paths(&(GOOD() + bad)), ["audit.viewing_idle"], "{bad}");
        }
        assert_eq!(
            paths(&(GOOD() + "audit:\n  retention: 1h\n")),
            ["audit.retention"]
        );
        for (yaml, path) in [
            ("audit:\n  retention: 30d\n", "audit.retention"),
            ("audit:\n  record_access: false\n", "audit.record_access"),
        ] {
            let (_, warnings) = from_yaml(&(GOOD() + yaml)).unwrap();
            assert_eq!(warnings.len(), 1, "{yaml}");
            assert_eq!(warnings[0].path, path);
        }
    }

    #[test]
    fn yaml_errors_do_not_quote_secrets() {
        // Found by tests/it/properties/ (config_from_any_tree, users_file_from_anything): the
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
