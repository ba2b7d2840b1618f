//! Certificates from a real ACME server (Debian's pebble, `support/pebble.rs`): the gateway
//! binary obtains its first certificate through tls-alpn-01 and through http-01, serves it
//! without a restart, renews short-lived ones, keeps serving the old one while the CA is down,
//! recovers from damaged state files, and keeps its account across restarts (issue 12).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::support::pebble::{Pebble, PebbleOptions};
use crate::support::*;

const NAME: &str = "viewer.clinic.test";

/// A gateway set up for ACME against `pebble`, listening where pebble validates.
struct AcmeSetup {
    https: u16,
    http: u16,
    _certs: Certs,
    _up: Upstream,
    pebble: Pebble,
    state: tempfile::TempDir,
    yaml: String,
}

impl AcmeSetup {
    async fn new(challenge: &str, validity_secs: u64) -> AcmeSetup {
        AcmeSetup::with_hook(challenge, validity_secs, None).await
    }

    /// [`AcmeSetup::new`], with alerts going to `webhook` when given.
    async fn with_hook(challenge: &str, validity_secs: u64, webhook: Option<String>) -> AcmeSetup {
        let (https, http) = (free_port(), free_port());
        let pebble = Pebble::start(PebbleOptions {
            http_port: http,
            tls_port: https,
            validity_secs,
        });
        let certs = Certs::new();
        let up = Upstream::start(None).await;
        let state = tempfile::tempdir().unwrap();
        let mut builder = ConfigBuilder::new(&certs, &up.url());
        if let Some(url) = webhook {
            builder = builder.set("alerts.webhook", serde_json::json!({ "url": url }));
        }
        let yaml = builder
            .set("state_dir", state.path().display().to_string())
            .set("server_name", NAME)
            .set("server_aliases", Vec::<String>::new())
            .set("listen.https", format!("127.0.0.1:{https}"))
            .set("listen.http", format!("127.0.0.1:{http}"))
            .set(
                "tls",
                serde_json::json!({
                    "reload_interval": "200ms",
                    "acme": {
                        "email": "it@clinic.test",
                        "accept_terms": true,
                        "directory": pebble.directory_url(),
                        "challenge": challenge,
                        "ca_file": pebble.listener_ca_file(),
                    },
                }),
            )
            .remove_user(TEST_USER)
            .user("dr.acme", &["doctor"])
            .build_yaml();
        AcmeSetup {
            https,
            http,
            _certs: certs,
            _up: up,
            pebble,
            state,
            yaml,
        }
    }

    fn https_port(&self) -> u16 {
        self.https
    }

    fn http_port(&self) -> u16 {
        self.http
    }

    fn dir(&self) -> PathBuf {
        let port = self
            .pebble
            .directory_url()
            .split(':')
            .nth(2)
            .and_then(|p| p.split('/').next())
            .unwrap()
            .to_string();
        self.state.path().join(format!("acme/127.0.0.1_{port}"))
    }
}

/// The chain the gateway at `addr` serves for [`NAME`], verified against `roots_pem`.
async fn served_chain(
    addr: SocketAddr,
    roots_pem: &str,
    alpn: &[&[u8]],
) -> Result<Vec<CertificateDer<'static>>, String> {
    verified_chain(addr, roots_pem, NAME, alpn).await
}

fn leaf_info(chain: &[CertificateDer<'static>]) -> vigie::tls::CertInfo {
    vigie::tls::describe(chain).unwrap()
}

async fn first_issuance(challenge: &str) {
    let setup = AcmeSetup::new(challenge, 0).await;
    let mut gw = GwProcess::start(&setup.yaml).await;
    gw.wait_log("certificate obtained and served", Duration::from_secs(60))
        .await;
    let chain = served_chain(gw.https, &setup.pebble.issuing_roots_pem(), &[b"h2"])
        .await
        .expect("the ACME chain verifies against pebble's root");
    let info = leaf_info(&chain);
    assert!(info.covers(NAME), "{:?}", info.dns_names);
    assert!(chain.len() >= 2, "leaf and intermediate");
    // The key is ECDSA P-256.
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(
        leaf.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.10045.2.1",
        "an EC key"
    );
    // Against another root, the same handshake fails: the check above can fail.
    let other = Certs::new();
    let foreign = std::fs::read_to_string(&other.ca).unwrap();
    assert!(served_chain(gw.https, &foreign, &[b"h2"]).await.is_err());
    let dir = setup.dir();
    for f in [
        "account.json",
        "server.key",
        "server.crt",
        "status.json",
        "renew.lock",
    ] {
        assert_eq!(file_mode(&dir.join(f)), 0o600, "{f}");
    }
    assert_eq!(file_mode(&dir), 0o700);
    assert_eq!(file_mode(dir.parent().unwrap()), 0o700, "state_dir/acme");
    // Nothing is left of the challenge once the order is over.
    let left = std::fs::read_dir(dir.join("challenges"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "challenge answers left behind");
    // An ordinary request is served (the sign-in page).
    let res = served_chain(gw.https, &setup.pebble.issuing_roots_pem(), &[b"http/1.1"]).await;
    assert!(res.is_ok());
}

#[tokio::test]
async fn first_certificate_through_tls_alpn_01() {
    first_issuance("tls-alpn-01").await;
}

#[tokio::test]
async fn first_certificate_through_http_01() {
    first_issuance("http-01").await;
}

#[tokio::test]
async fn a_client_asking_for_acme_tls_gets_nothing_outside_an_order() {
    let setup = AcmeSetup::new("tls-alpn-01", 0).await;
    let mut gw = GwProcess::start(&setup.yaml).await;
    gw.wait_log("certificate obtained and served", Duration::from_secs(60))
        .await;
    // acme-tls/1 alone: no challenge in flight, so no certificate at all (never the served
    // one on that protocol).
    let roots = setup.pebble.issuing_roots_pem();
    let err = served_chain(gw.https, &roots, &[b"acme-tls/1"])
        .await
        .unwrap_err();
    assert!(!err.is_empty());
    // Mixed with HTTP protocols: nothing either (no HTTP over a challenge certificate).
    assert!(
        served_chain(gw.https, &roots, &[b"h2", b"acme-tls/1"])
            .await
            .is_err()
    );
    // And the gateway still serves ordinary clients.
    served_chain(gw.https, &roots, &[b"h2"]).await.unwrap();
}

#[tokio::test]
async fn short_lived_certificates_are_renewed_and_the_ca_down_keeps_the_old_one() {
    // 30 s certificates: renewed with 10 s left.
    let mut hook = crate::alerts::Hook::start().await;
    let mut setup = AcmeSetup::with_hook("tls-alpn-01", 30, Some(hook.url())).await;
    let mut gw = GwProcess::start(&setup.yaml).await;
    gw.wait_log("certificate obtained and served", Duration::from_secs(60))
        .await;
    let roots = setup.pebble.issuing_roots_pem();
    let first = leaf_info(&served_chain(gw.https, &roots, &[b"h2"]).await.unwrap());
    let account = std::fs::read(setup.dir().join("account.json")).unwrap();

    gw.wait_log("certificate obtained and served", Duration::from_secs(40))
        .await;
    let second = leaf_info(&served_chain(gw.https, &roots, &[b"h2"]).await.unwrap());
    assert!(
        second.not_after > first.not_after,
        "renewed: {} then {}",
        first.not_after,
        second.not_after
    );
    assert_eq!(
        std::fs::read(setup.dir().join("account.json")).unwrap(),
        account,
        "the same account renews"
    );

    // The CA goes down before the next renewal: the attempt fails, the current certificate
    // stays in service.
    setup.pebble.stop();
    let line = gw
        .wait_log("certificate renewal failed", Duration::from_secs(40))
        .await;
    assert!(
        line.contains("the current certificate stays in service"),
        "{line}"
    );
    let still = leaf_info(&served_chain(gw.https, &roots, &[b"h2"]).await.unwrap());
    assert_eq!(
        still.not_after, second.not_after,
        "the old certificate is served"
    );
    // The status file is written just after the log line.
    let mut status = String::new();
    for _ in 0..40 {
        status = std::fs::read_to_string(setup.dir().join("status.json")).unwrap();
        if status.contains("\"failures\": 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(status.contains("\"failures\": 1"), "{status}");
    assert!(status.contains("creating the order"), "{status}");
    // Under 14 days left: the alert goes out at the first failure, with the error.
    let (_, alert) = hook.next().await;
    assert_eq!(alert["rule"], "certificate_renewal", "{alert}");
    assert!(alert.to_string().contains("creating the order"), "{alert}");

    // Back: a later retry succeeds (pebble forgot the account: a new one is registered).
    setup.pebble.restart();
    gw.wait_log("certificate obtained and served", Duration::from_secs(60))
        .await;
    let roots = setup.pebble.issuing_roots_pem();
    let third = leaf_info(&served_chain(gw.https, &roots, &[b"h2"]).await.unwrap());
    assert!(third.not_after > second.not_after);
}

#[tokio::test]
async fn the_account_is_kept_across_restarts_and_damaged_files_are_recovered() {
    let setup = AcmeSetup::new("http-01", 0).await;
    let dir = setup.dir();
    {
        let mut gw = GwProcess::start(&setup.yaml).await;
        gw.wait_log("ACME account created", Duration::from_secs(60))
            .await;
        gw.wait_log("certificate obtained and served", Duration::from_secs(60))
            .await;
        gw.signal("TERM");
        let _ = gw.child.wait().await;
    }
    let account = std::fs::read(dir.join("account.json")).unwrap();
    let cert = std::fs::read(dir.join("server.crt")).unwrap();

    // A restart serves the stored certificate without ordering.
    {
        let mut gw = GwProcess::start(&setup.yaml).await;
        let chain = served_chain(gw.https, &setup.pebble.issuing_roots_pem(), &[b"h2"])
            .await
            .unwrap();
        assert_eq!(
            chain[0].as_ref(),
            CertificateDer::pem_slice_iter(&cert)
                .next()
                .unwrap()
                .unwrap()
                .as_ref()
        );
        let check = std::process::Command::new(vigie_bin())
            .args(["check", "--offline", "--config"])
            .arg(gw.config.path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&check.stdout);
        assert!(said.contains("ACME account registered"), "{said}");
        assert!(said.contains("Next renewal"), "{said}");
        gw.signal("TERM");
        let _ = gw.child.wait().await;
    }

    // The certificate is damaged: a new one is ordered with the same account.
    std::fs::write(dir.join("server.crt"), "garbage").unwrap();
    {
        let mut gw = GwProcess::start(&setup.yaml).await;
        // (Its log line comes before "vigie listening", read by the start.)
        gw.wait_log("certificate obtained and served", Duration::from_secs(60))
            .await;
        assert!(
            std::fs::read_to_string(dir.join("server.crt"))
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(
            std::fs::read(dir.join("account.json")).unwrap(),
            account,
            "the account key is reused"
        );
        served_chain(gw.https, &setup.pebble.issuing_roots_pem(), &[b"h2"])
            .await
            .unwrap();
        gw.signal("TERM");
        let _ = gw.child.wait().await;
    }

    // The account file is damaged: kept aside (never deleted), a new account is created.
    std::fs::write(dir.join("account.json"), "{not json").unwrap();
    std::fs::remove_file(dir.join("server.crt")).unwrap();
    {
        let mut gw = GwProcess::start(&setup.yaml).await;
        gw.wait_log("the ACME account file is damaged", Duration::from_secs(30))
            .await;
        gw.wait_log("certificate obtained and served", Duration::from_secs(60))
            .await;
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
            .collect();
        assert_eq!(aside.len(), 1, "the damaged account file is kept aside");
        assert_eq!(std::fs::read(aside[0].path()).unwrap(), b"{not json");
    }
}

#[tokio::test]
async fn a_ca_down_at_first_start_means_not_ready_until_the_certificate_comes() {
    let mut setup = AcmeSetup::new("tls-alpn-01", 0).await;
    let admin = free_port();
    setup.yaml = setup
        .yaml
        .replace("admin: 127.0.0.1:0", &format!("admin: 127.0.0.1:{admin}"));
    assert!(
        setup.yaml.contains(&format!("127.0.0.1:{admin}")),
        "{}",
        setup.yaml
    );
    setup.pebble.stop();
    let mut gw = GwProcess::start(&setup.yaml).await;
    let ready = format!("http://127.0.0.1:{admin}/readyz");
    let res = reqwest::get(&ready).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.text().await.unwrap(), "no certificate yet\n");
    // No certificate: every handshake fails (nothing self-signed stands in).
    let err = served_chain(
        gw.https,
        &std::fs::read_to_string(&setup._certs.ca).unwrap(),
        &[b"h2"],
    )
    .await
    .unwrap_err();
    assert!(
        !err.contains("UnknownIssuer"),
        "no certificate at all was sent: {err}"
    );
    let line = gw
        .wait_log("certificate renewal failed", Duration::from_secs(20))
        .await;
    // The cause, not only hyper's "client error (Connect)".
    assert!(line.contains("Connection refused"), "{line}");
    assert!(line.contains("no certificate yet"), "{line}");
    // The status file is written just after the line.
    for _ in 0..40 {
        let status = std::fs::read_to_string(setup.dir().join("status.json")).unwrap_or_default();
        if status.contains("\"last_unreachable\": true") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let check = std::process::Command::new(vigie_bin())
        .args(["check", "--offline", "--config"])
        .arg(gw.config.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(said.contains("cannot reach the ACME CA"), "{said}");
    setup.pebble.restart();
    gw.wait_log("certificate obtained and served", Duration::from_secs(60))
        .await;
    served_chain(gw.https, &setup.pebble.issuing_roots_pem(), &[b"h2"])
        .await
        .unwrap();
    let res = reqwest::get(&ready).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn two_replicas_sharing_the_acme_folder_order_once() {
    let setup = AcmeSetup::new("tls-alpn-01", 0).await;
    let shared = tempfile::tempdir().unwrap();
    let with_shared = |yaml: &str| {
        yaml.replace(
            "    challenge: tls-alpn-01\n",
            &format!(
                "    challenge: tls-alpn-01\n    dir: {}\n",
                shared.path().display()
            ),
        )
    };
    let a_yaml = with_shared(&setup.yaml);
    assert!(a_yaml.contains("dir: "), "{a_yaml}");
    // The second replica: its own state_dir and ports (the CA checks the first one's port).
    let b_state = tempfile::tempdir().unwrap();
    let b_yaml = a_yaml
        .replace(
            &setup.state.path().display().to_string(),
            &b_state.path().display().to_string(),
        )
        .replace(
            &format!("https: 127.0.0.1:{}", setup.https_port()),
            "https: 127.0.0.1:0",
        )
        .replace(
            &format!("http: 127.0.0.1:{}", setup.http_port()),
            "http: 127.0.0.1:0",
        );
    assert_ne!(a_yaml, b_yaml);
    let (a, b) = tokio::join!(GwProcess::start(&a_yaml), GwProcess::start(&b_yaml));
    let roots = || setup.pebble.issuing_roots_pem();
    // One of them orders; the other picks up the files (its reload watch, every 200 ms).
    let mut chains = Vec::new();
    for gw in [&a, &b] {
        let mut got = None;
        for _ in 0..100 {
            if let Ok(c) = served_chain(gw.https, &roots(), &[b"h2"]).await {
                got = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        chains.push(got.expect("each replica serves the certificate"));
    }
    assert_eq!(chains[0][0], chains[1][0], "the same certificate");
    let orders = setup.pebble.log().matches("POST /order-plz").count();
    assert_eq!(orders, 1, "one order for both replicas");
    let accounts = setup.pebble.log().matches("POST /sign-me-up").count();
    assert_eq!(accounts, 1, "one account");
}
