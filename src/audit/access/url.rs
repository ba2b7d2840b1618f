//! LOCAL DRAFT (not to commit): the helper's parser replaces it.
use super::{Operation, Target, Touch};

pub(crate) fn classify(method: &http::Method, path: &str, query: Option<&str>) -> Option<Touch> {
    let _ = query;
    let mut parts = path.trim_start_matches('/').split('/');
    let first = parts.next()?;
    let op = match *method {
        http::Method::GET | http::Method::HEAD => Operation::View,
        http::Method::DELETE => Operation::Delete,
        http::Method::PUT => Operation::Modify,
        http::Method::POST if path == "/instances" => {
            return Some(Touch {
                operation: Operation::Upload,
                target: Target::Unnamed,
            });
        }
        _ => return None,
    };
    let target = match first {
        "patients" => Target::OrthancPatient(parts.next()?.to_string()),
        "studies" => Target::OrthancStudy(parts.next()?.to_string()),
        "series" => Target::OrthancSeries(parts.next()?.to_string()),
        "instances" => Target::OrthancInstance(parts.next()?.to_string()),
        "web-viewer" => match parts.next()? {
            "series" => Target::OrthancSeries(parts.next()?.to_string()),
            "instances" => {
                let s = parts.next()?;
                let s = s.split_once('-').map_or(s, |x| x.1);
                Target::OrthancInstance(s.split('_').next()?.to_string())
            }
            _ => return None,
        },
        "dicom-web" => {
            if parts.next()? != "studies" {
                return None;
            }
            Target::Dicom {
                root: "/dicom-web".into(),
                study: parts.next()?.to_string(),
                series: None,
                instance: None,
            }
        }
        _ => return None,
    };
    let op = if path.ends_with("/archive") || path.ends_with("/file") {
        Operation::Download
    } else {
        op
    };
    Some(Touch {
        operation: op,
        target,
    })
}
