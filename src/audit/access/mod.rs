//! Accesses to patient data: what a proxied request touches, as read from the viewer's URL
//! (`url.rs`), which patient and study that is (`resolve.rs`, asking the upstream off the
//! request path), and the grouping of a viewer's hundreds of image requests into one record per
//! study viewed (`viewing.rs`).

mod note;
pub(crate) mod resolve;
pub(crate) mod url;
pub(crate) mod viewing;

pub(crate) use note::{LookupFirst, Pending};

#[cfg(test)]
mod tests;

pub(crate) use super::event::Operation;

/// The data a request names, as written in its URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// Orthanc's own identifiers (SHA-1 shaped, `xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx`).
    OrthancPatient(String),
    OrthancStudy(String),
    OrthancSeries(String),
    OrthancInstance(String),
    /// DICOM UIDs (DICOMweb, WADO-URI). `root` is the path before `/studies` (e.g.
    /// `/dicom-web`), through which the same server can be asked who the study belongs to.
    Dicom {
        root: String,
        study: String,
        series: Option<String>,
        instance: Option<String>,
    },
    /// A search: the matching keys that name a patient or a study (`PatientID`, `PatientName`,
    /// `StudyInstanceUID`, `AccessionNumber`, …), as given; empty for a search of everything
    /// or one whose criteria are in the body.
    Query(Vec<(String, String)>),
    /// Patient data with no identifier in the URL (an upload: the study is in the body).
    Unnamed,
}

/// What one request touches; `None` from the parser for everything that is not patient data
/// (the viewer's code, styles, `/system`, `/_vigie/`…).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Touch {
    pub(crate) operation: Operation,
    pub(crate) target: Target,
}
