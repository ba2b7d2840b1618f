//! The gateway under test: in this process (`Gw`) or as the `vigie` binary (`GwProcess`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::client::{session_client, sign_in};
use super::fixtures::{Certs, TEST_PASSWORD, TEST_TOTP, TEST_USER, vigie_bin};

/// The gateway running in this process.
pub struct Gw {
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// `Cookie` header value of `TEST_USER`'s session (empty when the configuration has no
    /// such user).
    pub cookie: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Gw {
    pub async fn start(yaml: &str) -> Gw {
        let (config, _) = vigie::config::Config::from_yaml(yaml).unwrap();
        let gw = vigie::Gateway::bind(config).await.unwrap();
        let (https, http, admin) = (gw.https_addr(), gw.http_addr(), gw.admin_addr());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(gw.serve(async move {
            let _ = rx.await;
        }));
        let mut gw = Gw {
            https,
            http,
            admin,
            cookie: String::new(),
            stop: Some(tx),
            task,
        };
        if yaml.contains(&format!("username: {TEST_USER}\n")) {
            gw.cookie = sign_in(&certs_for(yaml), https, TEST_USER, TEST_PASSWORD, TEST_TOTP)
                .await
                .expect("test user cannot sign in");
        }
        gw
    }

    /// A client for `TEST_USER`'s session.
    pub fn client(&self, certs: &Certs, h2: bool) -> reqwest::Client {
        session_client(certs, self.https, h2, &self.cookie)
    }

    /// Asks for a graceful shutdown and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://viewer.test:{}{path}", self.https.port())
    }

    /// The admin listener's Prometheus exposition.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.admin.unwrap());
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }
}

/// The CA file a configuration's certificate comes from (its folder's `ca.crt`), for helpers
/// that only see the YAML.
fn certs_for(yaml: &str) -> Certs {
    let cert = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("cert_file: "))
        .unwrap()
        .trim_matches('"');
    let dir = Path::new(cert).parent().unwrap();
    Certs {
        dir: tempfile::tempdir().unwrap(),
        ca: dir.join("ca.crt"),
        cert: PathBuf::from(cert),
        key: dir.join("server.key"),
    }
}

/// The gateway as a separate process (for signals and memory measurements).
pub struct GwProcess {
    pub child: tokio::process::Child,
    pub https: SocketAddr,
    /// `Cookie` header value of `TEST_USER`'s session.
    pub cookie: String,
    pub lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub config: tempfile::NamedTempFile,
}

impl GwProcess {
    pub async fn start(yaml: &str) -> GwProcess {
        use std::io::Write;
        use tokio::io::AsyncBufReadExt;
        let mut config = tempfile::NamedTempFile::new().unwrap();
        config.write_all(yaml.as_bytes()).unwrap();
        let mut child = tokio::process::Command::new(vigie_bin())
            .args(["serve", "--log-format", "json", "--config"])
            .arg(config.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // What the gateway says on stderr (configuration problems, a port already taken),
        // for the panic message when it does not start.
        let stderr_text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let stderr = child.stderr.take().unwrap();
            let text = stderr_text.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let mut t = text.lock().unwrap();
                    t.push_str(&l);
                    t.push('\n');
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let https = loop {
            let line = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("gateway did not start");
            let Some(line) = line else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "gateway exited before listening; its stderr:\n{}",
                    stderr_text.lock().unwrap()
                );
            };
            if line.contains("vigie listening") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                break v["https"].as_str().unwrap().parse().unwrap();
            }
        };
        let cookie = if yaml.contains(&format!("username: {TEST_USER}\n")) {
            sign_in(&certs_for(yaml), https, TEST_USER, TEST_PASSWORD, TEST_TOTP)
                .await
                .expect("test user cannot sign in")
        } else {
            String::new()
        };
        GwProcess {
            child,
            https,
            cookie,
            lines: rx,
            config,
        }
    }

    /// A client for `TEST_USER`'s session.
    pub fn client(&self, certs: &Certs, h2: bool) -> reqwest::Client {
        session_client(certs, self.https, h2, &self.cookie)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Runs `vigie rotate-keys` (with `extra` arguments) on the gateway's configuration, sends
    /// SIGHUP and waits until the gateway has reloaded.
    pub async fn rotate_keys(&mut self, extra: &[&str]) {
        let out = std::process::Command::new(vigie_bin())
            .arg("rotate-keys")
            .args(extra)
            .arg("--config")
            .arg(self.config.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.signal("HUP");
        self.wait_log("accounts reloaded", Duration::from_secs(5))
            .await;
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_log(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        // The lines passed over, shown when the one awaited does not come.
        let mut seen: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        loop {
            let shown = |seen: &std::collections::VecDeque<String>| {
                seen.iter().cloned().collect::<Vec<_>>().join("\n")
            };
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no log line with {needle:?}; the last ones:\n{}",
                        shown(&seen)
                    )
                })
                .unwrap_or_else(|| {
                    panic!(
                        "gateway exited before logging {needle:?}; the last lines:\n{}",
                        shown(&seen)
                    )
                });
            if line.contains(needle) {
                return line;
            }
            if seen.len() == 20 {
                seen.pop_front();
            }
            seen.push_back(line);
        }
    }
}
