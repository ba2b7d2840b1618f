//! The test OpenID provider (`tests/idp/server.mjs`, npm `oidc-provider`) as a child process:
//! one per test, on a free loopback port, with its settings as environment, killed on drop; its
//! admin API (keys, settings, sessions, the one-shot token tamper); the gateway's `auth.oidc`
//! entry that matches it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

/// Which provider the process stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Pro Santé Connect: wallet discovery path, `acr`, JWT userinfo, RPPS claims.
    Psc,
    /// A practice's own Keycloak/authentik: standard discovery, JSON userinfo, `groups`.
    Generic,
}

/// How to start the provider. [`IdpOptions::psc`] and [`IdpOptions::generic`] register the
/// gateway's callback and signed-out URIs for provider `name` on `viewer.test:gw_port`.
#[derive(Clone, Debug)]
pub struct IdpOptions {
    pub profile: Profile,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// `ACR` (`eidas1`, `eidas0`, `none`); the profile's default when `None`.
    pub acr: Option<String>,
    pub id_token_ttl: Option<u32>,
    pub default_user: Option<String>,
    /// Any other variable of `tests/idp/README.md`.
    pub env: Vec<(String, String)>,
    /// Serve HTTPS with the test certificate (and trust its authority here).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)>,
}

impl IdpOptions {
    pub fn psc(gw_port: u16, name: &str) -> IdpOptions {
        IdpOptions::new(
            Profile::Psc,
            gw_port,
            name,
            "vigie-psc",
            "psc-secret-for-tests",
        )
    }

    pub fn generic(gw_port: u16, name: &str) -> IdpOptions {
        IdpOptions::new(
            Profile::Generic,
            gw_port,
            name,
            "vigie-clinic",
            "clinic-secret-for-tests",
        )
    }

    fn new(profile: Profile, gw_port: u16, name: &str, id: &str, secret: &str) -> IdpOptions {
        let base = format!("https://viewer.test:{gw_port}/_vigie/oidc/{name}");
        IdpOptions {
            profile,
            client_id: id.to_owned(),
            client_secret: secret.to_owned(),
            redirect_uris: vec![format!("{base}/callback")],
            post_logout_redirect_uris: vec![format!("{base}/signed-out")],
            acr: None,
            id_token_ttl: None,
            default_user: None,
            env: Vec::new(),
            tls: None,
        }
    }

    pub fn acr(mut self, acr: &str) -> IdpOptions {
        self.acr = Some(acr.to_owned());
        self
    }

    pub fn default_user(mut self, user: &str) -> IdpOptions {
        self.default_user = Some(user.to_owned());
        self
    }

    pub fn id_token_ttl(mut self, secs: u32) -> IdpOptions {
        self.id_token_ttl = Some(secs);
        self
    }

    /// HTTPS with `certs`' server certificate (it covers 127.0.0.1), as a provider behind a
    /// private authority.
    pub fn https(mut self, certs: &super::fixtures::Certs) -> IdpOptions {
        self.tls = Some((certs.cert.clone(), certs.key.clone(), certs.ca.clone()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> IdpOptions {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A running test provider.
pub struct Idp {
    pub opts: IdpOptions,
    pub addr: SocketAddr,
    /// The issuer, e.g. `http://127.0.0.1:PORT/auth/realms/esante-wallet`.
    pub issuer: String,
    /// The discovery document the gateway should read (the wallet one for PSC).
    pub discovery_url: String,
    child: Option<tokio::process::Child>,
    /// RUN_DIR (keys, pid) and the process's log.
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// A free port on 127.0.0.1 (bound, read, released), for a server that must be configured with
/// its port before it starts.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

impl Idp {
    /// Starts the provider and waits for its discovery document.
    pub async fn start(opts: IdpOptions) -> Idp {
        let installed = idp_dir().join("node_modules/oidc-provider/package.json");
        assert!(
            installed.is_file(),
            "tests/idp/node_modules is missing: run scripts/test.sh, which installs the test \
             OpenID provider's packages (or: cd tests/idp && npm ci)"
        );
        let realm = match opts.profile {
            Profile::Psc => "/auth/realms/esante-wallet",
            Profile::Generic => "/realms/clinic",
        };
        let mut idp = Idp {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: String::new(),
            discovery_url: String::new(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
            http: {
                let mut b = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(10));
                if let Some((_, _, ca)) = &opts.tls {
                    let pem = std::fs::read(ca).unwrap();
                    b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
                }
                b.build().unwrap()
            },
            opts,
        };
        // Another process may take the port between its release and node's bind: try again.
        // Never the gateway's own port: it was picked the same way and is not bound yet.
        let gw_port = idp
            .opts
            .redirect_uris
            .first()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.port());
        for _ in 0..3 {
            let port = loop {
                let p = free_port();
                if Some(p) != gw_port {
                    break p;
                }
            };
            idp.addr = SocketAddr::from(([127, 0, 0, 1], port));
            idp.issuer = format!("{}{realm}", idp.url(""));
            let well_known = match idp.opts.profile {
                Profile::Psc => "wallet-openid-configuration",
                Profile::Generic => "openid-configuration",
            };
            idp.discovery_url = format!("{}/.well-known/{well_known}", idp.issuer);
            if idp.spawn().await {
                return idp;
            }
        }
        panic!("the test OpenID provider did not start:\n{}", idp.log());
    }

    /// Starts the process on `self.addr`; true once discovery answers.
    async fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("idp.log"))
            .unwrap();
        let o = &self.opts;
        let profile = match o.profile {
            Profile::Psc => "psc",
            Profile::Generic => "generic",
        };
        let mut cmd = tokio::process::Command::new(
            std::env::var("VIGIE_TEST_NODE").unwrap_or_else(|_| "node".into()),
        );
        // Only the settings given here: nothing from the test's own environment leaks in.
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PROFILE", profile)
            .env("HOST", "127.0.0.1")
            .env("PORT", self.addr.port().to_string())
            .env("RUN_DIR", self.dir.path())
            .env("CLIENT_ID", &o.client_id)
            .env("CLIENT_SECRET", &o.client_secret)
            .env("REDIRECT_URIS", o.redirect_uris.join(" "))
            .env(
                "POST_LOGOUT_REDIRECT_URIS",
                o.post_logout_redirect_uris.join(" "),
            )
            // A client that leaves PKCE out fails every test.
            .env("PKCE_REQUIRED", "1");
        if let Some(acr) = &o.acr {
            cmd.env("ACR", acr);
        }
        if let Some(ttl) = o.id_token_ttl {
            cmd.env("ID_TOKEN_TTL", ttl.to_string());
        }
        if let Some(user) = &o.default_user {
            cmd.env("DEFAULT_USER", user);
        }
        if let Some((cert, key, _)) = &o.tls {
            cmd.env("TLS_CERT_FILE", cert)
                .env("TLS_KEY_FILE", key)
                .env("PUBLIC_URL", format!("https://{}", self.addr));
        }
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg("server.mjs")
            .current_dir(idp_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("cannot run node (needed by the OpenID tests; VIGIE_TEST_NODE names another)");
        // Half a second on an idle machine. Node has been seen, rarely, to stall before it
        // listens (only its start-up warning in the log): after 20 s it is stopped, and
        // `start` tries again on another port.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(res) = self.http.get(&self.discovery_url).send().await
                && res.status() == 200
            {
                self.child = Some(child);
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                eprintln!(
                    "the test OpenID provider did not answer at {} within 20 s; starting it again:\n{}",
                    self.discovery_url,
                    self.log()
                );
                let _ = child.kill().await;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process (the provider is down until [`Idp::restart`]).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port with the same keys (in-memory sessions are gone).
    pub async fn restart(&mut self) {
        self.stop().await;
        // On the same port (the gateway knows it); a stalled start is tried again.
        for _ in 0..3 {
            if self.spawn().await {
                return;
            }
        }
        panic!("restart failed:\n{}", self.log());
    }

    /// What the process printed so far (its request log, errors, tampering).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("idp.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.opts.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// POSTs JSON to an admin route; panics unless it answers 200.
    pub async fn admin(&self, route: &str, body: Value) -> Value {
        let res = self
            .http
            .post(self.url(route))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 200, "{route}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn status(&self) -> Value {
        let res = self.http.get(self.url("/admin/status")).send().await;
        res.unwrap().json().await.unwrap()
    }

    /// A new key signs from now on; the old ones stay published. Returns the new `kid`.
    pub async fn rotate_keys(&self) -> String {
        let keys = self.admin("/admin/keys/rotate", json!({})).await;
        keys["current"].as_str().unwrap().to_owned()
    }

    /// Only the current key stays published.
    pub async fn retire_keys(&self) -> Value {
        self.admin("/admin/keys/retire", json!({})).await
    }

    /// Changes settings at run time (`acr`, `login_mode`, `default_user`, `clear_sessions`).
    pub async fn config(&self, settings: Value) -> Value {
        self.admin("/admin/config", settings).await
    }

    /// Changes the next token answer's ID token (see tests/idp/README.md for the fields).
    pub async fn tamper(&self, change: Value) -> Value {
        self.admin("/admin/tamper", change).await
    }

    /// Forgets every provider session: the next authorization logs in again.
    pub async fn clear_sessions(&self) -> Value {
        self.admin("/admin/sessions/clear", json!({})).await
    }

    /// The kids the JWKS publishes now.
    pub async fn published_kids(&self) -> Vec<String> {
        let status = self.status().await;
        status["keys"]["published"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    }

    /// The gateway's `auth.oidc` entry for this provider under `name`: issuer, client, and the
    /// role rule of its profile (PSC: profession code 10 → doctor; generic: group radiology →
    /// doctor).
    pub fn gateway_entry(&self, name: &str) -> Value {
        let mut entry = json!({
            "name": name,
            "issuer": self.issuer,
            "client_id": self.opts.client_id,
            "client_secret": self.opts.client_secret,
        });
        let more = match self.opts.profile {
            Profile::Psc => json!({
                "provider": "pro-sante-connect",
                "environment": "sandbox",
                "roles": [{
                    "claim": "SubjectRefPro.exercices[].codeProfession",
                    "values": ["10"],
                    "roles": ["doctor"],
                }],
            }),
            Profile::Generic => json!({
                "provider": "generic",
                "label": "Clinic sign-in",
                "roles": [{ "claim": "groups", "values": ["radiology"], "roles": ["doctor"] }],
            }),
        };
        entry
            .as_object_mut()
            .unwrap()
            .extend(more.as_object().unwrap().clone());
        entry
    }
}
