//! `vigie ca init` and `vigie ca issue` through the real binary, the chains checked by
//! `openssl verify` (issue 12: certificates for practices without a public name).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn vigie(args: &[&str], config: &Path) -> (i32, String, String) {
    let out = Command::new(vigie_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `yaml` in a temporary file, for `--config`.
fn written(yaml: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(yaml.as_bytes()).unwrap();
    file
}

/// `openssl verify` of the first certificate of `chain` against `ca` alone.
fn openssl_verify(ca: &Path, chain: &Path) -> (bool, String) {
    let text = std::fs::read_to_string(chain).unwrap();
    let end = "-----END CERTIFICATE-----";
    let leaf = &text[..text.find(end).unwrap() + end.len()];
    let dir = tempfile::tempdir().unwrap();
    let leaf_path = dir.path().join("leaf.pem");
    std::fs::write(&leaf_path, format!("{leaf}\n")).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile"])
        .arg(ca)
        .arg(&leaf_path)
        .output()
        .expect("openssl is needed (scripts/test.sh installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn a_practice_ca_issues_chains_that_openssl_verifies() {
    let certs = Certs::new();
    let state = tempfile::tempdir().unwrap();
    let yaml = ConfigBuilder::new(&certs, "http://127.0.0.1:8042")
        .set("state_dir", state.path().display().to_string())
        .build_yaml();
    let config = written(&yaml);

    let (code, out, err) = vigie(&["ca", "init", "--name", "Cabinet Dr Test"], config.path());
    assert_eq!(code, 0, "{out}{err}");
    let ca = state.path().join("ca/ca.crt");
    for want in [
        "SHA-256 fingerprint: ",
        "certutil -addstore",
        "add-trusted-cert",
        "Firefox",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    // Never replaced: every computer that trusts it would stop.
    let before = std::fs::read(&ca).unwrap();
    let (code, _, err) = vigie(&["ca", "init"], config.path());
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&ca).unwrap(), before);

    let (code, out, err) = vigie(
        &["ca", "issue", "pacs.cabinet.lan", "192.168.1.20"],
        config.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    let issued = state.path().join("ca/issued/pacs.cabinet.lan");
    let (ok, said) = openssl_verify(&ca, &issued.join("server.crt"));
    assert!(ok, "{said}");
    let loaded = vigie::tls::load(&issued.join("server.crt"), &issued.join("server.key")).unwrap();
    assert!(loaded.info.covers("pacs.cabinet.lan") && loaded.info.covers("192.168.1.20"));
    assert!(!loaded.info.covers("other.cabinet.lan"));
    let days = (loaded.info.not_after - unix_now() as i64) / 86_400;
    assert!((396..=397).contains(&days), "{days} days");

    // Another CA's certificate does not verify against this one: the check can fail.
    let other = Certs::new();
    let (ok, _) = openssl_verify(&ca, &other.cert);
    assert!(!ok, "a foreign chain verified");

    #[cfg(unix)]
    {
        assert_eq!(file_mode(&state.path().join("ca")), 0o700);
        assert_eq!(file_mode(&state.path().join("ca/ca.key")), 0o600);
        assert_eq!(file_mode(&issued.join("server.key")), 0o600);
    }

    // Longer than browsers accept: refused, nothing written.
    let (code, _, err) = vigie(&["ca", "issue", "x.lan", "--days", "398"], config.path());
    assert_eq!(code, 1);
    assert!(err.contains("397"), "{err}");
    assert!(!state.path().join("ca/issued/x.lan").exists());
    // Not a name: refused, nothing written outside the folder.
    let (code, _, err) = vigie(&["ca", "issue", "../../evil"], config.path());
    assert_eq!(code, 1);
    assert!(err.contains("not a host name"), "{err}");
}

#[test]
fn issuing_without_a_ca_says_how_to_make_one() {
    let certs = Certs::new();
    let state = tempfile::tempdir().unwrap();
    let yaml = ConfigBuilder::new(&certs, "http://127.0.0.1:8042")
        .set("state_dir", state.path().display().to_string())
        .build_yaml();
    let config = written(&yaml);
    let (code, _, err) = vigie(&["ca", "issue", "pacs.lan"], config.path());
    assert_eq!(code, 1);
    assert!(err.contains("vigie ca init"), "{err}");
}

#[tokio::test]
async fn the_plain_http_listener_offers_the_practice_ca() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let state = tempfile::tempdir().unwrap();
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .set("state_dir", state.path().display().to_string())
        .set("listen.http", "127.0.0.1:0")
        // No sign-in at each start: two starts on one state_dir within 30 s would replay the
        // test account's TOTP code.
        .remove_user(TEST_USER)
        .build_yaml();
    let config = written(&yaml);
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // No CA yet: the download is not there, everything goes to HTTPS.
    let gw = Gw::start(&yaml).await;
    let base = format!("http://{}", gw.http.unwrap());
    let res = plain.get(format!("{base}/_vigie/ca.crt")).send();
    let res = res.await.unwrap();
    assert_eq!(res.status(), 301);
    gw.shutdown().await;

    let (code, out, err) = vigie(&["ca", "init"], config.path());
    assert_eq!(code, 0, "{out}{err}");
    let fingerprint = out
        .lines()
        .find_map(|l| l.strip_prefix("SHA-256 fingerprint: "))
        .unwrap()
        .to_owned();
    let gw = Gw::start(&yaml).await;
    let base = format!("http://{}", gw.http.unwrap());
    let res = plain.get(format!("{base}/_vigie/ca.crt")).send();
    let res = res.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-x509-ca-cert");
    let served = res.bytes().await.unwrap();
    assert_eq!(
        served,
        std::fs::read(state.path().join("ca/ca.crt")).unwrap()
    );
    let page = plain.get(format!("{base}/_vigie/ca")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&fingerprint), "{html}");
    assert!(html.contains("href=\"/_vigie/ca.crt\""), "{html}");
    // Never the key; everything else still goes to HTTPS.
    for path in ["/_vigie/ca.key", "/ca/ca.key", "/"] {
        let res = plain.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 301, "{path}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_certificate_near_its_end_is_in_the_log() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    // A certificate with 10 days left, over the test one.
    let dir = tempfile::tempdir().unwrap();
    let ca =
        vigie::tls::ca::LocalCa::create(vigie::tls::ca::CaFiles::in_dir(dir.path()), "T").unwrap();
    let names = ["viewer.test", "localhost", "127.0.0.1", "::1"].map(String::from);
    let (chain, key) = ca.issue(&names, 10).unwrap();
    std::fs::write(&certs.cert, chain).unwrap();
    std::fs::write(&certs.key, key).unwrap();
    let mut gw = ConfigBuilder::new(&certs, &up.url())
        .remove_user(TEST_USER)
        .start_process()
        .await;
    let line = gw
        .wait_log(
            "the served certificate expires in",
            std::time::Duration::from_secs(10),
        )
        .await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "WARN", "{line}");
    assert!(matches!(v["days_left"].as_u64(), Some(9 | 10)), "{line}");
}

/// The TLS client of a doctor's computer that trusts the practice CA `ca` only: what the
/// certificate the gateway serves for `name` says, once verified.
async fn chain_trusted_by(
    addr: std::net::SocketAddr,
    ca: &Path,
    name: &str,
) -> Result<vigie::tls::CertInfo, String> {
    let pem = std::fs::read_to_string(ca).unwrap();
    let chain = verified_chain(addr, &pem, name, &[b"h2"]).await?;
    Ok(vigie::tls::describe(&chain).unwrap())
}

#[tokio::test]
async fn the_gateway_issues_and_renews_its_certificate_from_the_practice_ca() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let state = tempfile::tempdir().unwrap();
    let builder = ConfigBuilder::new(&certs, &up.url())
        .set("state_dir", state.path().display().to_string())
        .set("server_name", "pacs.cabinet.lan")
        .set("server_aliases", ["192.168.1.20"])
        .set(
            "tls",
            serde_json::json!({"local_ca": true, "reload_interval": "200ms"}),
        )
        .remove_user(TEST_USER);
    let yaml = builder.build_yaml();
    let config = written(&yaml);

    // No CA yet: the gateway refuses to start, and says how to make one.
    let out = Command::new(vigie_bin())
        .args(["serve", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vigie ca init"), "{err}");

    let (code, out, err) = vigie(&["ca", "init"], config.path());
    assert_eq!(code, 0, "{out}{err}");
    let ca = state.path().join("ca/ca.crt");
    let issued = state.path().join("ca/issued/pacs.cabinet.lan");

    // First start: a 90-day certificate for both names, trusted through the CA alone.
    let first = {
        let mut gw = GwProcess::start(&yaml).await;
        gw.wait_log("certificate obtained and served", Duration::from_secs(20))
            .await;
        let info = chain_trusted_by(gw.https, &ca, "pacs.cabinet.lan")
            .await
            .unwrap();
        assert!(info.covers("192.168.1.20"));
        let days = (info.not_after - unix_now() as i64) / 86_400;
        assert!((89..=90).contains(&days), "{days} days");
        // A computer that trusts another CA refuses it.
        let other = Certs::new();
        assert!(
            chain_trusted_by(gw.https, &other.ca, "pacs.cabinet.lan")
                .await
                .is_err()
        );
        let (ok, said) = openssl_verify(&ca, &issued.join("server.crt"));
        assert!(ok, "{said}");
        gw.signal("TERM");
        let _ = gw.child.wait().await;
        info
    };

    // A restart keeps it (nothing is due).
    {
        let gw = GwProcess::start(&yaml).await;
        let info = chain_trusted_by(gw.https, &ca, "pacs.cabinet.lan")
            .await
            .unwrap();
        assert_eq!(info.not_after, first.not_after);
        gw.signal("TERM");
        let mut gw = gw;
        let _ = gw.child.wait().await;
    }

    // A certificate with under a third of its life left (80 of 90 days gone) is renewed at
    // start, and the new one served.
    {
        use rcgen::{CertificateParams, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
        let ca_key =
            KeyPair::from_pem(&std::fs::read_to_string(state.path().join("ca/ca.key")).unwrap())
                .unwrap();
        let ca_pem = std::fs::read_to_string(&ca).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).unwrap();
        let mut params =
            CertificateParams::new(vec!["pacs.cabinet.lan".into(), "192.168.1.20".into()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(80);
        params.not_after = now + time::Duration::days(10);
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(issued.join("server.crt"), format!("{}{ca_pem}", cert.pem())).unwrap();
        std::fs::write(issued.join("server.key"), key.serialize_pem()).unwrap();
    }
    let mut gw = GwProcess::start(&yaml).await;
    gw.wait_log("certificate obtained and served", Duration::from_secs(20))
        .await;
    let info = chain_trusted_by(gw.https, &ca, "pacs.cabinet.lan")
        .await
        .unwrap();
    let days = (info.not_after - unix_now() as i64) / 86_400;
    assert!((89..=90).contains(&days), "renewed: {days} days");

    // `vigie check` says when the next renewal is.
    let out = Command::new(vigie_bin())
        .args(["check", "--offline", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Next renewal"), "{said}");

    // `vigie ca issue` does not overwrite the certificate the gateway renews itself.
    let before = std::fs::read(issued.join("server.crt")).unwrap();
    let (code, _, err) = vigie(&["ca", "issue", "pacs.cabinet.lan"], config.path());
    assert_eq!(code, 1);
    assert!(err.contains("renews itself"), "{err}");
    assert_eq!(std::fs::read(issued.join("server.crt")).unwrap(), before);
    #[cfg(unix)]
    {
        assert_eq!(file_mode(&state.path().join("ca/issued")), 0o700);
        assert_eq!(file_mode(&issued.join("renew.lock")), 0o600);
        assert_eq!(file_mode(&issued.join("server.key")), 0o600);
    }
}
