//! The serde mirror of the YAML file, key for key. Nothing here is validated beyond its YAML type;
//! `validate` turns it into the runtime [`super::Config`]. Every struct rejects unknown keys so a
//! typo is an error, never a silent default.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub server_name: Option<String>,
    #[serde(default)]
    pub server_aliases: Vec<String>,
    pub listen: Option<FileListen>,
    pub tls: Option<FileTls>,
    pub upstream: Option<FileUpstream>,
    #[serde(default)]
    pub limits: FileLimits,
    #[serde(default)]
    pub responses: FileResponses,
    #[serde(default)]
    pub log: FileLog,
    pub state_dir: Option<String>,
    #[serde(default)]
    pub auth: FileAuth,
    pub access: Option<Vec<FileAccessRule>>,
    /// `audit:` with every key commented out reads as null.
    pub audit: Option<FileAudit>,
    /// `alerts:` with every key commented out reads as null.
    pub alerts: Option<FileAlerts>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuth {
    pub users: Option<Vec<FileUser>>,
    pub users_file: Option<String>,
    /// `totp` (default) or `off`.
    pub second_factor: Option<String>,
    pub idle_timeout: Option<String>,
    pub absolute_timeout: Option<String>,
    pub max_failures: Option<u32>,
    pub lockout: Option<String>,
    pub failure_delay: Option<String>,
    /// OpenID Connect providers (see `validate/oidc.rs`).
    pub oidc: Option<Vec<FileOidc>>,
}

/// One OpenID Connect provider under `auth.oidc`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOidc {
    pub name: Option<String>,
    /// `generic` (default) or `pro-sante-connect`.
    pub provider: Option<String>,
    /// Pro Santé Connect only: `production` (default) or `sandbox`.
    pub environment: Option<String>,
    pub label: Option<String>,
    pub issuer: Option<String>,
    pub discovery_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_auth: Option<String>,
    /// For `client_auth: private_key_jwt`: a PEM private key (EC P-256 or RSA).
    pub private_key: Option<String>,
    pub private_key_file: Option<String>,
    pub private_key_env: Option<String>,
    /// The `kid` the provider knows the key by.
    pub private_key_id: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub acr_values: Option<Vec<String>>,
    pub userinfo: Option<bool>,
    pub username_claim: Option<String>,
    pub roles: Option<Vec<FileRoleRule>>,
    pub allow: Option<Vec<FileClaimRule>>,
    pub disabled_users: Option<Vec<String>>,
    pub clock_skew: Option<String>,
    pub redirect_uri: Option<String>,
    /// PEM file of further authorities to trust for this provider.
    pub ca_file: Option<String>,
}

/// Users whose `claim` has one of `values` get `roles`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRoleRule {
    pub claim: Option<String>,
    pub values: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
}

/// Users whose `claim` (by default the user-name claim) has one of `values`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileClaimRule {
    pub claim: Option<String>,
    pub values: Option<Vec<String>>,
}

/// One account, in the main file or in `auth.users_file` (a YAML list of these).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUser {
    pub username: Option<String>,
    pub password_hash: Option<String>,
    pub totp_secret: Option<String>,
    pub totp_secret_file: Option<String>,
    pub totp_secret_env: Option<String>,
    pub roles: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAccessRule {
    pub path: Option<String>,
    pub exact: Option<bool>,
    pub methods: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
}

/// Upstream HTTP Basic credentials; the password as a value, a file or an environment variable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCredentials {
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListen {
    pub https: Option<String>,
    pub http: Option<String>,
    pub admin: Option<String>,
    pub public_https_port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub local_ca: Option<bool>,
    pub acme: Option<FileAcme>,
    pub min_version: Option<String>,
    pub reload_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAcme {
    pub email: Option<String>,
    pub accept_terms: Option<bool>,
    pub directory: Option<String>,
    pub challenge: Option<String>,
    pub ca_file: Option<String>,
    pub dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUpstream {
    pub url: Option<String>,
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub pool_max_idle: Option<usize>,
    pub max_connections: Option<usize>,
    pub queue_timeout: Option<String>,
    pub health_path: Option<String>,
    pub credentials: Option<FileCredentials>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub tls_handshake_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub keepalive_timeout: Option<String>,
    pub max_header_bytes: Option<String>,
    pub max_headers: Option<usize>,
    pub h2_max_concurrent_streams: Option<u32>,
    pub max_request_body: Option<String>,
    pub body_idle_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub drain_timeout: Option<String>,
    pub worker_threads: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileResponses {
    pub no_store: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLog {
    pub format: Option<String>,
    pub level: Option<String>,
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAudit {
    pub dir: Option<String>,
    pub record_access: Option<bool>,
    pub viewing_idle: Option<String>,
    pub retention: Option<String>,
    pub stdout: Option<bool>,
}

/// `alerts:` (see `validate/alerts.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAlerts {
    pub lang: Option<String>,
    pub email: Option<FileEmail>,
    pub webhook: Option<FileWebhook>,
    pub repeat_after: Option<String>,
    pub max_per_hour: Option<u32>,
    pub check_interval: Option<String>,
    pub failed_sign_ins: Option<FileFailedSignIns>,
    pub lockout: Option<bool>,
    pub volume: Option<FileVolume>,
    pub downloads: Option<bool>,
    pub new_address: Option<bool>,
    pub off_hours: Option<FileOffHours>,
    pub upstream_open: Option<bool>,
    pub certificate: Option<bool>,
    pub audit_failure: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEmail {
    /// `host:port` of the SMTP server.
    pub smtp: Option<String>,
    /// `starttls` (default), `tls` or `none` (loopback only).
    pub security: Option<String>,
    pub ca_file: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWebhook {
    pub url: Option<String>,
    pub ca_file: Option<String>,
    /// The name of the header carrying `secret`.
    pub header: Option<String>,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    pub secret_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFailedSignIns {
    pub per_account: Option<u32>,
    pub per_address: Option<u32>,
    pub overall: Option<u32>,
    pub window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileVolume {
    pub studies: Option<u32>,
    pub patients: Option<u32>,
    pub window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOffHours {
    /// `07:00-20:00`.
    pub hours: Option<String>,
    /// `mon-fri`, `mon-sat`, `mon,tue,thu`.
    pub days: Option<String>,
    /// IANA, e.g. `Europe/Paris`.
    pub time_zone: Option<String>,
}
