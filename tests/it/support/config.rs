//! Gateway configurations for tests.

use std::path::Path;

use super::fixtures::{Certs, TEST_TOTP, TEST_USER, test_hash};

/// One `auth.users` entry with `TEST_PASSWORD` and `TEST_TOTP`.
pub fn user_yaml(name: &str, roles: &str) -> String {
    format!(
        "    - username: {name}\n      password_hash: \"{}\"\n      totp_secret: {TEST_TOTP}\n      roles: {roles}\n",
        test_hash()
    )
}

/// The access policy of the default test configuration (Orthanc's preset, shortened).
pub const TEST_ACCESS: &str = "access:\n  - path: /tools/execute-script\n    roles: []\n  \
    - path: /tools/\n    roles: [admin]\n  - path: /\n    methods: [DELETE]\n    roles: [admin]\n  \
    - path: /\n    roles: [doctor, admin]\n";

/// The `access:` section of the shipped Orthanc preset (`config/orthanc.example.yaml`), as an
/// administrator would copy it.
pub fn orthanc_preset() -> String {
    let preset = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/orthanc.example.yaml"),
    )
    .unwrap();
    let at = preset
        .find("\naccess:")
        .expect("access: in the Orthanc preset");
    preset[at + 1..].to_string()
}

/// A gateway configuration for tests (all listeners on 127.0.0.1:0) with `TEST_USER` (roles
/// doctor and admin) as its only account and `TEST_ACCESS`; `extra` is appended.
pub fn config_yaml(certs: &Certs, upstream: &str, extra: &str) -> String {
    let auth = format!(
        "auth:\n  users:\n{}{TEST_ACCESS}",
        user_yaml(TEST_USER, "[doctor, admin]")
    );
    config_yaml_with_auth(certs, upstream, &auth, extra)
}

/// As [`config_yaml`], with the `auth:` section (and any `access:`) given whole.
pub fn config_yaml_with_auth(certs: &Certs, upstream: &str, auth: &str, extra: &str) -> String {
    format!(
        r#"
state_dir: "{state}"
{auth}
server_name: viewer.test
server_aliases: [localhost]
listen:
  https: "127.0.0.1:0"
  http: "127.0.0.1:0"
  admin: "127.0.0.1:0"
tls:
  cert_file: "{cert}"
  key_file: "{key}"
  reload_interval: 200ms
upstream:
  url: "{upstream}"
  connect_timeout: 1s
  response_timeout: 2s
{extra}
"#,
        cert = certs.cert.display(),
        key = certs.key.display(),
        state = certs.dir.path().join("state").display(),
    )
}
