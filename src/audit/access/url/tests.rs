//! The parser against Orthanc's whole route table, the URLs of real viewer sessions, and
//! arbitrary input.

use http::Method;
use proptest::prelude::*;

use super::classify;
use crate::audit::access::{Operation, Target, Touch};

const PATIENT: &str = "a1b2c3d4-a1b2c3d4-a1b2c3d4-a1b2c3d4-a1b2c3d4";
const STUDY: &str = "0f0f0f0f-11111111-22222222-33333333-44444444";
const SERIES: &str = "5a5a5a5a-66666666-77777777-88888888-99999999";
const INSTANCE: &str = "deadbeef-00000000-11111111-22222222-33333333";
const STUDY_UID: &str = "1.2.826.0.1.3680043.8.498.1";
const SERIES_UID: &str = "1.2.826.0.1.3680043.8.498.2";
const SOP_UID: &str = "1.2.826.0.1.3680043.8.498.3";

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::View => "view",
        Operation::Search => "search",
        Operation::Download => "download",
        Operation::Upload => "upload",
        Operation::Modify => "modify",
        Operation::Delete => "delete",
        Operation::Export => "export",
    }
}

/// A touch in the fixtures' notation: `op target`, or `none`.
fn render(t: &Option<Touch>) -> String {
    let Some(t) = t else {
        return "none".into();
    };
    let target = match &t.target {
        Target::OrthancPatient(id) => format!("patient:{id}"),
        Target::OrthancStudy(id) => format!("study:{id}"),
        Target::OrthancSeries(id) => format!("series:{id}"),
        Target::OrthancInstance(id) => format!("instance:{id}"),
        Target::Dicom {
            root,
            study,
            series,
            instance,
        } => format!(
            "dicom:{root}|{study}|{}|{}",
            series.as_deref().unwrap_or("-"),
            instance.as_deref().unwrap_or("-")
        ),
        Target::Query(q) => {
            let q: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("query:{}", q.join(","))
        }
        Target::Unnamed => "unnamed".into(),
    };
    format!("{} {target}", op_name(t.operation))
}

fn run(method: &str, target: &str) -> Option<Touch> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    classify(&method, path, query)
}

/// A route of the table with its placeholders filled (see orthanc-routes.txt).
fn fill(path: &str) -> String {
    let level_id = match path.split('/').nth(1) {
        Some("patients") => PATIENT,
        Some("studies") => STUDY,
        Some("series") => SERIES,
        Some("instances") => INSTANCE,
        _ => "x",
    };
    let any = if path.starts_with("/web-viewer/instances/") {
        format!("jpeg95-{INSTANCE}_0")
    } else if path.starts_with("/web-viewer/series/") || path.starts_with("/web-viewer/is-stable") {
        SERIES.to_owned()
    } else if path.contains("/bulk/") {
        "00420011".to_owned()
    } else {
        "x.js".to_owned()
    };
    let filled = path
        .replace("{id}", level_id)
        .replace("{study}", STUDY_UID)
        .replace("{series}", SERIES_UID)
        .replace("{instance}", SOP_UID)
        .replace("{name}", "dicom")
        .replace("{frames}", "1")
        .replace("{frame}", "0")
        .replace("{index}", "0")
        .replace("{key}", "archive")
        .replace("{server}", "remote")
        .replace("{...}", &any);
    if filled == "/wado" {
        format!(
            "/wado?requestType=WADO&studyUID={STUDY_UID}&seriesUID={SERIES_UID}&objectUID={SOP_UID}"
        )
    } else {
        filled
    }
}

#[test]
fn every_orthanc_route_has_its_deliberate_classification() {
    let json: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../tests/e2e/orthanc-1.10-routes.json"
    ))
    .unwrap();
    let routes: Vec<(String, String)> = json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = r["method"].as_str().unwrap().to_owned();
            (m, r["path"].as_str().unwrap().to_owned())
        })
        .collect();
    let table: Vec<(&str, &str, &str)> = include_str!("orthanc-routes.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "bad line: {l}");
            (f[0], f[1], f[2])
        })
        .collect();
    assert_eq!(
        routes.len(),
        328,
        "the route table changed: update orthanc-routes.txt"
    );
    let mut wrong = Vec::new();
    for (m, p) in &routes {
        let Some((_, _, want)) = table.iter().find(|(tm, tp, _)| tm == m && tp == p) else {
            wrong.push(format!("{m} {p}: not in orthanc-routes.txt"));
            continue;
        };
        let target = fill(p);
        let got = run(m, &target);
        let got = got.as_ref().map_or("none", |t| op_name(t.operation));
        if got != *want {
            wrong.push(format!("{m} {target}: {got}, want {want}"));
        }
    }
    for (m, p, _) in &table {
        if !routes.iter().any(|(rm, rp)| rm == m && rp == p) {
            wrong.push(format!("{m} {p}: in orthanc-routes.txt, not a route"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn real_viewer_urls_are_classified_as_the_fixture_says() {
    let mut wrong = Vec::new();
    let mut n = 0;
    for line in include_str!("../real-urls.txt").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (request, want) = line.split_once(" => ").unwrap();
        let (method, target) = request.trim().split_once(' ').unwrap();
        let got = render(&run(method, target.trim()));
        if got != want.trim() {
            wrong.push(format!("{request}\n   got  {got}\n   want {}", want.trim()));
        }
        n += 1;
    }
    assert!(n > 100, "only {n} lines in real-urls.txt");
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn method_faking_is_recorded_as_the_more_serious() {
    let study = format!("/studies/{STUDY}");
    for (query, want) in [
        ("_method=DELETE", "delete"),
        ("_method=delete", "delete"),
        ("%5Fmethod=DeLeTe", "delete"),
        ("_%6Dethod=%44ELETE", "delete"),
        ("+_method+=+delete+", "delete"),
        ("_method=PUT", "modify"),
        ("_method=POST", "modify"),
        ("_method=GET", "view"),
        ("_method=FOO", "delete"),
        ("_method=GET&_method=DELETE", "delete"),
        ("_method=DELETE&_method=GET", "delete"),
        ("expand&_method_x=DELETE", "view"),
        ("x_method=DELETE", "view"),
        ("_method", "delete"),
    ] {
        let got = run("GET", &format!("{study}?{query}"));
        assert_eq!(
            got.as_ref().map(|t| op_name(t.operation)),
            Some(want),
            "{query}"
        );
    }
    // A faked method on a route that only means something under that method.
    assert_eq!(
        render(&run("GET", "/tools/bulk-delete?_method=POST")),
        "delete unnamed"
    );
    // A DELETE is never made lighter by a faked GET.
    assert_eq!(
        render(&run("DELETE", &format!("{study}?_method=GET"))),
        format!("delete study:{STUDY}")
    );
    assert_eq!(
        render(&run("GET", "/app/explorer.html?_method=DELETE")),
        "none"
    );
}

#[test]
fn search_criteria_keep_only_what_names_a_patient_or_study() {
    assert_eq!(
        render(&run(
            "GET",
            "/dicom-web/studies?PatientID=P%2F1&patientname=DOE%5EJ*&00080050=A1&token=secret\
             &access_token=x&includefield=00100020&limit=10&fuzzymatching=true&StudyDate=2020-2021"
        )),
        "search query:PatientID=P/1,PatientName=DOE^J*,AccessionNumber=A1,StudyDate=2020-2021"
    );
    let long = "9".repeat(300);
    let got = run("GET", &format!("/dicomweb/studies?PatientID={long}"));
    let Some(Touch {
        target: Target::Query(q),
        ..
    }) = got
    else {
        panic!("not a search: {got:?}");
    };
    assert_eq!(q[0].1.len(), 256);
    // Orthanc's lists ignore criteria: a search of everything.
    assert_eq!(
        render(&run("GET", "/studies?PatientID=1&expand")),
        "search query:"
    );
}

#[test]
fn identifiers_must_have_their_shape() {
    for (m, target) in [
        ("GET", "/patients/xyz"),
        (
            "GET",
            "/patients/A1B2C3D4-A1B2C3D4-A1B2C3D4-A1B2C3D4-A1B2C3D4",
        ),
        ("GET", "/series/1.2.3"),
        ("GET", "/web-viewer/series/1.2.3"),
        ("GET", "/web-viewer/instances/jpeg95-nothex_0"),
        ("GET", "/web-viewer/instances/nodash"),
        ("GET", "/wado?requestType=WADO&objectUID=abc"),
        ("GET", "/wado"),
        ("GET", "/dicom-web/studies/abc/series"),
        ("GET", "/"),
        ("OPTIONS", "/dicom-web/studies"),
    ] {
        assert_eq!(render(&run(m, target)), "none", "{m} {target}");
    }
    let long_uid = format!("1.{}", "2".repeat(64));
    assert_eq!(
        render(&run("GET", &format!("/dicom-web/studies/{long_uid}"))),
        "none"
    );
}

#[test]
fn dicomweb_under_any_root() {
    for root in [
        "",
        "/dicom-web",
        "/dicomweb",
        "/dcm4chee-arc/aets/DCM4CHEE/rs",
        "/wado-rs",
    ] {
        let base = format!("{root}/studies/{STUDY_UID}/series/{SERIES_UID}/instances/{SOP_UID}");
        assert_eq!(
            render(&run("GET", &format!("{base}/frames/1,2"))),
            format!("view dicom:{root}|{STUDY_UID}|{SERIES_UID}|{SOP_UID}"),
        );
        assert_eq!(
            render(&run("GET", &base)),
            format!("download dicom:{root}|{STUDY_UID}|{SERIES_UID}|{SOP_UID}"),
        );
        assert_eq!(
            render(&run("DELETE", &format!("{root}/studies/{STUDY_UID}"))),
            format!("delete dicom:{root}|{STUDY_UID}|-|-"),
        );
    }
    // A trailing slash names the same resource.
    assert_eq!(
        run("GET", &format!("/dicom-web/studies/{STUDY_UID}/metadata/")),
        run("GET", &format!("/dicom-web/studies/{STUDY_UID}/metadata")),
    );
    assert_eq!(render(&run("GET", "/dicom-web/app/client/studies")), "none");
}

/// Methods, including extension ones the guard refuses before.
fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::PATCH),
        Just(Method::OPTIONS),
        "[A-Z]{1,8}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

/// Paths spelled from the parser's own words, identifiers and hostile bytes.
fn path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("studies".to_owned()),
        Just("series".to_owned()),
        Just("instances".to_owned()),
        Just("patients".to_owned()),
        Just("web-viewer".to_owned()),
        Just("wado".to_owned()),
        Just("servers".to_owned()),
        Just("frames".to_owned()),
        Just("app".to_owned()),
        Just("tools".to_owned()),
        Just("queries".to_owned()),
        Just("answers".to_owned()),
        Just(STUDY.to_owned()),
        Just(STUDY_UID.to_owned()),
        Just(format!("jpeg95-{INSTANCE}_0")),
        "[0-9.]{0,70}",
        "[a-f0-9-]{0,50}",
        "\\PC{0,12}",
        "[-_%+&=?/é]{0,6}",
    ];
    (proptest::collection::vec(seg, 0..30), any::<bool>()).prop_map(|(segs, slash)| {
        let p = format!("/{}", segs.join("/"));
        if slash { format!("{p}/") } else { p }
    })
}

fn query() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        "\\PC{0,40}",
        "(_method|%5[fF]method|PatientID|studyUID|objectUID|contentType|00100020|x)=[A-Za-z0-9.%/+ ]{0,20}(&[a-zA-Z_%0-9]{0,9}=[^&]{0,12}){0,4}",
    ])
}

proptest! {
    #[test]
    fn no_input_panics_and_results_are_bounded(m in method(), p in path(), q in query()) {
        if let Some(Touch { target: Target::Query(q), .. }) = classify(&m, &p, q.as_deref()) {
            for (k, v) in q {
                prop_assert!(super::query::CRITERIA.iter().any(|(word, _)| *word == k), "{k}");
                prop_assert!(v.len() <= super::query::MAX_VALUE);
            }
        }
    }

    #[test]
    fn static_files_are_never_patient_data(
        prefix in prop_oneof![
            Just("/app/"), Just("/web-viewer/app/"), Just("/web-viewer/libs/"), Just("/ohif/"),
            Just("/stone-webviewer/"), Just("/_vigie/"), Just("/dicom-web/app/client/"),
        ],
        p in path(),
        q in "[a-zA-Z0-9=&.]{0,30}",
    ) {
        let full = format!("{prefix}{}", p.trim_start_matches('/'));
        prop_assert_eq!(classify(&Method::GET, &full, Some(&q)), None, "{}", full);
    }
}
