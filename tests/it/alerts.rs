//! Breach alerts against real servers: an SMTP server (Python's aiosmtpd, started here) and a
//! webhook receiver (hyper, here), the real gateway, real wrong sign-ins. The alert arrives by
//! both channels, the same rule about the same account is held back within
//! `alerts.repeat_after` and the count held back is told in the next one, each alert sent is in
//! the trail; `vigie alert test` reports per channel, over STARTTLS with the test's own CA too.
//!
//! aiosmtpd lives in `target/py-venv` (`scripts/test.sh` installs it; or `VIGIE_TEST_PYTHON`
//! names a Python that has it). Without it these tests fail, saying how to install it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::support::*;

/// A Python with aiosmtpd.
fn python() -> PathBuf {
    let path = std::env::var_os("VIGIE_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py-venv/bin/python"),
        PathBuf::from,
    );
    let ok = Command::new(&path)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import aiosmtpd: run `python3 -m venv target/py-venv && target/py-venv/bin/pip install aiosmtpd` \
         (scripts/test.sh does), or set VIGIE_TEST_PYTHON to a Python that has it",
        path.display()
    );
    path
}

/// The SMTP server: a child process writing each message to `dir`.
struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    /// Plain SMTP, or STARTTLS required with this certificate and key.
    fn start(tls: Option<&Certs>) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/smtp_sink.py");
        let mut cmd = Command::new(python());
        cmd.arg(script).arg(dir.path());
        if let Some(c) = tls {
            cmd.arg(&c.cert).arg(&c.key);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the sink prints its port");
        Sink { child, port, dir }
    }

    /// The messages received so far, in order.
    fn messages(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
        });
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// Waits until `n` messages have arrived.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > deadline {
                assert!(
                    m.len() >= n,
                    "{} message(s) arrived, not {n}: {m:?}",
                    m.len()
                );
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The webhook receiver: every POST's headers and JSON body, on a channel.
pub(crate) struct Hook {
    pub(crate) addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<(http::HeaderMap, serde_json::Value)>,
}

impl Hook {
    pub(crate) async fn start() -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (head, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let json = serde_json::from_slice(&body).unwrap();
                            let _ = tx.send((head.headers, json));
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Hook { addr, rx }
    }

    pub(crate) async fn next(&mut self) -> (http::HeaderMap, serde_json::Value) {
        tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("no webhook call within 20 s")
            .unwrap()
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hooks/vigie", self.addr)
    }
}

fn with_channels(b: ConfigBuilder, sink: &Sink, hook: &Hook) -> ConfigBuilder {
    b.set(
        "alerts.email",
        serde_json::json!({
            "smtp": format!("127.0.0.1:{}", sink.port),
            "security": "none",
            "from": "vigie@cabinet.test",
            "to": ["dr.martin@cabinet.test", "secretariat@cabinet.test"],
        }),
    )
    .set(
        "alerts.webhook",
        serde_json::json!({
            "url": hook.url(),
            "header": "X-Vigie-Token",
            "secret": "hook-Secret-7f3e",
        }),
    )
}

async fn wrong_sign_in(certs: &Certs, gw: &Gw) {
    let r = sign_in(certs, gw.https, TEST_USER, "Not-The-Password-1", TEST_TOTP).await;
    assert!(r.is_err(), "a wrong password signed in");
}

#[tokio::test]
async fn three_wrong_sign_ins_reach_the_mailbox_and_the_webhook_once_per_period() {
    let certs = Certs::new();
    let upstream = Upstream::start(None).await;
    let sink = Sink::start(None);
    let mut hook = Hook::start().await;
    let cfg = with_channels(ConfigBuilder::new(&certs, &upstream.url()), &sink, &hook)
        .set("auth.failure_delay", "1ms")
        .set("auth.max_failures", 50)
        // One subject only (the account): the address and overall counts are tested as units.
        .set("alerts.failed_sign_ins.per_address", 0)
        .set("alerts.failed_sign_ins.overall", 0)
        .set("alerts.repeat_after", "4s");
    let gw = cfg.start().await;

    for _ in 0..3 {
        wrong_sign_in(&certs, &gw).await;
    }
    let mail = sink.wait_for(1).await;
    let m = &mail[0];
    assert!(
        m.contains(&format!(
            "3 connexions refusées pour le compte {TEST_USER} en 10 min"
        )),
        "{m}"
    );
    assert!(
        m.contains("To: dr.martin@cabinet.test, secretariat@cabinet.test"),
        "{m}"
    );
    assert!(m.contains("Règle: failed_sign_ins"), "{m}");
    assert!(
        !m.contains("Not-The-Password"),
        "the password reached the mail"
    );
    let (headers, json) = hook.next().await;
    assert_eq!(headers["x-vigie-token"], "hook-Secret-7f3e");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(json["rule"], "failed_sign_ins");
    assert_eq!(json["severity"], "high");
    assert_eq!(json["subject"], format!("account {TEST_USER}"));
    assert_eq!(json["suppressed"], 0);

    // Three more within the period: held back, neither mailed nor posted.
    let first = Instant::now();
    for _ in 0..3 {
        wrong_sign_in(&certs, &gw).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.messages().len(), 1, "a second mail within the period");
    assert!(
        hook.rx.try_recv().is_err(),
        "a second webhook call within the period"
    );

    // After the period, the next failure is told with the three held back.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(first.elapsed())).await;
    wrong_sign_in(&certs, &gw).await;
    let mail = sink.wait_for(2).await;
    assert!(mail[1].contains("7 connexions refusées"), "{}", mail[1]);
    assert!(
        mail[1].contains("Alertes semblables retenues depuis la précédente : 3"),
        "{}",
        mail[1]
    );
    let (_, json) = hook.next().await;
    assert_eq!(json["suppressed"], 3);

    // Both alerts are in the trail, each with its channels' outcome.
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.shutdown().await;
    let raised = trail_records(&certs.dir.path().join("state/audit"), "alert_raised");
    assert_eq!(raised.len(), 2, "{raised:?}");
    assert_eq!(raised[0]["rule"], "failed_sign_ins");
    assert_eq!(
        raised[0]["channels"],
        serde_json::json!(["email: sent", "webhook: sent"])
    );
    assert_eq!(raised[0]["suppressed"], 0);
    assert_eq!(raised[1]["suppressed"], 3);
    assert!(
        raised[0]["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("3 failed sign-ins for account {TEST_USER}")),
        "{raised:?}"
    );
}

/// Runs `vigie alert test` (without blocking the runtime that serves the webhook receiver).
async fn alert_test(config: &Path) -> std::process::Output {
    tokio::process::Command::new(vigie_bin())
        .args(["alert", "test", "--config"])
        .arg(config)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn alert_test_reports_each_channel_and_fails_when_the_mail_server_is_down() {
    let certs = Certs::new();
    let mut sink = Sink::start(None);
    let mut hook = Hook::start().await;
    let config = certs.dir.path().join("vigie.yaml");
    let yaml = with_channels(
        ConfigBuilder::new(&certs, "http://127.0.0.1:9"),
        &sink,
        &hook,
    )
    .set("alerts.lang", "en")
    .build_yaml();
    std::fs::write(&config, yaml).unwrap();

    let out = alert_test(&config).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "email (127.0.0.1:{} → dr.martin@cabinet.test",
            sink.port
        )),
        "{stdout}"
    );
    assert!(stdout.contains("): sent"), "{stdout}");
    assert!(
        stdout.contains(&format!("webhook (http://{}): sent", hook.addr)),
        "{stdout}"
    );
    let mail = sink.wait_for(1).await;
    assert!(
        mail[0].contains("test alert (vigie alert test)"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("Nothing to do"), "{}", mail[0]);
    let (_, json) = hook.next().await;
    assert_eq!(json["rule"], "test");

    sink.stop();
    let out = alert_test(&config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("failed: "), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(
        stdout.contains("webhook"),
        "the webhook still went: {stdout}"
    );
}

#[tokio::test]
async fn alert_test_over_starttls_trusts_the_configured_authority_only() {
    let certs = Certs::new();
    let sink = Sink::start(Some(&certs));
    let config = certs.dir.path().join("vigie.yaml");
    let email = |ca: Option<&Path>| {
        let mut e = serde_json::json!({
            "smtp": format!("127.0.0.1:{}", sink.port),
            "security": "starttls",
            "from": "vigie@cabinet.test",
            "to": ["dr.martin@cabinet.test"],
        });
        if let Some(ca) = ca {
            e["ca_file"] = serde_json::json!(ca);
        }
        ConfigBuilder::new(&certs, "http://127.0.0.1:9")
            .set("alerts.email", e)
            .build_yaml()
    };
    std::fs::write(&config, email(Some(&certs.ca))).unwrap();
    let out = alert_test(&config).await;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sink.wait_for(1).await.len(), 1);

    // Without the CA, the server's certificate is not trusted: nothing is sent.
    std::fs::write(&config, email(None)).unwrap();
    let out = alert_test(&config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("email (127.0.0.1"), "{stderr}");
    assert_eq!(sink.messages().len(), 1);
}
