//! Accesses to patient data: what a proxied request touches, as read from the viewer's URL
//! (`url.rs`), which patient and study that is (`resolve.rs`, asking the upstream off the
//! request path), and the grouping of a viewer's hundreds of image requests into one record per
//! study viewed (`viewing.rs`).

pub(crate) mod url;

/// What a request does to the data it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Operation {
    /// Reading images, metadata or a study's pages in a viewer.
    View,
    /// A query that lists patients or studies (QIDO-RS, `/tools/find`, the lists of Orthanc's
    /// explorer).
    Search,
    /// A file leaves as a file: DICOM instance, ZIP archive, DICOMDIR media, WADO-URI
    /// `application/dicom`.
    Download,
    /// New data stored (REST upload, STOW-RS).
    Upload,
    /// Data changed (`modify`, `anonymize`, metadata, labels, attachments).
    Modify,
    /// Data deleted.
    Delete,
    /// Data sent elsewhere (DICOM C-STORE to a modality or peer, DICOMweb STOW to a server,
    /// transfers).
    Export,
}

impl Operation {
    /// Operations recorded one viewing per study (grouped), not one record per request.
    pub(crate) fn is_grouped(self) -> bool {
        matches!(self, Operation::View | Operation::Download)
    }
}

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
