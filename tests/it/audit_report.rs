//! The reports through the real binary, on a trail the real gateway wrote: refused sign-ins, a
//! lockout and a policy refusal appear in `vigie audit report` (text, JSON, CSV) and in
//! `vigie breach report`; `vigie audit patient` answers for a patient nobody saw; an edited
//! record makes every report warn and exit 2.

use std::process::{Command, Output};

use crate::support::*;

fn vigie(args: &[&str]) -> Output {
    Command::new(vigie_bin())
        .args(args)
        .env("LANG", "C")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn reports_read_what_the_gateway_recorded_and_warn_on_a_broken_trail() {
    let certs = Certs::new();
    let up = Upstream::start(None).await;
    let yaml = ConfigBuilder::new(&certs, &up.url())
        .users(&[(TEST_USER, &["doctor"]), ("dr.b", &["doctor"])])
        .set("auth.max_failures", 2)
        .set("auth.failure_delay", "10ms")
        .build_yaml();
    let gw = Gw::start(&yaml).await; // signs TEST_USER in
    for _ in 0..2 {
        let wrong = sign_in(&certs, gw.https, "dr.b", "Wrong-Password-123!", TEST_TOTP).await;
        assert!(wrong.is_err());
    }
    let refused = gw
        .client(&certs, true)
        .get(gw.url("/tools/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    gw.shutdown().await; // the writer seals what is queued

    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), &yaml).unwrap();
    let config = config.path().to_str().unwrap().to_string();
    let today = time::OffsetDateTime::now_utc().date().to_string();

    // JSON: the refusals, under stable names; the period is today's, in UTC.
    let out = vigie(&[
        "audit", "report", "--config", &config, "--from", &today, "--format", "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["trail"]["intact"], true, "{v}");
    assert_eq!(v["period"]["from"], format!("{today}T00:00:00Z"));
    assert_eq!(v["period"]["time_zone"], "UTC");
    let sign_ins = v["refusals"]["sign_ins"].as_array().unwrap();
    assert_eq!(sign_ins.len(), 2, "{v}");
    assert!(sign_ins.iter().all(|s| s["account"] == "dr.b"), "{v}");
    assert_eq!(sign_ins[0]["client"], "127.0.0.1");
    assert!(
        v["refusals"]["lockouts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["account"] == "dr.b"),
        "{v}"
    );
    assert_eq!(v["refusals"]["policy"][0]["user"], TEST_USER);
    assert_eq!(v["refusals"]["policy"][0]["path"], "/tools/reset");

    // Text, in English: the chain, the zone, the refusals.
    let out = vigie(&["audit", "report", "--config", &config, "--lang", "en"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("Audit trail: intact, chain verified through record"),
        "{text}"
    );
    assert!(text.contains("Time zone: UTC"), "{text}");
    assert!(text.contains("Sign-ins refused (2)"), "{text}");
    assert!(text.contains("/tools/reset"), "{text}");
    assert!(!text.contains("Wrong-Password"), "{text}");

    // A user filter keeps only that account's refusals.
    let out = vigie(&[
        "audit", "report", "--config", &config, "--user", TEST_USER, "--format", "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        v["refusals"]["sign_ins"].as_array().unwrap().is_empty(),
        "{v}"
    );
    assert_eq!(v["refusals"]["policy"].as_array().unwrap().len(), 1, "{v}");

    // CSV: the header row; the chain's state on standard error.
    let out = vigie(&["audit", "report", "--config", &config, "--format", "csv"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).starts_with("seq,kind,first,last,user,operation,patient_id,"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("intact"), "{}", stderr(&out));

    // A patient nobody saw, in French.
    let out = vigie(&[
        "audit", "patient", "P-404", "--config", &config, "--lang", "fr",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("0 enregistrement(s) d'accès"), "{text}");
    assert!(
        text.contains("personne n'a accédé à vos images médicales (identifiant patient P-404)"),
        "{text}"
    );

    // The breach draft: dr.b refused and locked out from 127.0.0.1, the blanks.
    let out = vigie(&["breach", "report", "--config", &config, "--lang", "en"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("GDPR art. 33"), "{text}");
    assert!(text.contains("Sign-ins refused: 2; lockouts: 1"), "{text}");
    let account = text
        .lines()
        .find(|l| l.trim_start().starts_with("dr.b ") && l.contains("locked out"))
        .unwrap_or_else(|| panic!("dr.b is not listed as involved:\n{text}"));
    assert!(account.contains("sign-in refused"), "{account}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("127.0.0.1") && l.contains("dr.b")),
        "{text}"
    );
    assert!(text.contains("[TO FILL IN:"), "{text}");
    assert!(
        text.contains("Notification due (72 hours)") || text.contains("no alert in the period"),
        "{text}"
    );

    // A bad date is refused, naming the forms accepted.
    let out = vigie(&[
        "audit",
        "report",
        "--config",
        &config,
        "--from",
        "01/03/2026",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("YYYY-MM-DD"), "{}", stderr(&out));

    // Somebody edits a record: every report still comes out, warns, and exits 2.
    let dir = certs.dir.path().join("state").join("audit");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let trail = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, trail.replacen("\"dr.b\"", "\"dr.x\"", 1)).unwrap();
    let out = vigie(&["audit", "report", "--config", &config, "--lang", "en"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    assert!(
        text.contains("!!! WARNING: THE AUDIT TRAIL IS BROKEN"),
        "{text}"
    );
    assert!(
        text.contains("dr.x"),
        "the report still reads the trail: {text}"
    );
    let out = vigie(&["breach", "report", "--config", &config, "--lang", "fr"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("LE JOURNAL D'AUDIT EST ROMPU"),
        "{}",
        stdout(&out)
    );
}
