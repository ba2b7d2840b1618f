//! Gateway configurations for tests: a typed value edited by YAML path (`limits.max_connections`)
//! and serialised to YAML, instead of text templates edited with `str::replace`.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::fixtures::{Certs, TEST_TOTP, TEST_USER, test_hash};
use super::gateway::{Gw, GwProcess};

/// A gateway configuration for tests. [`ConfigBuilder::new`] gives every listener on
/// 127.0.0.1:0, the test certificate, `TEST_USER` (roles doctor and admin) as the only account
/// and a shortened Orthanc access policy; the other methods change it key by key.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    doc: Value,
}

impl ConfigBuilder {
    pub fn new(certs: &Certs, upstream: &str) -> ConfigBuilder {
        let doc = json!({
            "state_dir": certs.dir.path().join("state"),
            "server_name": "viewer.test",
            "server_aliases": ["localhost"],
            "listen": {
                "https": "127.0.0.1:0",
                "http": "127.0.0.1:0",
                "admin": "127.0.0.1:0",
            },
            "tls": {
                "cert_file": certs.cert,
                "key_file": certs.key,
                "reload_interval": "200ms",
            },
            "upstream": {
                "url": upstream,
                "connect_timeout": "1s",
                "response_timeout": "2s",
            },
            "auth": { "users": [] },
            "access": test_access(),
        });
        ConfigBuilder { doc }.user(TEST_USER, &["doctor", "admin"])
    }

    /// Sets the value at a dotted YAML path (`limits.max_connections`), creating the sections
    /// on the way.
    pub fn set(mut self, path: &str, value: impl Serialize) -> ConfigBuilder {
        let value = serde_json::to_value(value).expect("a configuration value");
        let (parents, key) = split(path);
        section(&mut self.doc, &parents).insert(key.to_owned(), value);
        self
    }

    /// Removes the key at a dotted YAML path.
    pub fn unset(mut self, path: &str) -> ConfigBuilder {
        let (parents, key) = split(path);
        let removed = section(&mut self.doc, &parents).remove(key);
        assert!(removed.is_some(), "no {path} in the configuration");
        self
    }

    /// Gives the key at a dotted YAML path another name (a typo, for the parser to catch).
    pub fn rename(mut self, path: &str, new_key: &str) -> ConfigBuilder {
        let (parents, key) = split(path);
        let map = section(&mut self.doc, &parents);
        let value = map
            .remove(key)
            .unwrap_or_else(|| panic!("no {path} in the configuration"));
        map.insert(new_key.to_owned(), value);
        self
    }

    /// Replaces the accounts with these (name, roles), each with `TEST_PASSWORD` and `TEST_TOTP`.
    pub fn users(mut self, users: &[(&str, &[&str])]) -> ConfigBuilder {
        *self.users_mut() = Vec::new();
        for (name, roles) in users {
            self = self.user(name, roles);
        }
        self
    }

    /// Adds an account with `TEST_PASSWORD` and `TEST_TOTP`.
    pub fn user(mut self, name: &str, roles: &[&str]) -> ConfigBuilder {
        self.users_mut().push(json!({
            "username": name,
            "password_hash": test_hash(),
            "totp_secret": TEST_TOTP,
            "roles": roles,
        }));
        self
    }

    /// Sets `disabled: true` on an account.
    pub fn disable_user(mut self, name: &str) -> ConfigBuilder {
        let user = self
            .users_mut()
            .iter_mut()
            .find(|u| u["username"] == name)
            .unwrap_or_else(|| panic!("no account {name}"));
        user["disabled"] = Value::Bool(true);
        self
    }

    /// Removes an account.
    pub fn remove_user(mut self, name: &str) -> ConfigBuilder {
        let users = self.users_mut();
        let before = users.len();
        users.retain(|u| u["username"] != name);
        assert_ne!(users.len(), before, "no account {name}");
        self
    }

    /// Replaces the access policy with the `access:` section of a YAML text (a preset as an
    /// administrator copies it).
    pub fn access_yaml(self, text: &str) -> ConfigBuilder {
        let mut parsed: Value = serde_saphyr::from_str(text).expect("an access: section");
        let rules = parsed["access"].take();
        assert!(rules.is_array(), "no access: list in {text}");
        self.set("access", rules)
    }

    /// Starts the gateway in this process with this configuration.
    pub async fn start(&self) -> Gw {
        Gw::start(&self.build_yaml()).await
    }

    /// Starts the `vigie` binary with this configuration.
    pub async fn start_process(&self) -> GwProcess {
        GwProcess::start(&self.build_yaml()).await
    }

    /// The configuration as the gateway reads it.
    pub fn build_yaml(&self) -> String {
        serde_saphyr::to_string(&self.doc).expect("YAML")
    }

    fn users_mut(&mut self) -> &mut Vec<Value> {
        match section(&mut self.doc, &["auth"])
            .entry("users")
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(users) => users,
            other => panic!("auth.users is not a list: {other}"),
        }
    }
}

fn split(path: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let key = parts.pop().expect("a key");
    (parts, key)
}

/// The mapping at `path`, created (empty) where missing.
fn section<'a, S: AsRef<str>>(doc: &'a mut Value, path: &[S]) -> &'a mut Map<String, Value> {
    let mut at = doc;
    for name in path {
        at = at
            .as_object_mut()
            .expect("a mapping")
            .entry(name.as_ref())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    match at {
        Value::Object(map) => map,
        other => panic!("not a mapping: {other}"),
    }
}

/// The access policy of the default test configuration (Orthanc's preset, shortened).
fn test_access() -> Value {
    json!([
        { "path": "/tools/execute-script", "roles": [] },
        { "path": "/tools/", "roles": ["admin"] },
        { "path": "/", "methods": ["DELETE"], "roles": ["admin"] },
        { "path": "/", "roles": ["doctor", "admin"] },
    ])
}

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
