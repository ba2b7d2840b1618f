//! The audit trail through the real binary: the command line's account and key changes are
//! recorded and sealed, `vigie audit verify` says the trail is intact, and names the record an
//! edit broke.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::*;

fn vigie(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(vigie_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn account_and_key_changes_are_recorded_and_tampering_is_named() {
    let certs = Certs::new();
    let config = tempfile::NamedTempFile::new().unwrap();
    let yaml = ConfigBuilder::new(&certs, "http://127.0.0.1:9").build_yaml();
    std::fs::write(config.path(), yaml).unwrap();
    let path = config.path().to_str().unwrap();
    let password = "Thorax-Scanner-Night-2026";

    let out = vigie(
        &[
            "user", "add", "dr.new", "--roles", "doctor", "--config", path,
        ],
        &format!("{password}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = vigie(&["rotate-keys", "--config", path], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = vigie(&["audit", "verify", "--config", path], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("intact: 2 record(s) in 1 file(s), 2 seal(s)"),
        "{stdout}"
    );

    let audit_dir = certs.dir.path().join("state").join("audit");
    let file = std::fs::read_dir(&audit_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .expect("a trail file");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"type\":\"account_added\""), "{text}");
    assert!(text.contains("\"user\":\"dr.new\""), "{text}");
    assert!(text.contains("\"type\":\"keys_rotated\""), "{text}");
    assert!(!text.contains(password), "the password reached the trail");

    // Somebody renames the account in the trail.
    std::fs::write(&file, text.replace("\"dr.new\"", "\"dr.old\"")).unwrap();
    let out = vigie(&["audit", "verify", "--config", path], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("record 0 was altered"), "{stderr}");
    assert!(stderr.contains(":2: "), "names the line: {stderr}");
    // And the gateway's own command line will not write after the break.
    let out = vigie(&["rotate-keys", "--config", path], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("could not be recorded in the audit trail"),
        "{stderr}"
    );
}

/// The trail's records of `type`, in order, as JSON.
fn records_of(state: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    trail_records(&state.join("audit"), kind)
}

#[tokio::test]
async fn the_gateway_records_sign_ins_refusals_lockouts_policy_refusals_and_sign_outs() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let config = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"]), ("dr.b", &["doctor"])])
        .set("auth.max_failures", 2)
        .set("auth.failure_delay", "10ms");
    let yaml = config.build_yaml();
    let gw = Gw::start(&yaml).await; // signs TEST_USER in
    // dr.b: two wrong passwords (the second locks the account), and a name that is no account.
    for _ in 0..2 {
        let wrong = sign_in(&certs, gw.https, "dr.b", "Wrong-Password-123!", TEST_TOTP).await;
        assert!(wrong.is_err());
    }
    let typo = sign_in(
        &certs,
        gw.https,
        "Sekret-typed-as-name",
        TEST_PASSWORD,
        TEST_TOTP,
    )
    .await;
    assert!(typo.is_err());
    // The policy keeps doctors out of /tools/: refused, and recorded (the path, not the query).
    let c = gw.client(&certs, true);
    let refused_path = c
        .get(gw.url("/tools/reset?PatientID=P-SECRET"))
        .header("x-request-id", "audit-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused_path.status(), 403);
    // TEST_USER signs out.
    let page = c.get(gw.url("/_vigie/logout")).send().await.unwrap();
    let token = hidden_field(&page.text().await.unwrap(), "csrf").unwrap();
    let out = c
        .post(gw.url("/_vigie/logout"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    gw.shutdown().await; // the writer seals what is queued

    let state = certs.dir.path().join("state");
    let signed_in = records_of(&state, "signed_in");
    assert_eq!(signed_in.len(), 1, "{signed_in:?}");
    assert_eq!(signed_in[0]["user"], TEST_USER);
    assert_eq!(signed_in[0]["client"], "127.0.0.1");
    assert_eq!(signed_in[0]["method"], "password_totp");
    let session = signed_in[0]["session"].as_str().unwrap().to_string();
    assert!(!session.is_empty());

    let refused = records_of(&state, "sign_in_refused");
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(refused[0]["account"], "dr.b");
    assert_eq!(refused[0]["reason"], "bad_credentials");
    // A name that is no account is not recorded: it may be a password typed in the wrong field.
    assert!(refused[2]["account"].is_null(), "{:?}", refused[2]);
    let locked = records_of(&state, "locked_out");
    assert!(locked.iter().any(|l| l["account"] == "dr.b"), "{locked:?}");

    let policy = records_of(&state, "access_refused");
    assert_eq!(policy.len(), 1, "{policy:?}");
    assert_eq!(policy[0]["user"], TEST_USER);
    assert_eq!(policy[0]["method"], "GET");
    assert_eq!(policy[0]["path"], "/tools/reset");
    assert_eq!(policy[0]["session"], session.as_str());
    assert_eq!(policy[0]["reason"], "access_policy");
    assert!(policy[0]["request_id"].is_string(), "{:?}", policy[0]);

    let signed_out = records_of(&state, "signed_out");
    assert_eq!(signed_out.len(), 1, "{signed_out:?}");
    assert_eq!(signed_out[0]["user"], TEST_USER);
    assert_eq!(signed_out[0]["session"], session.as_str());

    let trail = std::fs::read_dir(state.join("audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(!trail.contains("Sekret-typed-as-name"));
    assert!(!trail.contains("Wrong-Password"));
    assert!(!trail.contains(TEST_PASSWORD));
    assert!(
        !trail.contains("P-SECRET"),
        "a refused query reached the trail"
    );

    // Sealed at shutdown, intact.
    let config_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config_file.path(), &yaml).unwrap();
    let out = vigie(
        &[
            "audit",
            "verify",
            "--config",
            config_file.path().to_str().unwrap(),
        ],
        "",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The refusals and the lockout also raised alerts (on by default), each recorded.
    let alerts = records_of(&state, "alert_raised");
    assert!(alerts.iter().any(|a| a["rule"] == "lockout"), "{alerts:?}");
    let total = signed_in.len()
        + refused.len()
        + locked.len()
        + policy.len()
        + signed_out.len()
        + alerts.len();
    assert!(stdout.contains(&format!("{total} record(s)")), "{stdout}");
    assert!(!stdout.contains("not sealed"), "{stdout}");
}

/// Disabling an account in the running gateway's configuration ends its sessions, and the trail
/// says which and why. The trail is in its own directory (`audit.dir`); the key stays in
/// `state_dir`.
#[tokio::test]
async fn a_disabled_account_s_sessions_are_recorded_as_revoked() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let trail = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"])])
        .set("audit.dir", trail.path());
    let mut gw = GwProcess::start(&config.build_yaml()).await;
    let disabled = config.disable_user(TEST_USER).build_yaml();
    std::fs::write(gw.config.path(), disabled).unwrap();
    gw.wait_log("accounts reloaded", std::time::Duration::from_secs(5))
        .await;
    gw.signal("TERM");
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), gw.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let state = certs.dir.path().join("state");
    assert!(!state.join("audit").exists(), "records went to state_dir");
    assert!(state.join("audit-seal.key").exists());
    let signed_in = trail_records(trail.path(), "signed_in");
    let revoked = trail_records(trail.path(), "session_revoked");
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["user"], TEST_USER);
    assert_eq!(revoked[0]["reason"], "account_disabled");
    assert_eq!(revoked[0]["session"], signed_in[0]["session"]);
}

/// A viewer's requests become one record per study viewed, with whom it concerns asked of the
/// upstream (with the gateway's credentials) off the request path; a download and a deletion
/// are recorded apart; no image byte, cookie or query reaches the trail.
#[tokio::test]
async fn accesses_to_patient_data_are_recorded_one_viewing_per_study() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url()).build_yaml();
    let gw = Gw::start(&yaml).await;
    let c = gw.client(&certs, true);
    // The viewer scrolls 25 images of the study, then back again.
    for round in 0..2 {
        for n in 0..25 {
            let id = format!("{n:08x}-00000000-00000000-00000000-00000000");
            let res = c
                .get(gw.url(&format!("/instances/{id}/preview?token=NOT-IN-TRAIL")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "round {round}");
            assert_eq!(res.bytes().await.unwrap().len(), 1000);
        }
    }
    let archive = c
        .get(gw.url(&format!("/studies/{ORTHANC_STUDY}/archive")))
        .send()
        .await
        .unwrap();
    assert_eq!(archive.bytes().await.unwrap().len(), 5000);
    let deleted = c
        .delete(gw.url(&format!("/studies/{ORTHANC_STUDY}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    // A study nobody opened, deleted straight through the API: whom it concerned is asked
    // before the deletion is forwarded (afterwards the upstream answers 404).
    let deleted = c
        .delete(gw.url(&format!("/studies/{ORTHANC_STUDY_2}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    gw.shutdown().await; // open viewings are recorded, then the writer seals

    let state = certs.dir.path().join("state");
    let session = records_of(&state, "signed_in")[0]["session"].clone();
    let viewings = records_of(&state, "study_access");
    let views: Vec<_> = viewings
        .iter()
        .filter(|v| v["operation"] == "view")
        .collect();
    assert_eq!(views.len(), 1, "{viewings:#?}");
    let v = views[0];
    assert_eq!(v["user"], TEST_USER);
    assert_eq!(v["session"], session);
    assert_eq!(v["client"], "127.0.0.1");
    assert_eq!(v["patient"]["id"], "P-0042");
    assert_eq!(v["patient"]["name"], "DOE^JANE");
    assert_eq!(v["study"]["uid"], "1.2.826.0.1.42");
    assert_eq!(v["study"]["upstream_id"], ORTHANC_STUDY);
    assert_eq!(v["requests"], 50);
    assert_eq!(v["bytes"], 50_000);
    assert_eq!(v["failed"], 0);
    assert!(v["first"].as_str().unwrap() <= v["last"].as_str().unwrap());
    let downloads: Vec<_> = viewings
        .iter()
        .filter(|v| v["operation"] == "download")
        .collect();
    assert_eq!(downloads.len(), 1, "{viewings:#?}");
    assert_eq!(downloads[0]["bytes"], 5000);
    assert_eq!(downloads[0]["patient"]["id"], "P-0042");
    let changes = records_of(&state, "data_access");
    let delete = changes
        .iter()
        .find(|c| c["operation"] == "delete")
        .unwrap_or_else(|| panic!("{changes:#?}"));
    assert_eq!(delete["method"], "DELETE");
    assert_eq!(delete["path"], format!("/studies/{ORTHANC_STUDY}"));
    assert_eq!(delete["status"], 200);
    // The gateway's own request id (the access log's), not the client's.
    assert!(delete["request_id"].is_string(), "{delete:?}");
    assert_eq!(delete["patient"]["id"], "P-0042");
    let unseen = changes
        .iter()
        .find(|c| c["path"] == format!("/studies/{ORTHANC_STUDY_2}"))
        .unwrap_or_else(|| panic!("{changes:#?}"));
    assert_eq!(unseen["operation"], "delete");
    assert_eq!(unseen["patient"]["id"], "P-0042", "{unseen:#?}");
    assert!(unseen["unresolved"].is_null(), "{unseen:#?}");

    let trail: String = std::fs::read_dir(state.join("audit"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert!(!trail.contains("NOT-IN-TRAIL"), "a query reached the trail");
    assert!(
        !trail.contains("__Host-vigie"),
        "a cookie reached the trail"
    );
    // The upstream was asked once per instance, and a few times for the series.
    let paths = up.stats.paths.lock().unwrap().clone();
    let lookups = paths
        .iter()
        .filter(|p| p.starts_with("/instances/") && !p.contains("/preview"))
        .count();
    assert_eq!(lookups, 25, "{paths:?}");
    // The first questions run four at a time: each may ask for the series once.
    let series = paths
        .iter()
        .filter(|p| *p == &format!("/series/{ORTHANC_SERIES}"))
        .count();
    assert!((1..=4).contains(&series), "{paths:?}");
}

/// Requests the gate refuses (no session) are counted per address and reason: many probes, one
/// record, with the first path and never a query.
#[tokio::test]
async fn the_gates_refusals_are_one_record_per_address() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url()).build_yaml();
    let gw = Gw::start(&yaml).await;
    let anonymous = client(&certs, gw.https, false);
    for n in 0..7 {
        let res = anonymous
            .get(gw.url(&format!("/patients/probe-{n}?PatientID=P-SECRET")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    gw.shutdown().await;
    let state = certs.dir.path().join("state");
    let refused = records_of(&state, "gate_refusals");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0]["client"], "127.0.0.1");
    assert_eq!(refused[0]["reason"], "no_session");
    assert_eq!(refused[0]["requests"], 7);
    assert_eq!(refused[0]["first_path"], "/patients/probe-0");
    let trail: String = std::fs::read_dir(state.join("audit"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert!(!trail.contains("P-SECRET"), "a query reached the trail");
}
