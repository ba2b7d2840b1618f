//! Configuration: the YAML file's serde mirror (`file`), its validation into the runtime
//! [`Config`] (`validate`), and the checks of what the file points to (`check`). Every problem is
//! reported with its YAML path and a hint, all at once.

mod alerts;
mod file;
pub(crate) mod secret;
mod units;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::policy::AccessRule;

pub use alerts::{
    AlertSettings, EmailChannel, FailedSignIns, SmtpSecurity, Volume, WebhookChannel, WorkingHours,
};
pub use units::{parse_duration, parse_size};
pub(crate) use validate::alerts::loopback;
pub(crate) use validate::oidc::acceptable_url as acceptable_provider_url;
pub(crate) use validate::oidc::client_key as parse_client_key;
pub(crate) use validate::oidc::read_ca_file;

/// Whether `name` is an acceptable user name: 1 to 64 letters, digits and `. _ - @`.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

/// Whether `role` is an acceptable role name: letters, digits, `_` and `-` (never empty).
pub fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
}

/// A configuration problem: where it is in the YAML file, what is wrong, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted YAML path, e.g. `tls.cert_file`; `.` for the whole file.
    pub path: String,
    pub message: String,
    pub hint: String,
    pub severity: Severity,
}

/// Errors stop the gateway from starting; warnings are printed and the gateway starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl Problem {
    pub(crate) fn error(path: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Problem {
            path: path.to_owned(),
            message: message.into(),
            hint: hint.into(),
            severity: Severity::Error,
        }
    }

    pub(crate) fn warning(path: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(path, message, hint)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.path, self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Why a configuration could not be loaded. `Display` prints every problem, one per paragraph.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems found, or one synthetic problem for an unreadable file.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { path, source } => vec![Problem::error(
                ".",
                format!("cannot read {}: {source}", path.display()),
                "check the --config path and the file's permissions",
            )],
            ConfigError::Invalid(p) => p.clone(),
        }
    }
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The validated runtime configuration. No optional soup: every default is filled in.
#[derive(Debug, Clone)]
pub struct Config {
    pub server_name: String,
    /// Further host names accepted in SNI and `Host` (all lower case).
    pub server_aliases: Vec<String>,
    pub listen: Listen,
    pub tls: TlsSettings,
    pub upstream: Upstream,
    pub limits: Limits,
    /// Force `Cache-Control: no-store` on proxied responses.
    pub no_store: bool,
    pub log: LogSettings,
    /// Where sessions, lockouts, the TOTP replay guard and the signing keys live (0700).
    pub state_dir: PathBuf,
    pub audit: AuditSettings,
    pub auth: AuthSettings,
    /// `None`: no `access:` section, every signed-in user reaches everything.
    pub access: Option<Vec<AccessRule>>,
    /// `alerts:`: the rules watching the trail and where their alerts go.
    pub alerts: AlertSettings,
    /// The file this configuration was read from (reloaded on SIGHUP).
    pub source: Option<PathBuf>,
}

/// The audit trail (`audit:`).
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Where the records go: `audit.dir`, by default `state_dir/audit`. The sealing key and the
    /// anchor stay in `state_dir` whatever this says.
    pub dir: PathBuf,
    /// Accesses to patient data are recorded (the default).
    pub record_access: bool,
    /// A viewing closes after this long without a request for its study.
    pub viewing_idle: Duration,
    /// Records older than this are deleted (the deletion is recorded).
    pub retention: Duration,
    /// Each record is also printed on standard output, for a log collector.
    pub stdout: bool,
}

/// Sign-in settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub users: Vec<User>,
    /// Where `vigie user add` writes, when set.
    pub users_file: Option<PathBuf>,
    /// TOTP required at sign-in (the default; turning it off is logged loudly).
    pub second_factor: bool,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// Failed sign-ins (per account, and per client address) before a lockout.
    pub max_failures: u32,
    pub lockout: Duration,
    /// Pause before answering a failed sign-in; it doubles with each failure in a series, up
    /// to 16 times this.
    pub failure_delay: Duration,
    /// OpenID Connect providers (`auth.oidc`), in the order of their buttons.
    pub oidc: Vec<OidcProvider>,
}

/// Which kind of OpenID provider, for the defaults and the checks it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcPreset {
    Generic,
    /// Pro Santé Connect (ANS): wallet discovery path, `scope_all`, `eidas1`, signed userinfo.
    ProSanteConnect,
}

/// How the gateway authenticates to the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`, the default).
    Basic,
    /// In the form body (`client_secret_post`).
    Post,
    /// A JWT signed with the gateway's private key (`private_key_jwt`, RFC 7523): no shared
    /// secret at all.
    PrivateKeyJwt,
}

/// The private key of `client_auth: private_key_jwt`.
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// PEM, EC P-256 (ES256) or RSA (RS256).
    pub pem: std::sync::Arc<SecretString>,
    pub algorithm: jsonwebtoken::Algorithm,
    /// The `kid` put in the assertion's header, when the provider needs it.
    pub kid: Option<String>,
}

/// One OpenID Connect provider, every default filled in.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// In the URLs: `/_vigie/oidc/{name}/...`.
    pub name: String,
    pub preset: OidcPreset,
    /// The sign-in button's text.
    pub label: String,
    /// Compared exactly with the discovery document's and the tokens' `iss`.
    pub issuer: String,
    pub discovery_url: String,
    pub client_id: String,
    /// `None` with `private_key_jwt`.
    pub client_secret: Option<std::sync::Arc<SecretString>>,
    pub client_auth: ClientAuth,
    /// With `private_key_jwt`.
    pub client_key: Option<ClientKey>,
    pub scopes: Vec<String>,
    /// Requested, and one of them required in the ID token's `acr`.
    pub acr_values: Vec<String>,
    /// Also read the userinfo endpoint (Pro Santé Connect: a signed JWT).
    pub userinfo: bool,
    /// The claims tried in turn for the user name.
    pub username_claims: Vec<String>,
    pub roles: Vec<RoleRule>,
    /// Empty: everyone with a role. Otherwise the user must match one entry.
    pub allow: Vec<ClaimRule>,
    /// User names whose sessions end and who cannot sign in.
    pub disabled_users: Vec<String>,
    /// Tolerance on the ID token's `exp` and `iat`.
    pub clock_skew: Duration,
    pub redirect_uri: String,
    pub post_logout_uri: String,
    /// Further certificate authorities (PEM) trusted for this provider, beside the system's.
    pub ca_file: Option<PathBuf>,
}

/// Users whose `claim` holds one of `values` get `roles`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleRule {
    /// A dotted path; `[]` stands for any element of an array.
    pub claim: String,
    pub values: Vec<String>,
    pub roles: Vec<String>,
}

/// Users whose `claim` holds one of `values`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimRule {
    pub claim: String,
    pub values: Vec<String>,
}

/// One account.
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// The decoded TOTP key.
    pub totp_secret: Option<SecretSlice<u8>>,
    pub roles: Vec<String>,
    pub disabled: bool,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// The HTTPS port browsers use (differs from `https` behind port forwarding); used in
    /// redirects from the plain-HTTP listener.
    pub public_https_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMinVersion {
    Tls12,
    Tls13,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Where the served certificate comes from. For the local CA and ACME, `cert_file` and
    /// `key_file` are where the gateway writes what it obtains (under `state_dir`).
    pub source: CertSource,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub min_version: TlsMinVersion,
    /// How often the certificate files are checked for changes (SIGHUP reloads at once).
    pub reload_interval: Duration,
}

/// Where the served certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `tls.cert_file` / `tls.key_file`, managed by the administrator (reloaded when they
    /// change).
    Files,
    /// `tls.local_ca: true`: issued and renewed by the gateway from the practice CA in
    /// `state_dir/ca` (`vigie ca init`).
    LocalCa,
    /// `tls.acme`: obtained and renewed from an ACME certificate authority (Let's Encrypt).
    Acme(AcmeSettings),
}

impl CertSource {
    /// Whether the gateway obtains the certificate itself (so none may exist yet).
    pub fn is_managed(&self) -> bool {
        !matches!(self, CertSource::Files)
    }
}

/// `tls.acme`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// `mailto:` contact given to the CA (expiry notices, policy changes).
    pub email: String,
    /// The CA's directory URL.
    pub directory: String,
    pub challenge: AcmeChallenge,
    /// Extra trust for the CA's own HTTPS (a private ACME CA): PEM, beside the system's store.
    pub ca_file: Option<PathBuf>,
    /// The names the certificate covers: `server_name` then `server_aliases`.
    pub names: Vec<String>,
    /// `<tls.acme.dir or state_dir/acme>/<CA host>`: the account, the certificate, its status,
    /// the lock and the challenge answers. Replicas behind one address share it.
    pub dir: PathBuf,
}

/// How the CA checks that the gateway answers for the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// On the HTTPS listener (port 443 as the CA sees it), nothing else needed.
    TlsAlpn01,
    /// On the plain-HTTP listener (port 80 as the CA sees it): `listen.http` required.
    Http01,
}

impl AcmeChallenge {
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Http01 => "http-01",
        }
    }
}

/// Let's Encrypt's production directory, the default of `tls.acme.directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`directory: letsencrypt-staging`): untrusted
/// certificates, generous rate limits, for trying a setup.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://host:port`, without a path.
    pub url: http::Uri,
    /// `host:port` of the upstream, as it appears in its own absolute URLs.
    pub authority: http::uri::Authority,
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response headers.
    pub response_timeout: Duration,
    /// How long an idle pooled connection is kept: below the upstream's own keep-alive timeout.
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    /// Connections to the upstream open at once, across every worker (idle ones included).
    pub max_connections: usize,
    /// How long a request may wait for an upstream connection when all are in use (then: 503).
    pub queue_timeout: Duration,
    /// Path that `/readyz` requests to decide whether the upstream is reachable.
    pub health_path: String,
    /// The `Authorization: Basic …` value sent to the upstream on every request, when configured.
    pub credentials: Option<SecretString>,
}

impl Upstream {
    /// The `Authorization` header for the upstream, marked sensitive (hyper and the HTTP/2
    /// encoder then never index or print it). Built once per proxy: a `HeaderValue`'s bytes
    /// cannot be zeroized, the configuration's copy is.
    pub fn authorization(&self) -> Option<http::HeaderValue> {
        let text = self.credentials.as_ref()?.expose_secret();
        let mut value = http::HeaderValue::from_str(text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// Connections one client address (an IPv6 /64) may hold at once.
    pub max_connections_per_client: usize,
    pub tls_handshake_timeout: Duration,
    /// Time allowed for a request head once started, for a new connection's first request, and
    /// for a whole sign-in or sign-out form.
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub h2_max_concurrent_streams: u32,
    pub max_request_body: u64,
    /// Longest pause allowed between two chunks of a request body the gateway forwards (then:
    /// 408 and the upstream request is aborted).
    pub body_idle_timeout: Duration,
    /// Longest time a response may wait for the client to take its next chunk (then: the
    /// connection is closed and the upstream request released).
    pub send_timeout: Duration,
    pub drain_timeout: Duration,
    /// HTTPS worker threads; 0 = one per CPU core.
    pub worker_threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `None`: decided at start (JSON in containers, text on a terminal).
    pub format: Option<LogFormat>,
    pub level: String,
    pub access_log: bool,
}

impl Config {
    /// Reads and validates a YAML file. Only the file itself is examined: certificates and the
    /// upstream are looked at by [`crate::diagnose::check`].
    pub fn load(path: &Path) -> Result<(Config, Vec<Problem>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let (mut config, warnings) = Config::from_yaml(&text)?;
        config.source = Some(path.to_owned());
        Ok((config, warnings))
    }

    /// Parses and validates YAML text; on success also returns the warnings.
    pub fn from_yaml(text: &str) -> Result<(Config, Vec<Problem>), ConfigError> {
        validate::from_yaml(text)
    }

    /// Whether `host` (lower case, without port) is a name this gateway answers to.
    pub fn accepts_host(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(&self.server_name)
            || self
                .server_aliases
                .iter()
                .any(|a| host.eq_ignore_ascii_case(a))
    }
}
