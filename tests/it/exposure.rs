//! `vigie check --exposure` and `vigie health`, through the real binary against a running gateway
//! and real upstream servers: a careful deployment has nothing serious to report, and the
//! mistakes of the two CNIL cases of December 2020 (a viewer on a public address, a viewer that
//! answers without credentials, reachable on the machine's network address, no second factor)
//! are each flagged with what to change.

use std::process::Command;

use crate::support::*;
use base64::Engine as _;
use serde_json::Value;

const ORTHANC_PASSWORD: &str = "only-vigie-knows-this-1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A configuration with fixed local ports (the check has to find the running gateway).
fn fixed_ports(config: ConfigBuilder) -> (ConfigBuilder, u16) {
    let admin = free_port();
    let config = config
        .set("listen.https", format!("127.0.0.1:{}", free_port()))
        .set("listen.http", format!("127.0.0.1:{}", free_port()))
        .set("listen.admin", format!("127.0.0.1:{admin}"));
    (config, admin)
}

/// Writes a configuration to a file of its own.
fn config_file(config: &ConfigBuilder) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, config.build_yaml().as_bytes()).unwrap();
    file
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn vigie(args: &[&str], config: &std::path::Path) -> Out {
    let out = Command::new(vigie_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the exposure check off the test's runtime (it connects to servers this runtime serves).
async fn exposure_json(config: &std::path::Path) -> (i32, Vec<Value>) {
    let config = config.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        vigie(&["check", "--exposure", "--json", "--lang", "en"], &config)
    })
    .await
    .unwrap();
    let findings: Vec<Value> = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", out.stdout, out.stderr));
    (out.code, findings)
}

fn levels(findings: &[Value], check: &str) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| f["level"].as_str().unwrap().to_string())
        .collect()
}

fn find<'a>(findings: &'a [Value], check: &str, level: &str) -> Option<&'a Value> {
    findings
        .iter()
        .find(|f| f["check"] == check && f["level"] == level)
}

/// An upstream that, like Orthanc with authentication, answers only `gateway:ORTHANC_PASSWORD`,
/// and the test configuration for it, giving Vigie `password` (from a file).
async fn protected_upstream(certs: &Certs, password: &str) -> (Upstream, ConfigBuilder) {
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("gateway:{ORTHANC_PASSWORD}"))
    );
    let up = Upstream::start_protected("127.0.0.1:0".parse().unwrap(), &auth).await;
    let secret = certs.dir.path().join("orthanc_password");
    std::fs::write(&secret, format!("{password}\n")).unwrap();
    let config = ConfigBuilder::new(certs, &up.url())
        .set("upstream.health_path", "/system")
        .set(
            "upstream.credentials",
            serde_json::json!({ "username": "gateway", "password_file": secret }),
        );
    (up, config)
}

fn dump(findings: &[Value]) -> String {
    serde_json::to_string_pretty(findings).unwrap()
}

#[tokio::test]
async fn a_careful_deployment_has_nothing_serious_and_is_healthy() {
    let certs = Certs::new();
    let (_up, config) = protected_upstream(&certs, ORTHANC_PASSWORD).await;
    // The access policy shipped for Orthanc, as an administrator would copy it.
    let (config, _) = fixed_ports(config.access_yaml(&orthanc_preset()));
    let gw = GwProcess::start(&config.build_yaml()).await;
    let (code, findings) = exposure_json(gw.config.path()).await;
    let all = dump(&findings);
    for f in &findings {
        let level = f["level"].as_str().unwrap();
        assert!(level != "high" && level != "critical", "{all}");
        assert!(!f["message"].as_str().unwrap().is_empty(), "{all}");
        if level != "ok" && level != "info" {
            assert!(!f["fix"].as_str().unwrap().is_empty(), "no fix: {all}");
        }
    }
    let tls = find(&findings, "tls", "ok").expect(&all)["message"]
        .as_str()
        .unwrap();
    assert!(tls.contains("TLS 1.3") && tls.contains("TLS 1.2"), "{tls}");
    assert!(find(&findings, "certificate", "ok").is_some(), "{all}");
    // A test authority, not a public one: trusted only where it is installed.
    assert!(find(&findings, "certificate", "warning").is_some(), "{all}");
    assert_eq!(levels(&findings, "upstream_address"), ["ok"], "{all}");
    assert_eq!(levels(&findings, "upstream_credentials"), ["ok"], "{all}");
    assert_eq!(levels(&findings, "second_factor"), ["ok"], "{all}");
    assert_eq!(levels(&findings, "policy"), ["ok"], "{all}");
    assert_eq!(levels(&findings, "plain_http"), ["ok"], "{all}");
    let ports = levels(&findings, "viewer_ports");
    assert!(ports == ["ok"] || ports == ["info"], "{all}");
    // The trail verifies; it shares the state's volume here (a note, not a warning).
    assert_eq!(levels(&findings, "audit"), ["ok", "info"], "{all}");
    assert_eq!(code, 3, "warnings only: {all}");
    let path = gw.config.path().to_owned();
    let health = tokio::task::spawn_blocking(move || vigie(&["health"], &path))
        .await
        .unwrap();
    assert_eq!(health.code, 0, "{}{}", health.stdout, health.stderr);
    assert_eq!(health.stdout.trim(), "ready");
}

#[tokio::test]
async fn a_viewer_without_credentials_exposed_on_the_network_and_no_second_factor_are_flagged() {
    let certs = Certs::new();
    // Like Orthanc 1.10, which always binds every address, without "AuthenticationEnabled".
    let up = Upstream::start_at("0.0.0.0:0".parse().unwrap(), None).await;
    let url = format!("http://127.0.0.1:{}", up.addr.port());
    let (config, _) =
        fixed_ports(ConfigBuilder::new(&certs, &url).set("auth.second_factor", "off"));
    let gw = GwProcess::start(&config.build_yaml()).await;
    let (code, findings) = exposure_json(gw.config.path()).await;
    let all = dump(&findings);
    assert_eq!(code, 1, "{all}");
    let open = find(&findings, "upstream_credentials", "high").expect(&all);
    assert!(
        open["message"]
            .as_str()
            .unwrap()
            .contains("without credentials"),
        "{all}"
    );
    assert!(
        open["fix"]
            .as_str()
            .unwrap()
            .contains("AuthenticationEnabled")
    );
    assert!(find(&findings, "second_factor", "high").is_some(), "{all}");
    // The viewer's port answers on this machine's network address (when it has one).
    let has_network = if_addrs::get_if_addrs().unwrap().iter().any(|i| {
        !i.is_loopback()
            && !matches!(i.ip(), std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
    });
    if has_network {
        let exposed: Vec<&Value> = findings
            .iter()
            .filter(|f| f["check"] == "viewer_ports")
            .collect();
        assert!(
            exposed
                .iter()
                .any(|f| (f["level"] == "high" || f["level"] == "critical")
                    && f["message"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("Port {}", up.addr.port()))),
            "{all}"
        );
    }
    // The same report in French, as text.
    let path = gw.config.path().to_owned();
    let fr =
        tokio::task::spawn_blocking(move || vigie(&["check", "--exposure", "--lang", "fr"], &path))
            .await
            .unwrap();
    assert_eq!(fr.code, 1);
    assert!(fr.stdout.contains("[GRAVE"), "{}", fr.stdout);
    assert!(
        fr.stdout
            .contains("Le visualiseur répond sans identifiants"),
        "{}",
        fr.stdout
    );
    assert!(fr.stdout.contains("Bilan :"), "{}", fr.stdout);
}

#[tokio::test]
async fn a_viewer_on_a_public_address_and_a_stopped_gateway_are_flagged() {
    let certs = Certs::new();
    // TEST-NET-3: a public (globally routed) range reserved for documentation.
    let (config, admin) = fixed_ports(ConfigBuilder::new(&certs, "http://203.0.113.10:8042"));
    let file = config_file(&config);
    let (code, findings) = exposure_json(file.path()).await;
    let all = dump(&findings);
    assert_eq!(code, 1, "{all}");
    let public = find(&findings, "upstream_address", "critical").expect(&all);
    assert!(
        public["message"].as_str().unwrap().contains("203.0.113.10"),
        "{all}"
    );
    assert!(find(&findings, "gateway", "high").is_some(), "{all}");
    // The certificate is still judged, from the files.
    assert!(find(&findings, "certificate", "ok").is_some(), "{all}");
    let out = vigie(&["health"], file.path());
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{admin}")),
        "{}",
        out.stderr
    );
}

#[test]
fn health_needs_the_admin_listener() {
    let certs = Certs::new();
    let file = config_file(&ConfigBuilder::new(&certs, "http://127.0.0.1:9").unset("listen.admin"));
    let out = vigie(&["health"], file.path());
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("listen.admin"), "{}", out.stderr);
}

#[test]
fn a_policy_that_leaves_orthanc_open_is_flagged() {
    let certs = Certs::new();
    let config = ConfigBuilder::new(&certs, "http://127.0.0.1:9")
        .users(&[(TEST_USER, &["admin"]), ("dr.other", &["doctor"])])
        .set(
            "access",
            serde_json::json!([{ "path": "/", "roles": ["doctor", "admin"] }]),
        );
    let file = config_file(&config);
    let out = vigie(
        &["check", "--exposure", "--json", "--lang", "en"],
        file.path(),
    );
    let findings: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let all = dump(&findings);
    let script = find(&findings, "policy", "critical").expect(&all);
    assert!(
        script["message"]
            .as_str()
            .unwrap()
            .contains("/tools/execute-script"),
        "{all}"
    );
    let admin = find(&findings, "policy", "high").expect(&all)["message"]
        .as_str()
        .unwrap();
    assert!(
        admin.contains("DELETE /studies") && admin.contains("doctor"),
        "{admin}"
    );
}

/// The Orthanc preset before the allow-list (as of commit bf76dfd): a deny-list whose last rule
/// opened every other route to doctors (its rules as shipped, without the comments).
const OLD_DENY_LIST_PRESET: &str = "access:
  - path: /tools/execute-script
    roles: []
  - path: /tools/find
    methods: [POST]
    roles: [doctor, admin]
  - path: /tools/lookup
    methods: [POST]
    roles: [doctor, admin]
  - path: /tools/
    roles: [admin]
  - path: /modalities/
    roles: [admin]
  - path: /peers/
    roles: [admin]
  - path: /jobs/
    roles: [admin]
  - path: /plugins/
    methods: [POST, PUT, DELETE]
    roles: [admin]
  - path: /*/*/modify
    roles: [admin]
  - path: /*/*/anonymize
    roles: [admin]
  - path: /studies/*/split
    roles: [admin]
  - path: /studies/*/merge
    roles: [admin]
  - path: /
    methods: [DELETE]
    roles: [admin]
  - path: /
    methods: [PUT]
    roles: [admin]
  - path: /
    roles: [doctor, admin]
";

/// The policy findings of `check --exposure` for `access` with a doctor holding `roles`.
fn policy_findings(access: &str, roles: &[&str]) -> (Vec<Value>, String) {
    let certs = Certs::new();
    let config = ConfigBuilder::new(&certs, "http://127.0.0.1:9")
        .users(&[(TEST_USER, &["admin"]), ("dr.other", roles)])
        .access_yaml(access);
    let file = config_file(&config);
    let out = vigie(
        &["check", "--exposure", "--json", "--lang", "en"],
        file.path(),
    );
    let findings: Vec<Value> = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", out.stdout, out.stderr));
    let policy: Vec<Value> = findings
        .into_iter()
        .filter(|f| f["check"] == "policy")
        .collect();
    let all = dump(&policy);
    (policy, all)
}

/// The old deny-list preset left Orthanc's network and file routes to doctors: the check names
/// each one (route template and who), while the allow-list preset, even with the optional
/// download and upload roles, leaves none.
#[test]
fn the_policy_check_names_the_dangerous_routes_left_to_non_admins() {
    let (old, all) = policy_findings(OLD_DENY_LIST_PRESET, &["doctor"]);
    let high = find(&old, "policy", "high").expect(&all)["message"]
        .as_str()
        .unwrap()
        .to_string();
    for route in [
        "POST /instances/{id}/export (write the DICOM file anywhere on the Orthanc host",
        "POST /dicom-web/servers/{id}/stow",
        "POST /dicom-web/servers/{id}/retrieve",
        "POST /queries/{id}/retrieve",
    ] {
        assert!(high.contains(route), "{route} not named: {high}");
    }
    assert!(high.contains(") — doctor"), "{high}");
    // What the old preset did keep for admins is not named.
    for route in [
        "/tools/reset",
        "/modalities/{id}/store",
        "DELETE /studies/{id}",
    ] {
        assert!(!high.contains(route), "{route} named: {high}");
    }
    let (new, all) = policy_findings(&orthanc_preset(), &["doctor", "download", "upload"]);
    assert_eq!(levels(&new, "policy"), ["ok"], "{all}");
}

#[tokio::test]
async fn health_reports_an_upstream_that_refuses_the_gateways_credentials() {
    let certs = Certs::new();
    let (_up, config) = protected_upstream(&certs, "not-the-right-password").await;
    let (config, _) = fixed_ports(config);
    let gw = GwProcess::start(&config.build_yaml()).await;
    let path = gw.config.path().to_owned();
    let out = tokio::task::spawn_blocking(move || vigie(&["health"], &path))
        .await
        .unwrap();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    assert!(
        out.stderr.contains("upstream.credentials"),
        "{}",
        out.stderr
    );
    let (_, findings) = exposure_json(gw.config.path()).await;
    assert!(
        find(&findings, "upstream_credentials", "high").is_some(),
        "{}",
        dump(&findings)
    );
}

/// The plain-HTTP port must only redirect: another server answering pages there (a second
/// viewer, an old web server) is flagged.
#[tokio::test]
async fn a_plain_http_port_that_serves_pages_is_flagged() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let other = Upstream::start(None).await;
    let (config, _) = fixed_ports(ConfigBuilder::new(&certs, &up.url()));
    let file = config_file(&config.set("listen.http", other.addr.to_string()));
    let (code, findings) = exposure_json(file.path()).await;
    let all = dump(&findings);
    assert_eq!(code, 1, "{all}");
    let open = find(&findings, "plain_http", "critical").expect(&all);
    assert!(
        open["message"].as_str().unwrap().contains("answers 200"),
        "{all}"
    );
}

#[tokio::test]
async fn a_broken_trail_and_accesses_not_recorded_are_flagged() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let config = ConfigBuilder::new(&certs, &up.url()).set("audit.record_access", false);
    let file = config_file(&config);
    // A trail written by the command line, then altered.
    let out = vigie(&["rotate-keys"], file.path());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let audit = certs.dir.path().join("state").join("audit");
    let trail = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .expect("a trail file");
    let text = std::fs::read_to_string(&trail).unwrap();
    std::fs::write(&trail, text.replace("keys_rotated", "keys_rotatex")).unwrap();
    let (code, findings) = exposure_json(file.path()).await;
    let all = dump(&findings);
    let broken = find(&findings, "audit", "critical").expect(&all);
    assert_eq!(broken["key"], "audit.dir");
    assert!(
        broken["message"]
            .as_str()
            .unwrap()
            .contains("record 0 was altered"),
        "{all}"
    );
    let off = find(&findings, "audit", "high").expect(&all);
    assert_eq!(off["key"], "audit.record_access");
    assert_eq!(code, 1, "{all}");
}
