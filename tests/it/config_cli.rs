//! Every configuration error path, through the real binary: one clear message per problem, with
//! its YAML path and a hint, a non-zero exit, and nothing started.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn vigie(args: &[&str], config: Option<&str>) -> Run {
    vigie_with_env(args, config, &[])
}

fn vigie_with_env(args: &[&str], config: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(vigie_bin());
    cmd.args(args).envs(env.iter().copied());
    if let Some(yaml) = config {
        file.write_all(yaml.as_bytes()).unwrap();
        cmd.arg("--config").arg(file.path());
    }
    let out: Output = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The test configuration, for an upstream the caller chose (a listening socket unless the test
/// is about another).
fn config(certs: &Certs, upstream: &str) -> ConfigBuilder {
    ConfigBuilder::new(certs, upstream)
}

fn listening() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

#[track_caller]
fn assert_problem(run: &Run, path: &str, words: &[&str]) {
    assert_eq!(run.code, 1, "exit code; stderr:\n{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("error: {path}: ")))
        .unwrap_or_else(|| panic!("no error for {path} in:\n{}", run.stderr));
    // The problem and its hint line.
    let line = lines[at..(at + 2).min(lines.len())].join("\n");
    for w in words {
        assert!(
            line.contains(w),
            "`{line}` lacks {w:?}; stderr:\n{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("hint: "), "no hint:\n{}", run.stderr);
}

#[test]
fn a_good_configuration_checks_clean() {
    let certs = Certs::new();
    let (_l, url) = listening();
    let run = vigie(&["check"], Some(&config(&certs, &url).build_yaml()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("OK"));
}

#[test]
fn the_shipped_example_parses() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "s3cret\n").unwrap();
    for file in ["config/vigie.example.yaml", "config/orthanc.example.yaml"] {
        // The Docker secret the Orthanc example names does not exist here.
        let text = std::fs::read_to_string(file).unwrap().replace(
            "/run/secrets/orthanc_password",
            &secret.path().display().to_string(),
        );
        let (config, warnings) = vigie::config::Config::from_yaml(&text).unwrap();
        // Examples ship without accounts (no default secrets): that warning, and no other.
        let paths: Vec<_> = warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(paths, ["auth.users"], "{file}: {warnings:?}");
        assert_eq!(config.server_name, "viewer.example.org");
    }
    let dev = std::fs::read_to_string("config/dev.yaml").unwrap();
    vigie::config::Config::from_yaml(&dev).unwrap();
}

#[test]
fn missing_and_empty_files() {
    let run = vigie(&["check", "--config", "/nonexistent/vigie.yaml"], None);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot read /nonexistent/vigie.yaml"),
        "{}",
        run.stderr
    );
    assert_problem(&vigie(&["check"], Some("")), ".", &["empty"]);
}

#[test]
fn syntax_and_type_errors_point_at_the_line() {
    let run = vigie(&["check"], Some("server_name: [viewer\nlisten: {"));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("line "), "{}", run.stderr);
    let certs = Certs::new();
    let (_l, url) = listening();
    let bad_type = config(&certs, &url)
        .set("limits.max_connections", "lots")
        .build_yaml();
    assert_problem(
        &vigie(&["check"], Some(&bad_type)),
        "limits.max_connections",
        &[],
    );
}

#[test]
fn unknown_keys_are_errors() {
    let certs = Certs::new();
    let (_l, url) = listening();
    let typo = config(&certs, &url)
        .rename("tls.key_file", "key_flie")
        .build_yaml();
    assert_problem(
        &vigie(&["check"], Some(&typo)),
        "tls.key_flie",
        &["unknown field"],
    );
    let top = config(&certs, &url)
        .set("upstream_url", "http://x")
        .build_yaml();
    assert_problem(
        &vigie(&["check"], Some(&top)),
        "upstream_url",
        &["unknown field"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let certs = Certs::new();
    let text = format!(
        r#"
server_name: "https://viewer.example.org/"
listen:
  https: "8443"
  http: "0.0.0.0:99999"
tls:
  cert_file: "{}"
  min_version: "1.1"
upstream:
  url: "ftp://orthanc"
  connect_timeout: "5"
limits:
  max_request_body: "a lot"
log:
  format: xml
"#,
        certs.cert.display()
    );
    let run = vigie(&["check"], Some(&text));
    assert_eq!(run.code, 1);
    for path in [
        "server_name",
        "listen.https",
        "listen.http",
        "tls.key_file",
        "tls.min_version",
        "upstream.url",
        "upstream.connect_timeout",
        "limits.max_request_body",
        "log.format",
    ] {
        assert!(
            run.stderr.contains(&format!("error: {path}: ")),
            "{path} missing:\n{}",
            run.stderr
        );
    }
}

#[test]
fn contradictions_are_errors() {
    let certs = Certs::new();
    let (_l, url) = listening();
    let same_port = config(&certs, &url)
        .set("listen.http", "127.0.0.1:8443")
        .set("listen.public_https_port", 443)
        .set("listen.https", "0.0.0.0:8443")
        .build_yaml();
    assert_problem(
        &vigie(&["check", "--offline"], Some(&same_port)),
        "listen.http",
        &["collides"],
    );
    let loops = config(&certs, "http://127.0.0.1:8443")
        .set("listen.https", "127.0.0.1:8443")
        .build_yaml();
    assert_problem(
        &vigie(&["check", "--offline"], Some(&loops)),
        "upstream.url",
        &["gateway's own"],
    );
    let creds = config(&certs, "http://orthanc:SECRETPW@127.0.0.1:8042").build_yaml();
    let run = vigie(&["check", "--offline"], Some(&creds));
    assert_problem(&run, "upstream.url", &["credentials"]);
    assert!(
        !run.stderr.contains("SECRETPW"),
        "password echoed:\n{}",
        run.stderr
    );
}

#[test]
fn certificate_problems_name_the_file_and_the_fix() {
    let certs = Certs::new();
    let (_l, url) = listening();
    let base = config(&certs, &url);
    let with = |key: &str, file: &str| base.clone().set(key, file).build_yaml();

    let missing = with("tls.cert_file", "/nonexistent/server.crt");
    assert_problem(
        &vigie(&["check"], Some(&missing)),
        "tls.cert_file",
        &["cannot read", "/nonexistent/server.crt"],
    );
    let missing_key = with("tls.key_file", "/nonexistent/server.key");
    assert_problem(
        &vigie(&["check"], Some(&missing_key)),
        "tls.key_file",
        &["cannot read"],
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let not_pem = with("tls.cert_file", &garbage.display().to_string());
    assert_problem(
        &vigie(&["check"], Some(&not_pem)),
        "tls.cert_file",
        &["BEGIN CERTIFICATE"],
    );
    let not_key = with("tls.key_file", &garbage.display().to_string());
    assert_problem(
        &vigie(&["check"], Some(&not_key)),
        "tls.key_file",
        &["PRIVATE KEY"],
    );

    let other = Certs::new();
    let mismatch = with("tls.key_file", &other.key.display().to_string());
    assert_problem(
        &vigie(&["check"], Some(&mismatch)),
        "tls.key_file",
        &["does not belong"],
    );

    let wrong_name = with("server_name", "pacs.example.org");
    assert_problem(
        &vigie(&["check"], Some(&wrong_name)),
        "server_name",
        &["does not cover `pacs.example.org`", "viewer.test"],
    );

    let (expired_cert, expired_key) = expired_pair(dir.path());
    let expired = base
        .clone()
        .set("tls.cert_file", expired_cert)
        .set("tls.key_file", expired_key)
        .build_yaml();
    assert_problem(
        &vigie(&["check"], Some(&expired)),
        "tls.cert_file",
        &["expired", "days ago"],
    );
    let run = vigie(&["serve"], Some(&expired));
    assert_problem(&run, "tls.cert_file", &["expired"]);
}

fn expired_pair(dir: &Path) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["viewer.test".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(400);
    params.not_after = now - time::Duration::days(35);
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join("expired.crt"), dir.join("expired.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c.display().to_string(), k.display().to_string())
}

#[test]
fn unreachable_upstream() {
    let certs = Certs::new();
    let text = config(&certs, &closed_port_url()).build_yaml();
    assert_problem(
        &vigie(&["check"], Some(&text)),
        "upstream.url",
        &["cannot connect"],
    );
    assert_eq!(vigie(&["check", "--offline"], Some(&text)).code, 0);
    let run = vigie(&["serve"], Some(&text));
    assert_problem(&run, "upstream.url", &["cannot connect"]);
    assert!(!run.stdout.contains("vigie listening"), "started anyway");
}

#[test]
fn a_totp_secret_can_come_from_the_environment() {
    let certs = Certs::new();
    let (_l, url) = listening();
    let text = config(&certs, &url)
        .set(
            "auth.users",
            serde_json::json!([{
                "username": TEST_USER,
                "password_hash": test_hash(),
                "totp_secret_env": "VIGIE_TEST_TOTP",
                "roles": ["doctor"],
            }]),
        )
        .build_yaml();
    let run = vigie_with_env(&["check"], Some(&text), &[("VIGIE_TEST_TOTP", TEST_TOTP)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = vigie_with_env(
        &["check"],
        Some(&text),
        &[("VIGIE_TEST_TOTP", "not base32!")],
    );
    assert_problem(
        &run,
        &format!("auth.users[0]({TEST_USER}).totp_secret_env"),
        &["base32"],
    );
    assert_problem(
        &vigie(&["check"], Some(&text)),
        &format!("auth.users[0]({TEST_USER}).totp_secret_env"),
        &["VIGIE_TEST_TOTP", "is not set"],
    );
}

#[test]
fn warnings_alone_exit_3() {
    let certs = Certs::new();
    let (_l, url) = listening();
    let text = config(&certs, &url)
        .set("listen.admin", "0.0.0.0:0")
        .build_yaml();
    let run = vigie(&["check"], Some(&text));
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("warning: listen.admin: "),
        "{}",
        run.stderr
    );
}

#[test]
fn a_busy_port_stops_the_start_with_nothing_half_started() {
    let certs = Certs::new();
    let (_l, url) = listening();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let free_addr = free.local_addr().unwrap();
    drop(free);
    let text = config(&certs, &url)
        .set("listen.https", free_addr.to_string())
        .set("listen.admin", busy.local_addr().unwrap().to_string())
        .build_yaml();
    let run = vigie(&["serve"], Some(&text));
    assert_problem(&run, "listen.admin", &["cannot listen", "another program"]);
    assert!(!run.stdout.contains("vigie listening"));
    // The HTTPS port it could have bound is free again: nothing kept running.
    TcpListener::bind(free_addr).expect("https port still held");
}

#[test]
fn dev_cert_creates_a_usable_pair() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let run = vigie(
        &[
            "dev-cert",
            "--out",
            out.to_str().unwrap(),
            "--name",
            "viewer.test",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let loaded = vigie::tls::load(&out.join("server.crt"), &out.join("server.key")).unwrap();
    assert!(loaded.info.covers("viewer.test") && loaded.info.covers("localhost"));
    let run = vigie(
        &[
            "dev-cert",
            "--out",
            out.to_str().unwrap(),
            "--name",
            "viewer.test",
        ],
        None,
    );
    assert!(run.stdout.contains("reused CA"), "{}", run.stdout);
}

/// The development and Docker configurations carry the Orthanc preset's access policy, rule for
/// rule (comments aside): a fix to the preset must reach them.
#[test]
fn shipped_configurations_share_the_orthanc_access_policy() {
    fn rules(file: &str) -> Vec<String> {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let start = text
            .find("\naccess:\n")
            .unwrap_or_else(|| panic!("{file} has no access: section"));
        text[start + "\naccess:\n".len()..]
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    }
    let preset = rules("config/orthanc.example.yaml");
    assert!(preset.len() > 20, "{preset:?}");
    for other in ["config/dev.yaml", "docker/vigie.yaml"] {
        assert_eq!(
            rules(other),
            preset,
            "{other} differs from config/orthanc.example.yaml"
        );
    }
}
