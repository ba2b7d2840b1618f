//! The reports on real trails written by `AuditLog`: aggregation, each format, the patient's
//! sentence, the breach draft and its deadline, and a broken trail. Longer than 500 lines: one
//! realistic month of a practice's trail, built once from `Event` values, that every test reads.

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::breach::{BreachReport, Deadline};
use super::*;
use crate::audit::access::Operation;
use crate::audit::event::{Patient, Study, Unresolved};
use crate::audit::{AuditLog, AuditPaths, Event};

const SESSION_A: &str = "sess-a-0123456789abcdef";
const SESSION_B: &str = "sess-b-fedcba9876543210";

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn p1() -> Patient {
    Patient {
        id: "P-1".into(),
        name: Some("DOE^JANE, \"JJ\"".into()),
        upstream_id: Some("aaaa-1111".into()),
    }
}

fn p2() -> Patient {
    Patient {
        id: "P-2".into(),
        // A modality wrote an escape sequence in the name.
        name: Some("ROE^RICHARD\u{1b}[31m".into()),
        upstream_id: None,
    }
}

fn study(uid: &str, description: &str) -> Study {
    Study {
        uid: uid.into(),
        date: Some("20260227".into()),
        description: Some(description.into()),
        upstream_id: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn viewing(
    user: &str,
    session: &str,
    client: &str,
    operation: Operation,
    patient: Option<Patient>,
    study: Option<Study>,
    first: &str,
    last: &str,
    requests: u64,
    failed: u64,
) -> Event {
    let unresolved = patient.is_none().then(|| Unresolved {
        resource: "orthanc instance 0badf00d".into(),
        why: "the upstream answered 404".into(),
    });
    Event::StudyAccess {
        user: user.into(),
        session: session.into(),
        client: ip(client),
        operation,
        patient,
        study,
        unresolved,
        first: first.into(),
        last: last.into(),
        requests,
        failed,
        bytes: requests * 1000,
        first_request: Some("req-1".into()),
    }
}

/// March 2026 at a practice: dr.a views two patients, dr.b downloads P-1's study, searches for
/// P-1, deletes P-2's study; dr.b's password is tried from 203.0.113.5 until the lockout, an
/// alert is raised, dr.b's session is revoked. One viewing in February, one record of a type
/// this version does not know.
fn trail() -> (tempfile::TempDir, AuditPaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::under(dir.path());
    let mut log = AuditLog::open(&paths).unwrap();
    let mut put = |t: OffsetDateTime, e: &Event| {
        log.append(t, e).unwrap();
    };
    put(
        datetime!(2026-02-10 10:00 UTC),
        &viewing(
            "dr.a",
            SESSION_A,
            "192.0.2.10",
            Operation::View,
            Some(Patient {
                id: "P-3".into(),
                name: None,
                upstream_id: None,
            }),
            Some(study("1.2.9", "OLD")),
            "2026-02-10T09:00:00Z",
            "2026-02-10T09:10:00Z",
            10,
            0,
        ),
    );
    put(
        datetime!(2026-03-02 08:00 UTC),
        &Event::SignedIn {
            user: "dr.a".into(),
            session: SESSION_A.into(),
            client: ip("192.0.2.10"),
            provider: None,
            method: crate::audit::Method::PasswordTotp,
        },
    );
    put(
        datetime!(2026-03-02 08:30 UTC),
        &viewing(
            "dr.a",
            SESSION_A,
            "192.0.2.10",
            Operation::View,
            Some(p1()),
            Some(study("1.2.3", "CT THORAX")),
            "2026-03-02T08:01:00Z",
            "2026-03-02T08:12:00Z",
            312,
            2,
        ),
    );
    put(
        datetime!(2026-03-02 09:30 UTC),
        &viewing(
            "dr.a",
            SESSION_A,
            "192.0.2.10",
            Operation::View,
            Some(p2()),
            Some(study("1.2.4", "=HYPERLINK(\"x\")")),
            "2026-03-02T09:00:00Z",
            "2026-03-02T09:05:00Z",
            40,
            0,
        ),
    );
    put(
        datetime!(2026-03-02 09:40 UTC),
        &viewing(
            "dr.a",
            SESSION_A,
            "192.0.2.10",
            Operation::View,
            None,
            None,
            "2026-03-02T09:35:00Z",
            "2026-03-02T09:36:00Z",
            3,
            3,
        ),
    );
    put(
        datetime!(2026-03-02 09:41 UTC),
        &Event::AccessRefused {
            user: "dr.a".into(),
            session: SESSION_A.into(),
            client: ip("192.0.2.10"),
            method: "GET".into(),
            path: "/tools/reset".into(),
            request_id: Some("req-9".into()),
            reason: "access_policy",
        },
    );
    for n in 1..=3 {
        put(
            datetime!(2026-03-03 02:00 UTC) + Duration::minutes(n),
            &Event::SignInRefused {
                account: Some("dr.b".into()),
                client: ip("203.0.113.5"),
                reason: "bad_credentials",
                failures: n as u32,
            },
        );
    }
    put(
        datetime!(2026-03-03 02:04 UTC),
        &Event::LockedOut {
            account: Some("dr.b".into()),
            client: ip("203.0.113.5"),
            seconds: 900,
        },
    );
    put(
        datetime!(2026-03-03 02:05 UTC),
        &Event::AlertRaised {
            rule: "failed_sign_ins".into(),
            severity: "high".into(),
            summary: "3 failed sign-ins for dr.b from 203.0.113.5".into(),
            channels: vec!["email: sent".into()],
            suppressed: 0,
        },
    );
    put(
        datetime!(2026-03-03 09:20 UTC),
        &viewing(
            "dr.b",
            SESSION_B,
            "198.51.100.7",
            Operation::Download,
            Some(p1()),
            Some(study("1.2.3", "CT THORAX")),
            "2026-03-03T09:00:00Z",
            "2026-03-03T09:02:00Z",
            1,
            0,
        ),
    );
    put(
        datetime!(2026-03-03 09:25 UTC),
        &Event::DataAccess {
            user: "dr.b".into(),
            session: SESSION_B.into(),
            client: ip("198.51.100.7"),
            operation: Operation::Search,
            method: "GET".into(),
            path: "/dicom-web/studies".into(),
            criteria: vec![("PatientID".into(), "P-1".into())],
            status: 200,
            bytes: 900,
            request_id: Some("req-20".into()),
            patient: None,
            study: None,
            unresolved: None,
        },
    );
    put(
        datetime!(2026-03-03 09:30 UTC),
        &Event::DataAccess {
            user: "dr.b".into(),
            session: SESSION_B.into(),
            client: ip("198.51.100.7"),
            operation: Operation::Delete,
            method: "DELETE".into(),
            path: "/studies/bbbb-2222".into(),
            criteria: Vec::new(),
            status: 200,
            bytes: 20,
            request_id: Some("req-21".into()),
            patient: Some(p2()),
            study: Some(study("1.2.4", "=HYPERLINK(\"x\")")),
            unresolved: None,
        },
    );
    put(
        datetime!(2026-03-03 10:00 UTC),
        &Event::SessionRevoked {
            user: "dr.b".into(),
            session: SESSION_B.into(),
            reason: "account_disabled",
        },
    );
    log.append(
        datetime!(2026-03-03 10:01 UTC),
        &serde_json::json!({"type": "from_the_future", "x": 1}),
    )
    .unwrap();
    log.seal(datetime!(2026-03-03 10:02 UTC)).unwrap();
    (dir, paths)
}

fn march() -> Period {
    Period::parse(
        Some("2026-03-01"),
        Some("2026-03-31"),
        datetime!(2026-04-10 00:00 UTC),
    )
    .unwrap()
}

fn read(paths: &AuditPaths) -> Trail {
    Trail::read(paths, march()).unwrap()
}

fn query(user: Option<&str>, patient: Option<&str>) -> Query {
    Query {
        period: march(),
        user: user.map(String::from),
        patient: patient.map(String::from),
    }
}

#[test]
fn periods_parse_dates_and_instants_and_default_to_thirty_days() {
    let now = datetime!(2026-04-10 12:00 UTC);
    let p = march();
    assert_eq!(p.from, datetime!(2026-03-01 00:00 UTC));
    assert_eq!(p.to, datetime!(2026-03-31 23:59:59.999_999_999 UTC));
    let p = Period::parse(Some("2026-03-01T08:00:00+02:00"), None, now).unwrap();
    assert_eq!((p.from, p.to), (datetime!(2026-03-01 06:00 UTC), now));
    let p = Period::parse(None, None, now).unwrap();
    assert_eq!(p.to - p.from, Duration::days(30));
    assert!(Period::parse(Some("2026-04-01"), Some("2026-03-01"), now).is_err());
    for bad in ["2026-3-1", "01/03/2026", "2026-02-30", "yesterday"] {
        assert!(Period::parse(Some(bad), None, now).is_err(), "{bad}");
    }
}

#[test]
fn the_access_report_groups_per_patient_and_study_and_lists_refusals_and_alerts() {
    let (_dir, paths) = trail();
    let t = read(&paths);
    assert!(t.integrity.intact, "{:?}", t.integrity);
    assert_eq!((t.unknown, t.unreadable), (1, 0));
    let r = AccessReport::build(&t, &query(None, None));
    // February's viewing of P-3 is outside the period.
    let ids: Vec<&str> = r.patients.iter().map(|p| p.patient.id.as_str()).collect();
    assert_eq!(ids, ["P-1", "P-2"]);
    let p1 = &r.patients[0];
    assert_eq!(p1.studies.len(), 1);
    let users: Vec<(&str, &str, u64)> = p1.studies[0]
        .accesses
        .iter()
        .map(|a| (a.user.as_str(), a.operation.as_str(), a.requests))
        .collect();
    assert_eq!(users, [("dr.a", "view", 312), ("dr.b", "download", 1)]);
    // P-2: dr.a viewed, dr.b deleted, in one study.
    assert_eq!(r.patients[1].studies[0].accesses.len(), 2);
    // The unresolved viewing and the search that named no resolved patient.
    assert_eq!(r.unresolved.len(), 2);
    assert_eq!(
        (r.totals.patients, r.totals.studies, r.totals.access_records),
        (2, 2, 6)
    );
    assert_eq!(r.totals.requests, 312 + 40 + 3 + 1 + 1 + 1);
    assert_eq!(r.refusals.sign_ins.len(), 3);
    assert_eq!(r.refusals.lockouts.len(), 1);
    assert_eq!(r.refusals.policy[0].path, "/tools/reset");
    assert_eq!(r.alerts[0].rule, "failed_sign_ins");
}

#[test]
fn filters_keep_one_user_or_one_patient_by_either_id() {
    let (_dir, paths) = trail();
    let t = read(&paths);
    let r = AccessReport::build(&t, &query(Some("dr.b"), None));
    assert!(r.all_accesses().iter().all(|a| a.user == "dr.b"));
    assert_eq!(r.all_accesses().len(), 3);
    assert_eq!(r.refusals.sign_ins.len(), 3);
    assert!(r.refusals.policy.is_empty(), "dr.a's refusal is not dr.b's");
    for id in ["P-1", "aaaa-1111"] {
        let r = AccessReport::build(&t, &query(None, Some(id)));
        let got: Vec<(&str, &str)> = r
            .all_accesses()
            .iter()
            .map(|a| (a.user.as_str(), a.operation.as_str()))
            .collect();
        // The search for PatientID P-1 counts as an access to P-1.
        assert_eq!(
            got,
            [("dr.a", "view"), ("dr.b", "download"), ("dr.b", "search")],
            "{id}"
        );
        assert!(r.refusals.sign_ins.is_empty() && r.alerts.is_empty());
    }
    let r = AccessReport::build(&t, &query(None, Some("P-1x")));
    assert!(r.all_accesses().is_empty());
}

#[test]
fn json_has_stable_field_names_and_no_session_id() {
    let (_dir, paths) = trail();
    let t = read(&paths);
    let out = access_report(&t, &query(None, None), Format::Json, Lang::En);
    assert!(out.intact && out.notice.is_none());
    let v: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(v["report"], "access");
    assert_eq!(v["period"]["from"], "2026-03-01T00:00:00Z");
    assert_eq!(v["period"]["to"], "2026-03-31T23:59:59Z");
    assert_eq!(v["period"]["time_zone"], "UTC");
    assert_eq!(v["trail"]["intact"], true);
    assert!(v["trail"]["verified_through"].is_u64());
    assert_eq!(v["trail"]["unknown_records"], 1);
    let a = &v["patients"][0]["studies"][0]["accesses"][0];
    assert_eq!(v["patients"][0]["patient"]["id"], "P-1");
    assert_eq!(v["patients"][0]["studies"][0]["study"]["uid"], "1.2.3");
    for key in [
        "seq",
        "kind",
        "user",
        "operation",
        "first",
        "last",
        "requests",
        "failed",
        "bytes",
        "client",
        "session_ref",
    ] {
        assert!(a.get(key).is_some(), "{key} missing: {a}");
    }
    assert_eq!(a["kind"], "viewing");
    assert_eq!(a["first"], "2026-03-02T08:01:00Z");
    assert_eq!(a["session_ref"], "sess-a-0");
    assert_eq!(v["refusals"]["sign_ins"][0]["account"], "dr.b");
    assert_eq!(v["refusals"]["lockouts"][0]["seconds"], 900);
    assert_eq!(v["alerts"][0]["severity"], "high");
    assert_eq!(
        v["unresolved"][0]["unresolved"]["why"],
        "the upstream answered 404"
    );
    assert!(!out.body.contains(SESSION_A) && !out.body.contains(SESSION_B));
}

#[test]
fn csv_has_a_header_one_row_per_access_and_rfc_4180_quoting() {
    assert_eq!(csv::field("plain"), "plain");
    assert_eq!(csv::field("a,b"), "\"a,b\"");
    assert_eq!(csv::field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv::field("two\nlines"), "\"two\nlines\"");
    assert_eq!(csv::field("=1+1"), "'=1+1");
    assert_eq!(csv::field("-2"), "'-2");
    assert_eq!(csv::field("@SUM(A1),x"), "\"'@SUM(A1),x\"");

    let (_dir, paths) = trail();
    let t = read(&paths);
    let out = access_report(&t, &query(None, None), Format::Csv, Lang::En);
    // The integrity line goes to standard error: CSV has no place for it.
    assert!(out.notice.unwrap().contains("intact"));
    let rows: Vec<&str> = out.body.split("\r\n").collect();
    assert_eq!(rows.last(), Some(&""), "ends with CRLF");
    assert_eq!(rows[0], csv::COLUMNS.join(","));
    assert_eq!(rows.len() - 2, 6, "{}", out.body);
    assert!(
        rows[1].starts_with("3,viewing,2026-03-02T08:01:00Z,2026-03-02T08:12:00Z,dr.a,view,P-1,\"DOE^JANE, \"\"JJ\"\"\",aaaa-1111,1.2.3,2026-02-27,CT THORAX,312,2,312000,192.0.2.10,sess-a-0,req-1,"),
        "{}",
        rows[1]
    );
    assert!(
        out.body.contains(",\"'=HYPERLINK(\"\"x\"\")\","),
        "{}",
        out.body
    );
    assert!(!out.body.contains(SESSION_A));
}

#[test]
fn text_says_the_period_the_zone_and_the_chain_and_aligns_columns() {
    let (_dir, paths) = trail();
    let t = read(&paths);
    let out = access_report(&t, &query(None, None), Format::Text, Lang::En).body;
    assert!(
        out.contains("Period: 2026-03-01 00:00:00 → 2026-03-31 23:59:59 (UTC)"),
        "{out}"
    );
    assert!(out.contains("Time zone: UTC"), "{out}");
    assert!(
        out.contains("Audit trail: intact, chain verified through record"),
        "{out}"
    );
    assert!(out.contains("Not read: 1 record(s) of a type"), "{out}");
    assert!(
        out.contains("Patient P-1  DOE^JANE, \"JJ\"  (upstream aaaa-1111)"),
        "{out}"
    );
    assert!(out.contains("Study 1.2.3  2026-02-27  CT THORAX"), "{out}");
    let row = out
        .lines()
        .find(|l| l.contains("dr.a") && l.contains("312"))
        .unwrap();
    assert!(
        row.contains("viewed") && row.contains("312 (2 failed)"),
        "{row}"
    );
    let head = out
        .lines()
        .find(|l| l.trim_start().starts_with("user"))
        .unwrap();
    assert_eq!(
        head.find("operation"),
        row.find("viewed"),
        "aligned:\n{head}\n{row}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "an escape sequence reached the terminal"
    );
    assert!(out.contains("ROE^RICHARD?[31m"), "{out}");
    assert!(
        out.contains("Sign-ins refused (3)") && out.contains("Lockouts (1)"),
        "{out}"
    );
    assert!(
        out.contains("/tools/reset") && out.contains("failed_sign_ins"),
        "{out}"
    );
    assert!(!out.contains("sess-"), "{out}");
    let fr = access_report(&t, &query(None, None), Format::Text, Lang::Fr).body;
    assert!(
        fr.contains("Fuseau horaire : UTC") && fr.contains("consulté"),
        "{fr}"
    );
}

#[test]
fn the_patient_history_is_chronological_and_ends_with_a_sentence_for_the_patient() {
    let (_dir, paths) = trail();
    let t = read(&paths);
    let r = PatientReport::build(&t, "P-1", march(), Lang::En);
    let when: Vec<&str> = r.accesses.iter().map(|a| a.first.as_str()).collect();
    assert_eq!(
        when,
        [
            "2026-03-02T08:01:00Z",
            "2026-03-03T09:00:00Z",
            "2026-03-03T09:25:00Z"
        ]
    );
    assert_eq!(
        r.statement,
        "Between 1 March 2026 and 31 March 2026, 2 people accessed your medical images \
         (patient ID P-1) through the practice's image viewer: dr.a (viewing), dr.b (download, \
         search)."
    );
    let fr = PatientReport::build(&t, "P-1", march(), Lang::Fr);
    assert_eq!(
        fr.statement,
        "Entre le 1er mars 2026 et le 31 mars 2026, 2 personnes ont accédé à vos images \
         médicales (identifiant patient P-1) par la visionneuse du cabinet : dr.a \
         (consultation), dr.b (téléchargement, recherche)."
    );
    let text = patient_report(&t, "P-1", march(), Format::Text, Lang::En).body;
    assert!(text.contains("3 access record(s)."), "{text}");
    assert!(
        text.contains("198.51.100.7") && text.contains("downloaded"),
        "{text}"
    );
    assert!(text.ends_with(&format!("{}\n", r.statement)), "{text}");
    let nobody = PatientReport::build(&t, "P-404", march(), Lang::Fr);
    assert!(nobody.accesses.is_empty());
    assert!(
        nobody.statement.contains("personne n'a accédé"),
        "{}",
        nobody.statement
    );
}

#[test]
fn the_deadline_runs_72_hours_from_the_first_alert() {
    let t0 = datetime!(2026-03-03 02:05 UTC);
    assert_eq!(Deadline::compute(None, t0), Deadline::Unknown);
    let due = datetime!(2026-03-06 02:05 UTC);
    assert_eq!(
        Deadline::compute(Some(t0), t0 + Duration::hours(70)),
        Deadline::Running {
            awareness: t0,
            due,
            left: Duration::hours(2)
        }
    );
    assert!(matches!(
        Deadline::compute(Some(t0), due),
        Deadline::Running { left, .. } if left.is_zero()
    ));
    assert_eq!(
        Deadline::compute(Some(t0), due + Duration::minutes(61)),
        Deadline::Overdue {
            awareness: t0,
            due,
            late: Duration::minutes(61)
        }
    );
    assert_eq!(words::span(Duration::minutes(61)), "1 h 01 min");
    assert_eq!(words::span(Duration::hours(50)), "50 h 00 min");
}

#[test]
fn the_breach_draft_names_the_accounts_addresses_counts_and_deadline() {
    let (_dir, paths) = trail();
    let t = read(&paths);
    let now = datetime!(2026-03-04 02:05 UTC);
    let r = BreachReport::build(&t, march(), now);
    let involved: Vec<&str> = r.involved.keys().map(String::as_str).collect();
    assert_eq!(involved, ["dr.a", "dr.b"]);
    let b = &r.involved["dr.b"];
    let why: Vec<&str> = b.why.iter().copied().collect();
    assert_eq!(
        why,
        ["alert", "locked_out", "session_revoked", "sign_in_refused"]
    );
    let a = &r.addresses["203.0.113.5"];
    assert_eq!((a.sign_in_failures, a.lockouts, a.in_alert), (3, 1, true));
    let f = BreachReport::figures(r.involved.values());
    assert_eq!((f.patients, f.studies, f.downloads), (2, 2, 1));

    let en = breach_report(&t, march(), now, Lang::En).body;
    for part in [
        "GDPR art. 33",
        "First sign in the trail (likely start): 2026-03-02 09:41:00 (UTC)",
        "Awareness: 2026-03-03 02:05:00 (UTC)",
        "Assumed to be the first alert of the period (rule failed_sign_ins)",
        "Notification due (72 hours): 2026-03-06 02:05:00 (UTC)",
        "Time left as of 2026-03-04 02:05:00: 48 h 00 min.",
        "3 failed sign-ins for dr.b from 203.0.113.5",
        "Approximate numbers, by the accounts involved: 2 patients, 2 studies",
        "locked out dr.b from 203.0.113.5 for 900 s",
        "ended a session of dr.b (account_disabled)",
        "[TO FILL IN: name, email, telephone]",
        "Likely consequences",
        "Measures taken or planned",
    ] {
        assert!(en.contains(part), "missing {part:?}:\n{en}");
    }
    let late = breach_report(&t, march(), datetime!(2026-03-07 02:05 UTC), Lang::Fr).body;
    assert!(late.contains("DÉLAI DÉPASSÉ de 24 h 00 min"), "{late}");
    assert!(late.contains("[À COMPLÉTER"), "{late}");
    assert!(
        late.contains("Prise de connaissance : 2026-03-03 02:05:00"),
        "{late}"
    );
}

#[test]
fn a_broken_trail_is_still_reported_under_a_warning() {
    let (_dir, paths) = trail();
    let file = paths.dir.join("audit-2026-03-03.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\"dr.b\"", "\"dr.z\"", 1)).unwrap();
    let t = read(&paths);
    assert!(!t.integrity.intact);
    let broken = t.integrity.broken.clone().unwrap();
    let seq = broken.seq.unwrap();
    // The altered record is the one before the line that noticed: not counted as verified.
    assert_eq!(t.integrity.verified_through, Some(seq - 2));
    let out = access_report(&t, &query(None, None), Format::Text, Lang::En);
    assert!(!out.intact);
    assert!(
        out.body.contains("!!! WARNING: THE AUDIT TRAIL IS BROKEN"),
        "{}",
        out.body
    );
    assert!(
        out.body
            .contains(&format!("Records 0 to {} verified", seq - 2)),
        "{}",
        out.body
    );
    // What the file says is still read and reported.
    assert!(out.body.contains("dr.z"), "{}", out.body);
    let out = access_report(&t, &query(None, None), Format::Csv, Lang::Fr);
    assert!(out.notice.unwrap().contains("ROMPU"));
    let v: serde_json::Value =
        serde_json::from_str(&access_report(&t, &query(None, None), Format::Json, Lang::En).body)
            .unwrap();
    assert_eq!(v["trail"]["intact"], false);
    assert_eq!(v["trail"]["broken"]["seq"], seq);
    assert!(!breach_report(&t, march(), datetime!(2026-03-04 00:00 UTC), Lang::En).intact);
}
