//! The viewer-URL parser: which patient data a proxied request touches, read from its method,
//! path and query alone (the body is never read), called by the session gate on every proxied
//! request.
//!
//! The path it is given is the guard's normalised one (`http_util::path`): it starts with `/`,
//! has no empty segment except perhaps a trailing `/` (ignored here, as Orthanc ignores it), no
//! `.` or `..`, and unreserved characters are decoded, so `studies`, UIDs (digits and dots) and
//! Orthanc identifiers (hex and dashes) have one spelling only. Matching is case-sensitive, as
//! Orthanc's and DICOMweb's routes are. The query is as sent.
//!
//! Hot path: a request that touches no patient data (the viewers' code, styles, `/system`…)
//! is answered `None` from `&str` slices and a fixed array on the stack, without allocating;
//! only a `Some` allocates its strings. Hand-written for that reason (no regex, no URL crate).
//!
//! # What is recognised
//!
//! - Orthanc REST at the root: `/{patients,studies,series,instances}[/{id}[/…]]` (an `{id}` is
//!   Orthanc's `xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx`, lower-case hex: anything else
//!   is a 404 there, no data), `/tools/…`, `/modalities/…`, `/peers/…`, `/queries/…`, `/jobs/…`,
//!   `/transfers/…` (the transfers accelerator plugin).
//! - The Orthanc Web Viewer: `/web-viewer/series/{series}`, `/web-viewer/is-stable-series/
//!   {series}`, `/web-viewer/instances/{compression}-{instance}_{frame}`.
//! - DICOMweb under any root (`/dicom-web`, `/dicomweb`, `/dcm4chee-arc/aets/X/rs`, or none):
//!   `{root}/studies/{uid}[/series/{uid}[/instances/{uid}]][/…]` and the QIDO searches
//!   `{root}/{studies,series,instances}`; `{root}/servers/{name}/{action}` (Orthanc's DICOMweb
//!   client).
//! - WADO-URI: `{root}/wado?requestType=WADO&studyUID=…&seriesUID=…&objectUID=…`.
//!   `Target::Dicom::study` is empty when only `objectUID` is given (Orthanc accepts that).
//! - Not patient data (`None`): `/app/…`, `/web-viewer/{app,libs}/…`, `{root}/app/…` of the
//!   DICOMweb plugin, `/ohif/…` and `/stone-webviewer/…` (static pages: the data they show
//!   comes through the routes above), `/_vigie/…`, `/system`, `/plugins…`, `/statistics`,
//!   `/changes`, `/exports`, server settings (`/tools/log-level…`, modalities' and peers'
//!   configuration), `OPTIONS` (CORS pre-flight), and anything not listed here.
//!
//! # Operations
//!
//! | request | operation |
//! |---|---|
//! | GET (or HEAD) of a patient, study, series or instance, its sub-resources, tags, metadata, frames, images, previews, PDF; DICOMweb `metadata`, `rendered`, `thumbnail`, `frames`, `bulk…`; a listing inside a named study (`{root}/studies/{uid}/series`, Orthanc's `/studies/{id}/series`); the Web Viewer's routes; WADO-URI with another `contentType` or none (Orthanc's default is `image/jpg`) | View |
//! | a list without an id (`GET /patients`, `/studies`, `/series`, `/instances`), QIDO `{root}/{studies,series,instances}` (the criteria naming a patient or study kept, see below), `POST /tools/find`, `/tools/lookup`, `/modalities/{m}/query` and `find…`, `/queries/{id}/answers…`, `{root}/servers/{s}/qido`, `/transfers/lookup` | Search |
//! | GET `/instances/{id}/file`, `…/archive`, `…/media` (GET or POST), `…/numpy`, `…/matlab`, `…/attachments/{name}/data` and `compressed-data`; `/tools/create-archive`, `create-media…`; `/jobs/{id}/archive` and `media`; WADO-RS retrieval of a whole study, series or instance (`{root}/studies/{uid}[/series/{uid}[/instances/{uid}]]`: the DICOM files); WADO-URI with `contentType=application/dicom…` | Download |
//! | POST `/instances`, `/tools/create-dicom`; STOW `POST {root}/studies[/{uid}]`; retrievals into the server (`/queries/…/retrieve`, `{root}/servers/{s}/retrieve`, `/transfers/pull`, `/transfers/push…`) | Upload |
//! | PUT anything (metadata, attachments, labels, `protected`); POST `…/modify`, `…/anonymize`, `…/reconstruct`, `merge`, `split`, attachments' `compress`/`uncompress`; `/tools/bulk-modify`, `bulk-anonymize`, `reconstruct`, `execute-script`; DELETE of a metadata entry or a label | Modify |
//! | DELETE of a resource or an attachment (Orthanc REST or DICOMweb); `/tools/bulk-delete`; `{root}/servers/{s}/delete` | Delete |
//! | POST `/modalities/{m}/store`, `store-straight`, `move`, `storage-commitment`; `/peers/{p}/store`, `store-straight`; `/instances/{id}/export` and the other levels' `export`; `/transfers/send`; `/transfers/chunks/…` (a peer pulling); `{root}/servers/{s}/stow` | Export |
//!
//! A method the route does not list gets the operation of its kind (GET: View, POST or PUT:
//! Modify, DELETE: Delete) on the resource the path names, so a route Orthanc adds later is
//! still recorded. `Query` keeps only the criteria that name a patient or a study, keyed by
//! their DICOM keyword however they were written (keyword in any case, or tag `00100020`),
//! values percent-decoded and cut at 256 bytes; every other parameter (`limit`, `includefield`,
//! tokens…) is dropped. A `_method` parameter (Orthanc's method faking, refused by the guard
//! before) is read too: the request is recorded as the more serious of its wire method's
//! operation and `_method`'s (an unknown `_method` counts as DELETE).

use http::Method;

use super::{Operation, Target, Touch};
use query::{criteria, faked_verb};

mod query;

/// How many path segments are looked at; a viewer's longest (a frame of a DICOMweb instance
/// under a deep root) has about a dozen. Deeper paths are judged on their first ones.
const MAX_SEGMENTS: usize = 24;

/// What the request touches, or `None` when it is not patient data (see the module doc).
pub(crate) fn classify(method: &Method, path: &str, query: Option<&str>) -> Option<Touch> {
    let verb = Verb::of(method)?;
    let mut segs = [""; MAX_SEGMENTS];
    let n = split(path, &mut segs);
    let segs = &segs[..n];
    let wire = route(verb, segs, path, query);
    let faked = query.and_then(faked_verb);
    match faked {
        Some(v) if v != verb => {
            let other = route(v, segs, path, query);
            match (wire, other) {
                (Some(a), Some(b)) if severity(b.operation) > severity(a.operation) => Some(b),
                (None, b) => b,
                (a, _) => a,
            }
        }
        _ => wire,
    }
}

/// The request method, as far as data is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Read,
    Post,
    Put,
    Delete,
}

impl Verb {
    fn of(m: &Method) -> Option<Verb> {
        match *m {
            Method::GET | Method::HEAD => Some(Verb::Read),
            Method::POST => Some(Verb::Post),
            Method::PUT | Method::PATCH => Some(Verb::Put),
            Method::DELETE => Some(Verb::Delete),
            // OPTIONS is a CORS pre-flight; CONNECT and TRACE are refused by the guard.
            _ => None,
        }
    }

    /// The operation of a method on a route that does not say otherwise.
    fn default_op(self) -> Operation {
        match self {
            Verb::Read => Operation::View,
            Verb::Post | Verb::Put => Operation::Modify,
            Verb::Delete => Operation::Delete,
        }
    }
}

/// Orders operations by how serious a record of them is, for method faking.
pub(super) fn severity(op: Operation) -> u8 {
    match op {
        Operation::View => 0,
        Operation::Search => 1,
        Operation::Download => 2,
        Operation::Upload => 3,
        Operation::Modify => 4,
        Operation::Export => 5,
        Operation::Delete => 6,
    }
}

/// Fills `out` with the path's segments (a trailing `/` ignored); returns how many.
fn split<'a>(path: &'a str, out: &mut [&'a str; MAX_SEGMENTS]) -> usize {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return 0;
    }
    let mut n = 0;
    for seg in trimmed.split('/') {
        if n == MAX_SEGMENTS {
            break;
        }
        out[n] = seg;
        n += 1;
    }
    n
}

fn touch(operation: Operation, target: Target) -> Option<Touch> {
    Some(Touch { operation, target })
}

fn unnamed(operation: Operation) -> Option<Touch> {
    touch(operation, Target::Unnamed)
}

fn everything() -> Option<Touch> {
    touch(Operation::Search, Target::Query(Vec::new()))
}

/// The routes, by their first segment.
fn route(verb: Verb, s: &[&str], path: &str, query: Option<&str>) -> Option<Touch> {
    use Operation::*;
    use Verb::{Post, Put, Read};
    let first = *s.first()?;
    match first {
        "patients" | "studies" | "series" | "instances" => orthanc_or_root_dicomweb(verb, s),
        "web-viewer" => web_viewer(s),
        "tools" => match (verb, s.get(1).copied()?) {
            (Post, "find" | "lookup") => everything(),
            (Post, "bulk-delete") => unnamed(Delete),
            (Post, "bulk-modify" | "bulk-anonymize" | "reconstruct" | "execute-script") => {
                unnamed(Modify)
            }
            (Post, "bulk-content") => unnamed(View),
            (Post, "create-archive" | "create-media" | "create-media-extended") => {
                unnamed(Download)
            }
            (Post, "create-dicom") => unnamed(Upload),
            _ => None,
        },
        "modalities" => match (verb, s.get(2).copied()?) {
            (Post, "store" | "store-straight" | "move" | "storage-commitment") => unnamed(Export),
            (Post, "query" | "find-patient" | "find-study" | "find-series" | "find-instance") => {
                everything()
            }
            (Post, "find" | "find-worklist") => everything(),
            _ => None,
        },
        "peers" => match (verb, s.get(2).copied()?) {
            (Post, "store" | "store-straight") => unnamed(Export),
            _ => None,
        },
        "queries" => match (verb, &s[1..]) {
            (Post, [_, "retrieve"] | [_, "answers", _, "retrieve"]) => unnamed(Upload),
            (Post, [_, "answers", _, q]) if q.starts_with("query-") => everything(),
            (Read, [_, "answers", ..] | [_, "query"]) => everything(),
            _ => None,
        },
        "jobs" => match (verb, &s[1..]) {
            (Read, [_, "archive" | "media"]) => unnamed(Download),
            _ => None,
        },
        "transfers" => match (verb, s.get(1).copied()?) {
            (Post, "send") => unnamed(Export),
            (Post, "pull") => unnamed(Upload),
            (Post | Put, "push") => unnamed(Upload),
            (Read, "chunks") => unnamed(Export),
            (Post, "lookup") => everything(),
            _ => None,
        },
        // Static files and server-wide routes that name no patient.
        "app" | "ohif" | "stone-webviewer" | "_vigie" | "system" | "plugins" | "statistics"
        | "changes" | "exports" | "storage-commitment" | "favicon.ico" => None,
        _ => elsewhere(verb, s, path, query),
    }
}

/// `/{patients,studies,series,instances}…`: Orthanc's REST API, or DICOMweb rooted at `/`
/// when the second segment is a UID.
fn orthanc_or_root_dicomweb(verb: Verb, s: &[&str]) -> Option<Touch> {
    use Operation::*;
    let Some(&id) = s.get(1) else {
        // A list of everything (Orthanc ignores criteria here: recorded as a search of all).
        return match verb {
            Verb::Read => everything(),
            Verb::Post => unnamed(Upload),
            Verb::Put => unnamed(Modify),
            Verb::Delete => unnamed(Delete),
        };
    };
    if !is_orthanc_id(id) {
        return if s[0] == "studies" && is_uid(id) {
            dicomweb(verb, s, 0, "")
        } else {
            None
        };
    }
    let id = id.to_owned();
    let target = match s[0] {
        "patients" => Target::OrthancPatient(id),
        "studies" => Target::OrthancStudy(id),
        "series" => Target::OrthancSeries(id),
        _ => Target::OrthancInstance(id),
    };
    let op = match (verb, &s[2..]) {
        (Verb::Delete, ["metadata" | "labels", ..]) => Modify,
        (Verb::Post, ["modify" | "anonymize" | "reconstruct" | "merge" | "split"]) => Modify,
        (Verb::Post, ["archive" | "media"]) => Download,
        (Verb::Post, ["export"]) => Export,
        (Verb::Post, ["attachments", _, "verify-md5"]) => View,
        (
            Verb::Read,
            ["archive" | "media" | "file" | "numpy" | "matlab"]
            | ["frames", _, "numpy" | "matlab"]
            | ["attachments", _, "data" | "compressed-data"],
        ) => Download,
        (v, _) => v.default_op(),
    };
    touch(op, target)
}

/// The Orthanc Web Viewer plugin's routes.
fn web_viewer(s: &[&str]) -> Option<Touch> {
    match s.get(1..)? {
        ["series" | "is-stable-series", id] if is_orthanc_id(id) => {
            touch(Operation::View, Target::OrthancSeries((*id).to_owned()))
        }
        // `{compression}-{instance}_{frame}`, e.g. `jpeg95-<id>_0`.
        ["instances", spec] => {
            let (_, rest) = spec.split_once('-')?;
            let (id, frame) = rest.rsplit_once('_')?;
            (is_orthanc_id(id) && !frame.is_empty() && frame.bytes().all(|b| b.is_ascii_digit()))
                .then(|| Touch {
                    operation: Operation::View,
                    target: Target::OrthancInstance(id.to_owned()),
                })
        }
        _ => None,
    }
}

/// Paths whose first segment is not one of Orthanc's: DICOMweb under a root, its plugin's
/// client routes, WADO-URI.
fn elsewhere(verb: Verb, s: &[&str], path: &str, query: Option<&str>) -> Option<Touch> {
    use Operation::*;
    let last = s.len().checked_sub(1)?;
    // The DICOMweb plugin's own pages and libraries (`{root}/app/…`).
    if s[..last].contains(&"app") {
        return None;
    }
    // The first `studies` followed by a UID anchors WADO-RS, STOW to a study and the
    // searches inside a study.
    if let Some(i) =
        (1..s.len()).find(|&i| s[i] == "studies" && s.get(i + 1).is_some_and(|u| is_uid(u)))
    {
        return dicomweb(verb, s, i, root_of(path, s, i));
    }
    if let Some(touch) = dicomweb_servers(s) {
        return Some(touch);
    }
    // A `studies` not followed by a UID is no DICOMweb root: nothing to search there.
    if s[..last].contains(&"studies") {
        return None;
    }
    match (verb, s[last]) {
        (Verb::Read, "studies" | "series" | "instances") => {
            touch(Search, Target::Query(criteria(query)))
        }
        (Verb::Post, "studies") => unnamed(Upload),
        (Verb::Read, "wado") => wado_uri(root_of(path, s, last), query?),
        _ => None,
    }
}

/// Orthanc's DICOMweb client: `{root}/servers/{name}/{action}`.
fn dicomweb_servers(s: &[&str]) -> Option<Touch> {
    use Operation::*;
    let [.., servers, _, action] = s else {
        return None;
    };
    if *servers != "servers" {
        return None;
    }
    match *action {
        "get" | "post" | "wado" => unnamed(View),
        "qido" => everything(),
        "retrieve" => unnamed(Upload),
        "stow" => unnamed(Export),
        "delete" => unnamed(Delete),
        _ => None,
    }
}

/// The path before segment `i` (the DICOMweb root), `""` at the top.
fn root_of<'a>(path: &'a str, s: &[&str], i: usize) -> &'a str {
    // Every segment before `i` plus its leading slash.
    let len: usize = s[..i].iter().map(|seg| seg.len() + 1).sum();
    path.get(..len).unwrap_or("")
}

/// DICOMweb from segment `i` (`studies`, `s[i + 1]` a UID) on.
fn dicomweb(verb: Verb, s: &[&str], i: usize, root: &str) -> Option<Touch> {
    use Operation::*;
    let study = s.get(i + 1)?;
    let mut rest = &s[i + 2..];
    let mut series = None;
    let mut instance = None;
    if let ["series", uid, tail @ ..] = rest
        && is_uid(uid)
    {
        series = Some(*uid);
        rest = tail;
        if let ["instances", uid, tail @ ..] = rest
            && is_uid(uid)
        {
            instance = Some(*uid);
            rest = tail;
        }
    }
    let op = match (verb, rest) {
        // The DICOM files themselves (multipart/related; type="application/dicom").
        (Verb::Read, []) => Download,
        (Verb::Post, []) => Upload,
        (v, _) => v.default_op(),
    };
    touch(
        op,
        Target::Dicom {
            root: root.to_owned(),
            study: (*study).to_owned(),
            series: series.map(str::to_owned),
            instance: instance.map(str::to_owned),
        },
    )
}

/// WADO-URI: the UIDs from the query; a DICOM file when `contentType` asks for one.
fn wado_uri(root: &str, query: &str) -> Option<Touch> {
    let (mut study, mut series, mut object, mut dicom) = (None, None, None, false);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "studyUID" if is_uid(&v) => study = Some(v),
            "seriesUID" if is_uid(&v) => series = Some(v),
            "objectUID" if is_uid(&v) => object = Some(v),
            "contentType" => {
                dicom |= v
                    .trim()
                    .get(..17)
                    .is_some_and(|t| t.eq_ignore_ascii_case("application/dicom"))
            }
            _ => {}
        }
    }
    if study.is_none() && object.is_none() {
        return None;
    }
    let op = if dicom {
        Operation::Download
    } else {
        Operation::View
    };
    touch(
        op,
        Target::Dicom {
            root: root.to_owned(),
            study: study.map(|s| s.into_owned()).unwrap_or_default(),
            series: series.map(|s| s.into_owned()),
            instance: object.map(|s| s.into_owned()),
        },
    )
}

/// Orthanc's identifiers: five groups of eight lower-case hex digits joined by dashes.
fn is_orthanc_id(s: &str) -> bool {
    s.len() == 44
        && s.bytes().enumerate().all(|(i, b)| {
            if i % 9 == 8 {
                b == b'-'
            } else {
                b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
            }
        })
}

/// A DICOM UID: digits and dots, starting with a digit, at most 64 characters (PS3.5 §9).
fn is_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests;
