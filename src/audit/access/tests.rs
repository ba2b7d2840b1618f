//! The recorder on a real trail: a viewer's requests become one record per study, whom they
//! concern is asked once, and what cannot be resolved is still recorded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::resolve::Resolver;
use super::viewing::{self, Access, Msg, Viewings};
use super::{Operation, Target, Touch};
use crate::audit::{AuditPaths, AuditWriter, WriterOptions};

const STUDY: &str = "11111111-22222222-33333333-44444444-55555555";
const SERIES: &str = "aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-eeeeeeee";
const PATIENT: &str = "99999999-88888888-77777777-66666666-55555555";

fn instance(n: u32) -> String {
    format!("{n:08x}-00000000-00000000-00000000-00000000")
}

/// What an Orthanc holding one study of 40 instances answers.
fn orthanc() -> HashMap<String, String> {
    let mut answers = HashMap::new();
    for n in 0..40 {
        answers.insert(
            format!("/instances/{}", instance(n)),
            format!(r#"{{"ID":"{}","ParentSeries":"{SERIES}"}}"#, instance(n)),
        );
    }
    answers.insert(
        format!("/series/{SERIES}"),
        format!(r#"{{"ID":"{SERIES}","ParentStudy":"{STUDY}"}}"#),
    );
    answers.insert(
        format!("/studies/{STUDY}"),
        format!(
            r#"{{"ID":"{STUDY}","ParentPatient":"{PATIENT}","MainDicomTags":{{"StudyInstanceUID":"1.2.840.1","StudyDate":"20260301","StudyDescription":"CT THORAX"}},"PatientMainDicomTags":{{"PatientID":"P-0042","PatientName":"DOE^JANE"}}}}"#
        ),
    );
    answers.insert(
        "/dicom-web/studies?StudyInstanceUID=1.2.840.7&includefield=00100020&includefield=00100010&includefield=00080020&includefield=00081030".into(),
        r#"[{"00100020":{"vr":"LO","Value":["P-0007"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"ROE^RICHARD"}]},"00080020":{"vr":"DA","Value":["20251224"]}}]"#.into(),
    );
    answers.insert(
        "/dicom-web/instances?SOPInstanceUID=1.2.840.7.1.1&includefield=0020000D".into(),
        r#"[{"0020000D":{"vr":"UI","Value":["1.2.840.7"]}}]"#.into(),
    );
    answers
}

fn access(session: &str, operation: Operation, target: Target, bytes: u64) -> Msg {
    Msg::Access(Box::new(Access {
        at: time::OffsetDateTime::now_utc(),
        user: Arc::from("dr.martin"),
        session: Arc::from(session),
        client: "192.0.2.7".parse().unwrap(),
        touch: Touch { operation, target },
        method: http::Method::GET,
        path: Some("/some/path".into()),
        request_id: Some(http::HeaderValue::from_static("req-1")),
        status: 200,
        bytes,
    }))
}

/// A trail in a temporary directory, its writer, and the recorder over the Orthanc above.
fn recorder(
    idle: Duration,
) -> (
    tempfile::TempDir,
    AuditPaths,
    AuditWriter,
    viewing::AccessSink,
    Viewings,
) {
    let dir = tempfile::tempdir().unwrap();
    let paths = AuditPaths::under(dir.path());
    let options = WriterOptions {
        retention: Duration::from_secs(365 * 86_400),
        stdout: false,
    };
    let (auditor, writer) = AuditWriter::start(&paths, options, None).unwrap();
    let (sink, rx) = viewing::channel();
    let viewings = Viewings::spawn(rx, Resolver::with_answers(orthanc()), auditor, idle);
    (dir, paths, writer, sink, viewings)
}

/// Runs the recorder over `msgs` and returns the trail's events.
async fn record(msgs: Vec<Msg>, idle: Duration) -> Vec<serde_json::Value> {
    let (_dir, paths, writer, sink, viewings) = recorder(idle);
    for m in msgs {
        sink.send(m);
    }
    viewings.finish().await;
    writer.finish();
    crate::audit::verify(&paths).unwrap();
    let mut events = Vec::new();
    for f in std::fs::read_dir(&paths.dir).unwrap() {
        for line in std::fs::read_to_string(f.unwrap().path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(e) = v.get("event") {
                events.push(e.clone());
            }
        }
    }
    events
}

#[tokio::test]
async fn a_viewer_scrolling_a_study_is_one_record_with_its_request_count() {
    let mut msgs = Vec::new();
    // The Web Viewer: the series, then every instance, twice (scrolling back).
    msgs.push(access(
        "s1",
        Operation::View,
        Target::OrthancSeries(SERIES.into()),
        500,
    ));
    for round in 0..2 {
        for n in 0..40 {
            let _ = round;
            msgs.push(access(
                "s1",
                Operation::View,
                Target::OrthancInstance(instance(n)),
                1000,
            ));
        }
    }
    let events = record(msgs, Duration::from_secs(600)).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["type"], "study_access");
    assert_eq!(e["operation"], "view");
    assert_eq!(e["user"], "dr.martin");
    assert_eq!(e["patient"]["id"], "P-0042");
    assert_eq!(e["patient"]["name"], "DOE^JANE");
    assert_eq!(e["patient"]["upstream_id"], PATIENT);
    assert_eq!(e["study"]["uid"], "1.2.840.1");
    assert_eq!(e["study"]["date"], "20260301");
    assert_eq!(e["requests"], 81);
    assert_eq!(e["bytes"], 500 + 80 * 1000);
    assert_eq!(e["failed"], 0);
    assert_eq!(e["client"], "192.0.2.7");
}

#[tokio::test]
async fn sessions_operations_and_studies_are_recorded_apart() {
    let msgs = vec![
        access("s1", Operation::View, Target::OrthancStudy(STUDY.into()), 1),
        access("s2", Operation::View, Target::OrthancStudy(STUDY.into()), 1),
        access(
            "s1",
            Operation::Download,
            Target::OrthancStudy(STUDY.into()),
            1,
        ),
        access(
            "s1",
            Operation::View,
            Target::Dicom {
                root: "/dicom-web".into(),
                study: "1.2.840.7".into(),
                series: None,
                instance: None,
            },
            1,
        ),
    ];
    let events = record(msgs, Duration::from_secs(600)).await;
    assert_eq!(events.len(), 4, "{events:#?}");
    let dicomweb = events
        .iter()
        .find(|e| e["study"]["uid"] == "1.2.840.7")
        .expect("the DICOMweb study");
    assert_eq!(dicomweb["patient"]["id"], "P-0007");
    assert_eq!(dicomweb["patient"]["name"], "ROE^RICHARD");
    assert_eq!(dicomweb["study"]["date"], "20251224");
}

#[tokio::test]
async fn what_the_upstream_cannot_resolve_is_recorded_with_why() {
    let unknown = "deadbeef-00000000-00000000-00000000-00000000";
    let msgs = vec![
        access(
            "s1",
            Operation::View,
            Target::OrthancInstance(unknown.into()),
            1,
        ),
        access(
            "s1",
            Operation::View,
            Target::OrthancInstance(unknown.into()),
            1,
        ),
        access(
            "s1",
            Operation::Delete,
            Target::OrthancStudy(unknown.into()),
            0,
        ),
        access(
            "s1",
            Operation::Search,
            Target::Query(vec![("PatientID".into(), "P-0042".into())]),
            10,
        ),
    ];
    let events = record(msgs, Duration::from_secs(600)).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    let view = events.iter().find(|e| e["type"] == "study_access").unwrap();
    assert_eq!(view["requests"], 2);
    assert_eq!(
        view["unresolved"]["resource"],
        format!("orthanc instance {unknown}")
    );
    assert_eq!(view["unresolved"]["why"], "the upstream answered 404");
    let delete = events.iter().find(|e| e["operation"] == "delete").unwrap();
    assert_eq!(delete["type"], "data_access");
    assert_eq!(delete["path"], "/some/path");
    assert_eq!(delete["request_id"], "req-1");
    let search = events.iter().find(|e| e["operation"] == "search").unwrap();
    assert_eq!(search["criteria"][0][0], "PatientID");
    assert_eq!(search["criteria"][0][1], "P-0042");
}

#[tokio::test]
async fn a_viewing_closes_when_idle_and_a_new_one_opens_after() {
    let (_dir, paths, writer, sink, viewings) = recorder(Duration::from_millis(300));
    sink.send(access(
        "s1",
        Operation::View,
        Target::OrthancStudy(STUDY.into()),
        1,
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sink.send(access(
        "s1",
        Operation::View,
        Target::OrthancStudy(STUDY.into()),
        1,
    ));
    sink.send(Msg::EndSession(Arc::from("s1")));
    // Closed by the session's end, not by the shutdown.
    tokio::time::sleep(Duration::from_millis(100)).await;
    viewings.finish().await;
    writer.finish();
    let text: String = std::fs::read_dir(&paths.dir)
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert_eq!(text.matches("\"study_access\"").count(), 2, "{text}");
}

#[tokio::test]
async fn wado_uri_at_the_root_and_naming_only_the_instance_is_resolved() {
    let wado = |study: &str, instance: Option<&str>| Target::Dicom {
        root: String::new(),
        study: study.into(),
        series: None,
        instance: instance.map(String::from),
    };
    let msgs = vec![
        access(
            "s1",
            Operation::View,
            wado("1.2.840.7", Some("1.2.840.7.1.1")),
            1,
        ),
        access("s1", Operation::View, wado("", Some("1.2.840.7.1.1")), 1),
    ];
    let events = record(msgs, Duration::from_secs(600)).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["patient"]["id"], "P-0007");
    assert_eq!(events[0]["requests"], 2);
}

#[tokio::test]
async fn a_flood_of_refused_requests_never_crowds_out_an_access() {
    // More refusals than the accesses' queue holds, all queued before the recorder runs.
    let mut msgs: Vec<Msg> = (0..70_000)
        .map(|n| Msg::Refused {
            at: time::OffsetDateTime::now_utc(),
            client: "198.51.100.9".parse().unwrap(),
            reason: "no_session",
            path: format!("/probe/{n}").into(),
        })
        .collect();
    msgs.push(access(
        "s1",
        Operation::View,
        Target::OrthancStudy(STUDY.into()),
        1,
    ));
    let events = record(msgs, Duration::from_secs(600)).await;
    let viewed = events
        .iter()
        .filter(|e| e["type"] == "study_access")
        .count();
    assert_eq!(viewed, 1, "the access was dropped");
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "gate_refusals")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["first_path"], "/probe/0");
}
